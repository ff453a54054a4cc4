"""Geometry: alignment and uniformity over training, their plane, tolerance, spread of unit embeddings."""

from __future__ import annotations

import streamlit as st

from cldiag import ui, views


def render(sel: ui.Selection, runs: list[ui.RunView]) -> None:
    view = runs[0]
    if not view.metrics():
        st.info(views.EMPTY["scalars"])
        return
    ui.show(views.alignment_uniformity(view), view)
    ui.show(views.align_uniform_plane(runs, [sel.label(v.path) for v in runs]), *runs)
    ui.show(views.tolerance(view), view)
    ui.show(views.std_l2(view), view)


ui.run_multi_page(
    "Geometry",
    "Where the embeddings sit on the sphere: close positives (alignment), spread-out samples (uniformity).",
    render,
)
