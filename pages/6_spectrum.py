"""Spectrum: covariance eigenvalues of the embeddings at a step, their waterfall, and effective rank."""

from __future__ import annotations

import streamlit as st

from cldiag import figures as F
from cldiag import schema, ui


def render(view: ui.RunView) -> None:
    steps = view.steps("spectra")
    if not steps:
        st.info(
            "No spectra in the selected steps yet. The Monitor logs them every `spectrum_every` steps "
            "(default 100).",
        )
    else:
        step = ui.step_picker(steps, "Step of the spectrum", key="spectrum_step")
        at_step = view.at_step("spectra", step)
        ui.chart(
            view.cached("spectrum", lambda: F.fig_spectrum(at_step), step),
            at_step,
            key="spectrum",
            file_name=f"{view.name}-spectrum-step{step}",
            caption=(
                "Eigenvalues of the covariance of unit, centered embeddings, largest first, on a log scale.",
                "A cliff where the tail drops to the float floor is dimensional collapse "
                "(Jing et al., ICLR 2022); a flat, slowly falling curve uses every dimension.",
            ),
        )
        spectra = view.table("spectra")
        modalities = list(dict.fromkeys(spectra["modality"]))
        tabs = st.tabs([str(m) for m in modalities]) if len(modalities) > 1 else [st.container()]
        for tab, modality in zip(tabs, modalities, strict=True):
            with tab:
                part = spectra.loc[spectra["modality"] == modality]
                ui.chart(
                    view.cached(
                        "waterfall", lambda p=part, m=modality: F.fig_spectrum_waterfall(p, m), modality
                    ),
                    part,
                    key=f"waterfall_{modality}",
                    file_name=f"{view.name}-spectra-{modality}",
                    caption=(
                        "The spectrum at every logged step (rows), colour = log₁₀ eigenvalue.",
                        "Dark columns spreading in from the right mean more dimensions collapsing over "
                        "training (Jing et al., ICLR 2022).",
                    ),
                )
    ranks = [m for m in view.metrics() if m == schema.M_RANK or m.startswith(f"{schema.M_RANK}/")]
    trend = view.series([*ranks, schema.M_UNIFORMITY])
    if trend.full.empty:
        return
    ui.chart(
        view.cached(
            "rank",
            lambda: F.fig_dual_axis(
                trend.plot,
                ranks,
                [schema.M_UNIFORMITY],
                title="Effective rank beside uniformity",
                dim=view.dim,
            ),
        ),
        trend.full,
        key="rank",
        file_name=f"{view.name}-effective-rank",
        note=trend.note,
        caption=(
            "RankMe effective rank (left axis, solid; at most d) and uniformity (right axis, dashed).",
            "Rank falling while uniformity still improves is collapse hiding behind a good uniformity "
            "(RankMe: Garrido et al., ICML 2023).",
        ),
    )


ui.run_page(
    "Spectrum",
    "How many directions the embedding really uses: dimensional collapse shows here before anywhere else.",
    render,
)
