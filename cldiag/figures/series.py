"""Scalar metrics over training: one axis, small multiples, two y axes, and multi-run overlays.

Inputs are long ``scalars`` frames (``step, metric, value``), optionally with a ``run`` column when several
runs are drawn together. Series should already be downsampled for the browser
(:func:`cldiag.reader.downsample`); these builders draw what they are given.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cldiag.figures._common import (
    PALETTE,
    bound_axis,
    color_map,
    finish,
    legend_on_top,
    require_columns,
    require_rows,
    unique_in_order,
)
from cldiag.figures.metrics import metric_info

__all__ = ["fig_dual_axis", "fig_metric_grid", "fig_metric_series"]

_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
_SCALAR_COLUMNS = ("step", "metric", "value")


def _runs(df: pd.DataFrame) -> list[str | None]:
    return unique_in_order(df["run"]) if "run" in df.columns else [None]


def _select(df: pd.DataFrame, metric: str, run: str | None) -> pd.DataFrame:
    mask = df["metric"] == metric
    if run is not None:
        mask &= df["run"] == run
    return df.loc[mask].sort_values("step", kind="stable")


def _present(df: pd.DataFrame, metrics: Sequence[str] | None) -> list[str]:
    names = set(df["metric"].unique())
    chosen = unique_in_order(df["metric"]) if metrics is None else [m for m in metrics if m in names]
    if not chosen:
        raise ValueError(
            f"none of the metrics {list(metrics or [])} are in the frame; it has {sorted(names)}",
        )
    return chosen


def fig_metric_series(
    df: pd.DataFrame,
    metrics: Sequence[str] | None = None,
    *,
    title: str,
    dim: int | None = None,
    y_title: str | None = None,
    references: Sequence[tuple[float, str]] = (),
    height: int = 360,
) -> go.Figure:
    """Several metrics (of one or more runs) over training on one shared y axis.

    Args:
        df: long scalars frame ``step, metric, value`` (and ``run`` to draw several runs).
        metrics: which metrics to draw, in order (default: all in ``df``); absent ones are skipped.
        title: the chart title.
        dim: embedding dimension, for metric bounds that depend on it.
        y_title: y-axis title; default: the metric's label with its better-direction arrow (one metric, or
            variants of one metric), else "value".
        references: horizontal reference lines as ``(y, label)`` (e.g. ``1/√d`` for a healthy spread).
        height: figure height in pixels.

    Returns:
        One trace per (run, metric) and one per reference line. Colour marks the metric for one run and
        the run for several runs (then dash marks the metric).
    """
    require_columns(df, _SCALAR_COLUMNS, "scalars frame")
    require_rows(df, "scalars frame")
    chosen = _present(df, metrics)
    runs = _runs(df)
    colors = color_map(runs if len(runs) > 1 else chosen)
    bases = {m.partition("/")[0] for m in chosen}
    # Variants of one metric ("cone/image", "cone/text") share the axis title and are named by modality.
    shared = bases.pop() if len(bases) == 1 and all("/" in m for m in chosen) else None
    fig = go.Figure()
    for run in runs:
        for m, metric in enumerate(chosen):
            part = _select(df, metric, run)
            if part.empty:
                continue
            label = metric.partition("/")[2] if shared else metric_info(metric, dim=dim).label
            name = label if run is None else (run if len(chosen) == 1 else f"{run} · {label}")
            fig.add_trace(
                go.Scatter(
                    x=part["step"],
                    y=part["value"],
                    mode="lines",
                    name=name,
                    legendgroup=str(run),
                    line={
                        "color": colors[run] if len(runs) > 1 else colors[metric],
                        "dash": _DASHES[m % len(_DASHES)] if len(runs) > 1 else "solid",
                        "width": 1.6,
                    },
                    hovertemplate=f"{name}<br>step %{{x}}<br>%{{y:.4g}}<extra></extra>",
                ),
            )
    for y, label in references:
        fig.add_trace(
            go.Scatter(
                x=[df["step"].min(), df["step"].max()],
                y=[y, y],
                mode="lines",
                name=label,
                line={"color": "gray", "dash": "dot", "width": 1},
                hoverinfo="name",
            ),
        )
    infos = [metric_info(m, dim=dim) for m in chosen]
    if shared or len(chosen) == 1:
        axis = bound_axis(metric_info(shared or chosen[0], dim=dim))
    elif len({(i.lower, i.upper) for i in infos}) == 1:
        axis = {**bound_axis(infos[0]), "title_text": "value"}  # common bounds, but no one metric's name
    else:
        axis = {"title_text": "value"}
    if y_title is not None:
        axis["title_text"] = y_title
    fig.update_yaxes(**axis)
    return finish(fig, title=title, x_title="training step", height=height)


def fig_metric_grid(
    df: pd.DataFrame,
    metrics: Sequence[str],
    *,
    title: str,
    cols: int = 2,
    dim: int | None = None,
    panel_height: int = 240,
) -> go.Figure:
    """Small multiples: one panel per metric, one trace per run, runs coloured alike in every panel.

    Args:
        df: long scalars frame ``step, metric, value`` (and ``run`` to overlay runs, aligned by step).
        metrics: the panels, in order; metrics absent from ``df`` get no panel.
        title: the chart title.
        cols: panels per row.
        dim: embedding dimension, for metric bounds that depend on it.
        panel_height: height of one row of panels in pixels.

    Returns:
        A figure with ``len(present metrics)`` panels; with several runs, each run appears once in a
        legend above all panels and toggling it hides it in every panel.
    """
    require_columns(df, _SCALAR_COLUMNS, "scalars frame")
    require_rows(df, "scalars frame")
    if cols < 1:
        raise ValueError(f"cols must be >= 1, got {cols}")
    chosen = _present(df, metrics)
    cols = min(cols, len(chosen))
    rows = -(-len(chosen) // cols)
    infos = [metric_info(m, dim=dim) for m in chosen]
    runs = _runs(df)
    # Title, then (several runs) one legend for every panel, then the first row's panel titles.
    top = 112 if len(runs) > 1 else 84
    height = top + 20 + panel_height * rows
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[i.axis_title for i in infos],
        horizontal_spacing=0.08,
        # ~80 px between rows, so a panel title never sits on the tick labels of the panel above.
        vertical_spacing=min(0.3, 80 / (panel_height * rows)) if rows > 1 else 0.0,
    )
    colors = color_map(runs)
    shown: set[str | None] = set()
    for k, (metric, info) in enumerate(zip(chosen, infos, strict=True)):
        row, col = k // cols + 1, k % cols + 1
        for run in runs:
            part = _select(df, metric, run)
            if part.empty:
                continue
            name = run if run is not None else info.label
            fig.add_trace(
                go.Scatter(
                    x=part["step"],
                    y=part["value"],
                    mode="lines",
                    name=name,
                    legendgroup=str(run),
                    showlegend=len(runs) > 1 and run not in shown,  # one run: its name heads the page
                    line={"color": colors[run] if run is not None else PALETTE[0], "width": 1.5},
                    hovertemplate=f"{name}<br>{info.label}<br>step %{{x}}<br>%{{y:.4g}}<extra></extra>",
                ),
                row=row,
                col=col,
            )
            shown.add(run)
        axis = bound_axis(info)
        axis.pop("title_text")  # the panel title already names the metric
        fig.update_yaxes(row=row, col=col, **axis)
        fig.update_xaxes(row=row, col=col, title_text="training step" if row == rows else None)
    if len(runs) > 1:
        legend_on_top(fig, height)
    return finish(fig, title=title, height=height, top=top)


def fig_dual_axis(
    df: pd.DataFrame,
    left: Sequence[str],
    right: Sequence[str],
    *,
    title: str,
    dim: int | None = None,
    height: int = 360,
) -> go.Figure:
    """Two groups of metrics over training with their own y axes (e.g. effective rank beside uniformity).

    Args:
        df: long scalars frame ``step, metric, value`` of one run.
        left: metrics on the left axis (solid lines); absent ones are skipped.
        right: metrics on the right axis (dashed lines); absent ones are skipped.
        title: the chart title.
        dim: embedding dimension, for metric bounds that depend on it.
        height: figure height in pixels.

    Returns:
        One trace per present metric; the axis titles come from the first metric of each side.
    """
    require_columns(df, _SCALAR_COLUMNS, "scalars frame")
    require_rows(df, "scalars frame")
    names = set(df["metric"].unique())
    sides = [[m for m in left if m in names], [m for m in right if m in names]]
    if not sides[0] and not sides[1]:
        raise ValueError(f"none of {list(left) + list(right)} are in the frame; it has {sorted(names)}")
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    colors = color_map([*sides[0], *sides[1]])
    for secondary, metrics in enumerate(sides):
        for metric in metrics:
            part = _select(df, metric, None)
            info = metric_info(metric, dim=dim)
            fig.add_trace(
                go.Scatter(
                    x=part["step"],
                    y=part["value"],
                    mode="lines",
                    name=info.label,
                    line={"color": colors[metric], "dash": "dash" if secondary else "solid", "width": 1.6},
                    hovertemplate=f"{info.label}<br>step %{{x}}<br>%{{y:.4g}}<extra></extra>",
                ),
                secondary_y=bool(secondary),
            )
        if metrics:
            fig.update_yaxes(secondary_y=bool(secondary), **bound_axis(metric_info(metrics[0], dim=dim)))
    # The right axis gets round ticks of its own: ticks synced to the left axis's grid land on values like
    # -0.354, and a second grid would cross the first.
    fig.update_yaxes(secondary_y=True, tickmode="auto", nticks=6, showgrid=False)
    return finish(fig, title=title, x_title="training step", height=height)
