"""Pure figure builders: DataFrames in the reader's schemas → plotly Figures (no Streamlit).

One builder per chart, grouped by dashboard area. Every figure has a title and labelled axes; axis bounds
and "higher is better" come from :mod:`cldiag.figures.metrics`, beside the metric, not from the pages.
"""

from __future__ import annotations

from cldiag.figures.embeddings import MAX_CATEGORIES, fig_embedding_scatter, fig_modality_gap_view
from cldiag.figures.geometry import align_uniform_pairs, fig_align_uniform_plane
from cldiag.figures.metrics import METRICS, MetricInfo, metric_info
from cldiag.figures.scores import (
    HistogramMatrix,
    fig_hard_negative_quantiles,
    fig_score_heatmap,
    fig_score_overlay,
    histogram_matrices,
    histogram_matrix,
    histogram_quantiles,
    overlap_coefficient,
)
from cldiag.figures.series import fig_dual_axis, fig_metric_grid, fig_metric_series
from cldiag.figures.spectrum import EIGEN_FLOOR, fig_spectrum, fig_spectrum_waterfall, log_eigenvalues
from cldiag.figures.tables import column_help, configs_table, last_values, round_significant, runs_table
from cldiag.figures.temperature import CURVES, fig_temperature_curves

__all__ = [
    "CURVES",
    "EIGEN_FLOOR",
    "MAX_CATEGORIES",
    "METRICS",
    "HistogramMatrix",
    "MetricInfo",
    "align_uniform_pairs",
    "column_help",
    "configs_table",
    "fig_align_uniform_plane",
    "fig_dual_axis",
    "fig_embedding_scatter",
    "fig_hard_negative_quantiles",
    "fig_metric_grid",
    "fig_metric_series",
    "fig_modality_gap_view",
    "fig_score_heatmap",
    "fig_score_overlay",
    "fig_spectrum",
    "fig_spectrum_waterfall",
    "fig_temperature_curves",
    "histogram_matrices",
    "histogram_matrix",
    "histogram_quantiles",
    "last_values",
    "log_eigenvalues",
    "metric_info",
    "overlap_coefficient",
    "round_significant",
    "runs_table",
]
