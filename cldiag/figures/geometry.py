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

    Alignment is logged at every step with step statistics (every step by default, thinned by the
    overhead budget on fast steps, and always at a pairwise step), uniformity at pairwise steps, so the
    plane has a point only where both exist.

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
        One line trace per run plus one trace per run marking (and labelling with its step) the start ○, the
        first logged step after it and the end ★.
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
        # Start, the first logged step after it and the end are labelled with their steps: the first segment
        # is often long (training moves the geometry most at the start), and the label says how few steps
        # it spans.
        marks = sorted({0, min(1, len(steps) - 1), len(steps) - 1})
        symbols = {0: "circle-open", len(steps) - 1: "star"}
        fig.add_trace(
            go.Scatter(
                x=values[marks, 0],
                y=values[marks, 1],
                mode="markers+text",
                name=f"{name} steps",
                legendgroup=name,
                showlegend=False,
                text=[f"step {steps[i]}" for i in marks],
                textposition="middle right",
                textfont={"size": 11, "color": colors[run]},
                marker={
                    "symbol": [symbols.get(i, "circle") for i in marks],
                    "size": [14 if i == len(steps) - 1 else 10 if i == 0 else 6 for i in marks],
                    "color": colors[run],
                },
                customdata=steps[marks],
                hovertemplate=f"{name}<br>step %{{customdata}}<extra></extra>",
            ),
        )
    fig.update_xaxes(**bound_axis(metric_info(schema.M_UNIFORMITY)))
    fig.update_yaxes(**bound_axis(metric_info(schema.M_ALIGNMENT)))
    return finish(fig, title=title, height=440)
