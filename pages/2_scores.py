"""Scores: score distributions at a step and over training, hardest negatives, ranks and false negatives."""

from __future__ import annotations

import streamlit as st

from cldiag import ui, views


def render(view: ui.RunView) -> None:
    steps = view.steps("histograms")
    if not steps:
        st.info(views.EMPTY["histograms"])
        return
    step = ui.step_picker(steps, "Step of the distribution", key="scores_step")
    ui.show(views.score_overlay(view, step), view)
    ui.show(views.score_heatmap(view), view)
    ui.show(views.hard_negative_quantiles(view), view)
    ui.show(views.score_means(view), view)
    ui.show(views.overlap(view), view)
    ui.show(views.rank_metrics(view), view)
    ui.show(views.ordering_violations(view), view)
    ui.show(views.false_negatives(view), view)


ui.run_page(
    "Scores",
    "How similar positive pairs and negatives are, step by step: the distributions, not just their means.",
    render,
)
