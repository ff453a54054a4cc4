"""Figures of the Concepts page: each diagnostic drawn on small synthetic data (no Streamlit).

Where a chart is the one a dashboard page draws for a real run, the dashboard's builder is reused on a
frame in the same schema (score histograms, temperature curves, spectrum, modality-gap view); the
builders here draw what only the explainers need: the weight on each negative, points on the circle or
sphere, the alignment–uniformity plane with its extremes, the gap-shift experiment and a collapse
scorecard. Inputs come from :mod:`cldiag.concepts`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cldiag import schema
from cldiag.concepts import AlignUniform, AnchorAtTemperature, ClusteredViews, CollapseStats, GapShift
from cldiag.figures._common import KIND_COLORS, PALETTE, bound_axis, finish
from cldiag.figures.embeddings import fig_modality_gap_view
from cldiag.figures.metrics import metric_info
from cldiag.figures.spectrum import fig_spectrum
from cldiag.figures.temperature import fig_temperature_curves

__all__ = [
    "fig_align_uniform_demo",
    "fig_anchor_temperature_curves",
    "fig_collapse_scorecard",
    "fig_collapse_spectrum",
    "fig_gap_shift",
    "fig_negative_weights",
    "fig_points_on_sphere",
    "fig_two_cones",
]

_LIMIT_COLOR = "#7f7f7f"
_HIGHLIGHT = "#d62728"


def fig_negative_weights(result: AnchorAtTemperature, tau: float) -> go.Figure:
    """The weight the loss puts on each negative at ``τ``, hardest first, with both temperature limits.

    Bars are the relative penalties ``softmax(s/τ)`` (left axis); dots are the scores themselves (right
    axis) on the full 0..1 range, so the bars grow and flatten as τ moves. The dashed line is the ``τ → ∞``
    limit (every negative ``1/K``); the arrow gives the hardest negative's share at this τ (all of it as
    ``τ → 0``, as in a triplet loss).

    Args:
        result: :func:`cldiag.concepts.anchor_at_temperature` output (scores descending).
        tau: the temperature, for the title.

    Returns:
        A bar trace of weights and a marker trace of scores on a second y axis.
    """
    k = result.scores.numel()
    scores = result.scores.double().numpy()
    weights = result.weights.double().numpy()
    fig = go.Figure(_weight_and_score_traces(scores, weights))
    _mark_temperature_limits(fig, k, float(weights[0]))
    # A second y axis by layout rather than make_subplots, which costs more than the rest of the figure.
    fig.update_layout(
        yaxis={
            "title": {"text": "relative penalty rⱼ"},
            "range": [0, 1.05],
        },
        yaxis2={
            "title": {"text": "cosine score sⱼ"},
            "range": [-1, 1],
            "dtick": 0.5,
            "overlaying": "y",
            "side": "right",
            "showgrid": False,
        },
    )
    title = (
        f"Weight per negative at τ = {tau:.3g}: entropy {result.entropy:.2f}, "
        f"≈{result.effective_negatives:.1f} of {k} negatives effectively penalized"
    )
    return finish(fig, title=title, x_title="negatives, hardest first", height=400)


def _weight_and_score_traces(scores: np.ndarray, weights: np.ndarray) -> list[go.Bar | go.Scatter]:
    """Bars of each negative's weight (coloured by its score) and dots of the scores on the second y axis."""
    rank = np.arange(1, len(scores) + 1)
    bars = go.Bar(
        x=rank,
        y=weights,
        name="weight on the negative",
        marker={
            "color": scores,
            "colorscale": "Oranges",
            "cmin": -1.0,
            "cmax": 1.0,
            "line": {"width": 0},
        },
        customdata=scores,
        hovertemplate="negative #%{x}<br>score %{customdata:.3f}<br>weight %{y:.3f}<extra></extra>",
    )
    dots = go.Scatter(
        x=rank,
        y=scores,
        mode="markers",
        name="cosine score",
        marker={"color": KIND_COLORS["neg"], "size": 5, "symbol": "circle-open"},
        hovertemplate="negative #%{x}<br>score %{y:.3f}<extra></extra>",
        yaxis="y2",
    )
    return [bars, dots]


def _mark_temperature_limits(fig: go.Figure, k: int, top: float) -> None:
    """Both temperature limits: ``τ → ∞`` (every negative ``1/K``) as a line, ``τ → 0`` on the hardest bar."""
    fig.add_hline(
        y=1.0 / k,
        line={"color": _LIMIT_COLOR, "dash": "dash", "width": 1.2},
        annotation_text=f"τ → ∞: every negative 1/K = {1.0 / k:.3f}",
        annotation_position="top right",
    )
    # The axis is the whole 0..1 a weight can take, so the bars (and the note on the hardest one) move as
    # τ moves: a range fitted to the tallest bar would keep the hardest bar, and its note, in one place.
    fig.add_annotation(
        x=1,
        y=top,
        text=f"hardest negative: {top:.0%} of the weight (τ → 0: all of it, triplet-like)",
        showarrow=True,
        arrowhead=2,
        ax=40,
        ay=-30 if top < 0.8 else 30,
        xanchor="left",
        font={"color": _HIGHLIGHT},
    )


def fig_anchor_temperature_curves(curves: pd.DataFrame, tau: float) -> go.Figure:
    """The dashboard's temperature-curve panels for one synthetic anchor, with both limits labelled.

    Args:
        curves: :func:`cldiag.concepts.anchor_temperature_curves` output.
        tau: the chosen temperature, drawn as the dashed marker.

    Returns:
        :func:`cldiag.figures.temperature.fig_temperature_curves` of the curves, annotated.
    """
    fig = fig_temperature_curves(
        curves, run_tau=tau, cols=3, title="The same anchor over all temperatures (dashed: your τ)"
    )
    taus = curves["tau"].to_numpy(np.float64)
    # Annotations on a log axis take log10 coordinates.
    lo, hi = math.log10(float(taus.min())), math.log10(float(taus.max()))
    for x, y, text, xanchor, yanchor in (
        (lo, 0.02, "τ→0: hardest only", "left", "bottom"),
        (hi, 0.98, "τ→∞: all alike", "right", "top"),
    ):
        fig.add_annotation(
            x=x, y=y, xref="x", yref="y", text=text, showarrow=False, xanchor=xanchor, yanchor=yanchor
        )
    return fig


def _circle_trace() -> go.Scatter:
    t = np.linspace(0.0, 2.0 * np.pi, 181)
    return go.Scatter(
        x=np.cos(t),
        y=np.sin(t),
        mode="lines",
        line={"color": "#c8c8c8", "width": 1},
        hoverinfo="skip",
        showlegend=False,
    )


def _pair_segments(a: np.ndarray, b: np.ndarray) -> list[np.ndarray]:
    """Coordinates of line segments a_i → b_i separated by NaN, one array per dimension."""
    nan = np.full(a.shape[0], np.nan)
    return [np.column_stack([a[:, j], b[:, j], nan]).ravel() for j in range(a.shape[1])]


def _sphere_trace() -> go.Surface:
    u, v = np.mgrid[0 : 2 * np.pi : 25j, 0 : np.pi : 13j]
    return go.Surface(
        x=np.cos(u) * np.sin(v),
        y=np.sin(u) * np.sin(v),
        z=np.cos(v),
        opacity=0.12,
        showscale=False,
        colorscale=[[0, "#d0d0d0"], [1, "#d0d0d0"]],
        hoverinfo="skip",
    )


def _view_traces(a: np.ndarray, labels: np.ndarray, seg: list[np.ndarray]) -> list[go.Scatter | go.Scatter3d]:
    """One marker trace per cluster of the points ``a`` (2-D or 3-D) and one trace of the pair segments."""
    if a.shape[1] == 2:
        trace, size, opacity, width = go.Scatter, 6, 0.8, 1
        hover: dict[str, str] = {"hovertemplate": "(%{x:.2f}, %{y:.2f})<extra></extra>"}
    else:
        trace, size, opacity, width = go.Scatter3d, 3, 0.85, 2
        hover = {"hoverinfo": "skip"}
    axes = "xyz"[: a.shape[1]]
    traces = [
        trace(
            **{ax: a[labels == c][:, j] for j, ax in enumerate(axes)},
            mode="markers",
            name=f"cluster {c}",
            marker={"size": size, "color": PALETTE[c % len(PALETTE)], "opacity": opacity},
            **hover,
        )
        for c in np.unique(labels)
    ]
    segments = trace(
        **dict(zip(axes, seg, strict=True)),
        mode="lines",
        name="positive pairs",
        line={"color": "rgba(60,60,60,0.6)", "width": width},
        hoverinfo="skip",
    )
    return [*traces, segments]


def fig_points_on_sphere(views: ClusteredViews, *, max_pairs: int = 80) -> go.Figure:
    """The first view of every point on the circle (2-D) or sphere (3-D), coloured by cluster.

    Thin grey segments join a subset of positive pairs (first view → second view): their length is what
    alignment measures; how evenly the points cover the circle or sphere is what uniformity measures.

    Args:
        views: :func:`cldiag.concepts.clustered_views` output with ``d`` = 2 or 3.
        max_pairs: at most this many pairs are joined by segments.

    Returns:
        One marker trace per cluster, one trace of pair segments, and the circle or a sphere mesh.
    """
    a = views.a.double().numpy()
    b = views.b.double().numpy()
    labels = views.labels.numpy()
    dim = a.shape[1]
    if dim not in (2, 3):
        raise ValueError(f"points on the sphere are drawn for d = 2 or 3, got d = {dim}")
    shown = np.unique(np.linspace(0, a.shape[0] - 1, min(max_pairs, a.shape[0])).astype(int))
    seg = _pair_segments(a[shown], b[shown])
    if dim == 2:
        fig = go.Figure([_circle_trace(), *_view_traces(a, labels, seg)])
        fig.update_xaxes(range=[-1.15, 1.15], zeroline=False)
        fig.update_yaxes(range=[-1.15, 1.15], zeroline=False, scaleanchor="x", scaleratio=1)
        return finish(fig, title="Points on the circle (first view)", height=440)
    fig = go.Figure([_sphere_trace(), *_view_traces(a, labels, seg)])
    axis = {"range": [-1.1, 1.1], "showticklabels": False, "showbackground": False, "title": ""}
    fig.update_layout(scene={"xaxis": axis, "yaxis": axis, "zaxis": axis, "aspectmode": "cube"})
    return finish(fig, title="Points on the sphere (first view)", height=460)


def fig_align_uniform_demo(point: AlignUniform, sweep: pd.DataFrame, uniform_reference: float) -> go.Figure:
    """Where the points land on the alignment–uniformity plane, beside the plane's extremes.

    Args:
        point: alignment and uniformity of the current points.
        sweep: :func:`cldiag.concepts.align_uniform_sweep` output: the path as the concentration varies.
        uniform_reference: uniformity of the uniform distribution in this dimension
            (:func:`cldiag.concepts.uniform_sphere_uniformity`).

    Returns:
        The sweep path, three reference markers (collapsed; uniform and aligned; uniform with random pairs)
        and the current point.
    """
    fig = go.Figure()
    kappa = sweep["concentration"].to_numpy(np.float64)
    fig.add_trace(
        go.Scatter(
            x=sweep["uniformity"],
            y=sweep["alignment"],
            mode="lines+markers",
            name="same clusters, other concentrations",
            line={"color": "#9ecae1", "width": 1.5},
            marker={"size": 5, "color": "#9ecae1"},
            customdata=kappa,
            hovertemplate="κ = %{customdata:g}<br>uniformity %{x:.3f}<br>alignment %{y:.3f}<extra></extra>",
        )
    )
    refs = [
        ("collapsed: all points equal", 0.0, 0.0, "x"),
        ("ideal: uniform, pairs identical", uniform_reference, 0.0, "star-diamond"),
        ("uniform, random pairs", uniform_reference, 2.0, "square"),
    ]
    fig.add_trace(
        go.Scatter(
            x=[r[1] for r in refs],
            y=[r[2] for r in refs],
            mode="markers+text",
            name="extremes",
            text=[r[0] for r in refs],
            # The ideal's label goes below the axis: "your points" (alignment >= 0) often sit on or just above
            # the ideal, and the star would cover a label placed above it.
            textposition=["top left", "bottom right", "bottom right"],
            marker={"size": 11, "symbol": [r[3] for r in refs], "color": _LIMIT_COLOR},
            hovertemplate="%{text}<br>uniformity %{x:.3f}<br>alignment %{y:.3f}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[point.uniformity],
            y=[point.alignment],
            mode="markers",
            name="your points",
            marker={"size": 16, "symbol": "star", "color": _HIGHLIGHT},
            hovertemplate="your points<br>uniformity %{x:.3f}<br>alignment %{y:.3f}<extra></extra>",
        )
    )
    fig.update_xaxes(**bound_axis(metric_info(schema.M_UNIFORMITY)))
    fig.update_xaxes(range=[uniform_reference - 0.35, 0.35])
    fig.update_yaxes(**bound_axis(metric_info(schema.M_ALIGNMENT)))
    fig.update_yaxes(range=[-0.2, 2.4])
    return finish(fig, title="Alignment–uniformity plane (lower-left is better)", height=440)


def fig_two_cones(points: pd.DataFrame, gap: float) -> go.Figure:
    """The Modality gap page's view of both modalities, drawn for the synthetic cones.

    Args:
        points: :func:`cldiag.concepts.modality_points` output.
        gap: the modality gap in the full dimension (the 2-D centroid distance is only its projection).

    Returns:
        :func:`cldiag.figures.embeddings.fig_modality_gap_view` of the points.
    """
    return fig_modality_gap_view(
        points,
        gap=gap,
        max_pairs=40,
        title=f"Two cones, joint principal components — modality gap ‖Δ‖ = {gap:.3f}",
    )


def fig_gap_shift(shift: GapShift) -> go.Figure:
    """The shift experiment: the gap and the contrastive loss as both modalities move along the gap.

    Args:
        shift: :func:`cldiag.concepts.gap_shift` output.

    Returns:
        Two panels sharing the ``δ`` axis: gap (top) and loss (bottom), with the loss minimum, the
        embedding as given (``δ = 0``) and the closed gap (``δ = 1``) marked.
    """
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08)
    fig.add_trace(
        go.Scatter(
            x=shift.deltas,
            y=shift.gap,
            mode="lines",
            name="modality gap ‖Δ‖",
            line={"color": "#1f77b4", "width": 2},
            hovertemplate="δ %{x:.2f}<br>gap %{y:.3f}<extra></extra>",
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=shift.deltas,
            y=shift.loss,
            mode="lines",
            name=f"CLIP loss at τ = {shift.tau:.3g}",
            line={"color": "#ff7f0e", "width": 2},
            hovertemplate="δ %{x:.2f}<br>loss %{y:.4f}<extra></extra>",
        ),
        row=2,
        col=1,
    )
    best = int(np.argmin(shift.loss))
    for row, y, legend in ((1, shift.gap[best], True), (2, shift.loss[best], False)):
        fig.add_trace(
            go.Scatter(
                x=[shift.deltas[best]],
                y=[y],
                mode="markers",
                name=f"loss minimum: δ = {shift.deltas[best]:.2f}, gap {shift.gap[best]:.2f}",
                showlegend=legend,
                legendgroup="minimum",
                marker={"size": 12, "symbol": "star", "color": _HIGHLIGHT},
                hovertemplate="loss minimum<br>δ %{x:.2f}<br>%{y:.3f}<extra></extra>",
            ),
            row=row,
            col=1,
        )
    for x, text, side in ((0.0, "as given", "left"), (1.0, "gap closed", "right")):
        fig.add_vline(x=x, line={"color": _LIMIT_COLOR, "dash": "dot", "width": 1}, row="all", col=1)
        fig.add_annotation(
            x=x,
            y=0.99,
            xref="x",
            yref="paper",
            text=text,
            showarrow=False,
            yanchor="top",
            xanchor=side,
            xshift=3 if side == "left" else -3,
            font={"size": 11, "color": _LIMIT_COLOR},
        )
    fig.update_yaxes(title_text="gap ‖Δ‖", row=1, col=1, rangemode="tozero")
    fig.update_yaxes(title_text="loss", row=2, col=1)
    fig.update_xaxes(title_text="shift δ along the gap (1 = closed, < 0 = wider)", row=2, col=1)
    return finish(fig, title="Shifting the modalities toward each other", height=480)


def fig_collapse_spectrum(stats: CollapseStats, spectrum: pd.DataFrame, active: int) -> go.Figure:
    """The Spectrum page's log-eigenvalue chart of the synthetic embeddings, the active dimensions marked.

    Args:
        stats: :func:`cldiag.concepts.collapse_stats` output.
        spectrum: :func:`cldiag.concepts.spectrum_frame` of ``stats.eigenvalues``.
        active: number of dimensions that carry variance.

    Returns:
        :func:`cldiag.figures.spectrum.fig_spectrum` with a marker after the ``active``-th eigenvalue.
    """
    title = (
        f"Spectrum: variance in {active} of {stats.dim} dimensions, effective rank {stats.effective_rank:.1f}"
    )
    fig = fig_spectrum(spectrum, title=title)
    if active < stats.dim:
        fig.add_vline(
            x=active - 0.5,
            line={"color": _HIGHLIGHT, "dash": "dash", "width": 1.2},
            annotation_text=f"{active} active",
            annotation_position="top right",
        )
    return fig


def fig_collapse_scorecard(stats: CollapseStats) -> go.Figure:
    """Each diagnostic as a share of its healthy (isotropic) value: which ones notice the collapse?

    Effective rank / ``d``, std of unit rows / ``(1/√d)`` and uniformity / (uniformity of the uniform
    sphere in ``d`` dimensions) are all 1 for healthy isotropic embeddings and fall toward 0 with collapse.

    Args:
        stats: :func:`cldiag.concepts.collapse_stats` output.

    Returns:
        One horizontal bar per diagnostic, the value and its reference in the hover.
    """
    rows = [
        ("effective rank (RankMe)", stats.effective_rank, float(stats.dim)),
        ("std of L2-normalized embeddings", stats.std, stats.std_reference),
        ("uniformity (t = 2)", stats.uniformity, stats.uniformity_reference),
    ]
    names = [r[0] for r in rows]
    shares = [r[1] / r[2] if r[2] != 0 else float("nan") for r in rows]
    colors = ["#2ca02c" if s >= 0.8 else "#ff7f0e" if s >= 0.5 else _HIGHLIGHT for s in shares]
    fig = go.Figure(
        go.Bar(
            x=shares,
            y=names,
            orientation="h",
            marker={"color": colors},
            text=[f"{s:.0%}" for s in shares],
            textposition="auto",
            customdata=np.array([[r[1], r[2]] for r in rows]),
            hovertemplate="%{y}<br>value %{customdata[0]:.4g}<br>healthy %{customdata[1]:.4g}<extra></extra>",
        )
    )
    fig.add_vline(x=1.0, line={"color": _LIMIT_COLOR, "dash": "dash", "width": 1})
    fig.update_xaxes(range=[0, 1.15], tickformat=".0%")
    fig.update_yaxes(autorange="reversed")
    return finish(
        fig, title="Share of the healthy value", x_title="value / value for isotropic data", height=260
    )
