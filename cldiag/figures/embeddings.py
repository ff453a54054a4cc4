"""2-D views of embedding snapshots: a projection coloured by label, modality or step, and the modality gap.

Inputs are frames of projected points with columns ``x, y`` beside the snapshot's ``step, sample_id,
modality, label`` (see :mod:`cldiag.projection`).
"""

from __future__ import annotations

import html
from typing import Literal

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from cldiag.figures._common import color_map, finish, require_columns, require_rows

__all__ = ["MAX_CATEGORIES", "fig_embedding_scatter", "fig_modality_gap_view"]

ColorBy = Literal["label", "modality", "step"]

MAX_CATEGORIES = 24
"""More distinct labels than this are coloured on a continuous scale instead of one legend entry each."""

_WEBGL_ABOVE = 5000  # SVG is sharper and lighter for small sets; WebGL keeps 10k points responsive.
_POINT_COLUMNS = ("x", "y", "step", "sample_id", "modality", "label")


def _scatter_type(n: int) -> type[go.Scatter] | type[go.Scattergl]:
    return go.Scattergl if n > _WEBGL_ABOVE else go.Scatter


_HOVER_META_CHARS = 160  # a hover box is one glance; the neighbour table shows the full text


def _hover_text(meta: object) -> str:
    """Metadata as inert hover text: HTML-escaped (plotly renders tags in hover labels), one line, cut."""
    if meta is None or (isinstance(meta, float) and np.isnan(meta)):
        return ""
    flat = " ".join(str(meta).split())
    if len(flat) > _HOVER_META_CHARS:
        flat = flat[: _HOVER_META_CHARS - 1] + "…"
    return "<br>" + html.escape(flat)


def _hover(df: pd.DataFrame) -> tuple[np.ndarray, str]:
    labels = df["label"].astype("object").where(df["label"].notna(), "none")
    meta = df["meta"] if "meta" in df.columns else pd.Series([None] * len(df), index=df.index)
    custom = np.column_stack(
        [
            df["sample_id"].to_numpy(),
            labels.to_numpy(),
            df["modality"].astype(str),
            df["step"].to_numpy(),
            [_hover_text(m) for m in meta],
        ],
    )
    template = (
        "sample %{customdata[0]}<br>label %{customdata[1]}<br>%{customdata[2]} · step %{customdata[3]}"
        "%{customdata[4]}<extra></extra>"
    )
    return custom, template


def fig_embedding_scatter(
    points: pd.DataFrame,
    *,
    color_by: ColorBy = "label",
    title: str,
    x_title: str = "component 1",
    y_title: str = "component 2",
) -> go.Figure:
    """Scatter of projected embeddings; hover shows sample id, label, modality, step and metadata.

    Args:
        points: projected points with columns ``x, y, step, sample_id, modality, label``.
        color_by: ``label`` (one trace per label up to :data:`MAX_CATEGORIES`, unlabeled rows grey),
            ``modality`` (one trace per modality) or ``step`` (continuous scale).
        title: chart title.
        x_title: x-axis title (e.g. ``PC 1 (23% var.)``).
        y_title: y-axis title.

    Returns:
        The figure; categorical colourings give one trace per category.
    """
    require_columns(points, _POINT_COLUMNS, "points frame")
    require_rows(points, "points frame")
    if color_by not in ("label", "modality", "step"):
        raise ValueError(f"color_by must be 'label', 'modality' or 'step', got {color_by!r}")
    scatter = _scatter_type(len(points))
    fig = go.Figure()
    labels = points["label"]
    continuous = color_by == "step" or (color_by == "label" and labels.dropna().nunique() > MAX_CATEGORIES)
    if continuous:
        shown = points if color_by == "step" else points.loc[labels.notna()]
        custom, template = _hover(shown)
        fig.add_trace(
            scatter(
                x=shown["x"],
                y=shown["y"],
                mode="markers",
                name=color_by,
                marker={
                    "size": 4,
                    "color": shown[color_by].astype("float64"),
                    "colorscale": "Viridis",
                    "colorbar": {"title": {"text": color_by}},
                    "opacity": 0.8,
                },
                customdata=custom,
                hovertemplate=template,
            ),
        )
        if color_by == "label" and labels.isna().any():
            _add_category(fig, scatter, points.loc[labels.isna()], "no label", "#b0b0b0")
    else:
        column = points[color_by]
        cats = sorted(column.dropna().unique().tolist(), key=lambda v: (str(type(v)), v))
        colors = color_map(cats)
        for cat in cats:
            _add_category(fig, scatter, points.loc[column == cat], str(cat), colors[cat])
        if column.isna().any():
            _add_category(fig, scatter, points.loc[column.isna()], f"no {color_by}", "#b0b0b0")
    fig.update_yaxes(scaleanchor="x", scaleratio=1)
    return finish(fig, title=title, x_title=x_title, y_title=y_title, height=560)


def _add_category(
    fig: go.Figure,
    scatter: type[go.Scatter] | type[go.Scattergl],
    part: pd.DataFrame,
    name: str,
    color: str,
) -> None:
    custom, template = _hover(part)
    fig.add_trace(
        scatter(
            x=part["x"],
            y=part["y"],
            mode="markers",
            name=name,
            marker={"size": 5, "color": color, "opacity": 0.8},
            customdata=custom,
            hovertemplate=template,
        ),
    )


def fig_modality_gap_view(
    points: pd.DataFrame,
    *,
    gap: float | None = None,
    max_pairs: int = 150,
    title: str | None = None,
    x_title: str = "PC 1",
    y_title: str = "PC 2",
) -> go.Figure:
    """Both modalities in one 2-D projection, their centroids, and thin lines joining matched pairs.

    Args:
        points: projected points of exactly two modalities; a pair shares its ``sample_id``.
        gap: the modality gap ‖mean(â) − mean(b̂)‖ measured in the full dimension, shown in the title
            (the 2-D distance between centroids is only its projection).
        max_pairs: at most this many matched pairs are joined by lines (evenly spread over sample ids).
        title: chart title (default names the step and the gap).
        x_title: x-axis title.
        y_title: y-axis title.

    Returns:
        One point trace per modality, one centroid trace, and one trace of pair lines when pairs exist.
    """
    require_columns(points, _POINT_COLUMNS, "points frame")
    require_rows(points, "points frame")
    modalities = sorted(points["modality"].unique().tolist())
    if len(modalities) != 2:
        raise ValueError(f"the modality-gap view needs exactly two modalities, got {modalities}")
    scatter = _scatter_type(len(points))
    colors = color_map(modalities)
    fig = go.Figure()
    for m in modalities:
        _add_category(fig, scatter, points.loc[points["modality"] == m], m, colors[m])
    a, b = (points.loc[points["modality"] == m].drop_duplicates("sample_id") for m in modalities)
    pairs = a.merge(b, on="sample_id", suffixes=("_a", "_b"))
    if not pairs.empty:
        pick = pairs.iloc[np.unique(np.linspace(0, len(pairs) - 1, min(max_pairs, len(pairs))).astype(int))]
        xs = np.column_stack([pick["x_a"], pick["x_b"], np.full(len(pick), np.nan)]).ravel()
        ys = np.column_stack([pick["y_a"], pick["y_b"], np.full(len(pick), np.nan)]).ravel()
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                name=f"matched pairs ({len(pick)} shown)",
                line={"color": "rgba(120,120,120,0.35)", "width": 0.8},
                hoverinfo="skip",
            ),
        )
    centroids = points.groupby("modality")[["x", "y"]].mean().loc[modalities]
    fig.add_trace(
        go.Scatter(
            x=centroids["x"],
            y=centroids["y"],
            mode="lines+markers",
            name="centroids",
            marker={"symbol": "x", "size": 14, "color": [colors[m] for m in modalities]},
            line={"color": "black", "width": 2},
            text=modalities,
            hovertemplate="centroid of %{text}<extra></extra>",
        ),
    )
    if title is None:
        step = points["step"].max()
        title = f"Both modalities at step {int(step)}"
        if gap is not None:
            title += f" — modality gap ‖Δ‖ = {gap:.3f}"
    fig.update_yaxes(scaleanchor="x", scaleratio=1)
    return finish(fig, title=title, x_title=x_title, y_title=y_title, height=520)
