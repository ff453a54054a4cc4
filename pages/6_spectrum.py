"""Spectrum: covariance eigenvalues of the embeddings at a step, their waterfall, and effective rank."""

from __future__ import annotations

import streamlit as st

from cldiag import ui, views


def render(view: ui.RunView) -> None:
    steps = view.steps("spectra")
    if not steps:
        st.info(views.EMPTY["spectra"])
    else:
        step = ui.step_picker(steps, "Step of the spectrum", key="spectrum_step")
        ui.show(views.spectrum(view, step), view)
        waterfalls = views.spectrum_waterfalls(view)
        tabs = st.tabs([m for m, _ in waterfalls]) if len(waterfalls) > 1 else [st.container()]
        for tab, (_, panel) in zip(tabs, waterfalls, strict=True):
            with tab:
                ui.show(panel, view)
    ui.show(views.effective_rank(view), view)


ui.run_page(
    "Spectrum",
    "How many directions the embedding really uses: dimensional collapse shows here before anywhere else.",
    render,
)
