"""Embeddings: a 2-D map of snapshot embeddings (PCA at once; UMAP and t-SNE computed in the background)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from cldiag import figures as F
from cldiag import projection, ui

METHODS = {"PCA": "pca", "UMAP": "umap", "t-SNE": "tsne"}
CAPS = [500, 1000, 2000, 5000, 10000]


def show(
    proj: projection.Projection, info: pd.DataFrame, label: str, color_by: str, view: ui.RunView
) -> None:
    points = projection.to_points(proj, info)
    if proj.explained is not None:
        x_title, y_title = (f"PC {i + 1} ({s:.0%} of variance)" for i, s in enumerate(proj.explained))
    else:
        x_title, y_title = f"{label} 1", f"{label} 2"
    steps = sorted(int(s) for s in points["step"].unique())
    title = f"{label} of snapshot {', '.join(map(str, steps))} — {len(points):,} of {len(info):,} points"
    fig = view.cached(
        "embedding_scatter",
        lambda: F.fig_embedding_scatter(
            points, color_by=color_by, title=title, x_title=x_title, y_title=y_title
        ),
        proj.method,
        color_by,
        tuple(steps),
        proj.coords.shape[0],  # with the steps, fixes the stratified sample (the seed is fixed)
    )
    ui.chart(
        fig,
        points,
        key="embedding",
        file_name=f"{view.name}-{proj.method}-{'-'.join(map(str, steps))}",
        caption=(
            f"Each dot is one sample's unit embedding mapped to 2-D by {label}; hover for sample id and "
            "label. Large snapshots are capped per modality and label (stratified).",
            "Compact same-label clusters spread over the plot are the alignment/uniformity ideal "
            "(Wang & Isola 2020); UMAP (McInnes et al. 2018) and t-SNE distort distances, PCA does not.",
        ),
    )


def render(view: ui.RunView) -> None:
    steps = view.snapshot_steps()
    if not steps:
        st.info(
            "No embedding snapshot in the selected steps yet. The Monitor stores one every `snapshot_every` "
            "steps (default 500), or call `Monitor.log_embeddings` with a fixed probe set.",
        )
        return
    c1, c2, c3, c4 = st.columns([3, 2, 2, 2])
    chosen = c1.multiselect("Snapshots", steps, default=[steps[-1]], key="emb_steps")
    label = c2.radio("Method", list(METHODS), horizontal=True, key="emb_method")
    labelled = view.embedding_matrix(steps[-1])[1]["label"].notna().any()
    color_by = c3.radio(
        "Colour by",
        ["label", "modality", "step"],
        index=0 if labelled else 1,
        horizontal=True,
        key="emb_color",
    )
    cap = c4.select_slider("Point cap", CAPS, value=5000, key="emb_cap")
    if not chosen:
        st.info("Pick at least one snapshot.")
        return
    parts = [view.embedding_matrix(s) for s in sorted(chosen)]
    x = np.concatenate([m for m, _ in parts]) if len(parts) > 1 else parts[0][0]
    info = pd.concat([i for _, i in parts], ignore_index=True) if len(parts) > 1 else parts[0][1]
    if x.shape[0] == 0:
        st.info("The chosen snapshots hold no rows.")
        return
    if color_by == "label" and info["label"].isna().all():
        st.caption("These snapshots have no labels: every point is grey. Colour by modality or step instead.")
    if color_by == "step" and len(chosen) == 1:
        st.caption("Pick several snapshots to see the embedding move over training.")
    strata = view.cached(
        "strata",
        lambda: (
            info["modality"].astype(str) + "/" + info["label"].astype("string").fillna("none")
        ).to_numpy(),
        tuple(chosen),
    )
    method = METHODS[label]
    pca = view.cached(
        "pca",
        lambda: projection.compute_projection(x, method="pca", cap=cap, strata=strata),
        tuple(chosen),
        cap,
    )
    if method == "pca":
        show(pca, info, label, color_by, view)
        return
    finite = int(np.isfinite(x).all(axis=1).sum())
    if finite < projection.MIN_POINTS_NONLINEAR:
        st.info(f"{label} needs at least {projection.MIN_POINTS_NONLINEAR} points; showing PCA.")
        show(pca, info, "PCA", color_by, view)
        return
    cache = projection.ProjectionCache(projection.cache_dir_for(view.path))
    spec = dict(method=method, cap=cap, strata=strata, run_path=view.path, step=sorted(chosen))
    key, hit = projection.find_cached(x, cache=cache, **spec)
    if hit is not None:
        show(hit, info, label, color_by, view)
        return
    job = ui.background_jobs("projection").submit(
        key, lambda: projection.compute_projection(x, cache=cache, **spec)
    )
    if job.done():
        if job.exception() is None:
            show(job.result(), info, label, color_by, view)
            return
        st.warning(f"{label} failed ({type(job.exception()).__name__}: {job.exception()}); showing PCA.")
        show(pca, info, "PCA", color_by, view)
        return
    st.info(
        f"{label} of {min(cap, finite):,} points is computing in the background (the first UMAP in a new "
        "process also compiles numba: 20–60 s). PCA is shown meanwhile and the page switches when the "
        "result is ready; it is cached on disk, so the next visit is instant.",
    )
    ui.rerun_when_done(job)
    show(pca, info, "PCA", color_by, view)


ui.run_page(
    "Embeddings",
    "A 2-D map of a snapshot: are classes grouped, modalities mixed, the sphere used?",
    render,
    banner=False,
)
