"""Modality gap: distance between the modalities' clouds, their cones, a 2-D view, and N modalities' pairs."""

from __future__ import annotations

import streamlit as st

from cldiag import ui, views


def render(view: ui.RunView) -> None:
    names = views.pair_modalities(view)
    if not view.run.two_modality and not names:
        st.info(views.EMPTY["one_modality"])
        return
    if view.run.two_modality:
        ui.show(views.modality_gap(view), view)
        ui.show(views.cones(view), view)
    if names:
        pairs(view, names)
    if not view.run.two_modality:
        return
    steps = view.snapshot_steps()
    if not steps:
        st.info(views.EMPTY["gap_snapshot"])
        return
    step = ui.step_picker(steps, "Snapshot step", key="gap_step")
    ui.show(views.modality_gap_view(view, step), view)


def pairs(view: ui.RunView, names: list[str]) -> None:
    """Every pair of N modalities at a chosen step and over training, and Symile's MIP for N >= 3."""
    st.subheader(f"{len(names)} modalities: {', '.join(names)}")
    steps = views.pair_steps(view)
    if not steps:
        st.info(views.NO_PAIRS)
        return
    step = ui.step_picker(steps, "Step of the pair matrices", key="pairs_step")
    for base in views.PAIR_BASES:
        ui.show(views.modality_matrix(view, step, base), view)
    ui.show(views.mip_distribution(view, step), view)
    for base in views.PAIR_BASES:
        ui.show(views.pair_evolution(view, base), view)
    ui.show(views.mip_series(view), view)


ui.run_page(
    "Modality gap",
    "Do the modalities share one region of the sphere or sit apart? Two-tower (CLIP-style) runs, and every "
    "pair of N modalities logged as a mapping.",
    render,
)
