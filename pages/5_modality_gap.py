"""Modality gap: distance between the two modalities' embedding clouds, their cones, and a 2-D view."""

from __future__ import annotations

import streamlit as st

from cldiag import figures as F
from cldiag import projection, schema, ui


def render(view: ui.RunView) -> None:
    if not view.run.two_modality:
        st.info(
            "This run has two views of one modality, so there is no modality gap to measure. Log a two-tower "
            'run with `Monitor(..., modalities=("image", "text"))` to see it.',
        )
        return
    a, b = view.run.modalities[:2]
    gap = view.series([schema.M_GAP, schema.M_MATCHED_DIST])
    if gap.full.empty:
        st.info("No gap metrics logged yet.")
    else:
        ui.chart(
            view.cached(
                "gap",
                lambda: F.fig_metric_series(
                    gap.plot,
                    [schema.M_GAP, schema.M_MATCHED_DIST],
                    title="Modality gap and matched distance",
                    y_title="distance on the unit sphere",
                ),
            ),
            gap.full,
            key="gap",
            file_name=f"{view.name}-gap",
            note=gap.note,
            caption=(
                "Gap = ‖mean(â) − mean(b̂)‖ between the modalities' centroids; "
                "matched distance = mean ‖â_i − b̂_i‖ over pairs.",
                "A gap exists from random init and low τ keeps it large (Liang et al., NeurIPS 2022); "
                "matched distance should fall as pairs align.",
            ),
        )
    cones = [f"{schema.M_CONE}/{m}" for m in (a, b)]
    cone = view.series(cones)
    if not cone.full.empty:
        ui.chart(
            view.cached(
                "cones",
                lambda: F.fig_metric_series(cone.plot, cones, title="Cone: mean cosine within each modality"),
            ),
            cone.full,
            key="cones",
            file_name=f"{view.name}-cones",
            note=cone.note,
            caption=(
                "Mean cosine between different samples of the same modality.",
                "Well above 0 means the modality occupies a narrow cone, which causes the gap "
                "(Liang et al., NeurIPS 2022: 0.67–0.72 for random-init CLIP).",
            ),
        )
    steps = view.snapshot_steps()
    if not steps:
        st.info("No embedding snapshot in the selected steps yet, so no 2-D view.")
        return
    step = ui.step_picker(steps, "Snapshot step", key="gap_step")
    matrix, info = view.embedding_matrix(step)
    if info["modality"].nunique() < 2:
        st.info(
            f"The snapshot at step {step} holds only {sorted(info['modality'].unique())}; no 2-D gap view."
        )
        return

    proj = projection.compute_projection(matrix, method="pca", cap=4000, strata=info["modality"].to_numpy())
    points = projection.to_points(proj, info)
    x_title, y_title = (f"PC {i + 1} ({share:.0%} of variance)" for i, share in enumerate(proj.explained))
    fig = F.fig_modality_gap_view(
        points, gap=view.value_at(schema.M_GAP, step), x_title=x_title, y_title=y_title
    )
    ui.chart(
        fig,
        points,
        key="gap_view",
        file_name=f"{view.name}-gap-view-step{step}",
        caption=(
            "PCA of both modalities' unit embeddings together; × centroids, grey lines join matched pairs; "
            "the title gives the logged gap at that step.",
            "Two clouds apart, joined by parallel pair lines, is the modality gap "
            "(Liang et al., NeurIPS 2022); one mixed cloud means the modalities share the sphere.",
        ),
    )


ui.run_page(
    "Modality gap",
    "In two-tower (CLIP-style) runs: do the two modalities share one region of the sphere or sit apart?",
    render,
)
