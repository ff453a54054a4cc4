"""Embeddings: a 2-D map of snapshots (PCA now, UMAP/t-SNE in the background); click a point: neighbours."""

from __future__ import annotations

import streamlit as st

from cldiag import projection, ui, views

METHODS = {"PCA": "pca", "UMAP": "umap", "t-SNE": "tsne"}
CAPS = [500, 1000, 2000, 5000, 10000]


def render(view: ui.RunView) -> None:
    steps = view.snapshot_steps()
    if not steps:
        st.info(views.EMPTY["snapshots"])
        return
    c1, c2, c3, c4 = st.columns([3, 2, 2, 2])
    chosen = c1.multiselect("Snapshots", steps, default=[steps[-1]], key="emb_steps")
    label = c2.radio("Method", list(METHODS), horizontal=True, key="emb_method")
    labelled = view.embedding_matrix(steps[-1])[1]["label"].notna().any()
    colors = ["label", "modality", "step"]
    color_by = c3.radio("Colour by", colors, index=0 if labelled else 1, horizontal=True, key="emb_color")
    cap = c4.select_slider("Point cap", CAPS, value=5000, key="emb_cap")
    if not chosen:
        st.info("Pick at least one snapshot.")
        return
    inp = views.projection_input(view, chosen)
    if inp.x.shape[0] == 0:
        st.info("The chosen snapshots hold no rows.")
        return
    if color_by == "label" and inp.info["label"].isna().all():
        st.caption("These snapshots have no labels: every point is grey. Colour by modality or step instead.")
    if color_by == "step" and len(chosen) == 1:
        st.caption("Pick several snapshots to see the embedding move over training.")
    pca = view.cached("pca", lambda: inp.pca(cap), inp.steps, cap)
    proj, shown, method = pca, "PCA", METHODS[label]
    if method != "pca" and inp.finite_rows < projection.MIN_POINTS_NONLINEAR:
        st.info(f"{label} needs at least {projection.MIN_POINTS_NONLINEAR} points; showing PCA.")
    elif method != "pca" and (hit := inp.cached(method, cap))[1] is not None:
        proj, shown = hit[1], label
    elif method != "pca":
        job = ui.background_jobs("projection").submit(hit[0], lambda: inp.compute(method, cap))
        if job.done() and job.exception() is None:
            proj, shown = job.result(), label
        elif job.done():
            st.warning(f"{label} failed ({type(job.exception()).__name__}: {job.exception()}); showing PCA.")
        else:
            st.info(views.computing_message(label, min(cap, inp.finite_rows)))
            ui.rerun_when_done(job)
    picked = ui.show(views.embedding_scatter(view, proj, inp.info, shown, color_by), view, select=True)
    ui.table(views.selection_neighbours(view, picked), key="emb_nn", file_name=f"{view.name}-neighbours")


ui.run_page(
    "Embeddings",
    "A 2-D map of a snapshot: are classes grouped, modalities mixed, the sphere used?",
    render,
    banner=False,
)
