"""Temperature: how the loss would weigh negatives at each τ on one step's batch; the run's τ marked; a
per-sample τ's quantiles and, with labels, its mean per class over training and against class frequency."""

from __future__ import annotations

import streamlit as st

from cldiag import ui, views


def render(view: ui.RunView) -> None:
    steps = view.steps("temperature")
    if not steps:
        st.info(views.EMPTY["temperature"])
    else:
        step = ui.step_picker(steps, "Step of the curves", key="temperature_step")
        ui.show(views.temperature_curves(view, step), view)
    ui.show(views.temperature_trend(view), view)
    ui.show(views.tau_quantiles(view), view)
    ui.show(views.tau_by_class(view), view)
    ui.show(views.tau_vs_class_frequency(view), view)


ui.run_page(
    "Temperature",
    "The temperature decides which negatives the loss pushes away; these curves show it without retraining.",
    render,
)
