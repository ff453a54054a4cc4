"""What the Lab page shows, as plain Python: labels, the live figure, its caption, the preset verdicts.

``pages/lab.py`` only reads widgets and calls these (load → figure → show); everything here is testable
without Streamlit.

- :func:`live_metrics` / :func:`fig_lab_live` -- the panels of the run being trained: human titles, all on
  one x range (the run's total steps), the kNN panel with the raw-input bar drawn as a dashed line, the
  effective-rank panel from 0 to the embedding dimension (its cap).
- :func:`live_caption` -- how to read it, with this run's numbers, so the caption is true for the run
  beside it (a run that ends below the raw-input bar is told so).
- :func:`preset_verdict` -- the sentences under a preset once it has run.
"""

from __future__ import annotations

import math
import posixpath
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cldiag import schema
from cldiag.figures._common import PALETTE, finish
from cldiag.figures.metrics import metric_info
from cldiag.lab.presets import Preset, PresetResult
from cldiag.lab.trainer import KNN_K

__all__ = [
    "DATA_LABELS",
    "ENCODER_LABELS",
    "KNN",
    "KNN_RAW",
    "LOSS_LABELS",
    "PROGRESS_METRICS",
    "fig_lab_live",
    "live_caption",
    "live_metrics",
    "panel_title",
    "preset_verdict",
    "run_name",
]

KNN = "knn_acc"
KNN_RAW = "knn_acc_raw"
LIVE_METRICS: tuple[str, ...] = (
    schema.M_LOSS,
    KNN,
    schema.M_ALIGNMENT,
    schema.M_UNIFORMITY,
    schema.M_RANK,
    schema.M_GAP,
    schema.M_TEMPERATURE,
)
"""The panels of the live chart, in order (the gap and τ only where they apply)."""

DATA_LABELS = {
    "digits": "digits: 8×8 images, two augmented views",
    "cluttered-digits": "cluttered digits: digits beside loud clutter",
    "prototypes": "prototypes: 50 classes hidden under nuisance",
    "imbalanced-prototypes": "imbalanced prototypes: 4 frequent and 16 rare classes",
    "pairs": "pairs: digit image ↔ caption (two modalities)",
    "xor-triples": "XOR triples: a, b, c = a XOR b (three modalities)",
    "toy": "toy: 16-d Gaussians (Jing et al.)",
}
ENCODER_LABELS = {"mlp": "MLP", "cnn": "small CNN (8×8 images)", "linear": "linear map (square)"}
LOSS_LABELS = {
    "nt_xent": "NT-Xent (SimCLR)",
    "info_nce": "InfoNCE (symmetric)",
    "clip": "CLIP",
    "dcl": "DCL (decoupled)",
    "dclw": "DCLW (weighted DCL)",
    "supcon": "SupCon (uses labels)",
    "mochi": "MoCHi (mixed hard negatives)",
    "align": "alignment only, no negatives (collapses)",
    "isogclr": "iSogCLR (a learned τ per sample)",
    "symile": "Symile (three modalities, multilinear)",
    "pairwise_clip": "pairwise CLIP (three modalities)",
}
PROGRESS_METRICS = {
    "loss": "loss",
    KNN: f"held-out {KNN_K}-NN accuracy",
    KNN_RAW: f"{KNN_K}-NN on raw inputs",
}
"""The numbers shown above the live chart: key in :attr:`LabProgress.metrics` → label."""

_RAW_COLOR = "#555555"


def run_name(run_dir: str) -> str:
    """The run's name: the last component of its directory."""
    return posixpath.basename(run_dir.rstrip("/").replace("\\", "/"))


def live_metrics(config: Mapping[str, Any]) -> list[str]:
    """The live panels for a run with this ``config`` (its ``meta.json`` config).

    The modality gap only for two modalities; τ only when it is learned (a fixed τ is a flat line).
    """
    out = []
    for metric in LIVE_METRICS:
        if metric == schema.M_GAP and config.get("data") != "pairs":
            continue
        if metric == schema.M_TEMPERATURE and not config.get("learnable_temperature"):
            continue
        out.append(metric)
    return out


def panel_title(metric: str, *, dim: int | None = None) -> str:
    """A panel's title in words, with the arrow saying which way is better."""
    if metric == KNN:
        return f"held-out {KNN_K}-NN accuracy ↑"
    title = metric_info(metric, dim=dim).axis_title
    if metric == schema.M_RANK and dim:
        title += f" of {dim}"
    return title


def _y_axis(metric: str, values: pd.Series, dim: int | None) -> dict[str, Any]:
    """Axis settings: accuracy on [0, 1], rank from 0 to its cap, others inside the metric's bounds."""
    if metric == KNN:
        return {"range": [0.0, 1.02]}
    if metric == schema.M_RANK and dim:
        # From 0 to the cap: three points between 29.5 and 34 must not look like a collapse.
        return {"range": [0.0, dim * 1.05]}
    info = metric_info(metric, dim=dim)
    options = {
        k: v for k, v in (("clipmin", info.lower), ("clipmax", info.upper)) if v is not None and len(values)
    }
    return {"autorangeoptions": options} if options else {}


def fig_lab_live(
    df: pd.DataFrame,
    metrics: Sequence[str],
    *,
    steps: int,
    dim: int | None = None,
    raw_knn: float | None = None,
    title: str,
    cols: int = 2,
) -> go.Figure:
    """Small multiples of a Lab run: one panel per metric, every panel on the x range ``[0, steps]``.

    Args:
        df: Long scalars frame ``step, metric, value`` of one run.
        metrics: The panels in order; metrics absent from ``df`` get no panel.
        steps: The run's total steps: every x axis spans ``[0, steps]`` (a live run fills it left to right).
        dim: Embedding dimension: the cap of the effective-rank axis, drawn as a dashed line.
        raw_knn: kNN accuracy of raw inputs, drawn as a dashed line on the kNN panel (the bar to clear).
        title: The chart title.
        cols: Panels per row.

    Returns:
        The figure.

    Raises:
        ValueError: If ``df`` lacks ``step, metric, value``, no metric has data, or ``steps``/``cols`` < 1.
    """
    missing = {"step", "metric", "value"} - set(df.columns)
    if missing:
        raise ValueError(f"scalars frame lacks columns {sorted(missing)}; it has {list(df.columns)}")
    if steps < 1 or cols < 1:
        raise ValueError(f"steps and cols must be >= 1, got steps={steps}, cols={cols}")
    present = set(df["metric"].unique())
    chosen = [m for m in metrics if m in present]
    if not chosen:
        raise ValueError(f"none of {list(metrics)} has data in the frame")
    cols = min(cols, len(chosen))
    rows = -(-len(chosen) // cols)
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[panel_title(m, dim=dim) for m in chosen],
        horizontal_spacing=0.08,
        vertical_spacing=min(0.3, 80 / (240 * rows)) if rows > 1 else 0.0,
    )
    for k, metric in enumerate(chosen):
        row, col = k // cols + 1, k % cols + 1
        _panel(fig, df[df["metric"] == metric].sort_values("step"), metric, (row, col), dim, raw_knn)
        fig.update_xaxes(row=row, col=col, title_text="training step" if row == rows else None)
    # One x range for every panel, linked when the user zooms one of them.
    fig.update_xaxes(range=[0, steps])
    for name in fig.layout:
        if name.startswith("xaxis") and name != "xaxis":
            fig.layout[name].matches = "x"
    return finish(fig, title=title, height=80 + 240 * rows)


def _panel(
    fig: go.Figure,
    part: pd.DataFrame,
    metric: str,
    cell: tuple[int, int],
    dim: int | None,
    raw_knn: float | None,
) -> None:
    """Draw one metric's curve in subplot ``cell`` with its axis and reference lines."""
    row, col = cell
    title = panel_title(metric, dim=dim)
    fig.add_trace(
        go.Scatter(
            x=part["step"],
            y=part["value"],
            mode="lines+markers" if len(part) <= 20 else "lines",
            name=title,
            showlegend=False,
            line={"color": PALETTE[0], "width": 1.5},
            hovertemplate=f"{title}<br>step %{{x}}<br>%{{y:.4g}}<extra></extra>",
        ),
        row=row,
        col=col,
    )
    if metric == KNN and raw_knn is not None and math.isfinite(raw_knn):
        _reference_line(fig, raw_knn, f"raw inputs {raw_knn:.3f}", row, col)
    if metric == schema.M_RANK and dim:
        _reference_line(fig, float(dim), f"cap: d = {dim}", row, col)
    fig.update_yaxes(row=row, col=col, **_y_axis(metric, part["value"], dim))


def _reference_line(fig: go.Figure, y: float, label: str, row: int, col: int) -> None:
    fig.add_hline(
        y=y,
        row=row,
        col=col,
        line={"dash": "dash", "color": _RAW_COLOR, "width": 1},
        annotation={"text": label, "font": {"size": 11, "color": _RAW_COLOR}},
        annotation_position="bottom right",
    )


def live_caption(metrics: Mapping[str, float]) -> tuple[str, str]:
    """How to read the live chart (two lines), the second with this run's kNN against the raw-input bar.

    Args:
        metrics: The run's latest ``knn_acc`` and ``knn_acc_raw`` (either may be missing: no labels, or
            nothing evaluated yet).
    """
    what = (
        f"Loss and held-out {KNN_K}-NN accuracy of the run training now, beside its geometry: alignment, "
        "uniformity, effective rank (and the modality gap, τ when they apply). The dashed line on the "
        "accuracy panel is the same probe on raw inputs; the one on the rank panel is its cap, the dimension."
    )
    healthy = (
        "Healthy: loss and alignment fall, uniformity falls, the effective rank stays well above 1 "
        "(Wang & Isola 2020; RankMe, Garrido et al. 2023)"
    )
    knn, raw = metrics.get(KNN), metrics.get(KNN_RAW)
    if knn is None or raw is None:
        return what, healthy + "."
    if knn > raw:
        verdict = (
            f"; here the encoder's {KNN_K}-NN accuracy ({knn:.3f}) is above the raw-input bar ({raw:.3f}): "
            "training found what raw inputs miss."
        )
    else:
        verdict = (
            f"; here the encoder's {KNN_K}-NN accuracy ({knn:.3f}) is not above the raw-input bar "
            f"({raw:.3f}): raw inputs are already a strong probe on this data (plain digits), or training "
            "has not got there yet."
        )
    return what, healthy + verdict


def preset_verdict(preset: Preset, result: PresetResult) -> tuple[str, list[str]]:
    """The verdict line (Streamlit markdown) and the captions under it for a preset that has run."""
    verdict = ":green[reproduced]" if result.passed else ":orange[not reproduced]"
    line = f"**Our runs** ({result.seconds:.0f} s): {verdict}. {result.summary}"
    notes = []
    ended = [r for r in result.results if r.status == "finished"]
    full = [steps for _, steps in preset.plan()]
    if len(ended) < len(full):
        notes.append(
            f"Only {len(ended)} of {len(full)} runs finished (stopped, or one diverged): "
            "the check read what exists."
        )
    elif any(r.config.steps < s for r, s in zip(result.results, full, strict=True)):
        notes.append("Shortened runs: the effect can be weaker than at full length.")
    names = ", ".join(f"`{run_name(r.run_dir)}`" for r in result.results)
    notes.append(f"The runs: {names}. Pick them in the sidebar (Run, Compare with) to see them together.")
    return line, notes
