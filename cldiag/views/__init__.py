"""The view layer: plain functions from a run (or runs) to what a dashboard page shows.

A page is *load → figure → show*: it loads a run through a view (:class:`RunData` here, or the dashboard's
cached ``cldiag.ui.RunView``, which has the same methods), asks a function of this module for a
:class:`Panel` (the figure's builder, the data behind it for the CSV, its two-line caption) or for a message
saying why there is nothing to draw, and hands that to the UI. Notebooks (:mod:`cldiag.plot`) call the same
functions and get the same figures. Nothing here imports Streamlit; everything is tested without it.

One module per page (``overview``, ``scores``, ``geometry``, ``temperature``, ``modality``, ``spectrum``,
``embeddings``, ``compare``, ``examples`` for the Pairs page), over what they share: ``data`` (a run as
views see it), ``panel`` (what a page shows) and ``base`` (messages for empty charts). Every public name is
re-exported here, so ``from cldiag import views; views.score_overlay(...)`` is the way to call them.
"""

from __future__ import annotations

from cldiag.views.base import EMPTY, MAX_POINTS
from cldiag.views.compare import COMPARE_METRICS, available_metrics, config_diff, metrics_compared
from cldiag.views.data import (
    RunData,
    RunLike,
    Series,
    follow_range,
    followed_step,
    rows_at_step,
    rows_in_range,
    series_in_range,
    split_by_metric,
    unique_steps,
    value_at_step,
)
from cldiag.views.embeddings import ProjectionInput, computing_message, embedding_scatter, projection_input
from cldiag.views.examples import (
    NEIGHBOUR_COLUMNS,
    PAIR_COLUMNS,
    PAIRS_CAPTION,
    SnapshotPairs,
    format_worst_pairs,
    neighbours_table,
    pair_labels,
    selection_neighbours,
    snapshot_pairs,
    worst_pairs_table,
)
from cldiag.views.geometry import (
    align_uniform_pairs,
    align_uniform_plane,
    alignment_uniformity,
    std_l2,
    tolerance,
    uniformity_metric,
)
from cldiag.views.modality import (
    MIP_KINDS,
    NO_PAIRS,
    PAIR_BASES,
    cones,
    mip_distribution,
    mip_series,
    modality_gap,
    modality_gap_view,
    modality_matrix,
    pair_cells,
    pair_evolution,
    pair_metrics,
    pair_modalities,
    pair_steps,
)
from cldiag.views.overview import (
    KEY_METRICS,
    MAX_CONFIG_KEYS,
    key_metrics,
    run_summary,
    runs_series,
    shown_config,
)
from cldiag.views.panel import Panel, metric_panel, metrics_panel, series_panel
from cldiag.views.scores import (
    FALSE_NEGATIVES,
    RANK_METRICS,
    SCORE_MEANS,
    false_negatives,
    hard_negative_quantiles,
    ordering_violations,
    overlap,
    rank_metrics,
    score_heatmap,
    score_means,
    score_overlay,
)
from cldiag.views.spectrum import effective_rank, spectrum, spectrum_waterfalls
from cldiag.views.temperature import (
    CONFIG_KEYS,
    TAU_QUANTILE_METRICS,
    TAU_QUANTILES_CAPTION,
    TEMPERATURE_TREND,
    fixed_value,
    run_tau,
    tau_quantiles,
    temperature_curves,
    temperature_trend,
)

__all__ = [
    "COMPARE_METRICS",
    "CONFIG_KEYS",
    "EMPTY",
    "FALSE_NEGATIVES",
    "KEY_METRICS",
    "MAX_CONFIG_KEYS",
    "MAX_POINTS",
    "MIP_KINDS",
    "NEIGHBOUR_COLUMNS",
    "NO_PAIRS",
    "PAIRS_CAPTION",
    "PAIR_BASES",
    "PAIR_COLUMNS",
    "RANK_METRICS",
    "SCORE_MEANS",
    "TAU_QUANTILES_CAPTION",
    "TAU_QUANTILE_METRICS",
    "TEMPERATURE_TREND",
    "Panel",
    "ProjectionInput",
    "RunData",
    "RunLike",
    "Series",
    "SnapshotPairs",
    "align_uniform_pairs",
    "align_uniform_plane",
    "alignment_uniformity",
    "available_metrics",
    "computing_message",
    "cones",
    "config_diff",
    "effective_rank",
    "embedding_scatter",
    "false_negatives",
    "fixed_value",
    "follow_range",
    "followed_step",
    "format_worst_pairs",
    "hard_negative_quantiles",
    "key_metrics",
    "metric_panel",
    "metrics_compared",
    "metrics_panel",
    "mip_distribution",
    "mip_series",
    "modality_gap",
    "modality_gap_view",
    "modality_matrix",
    "neighbours_table",
    "ordering_violations",
    "overlap",
    "pair_cells",
    "pair_evolution",
    "pair_labels",
    "pair_metrics",
    "pair_modalities",
    "pair_steps",
    "projection_input",
    "rank_metrics",
    "rows_at_step",
    "rows_in_range",
    "run_summary",
    "run_tau",
    "runs_series",
    "score_heatmap",
    "score_means",
    "score_overlay",
    "selection_neighbours",
    "series_in_range",
    "series_panel",
    "shown_config",
    "snapshot_pairs",
    "spectrum",
    "spectrum_waterfalls",
    "split_by_metric",
    "std_l2",
    "tau_quantiles",
    "temperature_curves",
    "temperature_trend",
    "tolerance",
    "uniformity_metric",
    "unique_steps",
    "value_at_step",
    "worst_pairs_table",
]
