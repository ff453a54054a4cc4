"""The Modality gap page's views: gap, cones, the 2-D view of both modalities, and N modalities' pairs.

A run of ``N >= 2`` modalities logged through a mapping (``Monitor.log(step, {"image": …, "text": …,
"audio": …})``) records only the first two names in ``meta.json`` (its ``a`` and ``b``); every modality
is named in its per-pair metrics ``gap/<m1>-<m2>`` and ``retrieval/<m1>-<m2>``
(:func:`cldiag.schema.pair_metric`), so the N modalities are read from those names
(:func:`pair_modalities`); the Lab's three-modality runs log the same names with ``Monitor.log_scalar``.
"""

from __future__ import annotations

from collections import Counter

import pandas as pd
import plotly.graph_objects as go

from cldiag import figures as F
from cldiag import projection, schema
from cldiag.figures.captions import caption
from cldiag.figures.modality import fig_mip_overlay, fig_pair_matrix, pair_matrix
from cldiag.views.base import EMPTY
from cldiag.views.data import RunLike, Series
from cldiag.views.panel import Panel, metrics_panel, series_panel

PAIR_BASES = (schema.M_PAIR_GAP, schema.M_PAIR_RETRIEVAL)
"""The per-pair metrics of N modalities, drawn as matrices and as one line per pair."""
MIP_KINDS = (schema.HIST_MIP_POS, schema.HIST_MIP_NEG)
"""The ``histograms`` kinds of Symile's multilinear inner product (N >= 3)."""
NO_PAIRS = (
    "No per-pair metrics in the selected steps yet. A mapping of modalities, "
    '`Monitor.log(step, {"image": zi, "text": zt, "audio": za})`, logs `gap/<m1>-<m2>` and '
    "`retrieval/<m1>-<m2>` every `pairwise_every` steps."
)
_MATRIX = {
    schema.M_PAIR_GAP: ("Modality gap between each pair", "gap ‖Δ‖", "Blues", None, "pair_gap_matrix"),
    schema.M_PAIR_RETRIEVAL: (
        "Top-1 retrieval, query → candidate",
        "top-1",
        "Greens",
        1.0,
        "pair_retrieval_matrix",
    ),
}


def modality_gap(view: RunLike) -> Panel | str:
    """The gap between the modalities' centroids and the matched-pair distance over training."""
    metrics = [schema.M_GAP, schema.M_MATCHED_DIST]

    def build(s: Series) -> go.Figure:
        title = "Modality gap and matched distance"
        return F.fig_metric_series(s.plot, metrics, title=title, y_title="distance on the unit sphere")

    return series_panel(view, metrics, "gap", "gap", build) or EMPTY["gap"]


def cones(view: RunLike) -> Panel | None:
    """Each modality's cone (mean within-modality cosine) over training."""
    metrics = [f"{schema.M_CONE}/{m}" for m in view.run.modalities[:2]]

    def build(s: Series) -> go.Figure:
        return F.fig_metric_series(s.plot, metrics, title="Cone: mean cosine within each modality")

    return series_panel(view, metrics, "cones", "cones", build)


def modality_gap_view(view: RunLike, step: int) -> Panel | str:
    """PCA of both modalities' snapshot embeddings at ``step``, centroids and matched pairs drawn.

    A snapshot of more than two modalities (the Lab's three-modality probe) is drawn for the run's two
    named modalities (``meta.json``'s ``a`` and ``b``), and the panel's note says so.
    """
    matrix, info = view.embedding_matrix(step)
    held = sorted(info["modality"].unique())
    if len(held) < 2:
        return f"The snapshot at step {step} holds only {held}; no 2-D gap view."
    note = None
    if len(held) > 2:
        shown = [m for m in view.run.modalities[:2] if m in held]
        if len(shown) < 2:
            return f"The snapshot at step {step} holds {held}, not both of {view.run.modalities[:2]}."
        keep = info["modality"].isin(shown).to_numpy()
        matrix, info = matrix[keep], info.loc[keep].reset_index(drop=True)
        note = f"The snapshot holds {', '.join(held)}; the 2-D view shows {shown[0]} and {shown[1]}."

    def pca() -> projection.Projection:
        strata = info["modality"].to_numpy()
        return view.cached(
            "gap_pca",
            lambda: projection.compute_projection(matrix, method="pca", cap=4000, strata=strata),
            step,
        )

    def build() -> go.Figure:
        proj = pca()
        x_title, y_title = (f"PC {i + 1} ({share:.0%} of variance)" for i, share in enumerate(proj.explained))
        gap = view.value_at(schema.M_GAP, step)
        return F.fig_modality_gap_view(data(), gap=gap, x_title=x_title, y_title=y_title)

    def data() -> pd.DataFrame:
        return projection.to_points(pca(), info)

    return Panel(
        key="gap_view",
        build=build,
        data=data,
        caption=caption("gap_view"),
        file_name=f"{view.name}-gap-view-step{step}",
        note=note,
        params=("gap_view", step),
    )


# ---------------------------------------------------------------------------------------------------------
# N modalities: pair matrices, their evolution, Symile's MIP distribution
def _pair_parts(metric: str) -> tuple[str, str, str] | None:
    """``"gap/image-audio"`` → ``("gap", "image", "audio")``; None for any other metric name."""
    base, sep, pair = metric.partition("/")
    first, dash, second = pair.partition("-")
    if base not in PAIR_BASES or not sep or not dash or not first or not second or "-" in second:
        return None
    return base, first, second


def pair_modalities(view: RunLike) -> list[str]:
    """The modalities named by the run's per-pair metrics, in the order they were logged.

    The Monitor logs ``gap/<p>-<q>`` for ``p`` before ``q`` in the mapping, so the k-th modality is the
    second name of k gap metrics; retrieval-only names follow, by name.

    Returns:
        The names (empty for a run without per-pair metrics: two views, or a plain two-tower run).
    """
    parts = [p for p in map(_pair_parts, view.metrics()) if p is not None]
    names = sorted({n for _, first, second in parts for n in (first, second)})
    later = Counter(second for base, _, second in parts if base == schema.M_PAIR_GAP)
    return sorted(names, key=lambda n: later[n])  # stable: ties keep name order


def pair_metrics(view: RunLike, base: str) -> list[str]:
    """The run's ``<base>/<m1>-<m2>`` metrics, in the order of :func:`pair_modalities` (query first)."""
    names = pair_modalities(view)
    logged = set(view.metrics())
    return [
        name
        for first in names
        for second in names
        if (name := schema.pair_metric(base, first, second)) in logged
    ]


def pair_steps(view: RunLike) -> list[int]:
    """Steps (in the step range) at which any per-pair metric was logged, ascending."""
    metrics = [m for base in PAIR_BASES for m in pair_metrics(view, base)]
    if not metrics:
        return []
    return sorted(int(s) for s in view.series(metrics).full["step"].unique())


def pair_cells(view: RunLike, step: int, base: str) -> pd.DataFrame:
    """The tidy frame of one step's per-pair values: ``step, metric, query, candidate, value``."""
    metrics = pair_metrics(view, base)
    full = view.series(metrics).full if metrics else pd.DataFrame(columns=["step", "metric", "value"])
    rows = full.loc[full["step"] == step, ["step", "metric", "value"]].drop_duplicates("metric", keep="last")
    pairs = [_pair_parts(m) or ("", "", "") for m in rows["metric"]]
    rows = rows.assign(query=[p[1] for p in pairs], candidate=[p[2] for p in pairs])
    return rows[["step", "metric", "query", "candidate", "value"]].reset_index(drop=True)


def modality_matrix(view: RunLike, step: int, base: str) -> Panel | str | None:
    """The N×N matrix of ``base`` (gap or retrieval) at ``step``: rows query, columns candidate.

    Returns:
        The panel; a message when the run has pair metrics but none at ``step``; None without any.
    """
    if base not in _MATRIX:
        raise ValueError(f"base must be one of {list(_MATRIX)}, got {base!r}")
    names = pair_modalities(view)
    if not names:
        return None
    cells = pair_cells(view, step, base)
    if cells.empty:
        return f"No `{base}/<m1>-<m2>` metrics logged at step {step}."
    title, value_title, colors, zmax, chart = _MATRIX[base]

    def build() -> go.Figure:
        matrix = pair_matrix(cells, names, symmetric=base == schema.M_PAIR_GAP)
        return fig_pair_matrix(
            matrix,
            names,
            title=f"{title} at step {step}",
            value_title=value_title,
            zmin=0.0,
            zmax=zmax,
            colorscale=colors,
        )

    return Panel(
        key=f"{base}_matrix",
        build=build,
        data=cells,
        caption=caption(chart),
        file_name=f"{view.name}-{base}-matrix-step{step}",
        params=(f"{base}_matrix", step),
    )


def pair_evolution(view: RunLike, base: str) -> Panel | None:
    """One line per pair of ``base`` (gap or retrieval) over training; None when none was logged."""
    if base not in _MATRIX:
        raise ValueError(f"base must be one of {list(_MATRIX)}, got {base!r}")
    metrics = pair_metrics(view, base)
    if not metrics:
        return None
    title = {schema.M_PAIR_GAP: "Gap of each pair", schema.M_PAIR_RETRIEVAL: "Top-1 retrieval of each pair"}
    return metrics_panel(
        view,
        metrics,
        key=f"{base}_pairs",
        title=f"{title[base]} over training",
        file_name=f"{base}-pairs",
        y_title=_MATRIX[base][1],
        caption_text=caption(f"{base}_pairs"),
    )


def mip_distribution(view: RunLike, step: int) -> Panel | str | None:
    """Symile's MIP of matched against mismatched tuples at ``step`` (runs of N >= 3 modalities).

    Returns:
        The panel; a message for a run of three or more modalities without the histograms at ``step``;
        None for a run of fewer (its MIP is the cosine, drawn on the Scores page).
    """
    at_step = view.at_step("histograms", step)
    mip = at_step.loc[at_step["kind"].isin(MIP_KINDS)].reset_index(drop=True)
    if mip.empty:
        if len(pair_modalities(view)) < 3:
            return None
        return (
            f"No multilinear-inner-product histograms at step {step}. The Monitor logs them at pairwise "
            "steps when three or more modalities are passed to `Monitor.log` as one mapping."
        )
    return Panel(
        key="mip_overlay",
        build=lambda: fig_mip_overlay(mip),
        data=mip,
        caption=caption("mip_overlay"),
        file_name=f"{view.name}-mip-step{step}",
        params=("mip_overlay", step),
    )


def mip_series(view: RunLike) -> Panel | None:
    """Symile's MIP over training: the Monitor's ``mip_overlap``, or ``mip_pos`` / ``mip_neg`` means."""
    overlap = metrics_panel(
        view,
        [schema.M_MIP_OVERLAP],
        key="mip_overlap",
        title="Matched/mismatched MIP overlap over training",
        file_name="mip-overlap",
    )
    return overlap or metrics_panel(
        view,
        [schema.M_MIP_POS, schema.M_MIP_NEG],
        key="mip_means",
        title="Mean MIP of matched and mismatched tuples over training",
        file_name="mip-means",
        y_title="multilinear inner product",
    )
