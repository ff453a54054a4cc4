"""Alignment and uniformity of the embedding (Wang & Isola, ICML 2020): the alignment–uniformity plane."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from cldiag import schema
from cldiag.figures._common import bound_axis, bucket_reduce, color_map, finish, require_columns, require_rows
from cldiag.figures.metrics import metric_info

__all__ = ["align_uniform_pairs", "fig_align_uniform_plane"]


def align_uniform_pairs(
    df: pd.DataFrame,
    *,
    alignment: str = schema.M_ALIGNMENT,
    uniformity: str = schema.M_UNIFORMITY,
) -> pd.DataFrame:
    """Join alignment and uniformity at the steps where both were logged.

    Alignment is logged every step, uniformity every ``pairwise_every`` steps, so the plane has a point
    only where both exist.

    Args:
        df: long scalars frame ``step, metric, value`` (and ``run``).
        alignment: the alignment metric name.
        uniformity: the uniformity metric name (e.g. ``uniformity/image`` for one modality).

    Returns:
        Columns ``run`` (when given), ``step``, ``alignment``, ``uniformity``, sorted by run and step.
    """
    require_columns(df, ("step", "metric", "value"), "scalars frame")
    keys = ["run", "step"] if "run" in df.columns else ["step"]
    a = df.loc[df["metric"] == alignment, [*keys, "value"]].rename(columns={"value": "alignment"})
    u = df.loc[df["metric"] == uniformity, [*keys, "value"]].rename(columns={"value": "uniformity"})
    # A step logged twice (resumed run) keeps its last value, so each step is one point.
    a = a.drop_duplicates(keys, keep="last")
    u = u.drop_duplicates(keys, keep="last")
    return a.merge(u, on=keys, how="inner").sort_values(keys, kind="stable").reset_index(drop=True)


def fig_align_uniform_plane(
    pairs: pd.DataFrame,
    *,
    max_points: int = 300,
    title: str = "Alignment–uniformity plane (lower-left is better)",
) -> go.Figure:
    """Each run's trajectory in the (uniformity, alignment) plane, start marked ○ and end marked ★.

    Args:
        pairs: output of :func:`align_uniform_pairs` (``run`` optional).
        max_points: longer trajectories are averaged over consecutive steps down to this many points
            (said in the hover text as "steps ≤ N").
        title: chart title.

    Returns:
        One line trace per run plus one end-marker trace per run.
    """
    require_columns(pairs, ("step", "alignment", "uniformity"), "alignment/uniformity pairs")
    require_rows(pairs, "alignment/uniformity pairs")
    runs = list(dict.fromkeys(pairs["run"])) if "run" in pairs.columns else [None]
    colors = color_map(runs)
    fig = go.Figure()
    for run in runs:
        part = pairs if run is None else pairs.loc[pairs["run"] == run]
        values = part[["uniformity", "alignment"]].to_numpy(np.float64)
        steps = part["step"].to_numpy(np.int64)
        values, steps, _ = bucket_reduce(values, steps, max_points, "mean")
        name = run if run is not None else "run"
        fig.add_trace(
            go.Scatter(
                x=values[:, 0],
                y=values[:, 1],
                mode="lines+markers",
                name=name,
                legendgroup=name,
                customdata=steps,
                line={"color": colors[run], "width": 1.4},
                marker={"size": 4, "color": colors[run]},
                hovertemplate=(
                    f"{name}<br>step ≤ %{{customdata}}<br>uniformity %{{x:.3f}}<br>"
                    "alignment %{y:.3f}<extra></extra>"
                ),
            ),
        )
        fig.add_trace(
            go.Scatter(
                x=values[[0, -1], 0],
                y=values[[0, -1], 1],
                mode="markers",
                name=f"{name} start/end",
                legendgroup=name,
                showlegend=False,
                marker={"symbol": ["circle-open", "star"], "size": [10, 14], "color": colors[run]},
                customdata=steps[[0, -1]],
                hovertemplate=f"{name}<br>step %{{customdata}}<extra></extra>",
            ),
        )
    fig.update_xaxes(**bound_axis(metric_info(schema.M_UNIFORMITY)))
    fig.update_yaxes(**bound_axis(metric_info(schema.M_ALIGNMENT)))
    return finish(fig, title=title, height=440)
