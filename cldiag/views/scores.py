"""The Scores page's views: positive/negative score distributions, hardness, ranks, false negatives."""

from __future__ import annotations

import plotly.graph_objects as go

from cldiag import figures as F
from cldiag import schema
from cldiag.figures.captions import caption
from cldiag.views.base import EMPTY
from cldiag.views.data import RunLike, Series
from cldiag.views.panel import Panel, metric_panel, metrics_panel, series_panel

SCORE_MEANS = [schema.M_POS_SIM, schema.M_NEG_SIM, schema.M_HARD_NEG_SIM]
RANK_METRICS = [schema.M_MRR, schema.M_RECALL_AT_1, schema.M_RECALL_AT_5, schema.M_RECALL_AT_10]
FALSE_NEGATIVES = [schema.M_FALSE_NEG_SHARE, schema.M_FALSE_NEG_PENALTY_SHARE]


def score_overlay(view: RunLike, step: int) -> Panel:
    """Positive, negative and hardest-negative score densities at one step."""
    at_step = view.at_step("histograms", step)
    return Panel(
        key="overlay",
        build=lambda: F.fig_score_overlay(at_step),
        data=at_step,
        caption=caption("score_overlay"),
        file_name=f"{view.name}-scores-step{step}",
        params=("score_overlay", step),
    )


def _matrices(view: RunLike) -> dict[str, F.HistogramMatrix]:
    # Split by kind once per run version; both charts over training reuse it.
    hist = view.table("histograms")
    return view.cached("histogram_matrices", lambda: F.histogram_matrices(hist))


def score_heatmap(view: RunLike) -> Panel | str:
    """Every logged step's score distribution as a heatmap over training."""
    hist = view.table("histograms")
    if hist.empty:
        return EMPTY["histograms"]
    matrices = _matrices(view)
    return Panel(
        key="heatmap",
        build=lambda: F.fig_score_heatmap(matrices),
        data=lambda: hist,
        caption=caption("score_heatmap"),
        file_name=f"{view.name}-score-histograms",
        params=("score_heatmap",),
    )


def hard_negative_quantiles(view: RunLike) -> Panel | None:
    """Quantiles of each anchor's hardest negative over training; None when none were logged."""
    hist = view.table("histograms")
    if hist.empty or schema.HIST_HARD_NEG not in (matrices := _matrices(view)):
        return None
    return Panel(
        key="hard_quantiles",
        build=lambda: F.fig_hard_negative_quantiles(matrices),
        data=lambda: hist.loc[hist["kind"].isin([schema.HIST_HARD_NEG, schema.HIST_POS])],
        caption=caption("hard_quantiles"),
        file_name=f"{view.name}-hard-negatives",
        params=("hard_quantiles",),
    )


def score_means(view: RunLike) -> Panel | None:
    """Mean positive, negative and hardest-negative cosine over training."""

    def build(s: Series) -> go.Figure:
        return F.fig_metric_series(s.plot, SCORE_MEANS, title="Mean scores", y_title="cosine similarity")

    return series_panel(view, SCORE_MEANS, "means", "score-means", build, chart="score_means")


def overlap(view: RunLike) -> Panel | None:
    """The pos/neg histogram overlap coefficient over training."""
    title = "Positive/negative overlap over training"
    panel = metric_panel(view, schema.M_OVERLAP, key="overlap", title=title, file_name="overlap")
    return panel if isinstance(panel, Panel) else None


def rank_metrics(view: RunLike) -> Panel | None:
    """MRR and recall@1/5/10 of the positives among the batch's candidates over training (GroCo)."""
    title = "Rank of the positive: MRR and recall@k"
    return metrics_panel(view, RANK_METRICS, key="ranks", title=title, file_name="ranks", y_title="share")


def ordering_violations(view: RunLike) -> Panel | None:
    """Share of (positive, negative) pairs ordered wrongly (1 − AUROC) over training; 0.5 = chance."""
    return metrics_panel(
        view,
        [schema.M_ORDERING_VIOLATIONS],
        key="ordering",
        title="Ordering violations (1 − AUROC)",
        file_name="ordering-violations",
        references=[(0.5, "chance")],
    )


def false_negatives(view: RunLike) -> Panel | None:
    """Share of same-label negatives and their share of the negative penalty over training (labels)."""
    return metrics_panel(
        view,
        [schema.M_FALSE_NEG_PENALTY_SHARE, schema.M_FALSE_NEG_SHARE],
        key="false_negatives",
        title="False negatives: share of negatives and of the penalty",
        file_name="false-negatives",
        y_title="share",
    )
