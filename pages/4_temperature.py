"""Temperature: how the loss would weigh negatives at each τ on one step's batch; the run's τ marked."""

from __future__ import annotations

import streamlit as st

from cldiag import figures as F
from cldiag import schema, ui

OVER_TRAINING = [schema.M_TEMPERATURE, schema.M_ENTROPY, schema.M_EFF_NEG, schema.M_COUPLING]
CONFIG_KEYS = ("temperature", "tau", "temp", "t")


def run_tau(view: ui.RunView, step: int) -> float | None:
    """The τ the run trained with at ``step``: the logged value, else the configured one."""
    logged = view.value_at(schema.M_TEMPERATURE, step)
    if logged is not None and logged > 0:
        return logged
    for key in CONFIG_KEYS:
        value = view.run.config.get(key)
        if isinstance(value, int | float) and value > 0:
            return float(value)
    return None


def render(view: ui.RunView) -> None:
    steps = view.steps("temperature")
    if not steps:
        st.info(
            "No temperature curves in the selected steps yet. The Monitor computes them every "
            "`curves_every` steps (default 100) from that step's batch.",
        )
    else:
        step = ui.step_picker(steps, "Step of the curves", key="temperature_step")
        curves = view.at_step("temperature", step)
        tau = run_tau(view, step)
        ui.chart(
            view.cached("tau_curves", lambda: F.fig_temperature_curves(curves, run_tau=tau), step),
            curves,
            key="curves",
            file_name=f"{view.name}-temperature-step{step}",
            caption=(
                "What the loss would do at each τ on this step's batch; dashed red: the run's own τ.",
                "Low τ weighs only the hardest negatives (entropy → 0), high τ all alike (→ 1); uniformity "
                "and same-class penalty show the uniformity–tolerance trade-off (Wang & Liu, CVPR 2021).",
            ),
        )
        if not (curves["curve"] == schema.CURVE_SAME_CLASS_PENALTY).any():
            st.caption("No same-class-penalty curve: it needs labels (`labels=` in `Monitor.log`).")
    trend = view.series(OVER_TRAINING)
    if trend.full.empty:
        return
    shown = [m for m in OVER_TRAINING if (trend.full["metric"] == m).any()]
    ui.chart(
        view.cached(
            "tau_trend", lambda: F.fig_metric_grid(trend.plot, shown, title="Temperature over training")
        ),
        trend.full,
        key="trend",
        file_name=f"{view.name}-temperature-trend",
        note=trend.note,
        caption=(
            "τ itself (learned in CLIP-style runs), hardness entropy and effective negatives at the "
            "run's τ, and the DCL coupling 1 − p_pos.",
            "Entropy pinned near 0 or 1 means τ is extreme (Wang & Liu, CVPR 2021); coupling near 1 at "
            "small batches is the case DCL removes (Yeh et al., ECCV 2022).",
        ),
    )


ui.run_page(
    "Temperature",
    "The temperature decides which negatives the loss pushes away; these curves show it without retraining.",
    render,
)
