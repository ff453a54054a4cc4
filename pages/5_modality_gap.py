"""Modality gap: distance between the two modalities' embedding clouds, their cones, and a 2-D view."""

from __future__ import annotations

import streamlit as st

from cldiag import ui, views


def render(view: ui.RunView) -> None:
    if not view.run.two_modality:
        st.info(views.EMPTY["one_modality"])
        return
    ui.show(views.modality_gap(view), view)
    ui.show(views.cones(view), view)
    steps = view.snapshot_steps()
    if not steps:
        st.info(views.EMPTY["gap_snapshot"])
        return
    step = ui.step_picker(steps, "Snapshot step", key="gap_step")
    ui.show(views.modality_gap_view(view, step), view)


ui.run_page(
    "Modality gap",
    "In two-tower (CLIP-style) runs: do the two modalities share one region of the sphere or sit apart?",
    render,
)
