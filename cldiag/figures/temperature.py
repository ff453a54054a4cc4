"""Temperature curves of one snapshot (Wang & Liu, CVPR 2021): how the loss would treat negatives at each τ.

The ``temperature`` table holds, per logged step, curves over a τ grid computed from that step's batch:
the normalized entropy of the negative weighting (hardness), its exponential (effective number of
negatives), uniformity at t = 1/(2τ), the same-class share of the penalty and the positive's probability.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cldiag import schema
from cldiag.figures._common import finish, require_columns, require_rows

__all__ = ["CURVES", "fig_temperature_curves"]

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
            finite = part["value"][np.isfinite(part["value"])]
            lo, hi = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
            fig.add_trace(
                go.Scatter(
                    x=[run_tau, run_tau],
                    y=[lo, hi],
                    mode="lines",
                    name=f"run τ = {run_tau:.3g}",
                    legendgroup="run_tau",
                    showlegend=k == 0,
                    line={"color": "#d62728", "dash": "dash", "width": 1.2},
                    hoverinfo="name",
                ),
                row=row,
                col=col,
            )
        _, lower, upper = CURVES.get(curve, (curve, None, None))
        bounds = {k2: v for k2, v in (("clipmin", lower), ("clipmax", upper)) if v is not None}
        fig.update_yaxes(autorangeoptions=bounds, row=row, col=col)
        # One tick per decade (0.01, 0.1, 1, 10): plotly's default adds unlabelled 2 and 5 marks that read
        # as "0.01 2 5 0.1"; every panel names its axis, not only the bottom row.
        fig.update_xaxes(type="log", dtick=1, title_text="τ (log scale)", title_standoff=4, row=row, col=col)
    if title is None:
        title = f"Temperature curves at step {int(steps[0])}"
    return finish(fig, title=title, height=60 + 290 * rows, top=84)
