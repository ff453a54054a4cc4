"""The Temperature page's views: the run's τ, temperature curves and their trend, per-sample τ."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from cldiag import figures as F
from cldiag import schema
from cldiag.figures.captions import caption
from cldiag.views.data import RunLike, Series
from cldiag.views.panel import Panel, metrics_panel, series_panel

TEMPERATURE_TREND = [schema.M_TEMPERATURE, schema.M_ENTROPY, schema.M_EFF_NEG, schema.M_COUPLING]
TAU_QUANTILE_METRICS = list(schema.TAU_QUANTILES)
TAU_QUANTILES_CAPTION = (
    "Quantiles (10 %, 50 %, 90 %) of the batch's per-sample τ at pairwise steps, when the loss learns one "
    "τ per sample.",
    "A band that stays at zero width means every sample kept the same τ; iSogCLR (Qiu et al., 2023) "
    "learns individual temperatures, so the band should open as samples differ.",
)
CONFIG_KEYS = ("temperature", "tau", "temp", "t")
"""Configuration keys read as the run's τ when no temperature was logged."""


def run_tau(view: RunLike, step: int) -> float | None:
    """The τ the run trained with at ``step``: the logged value, else the configured one (else None)."""
    logged = view.value_at(schema.M_TEMPERATURE, step)
    if logged is not None and logged > 0:
        return logged
    config = view.run.config
    for key in CONFIG_KEYS:
        value = config.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return float(value)
    return None


def temperature_curves(view: RunLike, step: int) -> Panel:
    """What the loss would do at each τ on one step's batch, the run's own τ marked."""
    curves = view.at_step("temperature", step)
    tau = run_tau(view, step)
    note = None
    if not (curves["curve"] == schema.CURVE_SAME_CLASS_PENALTY).any():
        note = "No same-class-penalty curve: it needs labels (`labels=` in `Monitor.log`)."
    return Panel(
        key="curves",
        build=lambda: F.fig_temperature_curves(curves, run_tau=tau),
        data=curves,
        caption=caption("tau_curves"),
        file_name=f"{view.name}-temperature-step{step}",
        note=note,
        params=("tau_curves", step),
    )


def fixed_value(series: pd.DataFrame, metric: str) -> float | None:
    """The metric's value when it never changed over the series (a fixed τ), else None."""
    values = series.loc[series["metric"] == metric, "value"].to_numpy(np.float64)
    if values.size == 0 or not np.isfinite(values).all() or values.min() != values.max():
        return None
    return float(values[0])


def temperature_trend(view: RunLike) -> Panel | None:
    """τ, hardness entropy, effective negatives and DCL coupling over training.

    A τ that never changed gets no panel of its own (a flat line says less than the number): the title
    gives its value.
    """

    def build(s: Series) -> go.Figure:
        fixed = fixed_value(s.full, schema.M_TEMPERATURE)
        shown = [m for m in TEMPERATURE_TREND if (s.full["metric"] == m).any()]
        title = "Temperature over training"
        if fixed is not None and len(shown) > 1:
            shown.remove(schema.M_TEMPERATURE)
            title += f" (τ fixed at {fixed:.3g} throughout)"
        return F.fig_metric_grid(s.plot, shown, title=title)

    return series_panel(view, TEMPERATURE_TREND, "trend", "temperature-trend", build, chart="tau_trend")


def tau_quantiles(view: RunLike) -> Panel | None:
    """Quantiles of a per-sample τ over training (iSogCLR); None for a run with one τ per step."""
    return metrics_panel(
        view,
        TAU_QUANTILE_METRICS,
        key="tau_quantiles",
        title="Per-sample temperature: quantiles over training",
        file_name="tau-quantiles",
        y_title="τ",
        caption_text=TAU_QUANTILES_CAPTION,
    )
