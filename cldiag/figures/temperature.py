"""Temperature curves of one snapshot (Wang & Liu, CVPR 2021): how the loss would treat negatives at each τ.

The ``temperature`` table holds, per logged step, curves over a τ grid computed from that step's batch:
the normalized entropy of the negative weighting (hardness), its exponential (effective number of
negatives), uniformity at t = 1/(2τ), the same-class share of the penalty and the positive's probability.

With a per-sample τ and labels (iSogCLR, Qiu et al. 2023), :func:`fig_tau_by_class` draws each class's mean τ
over training and :func:`fig_tau_vs_class_frequency` each class's τ against how often it occurs, from a
frame ``step, label, tau, count`` (one row per class and pairwise step; ``count`` = the class's rows).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cldiag import schema
from cldiag.figures._common import (
    bucket_reduce,
    color_map,
    finish,
    legend_on_top,
    require_columns,
    require_rows,
)

__all__ = [
    "CURVES",
    "TAU_CLASS_COLUMNS",
    "class_shares",
    "fig_tau_by_class",
    "fig_tau_vs_class_frequency",
    "fig_temperature_curves",
    "tau_against_share",
]

TAU_CLASS_COLUMNS = ("step", "label", "tau", "count")
"""Columns of a per-class τ frame: one row per class and step, ``count`` = rows of the class at that step."""

CURVES: dict[str, tuple[str, float | None, float | None]] = {
    schema.CURVE_ENTROPY: ("hardness entropy H̄(τ)", 0.0, 1.0),
    schema.CURVE_EFFECTIVE_NEGATIVES: ("effective negatives exp(H)", 1.0, None),
    schema.CURVE_UNIFORMITY: ("uniformity at t = 1/(2τ)", None, 0.0),
    schema.CURVE_SAME_CLASS_PENALTY: ("same-class share of the penalty", 0.0, 1.0),
    schema.CURVE_POS_WEIGHT: ("p(positive) at τ", 0.0, 1.0),
}
"""Curve name → (panel title, lower bound, upper bound), in display order."""


def fig_temperature_curves(
    temp_at_step: pd.DataFrame,
    *,
    run_tau: float | None = None,
    title: str | None = None,
    cols: int = 2,
) -> go.Figure:
    """One panel per curve over τ (log axis) at one step, the run's own τ marked in each panel.

    Args:
        temp_at_step: temperature frame ``step, tau, curve, value`` of a single step.
        run_tau: the run's temperature, drawn as a dashed vertical line (None: not drawn).
        title: chart title (default names the step).
        cols: panels per row.

    Returns:
        One line trace per present curve, plus one τ-marker trace per panel when ``run_tau`` is given
        (only the first appears in the legend).
    """
    require_columns(temp_at_step, ("step", "tau", "curve", "value"), "temperature frame")
    require_rows(temp_at_step, "temperature frame")
    steps = temp_at_step["step"].unique()
    if steps.size != 1:
        raise ValueError(f"expected the curves of one step, got {steps.size} steps")
    if run_tau is not None and not (np.isfinite(run_tau) and run_tau > 0):
        raise ValueError(f"run_tau must be a positive finite number, got {run_tau!r}")
    known = [c for c in CURVES if (temp_at_step["curve"] == c).any()]
    extra = sorted(set(temp_at_step["curve"]) - set(CURVES))
    curves = known + extra
    cols = max(1, min(cols, len(curves)))
    rows = -(-len(curves) // cols)
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[CURVES.get(c, (c, None, None))[0] for c in curves],
        horizontal_spacing=0.1,
        # Room between rows for the τ axis title and the next row's panel title.
        vertical_spacing=min(0.25, 110 / (290 * rows)) if rows > 1 else 0.0,
    )
    for k, curve in enumerate(curves):
        row, col = k // cols + 1, k % cols + 1
        part = temp_at_step.loc[temp_at_step["curve"] == curve].sort_values("tau")
        fig.add_trace(
            go.Scatter(
                x=part["tau"],
                y=part["value"],
                mode="lines+markers",
                marker={"size": 4},
                name=curve,
                showlegend=False,
                line={"color": "#1f77b4", "width": 1.8},
                hovertemplate=f"{curve}<br>τ %{{x:.3g}}<br>%{{y:.4g}}<extra></extra>",
            ),
            row=row,
            col=col,
        )
        if run_tau is not None:
            fig.add_trace(_tau_marker(part["value"], run_tau, first=k == 0), row=row, col=col)
        _, lower, upper = CURVES.get(curve, (curve, None, None))
        bounds = {k2: v for k2, v in (("clipmin", lower), ("clipmax", upper)) if v is not None}
        fig.update_yaxes(autorangeoptions=bounds, row=row, col=col)
        # One tick per decade (0.01, 0.1, 1, 10): plotly's default adds unlabelled 2 and 5 marks that read
        # as "0.01 2 5 0.1"; every panel names its axis, not only the bottom row.
        fig.update_xaxes(type="log", dtick=1, title_text="τ (log scale)", title_standoff=4, row=row, col=col)
    if title is None:
        title = f"Temperature curves at step {int(steps[0])}"
    return finish(fig, title=title, height=60 + 290 * rows, top=84)


def _tau_marker(values: pd.Series, run_tau: float, *, first: bool) -> go.Scatter:
    """The run's τ as a dashed vertical line over a panel's finite value range (legend on the first)."""
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
    return go.Scatter(
        x=[run_tau, run_tau],
        y=[lo, hi],
        mode="lines",
        name=f"run τ = {run_tau:.3g}",
        legendgroup="run_tau",
        showlegend=first,
        line={"color": "#d62728", "dash": "dash", "width": 1.2},
        hoverinfo="name",
    )


def class_shares(frame: pd.DataFrame) -> pd.DataFrame:
    """Each class's rows over the whole frame and their share of all rows, most frequent first.

    Args:
        frame: per-class τ frame (:data:`TAU_CLASS_COLUMNS`).

    Returns:
        ``label, rows, share`` sorted by ``rows`` descending, ties to the smaller label.
    """
    require_columns(frame, TAU_CLASS_COLUMNS, "per-class τ frame")
    rows = frame.groupby("label", sort=True)["count"].sum()
    out = pd.DataFrame({"label": rows.index.to_numpy(), "rows": rows.to_numpy(np.float64)})
    total = out["rows"].sum()
    out["share"] = out["rows"] / total if total > 0 else np.nan
    return out.sort_values(["rows", "label"], ascending=[False, True], kind="stable").reset_index(drop=True)


def _class_name(label: object, share: float) -> str:
    return f"class {label} · {share:.1%} of rows"


def fig_tau_by_class(
    frame: pd.DataFrame,
    *,
    max_lines: int = 8,
    max_columns: int = 200,
    title: str = "Per-sample temperature by class over training",
) -> go.Figure:
    """Each class's mean τ over training: a line per class, or a class × step heatmap for many classes.

    Classes are ordered by their share of the rows in the frame (most frequent first), which the legend or
    the heatmap's row labels give; the hover gives the rows of the class behind each value.

    Args:
        frame: per-class τ frame (:data:`TAU_CLASS_COLUMNS`), several steps.
        max_lines: up to this many classes get a line each; more get a heatmap.
        max_columns: the heatmap's most step columns: consecutive logged steps are merged, each cell the
            row-weighted mean τ of its steps (said in the title).
        title: chart title.

    Returns:
        ``min(#classes, max_lines)`` line traces, or one heatmap trace (a class absent from every step of a
        column is blank).
    """
    require_columns(frame, TAU_CLASS_COLUMNS, "per-class τ frame")
    require_rows(frame, "per-class τ frame")
    if max_lines < 1 or max_columns < 1:
        raise ValueError(f"max_lines and max_columns must be >= 1, got {max_lines} and {max_columns}")
    shares = class_shares(frame)
    names = {lab: _class_name(lab, sh) for lab, sh in zip(shares["label"], shares["share"], strict=True)}
    if len(shares) <= max_lines:
        fig = go.Figure()
        colors = color_map(list(shares["label"]))
        for label in shares["label"]:
            part = frame.loc[frame["label"] == label].sort_values("step")
            fig.add_trace(
                go.Scatter(
                    x=part["step"],
                    y=part["tau"],
                    customdata=part["count"],
                    mode="lines+markers",
                    marker={"size": 4},
                    name=names[label],
                    line={"color": colors[label], "width": 1.6},
                    hovertemplate=f"class {label}<br>step %{{x}}<br>mean τ %{{y:.4g}}"
                    "<br>%{customdata:.0f} rows<extra></extra>",
                ),
            )
        height = 420
        legend_on_top(fig, height)
        return finish(
            fig, title=title, x_title="training step", y_title="mean τ of the class", height=height, top=110
        )
    steps, step_of_row = np.unique(frame["step"].to_numpy(np.int64), return_inverse=True)
    position = {lab: k for k, lab in enumerate(shares["label"])}
    col = frame["label"].map(position).to_numpy(np.int64)
    count = frame["count"].to_numpy(np.float64)
    weighted = np.zeros((steps.size, len(shares)))
    rows = np.zeros((steps.size, len(shares)))
    weighted[step_of_row, col] = frame["tau"].to_numpy(np.float64) * count
    rows[step_of_row, col] = count
    weighted, steps_shown, merged = bucket_reduce(weighted, steps, max_columns, "sum")
    rows, _, _ = bucket_reduce(rows, steps, max_columns, "sum")
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = np.where(rows > 0, weighted / rows, np.nan)
    if merged:
        title += f" ({steps.size} logged steps merged into {steps_shown.size} columns)"
    fig = go.Figure(
        go.Heatmap(
            # Steps as categories: two logged steps 0 and 250 would otherwise be centred cells from -125.
            x=[str(int(s)) for s in steps_shown],
            y=[names[lab] for lab in shares["label"]],
            z=tau.T,
            customdata=rows.T,
            colorscale="Viridis",
            colorbar={"title": {"text": "mean τ"}},
            hovertemplate="%{y}<br>step ≤ %{x}<br>mean τ %{z:.4g}<br>%{customdata:.0f} rows<extra></extra>",
        ),
    )
    fig.update_xaxes(type="category", nticks=12)
    fig.update_yaxes(type="category", autorange="reversed")
    height = int(min(900, max(380, 140 + 16 * len(shares))))
    return finish(fig, title=title, x_title="training step", height=height)


def fig_tau_vs_class_frequency(
    frame: pd.DataFrame, *, since_step: int | None = None, title: str | None = None
) -> go.Figure:
    """Each class's mean τ against its share of the rows: iSogCLR's frequent-versus-rare claim in one picture.

    Args:
        frame: per-class τ frame (:data:`TAU_CLASS_COLUMNS`).
        since_step: τ is the row-weighted mean over the steps ``>= since_step`` (None: all); the share is
            over the whole frame.
        title: chart title (default names the steps and the rank correlation).

    Returns:
        One scatter trace, a point per class (log x axis).
    """
    require_columns(frame, TAU_CLASS_COLUMNS, "per-class τ frame")
    require_rows(frame, "per-class τ frame")
    points = tau_against_share(frame, since_step=since_step)
    if title is None:
        first, last = int(frame["step"].min() if since_step is None else since_step), int(frame["step"].max())
        title = f"Mean τ per class against class frequency (τ over steps {first}–{last})"
        rho = points["tau"].rank().corr(points["share"].rank()) if len(points) > 2 else float("nan")
        if np.isfinite(rho):
            title += f"; Spearman ρ = {rho:.2f}"
    fig = go.Figure(
        go.Scatter(
            x=points["share"],
            y=points["tau"],
            customdata=np.stack([points["label"].to_numpy(object), points["rows"].to_numpy()], axis=1),
            mode="markers",
            marker={"size": 9, "color": "#1f77b4"},
            name="class",
            hovertemplate="class %{customdata[0]}<br>%{x:.2%} of the rows (%{customdata[1]:.0f})"
            "<br>mean τ %{y:.4g}<extra></extra>",
        ),
    )
    # Ticks at 1, 2 and 5 per decade, written in full: plotly's default labels 0.007 … 0.09 as "7 8 9".
    fig.update_xaxes(type="log", dtick="D2", tickformat=".1%")
    return finish(fig, title=title, x_title="class share of the batches' rows (log scale)", y_title="mean τ")


def tau_against_share(frame: pd.DataFrame, *, since_step: int | None = None) -> pd.DataFrame:
    """``label, rows, share, tau`` per class: its share of all rows, and its row-weighted mean τ since a step.

    Args:
        frame: per-class τ frame (:data:`TAU_CLASS_COLUMNS`).
        since_step: τ averages the steps ``>= since_step`` (None: all); a class absent from them is left out.
    """
    shares = class_shares(frame)
    late = frame if since_step is None else frame.loc[frame["step"] >= since_step]
    weighted = (late["tau"] * late["count"]).groupby(late["label"]).sum()
    tau = weighted / late.groupby("label")["count"].sum()
    shares["tau"] = shares["label"].map(tau)
    return shares.dropna(subset=["tau"]).reset_index(drop=True)
