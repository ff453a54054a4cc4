"""Geometry: alignment and uniformity over training, their plane, tolerance, spread of unit embeddings."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from cldiag import figures as F
from cldiag import schema, ui


def uniformity_metric(metrics: list[str]) -> str | None:
    if schema.M_UNIFORMITY in metrics:
        return schema.M_UNIFORMITY
    per_modality = sorted(m for m in metrics if m.startswith(f"{schema.M_UNIFORMITY}/"))
    return per_modality[0] if per_modality else None


def render(sel: ui.Selection, views: list[ui.RunView]) -> None:
    view = views[0]
    metrics = view.metrics()
    if not metrics:
        st.info("No scalar metrics logged yet.")
        return
    uniform = uniformity_metric(metrics)
    shown = [m for m in [schema.M_ALIGNMENT, uniform] if m is not None]
    shown += sorted(m for m in metrics if m.startswith(f"{schema.M_UNIFORMITY}/") and m != uniform)
    au = view.series(shown)
    if not au.full.empty:
        ui.chart(
            view.cached(
                "au_series", lambda: F.fig_metric_grid(au.plot, shown, title="Alignment and uniformity")
            ),
            au.full,
            key="au_series",
            file_name=f"{view.name}-alignment-uniformity",
            note=au.note,
            caption=(
                "Alignment = mean ‖â − b̂‖² over positive pairs (0 … 4); "
                "uniformity = log mean exp(−2‖ẑ_i − ẑ_j‖²).",
                "Both should fall: positives close together, the rest spread over the sphere "
                "(Wang & Isola, ICML 2020).",
            ),
        )

    pairs_parts = []
    for v in views:
        u = uniformity_metric(v.metrics())
        if u is None:
            continue
        full = v.series([schema.M_ALIGNMENT, u]).full
        pairs = F.align_uniform_pairs(full, uniformity=u)
        pairs_parts.append(pairs.assign(run=sel.label(v.path)))
    pairs = pd.concat(pairs_parts, ignore_index=True) if pairs_parts else pd.DataFrame()
    if pairs.empty:
        st.info("The alignment–uniformity plane needs both metrics at common steps; none logged yet.")
    else:
        key = ("plane", tuple((v.path, v.token) for v in views), sel.step_range)
        ui.chart(
            ui.cached(key, lambda: F.fig_align_uniform_plane(pairs)),
            pairs,
            key="plane",
            file_name=f"{view.name}-alignment-uniformity-plane",
            caption=(
                "Each run's path through (uniformity, alignment) over training, ○ start, ★ end; "
                "add runs under “Compare with”.",
                "Better representations sit lower-left; Wang & Isola (ICML 2020) found downstream accuracy "
                "rising towards that corner.",
            ),
        )

    if schema.M_TOLERANCE in metrics:
        tol = view.series([schema.M_TOLERANCE])
        ui.chart(
            view.cached(
                "tolerance", lambda: F.fig_metric_series(tol.plot, title="Tolerance (same-class cosine)")
            ),
            tol.full,
            key="tolerance",
            file_name=f"{view.name}-tolerance",
            note=tol.note,
            caption=(
                "Mean cosine between different samples of the same class.",
                "Higher tolerance keeps semantically similar samples together; very low τ trades it for "
                "uniformity (Wang & Liu, CVPR 2021).",
            ),
        )
    else:
        st.info(
            "No tolerance: this run logged no labels. Pass `labels=` to `Monitor.log` to see how close "
            "same-class samples stay (Wang & Liu, CVPR 2021).",
        )

    if schema.M_STD_L2 in metrics:
        std = view.series([schema.M_STD_L2])
        refs = (
            [(1 / math.sqrt(view.dim), f"1/√d = {1 / math.sqrt(view.dim):.3f} (isotropic)")]
            if view.dim
            else []
        )
        ui.chart(
            view.cached(
                "std_l2",
                lambda: F.fig_metric_series(
                    std.plot, title="Std of L2-normalized embeddings", dim=view.dim, references=refs
                ),
            ),
            std.full,
            key="std_l2",
            file_name=f"{view.name}-std-l2",
            note=std.note,
            caption=(
                "Mean over dimensions of the standard deviation of unit embeddings; dotted: 1/√d.",
                "Near 1/√d is healthy and 0 is complete collapse (SimSiam, Chen & He 2021); it misses "
                "low-rank collapse, so read it with the Spectrum page.",
            ),
        )


ui.run_multi_page(
    "Geometry",
    "Where the embeddings sit on the sphere: close positives (alignment), spread-out samples (uniformity).",
    render,
)
