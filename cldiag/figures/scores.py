"""Positive and negative score distributions (Zhu et al., ICCV 2021), from the ``histograms`` table.

The table holds fixed-bin histograms on [−1, 1] per logged step and kind (``pos``: cosine of positive
pairs; ``neg``: cosine to negatives; ``hard_neg``: each anchor's hardest negative). These builders draw
one step's distributions, their evolution as a heatmap, and quantiles of the hardest negatives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cldiag.figures._common import (
    KIND_COLORS,
    KIND_LABELS,
    bucket_reduce,
    finish,
    require_columns,
    require_rows,
)
from cldiag.reader import downsample

__all__ = [
    "HistogramMatrix",
    "fig_hard_negative_quantiles",
    "fig_score_heatmap",
    "fig_score_overlay",
    "histogram_matrices",
    "histogram_matrix",
    "histogram_quantiles",
    "overlap_coefficient",
]

_HIST_COLUMNS = ("step", "kind", "bin_left", "bin_right", "count")


class HistogramMatrix:
    """The histograms of one kind as a dense (steps × bins) count matrix.

    Attributes:
        steps: logged steps, ascending (length S).
        edges: bin edges, ascending (length B + 1).
        counts: S × B float64 counts (a bin missing at a step counts 0).
    """

    def __init__(self, steps: np.ndarray, edges: np.ndarray, counts: np.ndarray) -> None:
        if counts.shape != (steps.size, edges.size - 1):
            raise ValueError(
                f"counts must be steps × bins = {(steps.size, edges.size - 1)}, got {counts.shape}",
            )
        self.steps = steps
        self.edges = edges
        self.counts = counts

    @property
    def centers(self) -> np.ndarray:
        """Bin centres (length B)."""
        return (self.edges[:-1] + self.edges[1:]) / 2

    def density(self) -> np.ndarray:
        """Each row normalised to a probability density over the score axis (rows without counts stay 0)."""
        widths = np.diff(self.edges)
        totals = self.counts.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            dens = self.counts / (totals * widths[None, :])
        return np.nan_to_num(dens, nan=0.0)


def _matrix(step: np.ndarray, left: np.ndarray, right: np.ndarray, count: np.ndarray) -> HistogramMatrix:
    lefts, bin_of_row = np.unique(left, return_inverse=True)
    rights = np.zeros_like(lefts)
    rights[bin_of_row] = right
    edges = np.r_[lefts, rights[-1]]
    steps, step_of_row = np.unique(step, return_inverse=True)
    # bincount sums repeated (step, bin) cells like np.add.at, at a fraction of its cost.
    flat = np.bincount(
        step_of_row * lefts.size + bin_of_row, weights=count, minlength=steps.size * lefts.size
    )
    return HistogramMatrix(steps, edges, flat.reshape(steps.size, lefts.size))


def histogram_matrices(hist: pd.DataFrame) -> dict[str, HistogramMatrix]:
    """Pivot every kind of a histograms frame into a :class:`HistogramMatrix` (O(rows), no pandas pivot).

    The kind column is factorized once, so a frame of millions of rows is split in one pass.

    Raises:
        ValueError: the frame lacks histogram columns.
    """
    require_columns(hist, _HIST_COLUMNS, "histograms frame")
    codes, kinds = pd.factorize(hist["kind"])
    columns = [
        hist[c].to_numpy(dtype)
        for c, dtype in (
            ("step", np.int64),
            ("bin_left", np.float64),
            ("bin_right", np.float64),
            ("count", np.float64),
        )
    ]
    out = {}
    for k, kind in enumerate(kinds):
        rows = np.flatnonzero(codes == k)
        out[str(kind)] = _matrix(*(c[rows] for c in columns))
    return out


def histogram_matrix(hist: pd.DataFrame, kind: str) -> HistogramMatrix:
    """The :class:`HistogramMatrix` of one ``kind``.

    Raises:
        ValueError: the frame lacks histogram columns or has no rows of ``kind``.
    """
    matrices = histogram_matrices(hist)
    if kind not in matrices:
        raise ValueError(f"no histogram rows of kind {kind!r}; kinds present: {sorted(matrices)}")
    return matrices[kind]


Histograms = pd.DataFrame | Mapping[str, HistogramMatrix]
"""A histograms frame, or its :func:`histogram_matrices` (computed once and shared between charts)."""


def _as_matrices(hist: Histograms) -> Mapping[str, HistogramMatrix]:
    if isinstance(hist, Mapping):
        return hist
    require_rows(hist, "histograms frame")
    return histogram_matrices(hist)


def histogram_quantiles(matrix: HistogramMatrix, quantiles: Sequence[float]) -> np.ndarray:
    """Quantiles of each step's distribution, interpolating linearly inside the bin that holds them.

    Args:
        matrix: histograms of one kind.
        quantiles: levels in [0, 1].

    Returns:
        S × len(quantiles) array (NaN for a step without counts). Exact for scores spread uniformly within
        bins; otherwise within one bin width of the sample quantile.
    """
    qs = np.asarray(quantiles, dtype=np.float64)
    if qs.ndim != 1 or np.any((qs < 0) | (qs > 1)):
        raise ValueError(f"quantiles must be a 1-D sequence in [0, 1], got {quantiles!r}")
    totals = matrix.counts.sum(axis=1)
    cdf = np.cumsum(matrix.counts, axis=1)
    out = np.full((matrix.steps.size, qs.size), np.nan)
    ok = totals > 0
    cdf_ok = cdf[ok] / totals[ok, None]
    counts_ok = matrix.counts[ok] / totals[ok, None]
    widths = np.diff(matrix.edges)
    for j, q in enumerate(qs):
        # First bin whose cumulative share reaches q; the quantile lies inside it.
        b = np.argmax(cdf_ok >= q - 1e-12, axis=1)
        rows = np.arange(b.size)
        before = cdf_ok[rows, b] - counts_ok[rows, b]
        share = counts_ok[rows, b]
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = np.where(share > 0, (q - before) / share, 0.0)
        out[ok, j] = matrix.edges[b] + np.clip(frac, 0.0, 1.0) * widths[b]
    return out


def overlap_coefficient(hist_at_step: pd.DataFrame, a: str = "pos", b: str = "neg") -> float:
    """Overlap coefficient Σ min(p_a, p_b) of two kinds' bin shares at one step: 0 disjoint, 1 identical.

    Raises:
        ValueError: the frame holds more than one step, or lacks one of the kinds.
    """
    require_columns(hist_at_step, _HIST_COLUMNS, "histograms frame")
    if hist_at_step["step"].nunique() > 1:
        raise ValueError(f"expected one step, got steps {sorted(hist_at_step['step'].unique())[:5]}…")
    matrices = histogram_matrices(hist_at_step)
    missing = [k for k in (a, b) if k not in matrices]
    if missing:
        raise ValueError(f"no histogram rows of kind {missing}; kinds present: {sorted(matrices)}")
    pa_, pb = matrices[a], matrices[b]
    if not np.array_equal(pa_.edges, pb.edges):
        raise ValueError(f"kinds {a!r} and {b!r} use different bin edges")
    sa, sb = pa_.counts.sum(), pb.counts.sum()
    if sa == 0 or sb == 0:
        return float("nan")
    return float(np.minimum(pa_.counts[0] / sa, pb.counts[0] / sb).sum())


def density_overlay(
    hist_at_step: pd.DataFrame, kinds: Mapping[str, tuple[str, str | None]], *, x_name: str
) -> tuple[go.Figure, int, list[str]]:
    """Overlaid density bars of the histogram ``kinds`` present in one step's rows, over [−1, 1].

    Args:
        hist_at_step: histograms frame (``step, kind, bin_left, bin_right, count``); kinds not in ``kinds``
            are ignored.
        kinds: ``{kind: (legend label, colour)}``, in drawing order.
        x_name: the value's name in the hover.

    Returns:
        ``(figure without title, the step, the kinds drawn)``.

    Raises:
        ValueError: missing columns, no rows of ``kinds``, or rows of more than one step.
    """
    require_columns(hist_at_step, _HIST_COLUMNS, "histograms frame")
    rows = hist_at_step.loc[hist_at_step["kind"].isin(list(kinds))]
    require_rows(rows, "histograms frame")
    steps = rows["step"].unique()
    if steps.size != 1:
        raise ValueError(f"expected the histograms of one step, got {steps.size} steps")
    matrices = histogram_matrices(rows)
    fig = go.Figure()
    present = [k for k in kinds if k in matrices]
    for kind in present:
        m = matrices[kind]
        label, color = kinds[kind]
        fig.add_trace(
            go.Bar(
                x=m.centers,
                y=m.density()[0],
                width=np.diff(m.edges),
                name=label,
                marker={"color": color, "line": {"width": 0}},
                opacity=0.55,
                customdata=m.counts[0],
                hovertemplate=f"{x_name} %{{x:.3f}}<br>density %{{y:.3g}}<br>count %{{customdata:.0f}}"
                "<extra></extra>",
            ),
        )
    fig.update_layout(barmode="overlay", bargap=0)
    fig.update_xaxes(range=[-1, 1])
    return fig, int(steps[0]), present


def fig_score_overlay(hist_at_step: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Overlaid score densities of every kind present at one step.

    Args:
        hist_at_step: histograms frame of a single step.
        title: chart title (default names the step and the pos/neg overlap).

    Returns:
        One bar trace per kind (positive, negative, hardest negative), densities over the cosine axis.
    """
    kinds = {k: (KIND_LABELS.get(k, k), KIND_COLORS.get(k)) for k in ("pos", "neg", "hard_neg")}
    fig, step, present = density_overlay(hist_at_step, kinds, x_name="cosine")
    if title is None:
        title = f"Score distributions at step {step}"
        if "pos" in present and "neg" in present:
            title += f" — pos/neg overlap {overlap_coefficient(hist_at_step):.2f}"
    return finish(fig, title=title, x_title="cosine similarity", y_title="density")


def fig_score_heatmap(
    hist: Histograms,
    kinds: Sequence[str] = ("pos", "neg"),
    *,
    max_rows: int = 300,
    title: str = "Score distributions over training",
) -> go.Figure:
    """Heatmaps (step × cosine) of the score densities over training, one panel per kind.

    Args:
        hist: histograms frame over many steps (or its :func:`histogram_matrices`).
        kinds: the kinds to draw side by side; absent kinds are skipped.
        max_rows: at most this many step rows per panel; consecutive steps beyond that are merged by
            summing their counts (stated in the title, never silently dropped).
        title: chart title.

    Returns:
        One heatmap trace per present kind.
    """
    matrices = _as_matrices(hist)
    present = [k for k in kinds if k in matrices]
    if not present:
        raise ValueError(f"none of the kinds {list(kinds)} are present; have {sorted(matrices)}")
    gap = 0.12
    fig = make_subplots(
        rows=1,
        cols=len(present),
        shared_yaxes=True,
        subplot_titles=[KIND_LABELS.get(k, k) for k in present],
        horizontal_spacing=gap,
    )
    width = (1 - gap * (len(present) - 1)) / len(present)
    merged_note = ""
    for i, kind in enumerate(present):
        m = matrices[kind]
        counts, steps, merged = bucket_reduce(m.counts, m.steps, max_rows, "sum")
        if merged:
            merged_note = f" ({m.steps.size} logged steps merged into {steps.size} rows)"
        dens = HistogramMatrix(steps, m.edges, counts).density()
        # One colour scale per panel: positives are far more peaked than negatives, and a shared scale
        # would paint the negative panel a single dark colour.
        axis = "coloraxis" if i == 0 else f"coloraxis{i + 1}"
        fig.update_layout(
            {
                axis: {
                    "colorscale": "Viridis",
                    "colorbar": {
                        "title": {"text": "density"},
                        "x": (i + 1) * width + i * gap + 0.01,
                        "len": 0.9,
                    },
                },
            },
        )
        fig.add_trace(
            go.Heatmap(
                x=m.centers,
                y=steps,
                z=dens,
                coloraxis=axis,
                hovertemplate="step ≤ %{y}<br>cosine %{x:.3f}<br>density %{z:.3g}<extra></extra>",
            ),
            row=1,
            col=i + 1,
        )
        fig.update_xaxes(title_text="cosine similarity", range=[-1, 1], row=1, col=i + 1)
    fig.update_yaxes(title_text="training step", row=1, col=1)
    return finish(fig, title=title + merged_note, height=420)


def fig_hard_negative_quantiles(
    hist: Histograms,
    quantiles: Sequence[float] = (0.5, 0.9, 0.99),
    *,
    max_points: int = 2000,
    title: str = "Hardest-negative quantiles vs. median positive",
) -> go.Figure:
    """Quantiles of the hardest-negative cosine over training, with the median positive cosine beside them.

    When the hardest negatives' upper quantiles climb above the median positive, many anchors have a
    negative closer than their own positive.

    Args:
        hist: histograms frame (or its :func:`histogram_matrices`) with ``hard_neg`` rows (and ``pos``
            for the reference).
        quantiles: quantile levels of the hardest-negative distribution to draw.
        max_points: longer series are reduced with min/max-preserving downsampling.
        title: chart title.

    Returns:
        One trace per quantile, plus one for the positive median when ``pos`` rows exist.
    """
    matrices = _as_matrices(hist)
    if "hard_neg" not in matrices:
        raise ValueError(f"no hardest-negative histograms; kinds present: {sorted(matrices)}")
    series: list[pd.DataFrame] = []
    hard = matrices["hard_neg"]
    values = histogram_quantiles(hard, quantiles)
    for j, q in enumerate(quantiles):
        name = f"hardest negative q{q:g}"
        series.append(pd.DataFrame({"step": hard.steps, "metric": name, "value": values[:, j]}))
    if "pos" in matrices:
        pos = matrices["pos"]
        med = histogram_quantiles(pos, [0.5])[:, 0]
        series.append(pd.DataFrame({"step": pos.steps, "metric": "positive median", "value": med}))
    long = downsample(pd.concat(series, ignore_index=True), max_points=max_points, by=("metric",))
    fig = go.Figure()
    shades = ("#b3a9e0", "#7570b3", "#3f3880", "#1f1a4d")
    for j, name in enumerate(long["metric"].unique()):
        part = long.loc[long["metric"] == name].sort_values("step")
        is_pos = name == "positive median"
        fig.add_trace(
            go.Scatter(
                x=part["step"],
                y=part["value"],
                mode="lines",
                name=name,
                line={
                    "color": KIND_COLORS["pos"] if is_pos else shades[min(j, len(shades) - 1)],
                    "dash": "dash" if is_pos else "solid",
                    "width": 1.6,
                },
                hovertemplate=f"{name}<br>step %{{x}}<br>cosine %{{y:.3f}}<extra></extra>",
            ),
        )
    fig.update_yaxes(autorangeoptions={"clipmin": -1, "clipmax": 1})
    return finish(fig, title=title, x_title="training step", y_title="cosine similarity")
