"""Scores: positive and negative score distributions at a step, over training, and the hardest negatives."""

from __future__ import annotations

import streamlit as st

from cldiag import figures as F
from cldiag import schema, ui

MEANS = [schema.M_POS_SIM, schema.M_NEG_SIM, schema.M_HARD_NEG_SIM]


def render(view: ui.RunView) -> None:
    hist = view.table("histograms")
    steps = view.steps("histograms")
    if not steps:
        st.info(
            "No score histograms in the selected steps yet. The Monitor logs them every `pairwise_every` "
            "steps (default 10); widen the step range or wait for the next flush.",
        )
        return
    step = ui.step_picker(steps, "Step of the distribution", key="scores_step")
    at_step = view.at_step("histograms", step)
    ui.chart(
        view.cached("score_overlay", lambda: F.fig_score_overlay(at_step), step),
        at_step,
        key="overlay",
        file_name=f"{view.name}-scores-step{step}",
        caption=(
            "Densities of positive-pair cosines, cosines to negatives and each anchor's hardest negative.",
            "Healthy training pulls positives right and keeps negatives near 0 with little overlap "
            "(Zhu et al., ICCV 2021); the title gives the pos/neg overlap coefficient.",
        ),
    )
    # Split by kind once per run version; both charts over training reuse it.
    matrices = view.cached("histogram_matrices", lambda: F.histogram_matrices(hist))
    ui.chart(
        view.cached("score_heatmap", lambda: F.fig_score_heatmap(matrices)),
        lambda: hist,
        key="heatmap",
        file_name=f"{view.name}-score-histograms",
        caption=(
            "Each row is one logged step's distribution (brighter = denser), training time going up.",
            "The positive band should drift right and narrow while the negative band stays put "
            "(Zhu et al., ICCV 2021); bands merging means the task got too easy or collapsed.",
        ),
    )
    if schema.HIST_HARD_NEG in matrices:
        ui.chart(
            view.cached("hard_quantiles", lambda: F.fig_hard_negative_quantiles(matrices)),
            lambda: hist.loc[hist["kind"].isin([schema.HIST_HARD_NEG, schema.HIST_POS])],
            key="hard_quantiles",
            file_name=f"{view.name}-hard-negatives",
            caption=(
                "Median, 90th and 99th percentile of each anchor's hardest-negative cosine.",
                "Upper quantiles above the median positive: many anchors have a negative closer than their "
                "positive — false negatives or a too-low τ (Wang & Liu, CVPR 2021).",
            ),
        )
    means = view.series(MEANS)
    if not means.full.empty:
        ui.chart(
            view.cached(
                "score_means",
                lambda: F.fig_metric_series(
                    means.plot, MEANS, title="Mean scores", y_title="cosine similarity"
                ),
            ),
            means.full,
            key="means",
            file_name=f"{view.name}-score-means",
            note=means.note,
            caption=(
                "Mean cosine of positive pairs, of all negatives and of each anchor's hardest negative.",
                "The gap between positive and negative means is the separation the loss buys "
                "(Zhu et al., ICCV 2021).",
            ),
        )
    overlap = view.series([schema.M_OVERLAP])
    if not overlap.full.empty:
        ui.chart(
            view.cached(
                "overlap",
                lambda: F.fig_metric_series(overlap.plot, title="Positive/negative overlap over training"),
            ),
            overlap.full,
            key="overlap",
            file_name=f"{view.name}-overlap",
            note=overlap.note,
            caption=(
                "Overlap coefficient Σ min(p_pos, p_neg) of the two histograms: 1 = identical, 0 = disjoint.",
                "It should fall as training separates positives from negatives (Zhu et al., ICCV 2021).",
            ),
        )


ui.run_page(
    "Scores",
    "How similar positive pairs and negatives are, step by step: the distributions, not just their means.",
    render,
)
