"""The view layer: plain functions from a run (or runs) to what a dashboard page shows.

A page is *load → figure → show*: it loads a run through a view (:class:`RunData` here, or the dashboard's
cached ``cldiag.ui.RunView``, which has the same methods), asks a function of this module for a
:class:`Panel` (the figure's builder, the data behind it for the CSV, its two-line caption) or for a message
saying why there is nothing to draw, and hands that to the UI. Notebooks (:mod:`cldiag.plot`) call the same
functions and get the same figures. Nothing here imports Streamlit; everything is tested without it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch

from cldiag import figures as F
from cldiag import functional as FN
from cldiag import projection, schema
from cldiag.figures.captions import caption
from cldiag.figures.metrics import metric_info
from cldiag.reader import Run, downsample

__all__ = [
    "COMPARE_METRICS",
    "CONFIG_KEYS",
    "EMPTY",
    "KEY_METRICS",
    "MAX_POINTS",
    "NEIGHBOUR_COLUMNS",
    "PAIRS_CAPTION",
    "PAIR_COLUMNS",
    "SCORE_MEANS",
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
    "fixed_value",
    "follow_range",
    "followed_step",
    "format_worst_pairs",
    "hard_negative_quantiles",
    "key_metrics",
    "metric_panel",
    "metrics_compared",
    "modality_gap",
    "modality_gap_view",
    "neighbours_table",
    "overlap",
    "pair_labels",
    "projection_input",
    "rows_at_step",
    "rows_in_range",
    "run_summary",
    "run_tau",
    "runs_series",
    "score_heatmap",
    "score_overlay",
    "selection_neighbours",
    "series_in_range",
    "snapshot_pairs",
    "spectrum",
    "spectrum_waterfalls",
    "split_by_metric",
    "std_l2",
    "temperature_curves",
    "temperature_trend",
    "tolerance",
    "uniformity_metric",
    "unique_steps",
    "value_at_step",
    "worst_pairs_table",
]

T = TypeVar("T")

MAX_POINTS = 2000
"""Points per plotted series; longer series are min/max-downsampled (the CSV keeps every point)."""
KEY_METRICS = [
    schema.M_LOSS,
    schema.M_ALIGNMENT,
    schema.M_UNIFORMITY,
    schema.M_POS_SIM,
    schema.M_RANK,
    schema.M_RETRIEVAL,
    schema.M_GAP,
    schema.M_STD_L2,
]
"""The Overview's metrics: one per diagnostic a first look needs."""
COMPARE_METRICS = [
    schema.M_LOSS,
    schema.M_ALIGNMENT,
    schema.M_UNIFORMITY,
    schema.M_POS_SIM,
    schema.M_RANK,
    schema.M_RETRIEVAL,
    schema.M_TOLERANCE,
    schema.M_GAP,
]
"""What the Compare page overlays until the user picks other metrics."""
SCORE_MEANS = [schema.M_POS_SIM, schema.M_NEG_SIM, schema.M_HARD_NEG_SIM]
TEMPERATURE_TREND = [schema.M_TEMPERATURE, schema.M_ENTROPY, schema.M_EFF_NEG, schema.M_COUPLING]
RANK_METRICS = [schema.M_MRR, schema.M_RECALL_AT_1, schema.M_RECALL_AT_5, schema.M_RECALL_AT_10]
FALSE_NEGATIVES = [schema.M_FALSE_NEG_SHARE, schema.M_FALSE_NEG_PENALTY_SHARE]
TAU_QUANTILE_METRICS = list(schema.TAU_QUANTILES)
TAU_QUANTILES_CAPTION = (
    "Quantiles (10 %, 50 %, 90 %) of the batch's per-sample τ at pairwise steps, when the loss learns one "
    "τ per sample.",
    "A band that stays at zero width means every sample kept the same τ; iSogCLR (Qiu et al., 2023) "
    "learns individual temperatures, so the band should open as samples differ.",
)
CONFIG_KEYS = ("temperature", "tau", "temp", "t")
"""Configuration keys read as the run's τ when no temperature was logged."""

EMPTY = {
    "histograms": "No score histograms in the selected steps yet. The Monitor logs them every "
    "`pairwise_every` steps (default 10); widen the step range or wait for the next flush.",
    "temperature": "No temperature curves in the selected steps yet. The Monitor computes them every "
    "`curves_every` steps (default 100) from that step's batch.",
    "spectra": "No spectra in the selected steps yet. The Monitor logs them every `spectrum_every` steps "
    "(default 100).",
    "snapshots": "No embedding snapshot in the selected steps yet. The Monitor stores one every "
    "`snapshot_every` steps (default 500), or call `Monitor.log_embeddings` with a fixed probe set.",
    "scalars": "No scalar metrics logged yet.",
    "one_modality": "This run has two views of one modality, so there is no modality gap to measure. Log a "
    'two-tower run with `Monitor(..., modalities=("image", "text"))` to see it.',
    "gap": "No gap metrics logged yet.",
    "gap_snapshot": "No embedding snapshot in the selected steps yet, so no 2-D view.",
    "plane": "The alignment–uniformity plane needs both metrics at common steps; none logged yet.",
    "tolerance": "No tolerance: this run logged no labels. Pass `labels=` to `Monitor.log` to see how close "
    "same-class samples stay (Wang & Liu, CVPR 2021).",
}
"""Why a chart is missing, per table or chart: the dashboard shows it, notebooks raise it."""


# ---------------------------------------------------------------------------------------------------------
# A run as views see it
@dataclass(frozen=True)
class Series:
    """Scalar series ready to plot.

    Attributes:
        plot: the downsampled frame to draw (≤ ``MAX_POINTS`` rows per metric).
        full: every logged point in the step range (for CSV download).
    """

    plot: pd.DataFrame
    full: pd.DataFrame

    @property
    def downsampled(self) -> bool:
        """Whether any series lost points for plotting."""
        return len(self.plot) < len(self.full)

    @property
    def note(self) -> str | None:
        """A caption saying how the series were reduced, or None when nothing was."""
        if not self.downsampled:
            return None
        return (
            f"Drawn: {len(self.plot):,} of {len(self.full):,} points (min/max per bucket kept, so spikes "
            "stay visible); the CSV has every point."
        )


# -- Table access shared by RunData and the dashboard's cached RunView (tables come sorted by step) -------
def split_by_metric(
    scalars: pd.DataFrame, *, limit: int | None = None, first: Callable[[str], bool] | None = None
) -> tuple[dict[str, pd.DataFrame], int]:
    """Each metric's rows of a long ``scalars`` frame, in step order, by metric name.

    One factorize and a stable argsort split a million rows several times faster than ``groupby`` on
    strings, and keep each metric's rows in their original (step) order.

    Args:
        scalars: ``step, metric, value`` rows, sorted by step.
        limit: keep at most this many metric names (None: all).
        first: names for which this is true are kept before the others when ``limit`` cuts (e.g. cldiag's
            own metrics before a flood of user metrics); ties by name.

    Returns:
        ``(metric name → its rows with a fresh index, sorted by name; how many names the frame holds)``.

    Raises:
        ValueError: ``limit`` is negative.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    codes, names = pd.factorize(scalars["metric"])
    kept = sorted(range(len(names)), key=lambda k: (first is not None and not first(str(names[k])), names[k]))
    kept = kept if limit is None else kept[:limit]
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
    parts = {
        str(names[k]): scalars.iloc[order[bounds[k] : bounds[k + 1]]].reset_index(drop=True) for k in kept
    }
    return dict(sorted(parts.items())), len(names)


def rows_in_range(df: pd.DataFrame, step_min: int | None, step_max: int | None) -> pd.DataFrame:
    """The rows of a step-sorted table with ``step_min <= step <= step_max`` (None: unbounded), as a slice."""
    steps = df["step"].to_numpy(np.int64)
    lo = 0 if step_min is None else int(np.searchsorted(steps, step_min, side="left"))
    hi = len(df) if step_max is None else int(np.searchsorted(steps, step_max, side="right"))
    return df.iloc[lo:hi]


def rows_at_step(df: pd.DataFrame, step: int) -> pd.DataFrame:
    """The rows of one step of a step-sorted table (a contiguous slice), with a fresh index."""
    return rows_in_range(df, step, step).reset_index(drop=True)


def unique_steps(df: pd.DataFrame) -> tuple[int, ...]:
    """The distinct steps of a table, ascending."""
    return tuple(int(s) for s in np.unique(df["step"].to_numpy(np.int64)))


def value_at_step(df: pd.DataFrame | None, step: int) -> float | None:
    """The last ``value`` at or before ``step`` in one metric's step-sorted rows (None if none yet)."""
    if df is None:
        return None
    i = int(np.searchsorted(df["step"].to_numpy(np.int64), step, side="right")) - 1
    return float(df["value"].iloc[i]) if i >= 0 else None


def series_in_range(
    by_metric: Mapping[str, pd.DataFrame],
    metrics: Sequence[str],
    step_range: tuple[int, int | None],
    max_points: int,
    empty: pd.DataFrame,
) -> Series:
    """The given metrics' rows in the step range, each downsampled to ``max_points`` for plotting.

    Args:
        by_metric: :func:`split_by_metric` output.
        metrics: the metrics, in the order wanted; absent ones are left out.
        step_range: ``(first, last)``; ``last`` None means up to the newest step.
        max_points: points per plotted series.
        empty: the frame to return (with its columns) when no metric has rows.
    """
    lo, hi = step_range
    full_parts, plot_parts = [], []
    for metric in metrics:
        df = by_metric.get(metric)
        if df is None:
            continue
        full_parts.append(rows_in_range(df, lo, hi))
        plot_parts.append(downsample(full_parts[-1], max_points=max_points, by=()))
    if not full_parts:
        return Series(plot=empty.iloc[0:0], full=empty.iloc[0:0])
    return Series(
        plot=pd.concat(plot_parts, ignore_index=True), full=pd.concat(full_parts, ignore_index=True)
    )


def follow_range(previous: tuple[int, int, int] | None, top: int) -> tuple[int, int]:
    """The step range to offer now that the newest step is ``top``.

    Args:
        previous: ``(first, last, top then)`` chosen before, or None the first time.
        top: the newest step of the runs shown.

    Returns:
        ``(first, last)``: the whole range the first time; afterwards the previous range, clipped to
        ``top``, except that a range that ended at the newest step keeps following it as the run grows.
    """
    if previous is None:
        return 0, top
    p_lo, p_hi, p_top = previous
    lo = min(p_lo, top)
    return lo, top if p_hi >= p_top else min(max(p_hi, lo), top)


def followed_step(current: int | None, newest_before: int | None, steps: Sequence[int]) -> int | None:
    """The step a step slider should move to on a redraw, or None to leave the user's choice alone.

    A slider that has no value yet, holds a step no longer offered, or sat on the newest step of the
    previous draw follows the run to its newest step.
    """
    if not steps:
        raise ValueError("followed_step needs at least one step")
    if current is None or current not in steps or current == newest_before:
        return int(steps[-1])
    return None


class RunLike(Protocol):
    """What the view functions read from a run: :class:`RunData` and the dashboard's ``RunView``."""

    run: Run
    step_range: tuple[int, int | None]

    @property
    def name(self) -> str: ...  # noqa: D102

    @property
    def path(self) -> str: ...  # noqa: D102

    @property
    def dim(self) -> int | None: ...  # noqa: D102

    def metrics(self) -> list[str]: ...  # noqa: D102

    def series(self, metrics: Sequence[str]) -> Series: ...  # noqa: D102

    def table(self, name: str) -> pd.DataFrame: ...  # noqa: D102

    def steps(self, name: str) -> list[int]: ...  # noqa: D102

    def at_step(self, name: str, step: int) -> pd.DataFrame: ...  # noqa: D102

    def snapshot_steps(self) -> list[int]: ...  # noqa: D102

    def embedding_matrix(self, step: int) -> tuple[np.ndarray, pd.DataFrame]: ...  # noqa: D102

    def value_at(self, metric: str, step: int) -> float | None: ...  # noqa: D102

    def cached(self, name: str, build: Callable[[], T], *params: Hashable) -> T: ...  # noqa: D102


def _run_dim(run: Run) -> int | None:
    dim = run.meta.get("dim")
    return int(dim) if isinstance(dim, int) else None


@dataclass
class RunData:
    """One run for the view functions, without Streamlit (notebooks, scripts, tests).

    Tables are read from the :class:`~cldiag.reader.Run` on each call and cut to ``step_range``; values
    built with :meth:`cached` are kept on the instance.

    Args:
        run: the run.
        step_range: ``(first, last)`` step to show; ``last`` None means up to the newest step.
        max_points: points per plotted series.
    """

    run: Run
    step_range: tuple[int, int | None] = (0, None)
    max_points: int = MAX_POINTS
    _memo: dict[tuple[Hashable, ...], Any] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        """The run's display name."""
        return self.run.name

    @property
    def path(self) -> str:
        """The run's location."""
        return self.run.path

    @property
    def dim(self) -> int | None:
        """Embedding dimension from meta.json."""
        return _run_dim(self.run)

    def _in_range(self, steps: Sequence[int]) -> list[int]:
        lo, hi = self.step_range
        return [int(s) for s in steps if s >= lo and (hi is None or s <= hi)]

    def metrics(self) -> list[str]:
        """Scalar metric names of the run."""
        return self.run.metrics()

    def series(self, metrics: Sequence[str]) -> Series:
        """The given metrics in the step range (absent metrics are left out), in the order asked."""
        lo, hi = self.step_range
        df = self.run.scalars(metrics=list(metrics), step_min=lo or None, step_max=hi)
        parts = [df.loc[df["metric"] == m] for m in metrics if (df["metric"] == m).any()]
        if not parts:
            return Series(plot=df.iloc[0:0], full=df.iloc[0:0])
        full = pd.concat(parts, ignore_index=True)
        plot = pd.concat([downsample(p, max_points=self.max_points, by=()) for p in parts], ignore_index=True)
        return Series(plot=plot, full=full)

    def table(self, name: str) -> pd.DataFrame:
        """A whole table (``histograms``, ``spectra``, ``temperature``), cut to the step range."""
        df = getattr(self.run, name)()
        lo, hi = self.step_range
        keep = df["step"] >= lo
        if hi is not None:
            keep &= df["step"] <= hi
        return df.loc[keep].reset_index(drop=True)

    def steps(self, name: str) -> list[int]:
        """Logged steps of a table inside the step range."""
        return self._in_range(sorted(int(s) for s in getattr(self.run, name)()["step"].unique()))

    def at_step(self, name: str, step: int) -> pd.DataFrame:
        """The rows of one step of a table."""
        return getattr(self.run, name)(step=int(step)).reset_index(drop=True)

    def snapshot_steps(self) -> list[int]:
        """Steps with an embedding snapshot inside the step range."""
        return self._in_range(self.run.snapshot_steps())

    def embedding_matrix(self, step: int) -> tuple[np.ndarray, pd.DataFrame]:
        """One snapshot as (N×d float32, info frame)."""
        return self.run.embedding_matrix(int(step))

    def value_at(self, metric: str, step: int) -> float | None:
        """The metric's last logged value at or before ``step`` (None if never logged by then)."""
        df = self.run.scalars(metrics=[metric], step_max=int(step))
        return float(df["value"].iloc[-1]) if len(df) else None

    def cached(self, name: str, build: Callable[[], T], *params: Hashable) -> T:
        """``build()`` once per (``name``, ``params``) on this instance."""
        key = (name, *params)
        if key not in self._memo:
            self._memo[key] = build()
        return self._memo[key]


# ---------------------------------------------------------------------------------------------------------
# What a page shows
@dataclass(frozen=True)
class Panel:
    """One chart: how to build its figure, the data behind it, and how to read it.

    Attributes:
        key: the chart's name on its page (widget key and cache name).
        build: makes the plotly figure (called once per cache key by the dashboard).
        data: the rows behind the chart for the CSV download, or a function producing them.
        caption: how to read the chart (what it shows; what healthy looks like, with the paper).
        file_name: CSV file name without extension.
        note: an extra caption (downsampling, a missing curve), or None.
        params: what else the figure depends on beyond the runs' versions and step range (a step).
    """

    key: str
    build: Callable[[], go.Figure]
    data: pd.DataFrame | Callable[[], pd.DataFrame]
    caption: tuple[str, str]
    file_name: str
    note: str | None = None
    params: tuple[Hashable, ...] = ()

    def frame(self) -> pd.DataFrame:
        """The data behind the chart."""
        return self.data() if callable(self.data) else self.data


def metric_panel(
    view: RunLike,
    metric: str,
    *,
    key: str,
    title: str,
    file_name: str,
    references: Sequence[tuple[float, str]] = (),
) -> Panel | str:
    """One scalar metric over training, captioned from its :class:`~cldiag.figures.MetricInfo`.

    Returns:
        The panel, or a message when the metric has no points in the step range.
    """
    series = view.series([metric])
    if series.full.empty:
        return f"No `{metric}` logged in the selected steps."
    info = metric_info(metric, dim=view.dim)
    dim = view.dim if references else None
    return Panel(
        key=key,
        build=lambda: F.fig_metric_series(series.plot, title=title, dim=dim, references=references),
        data=series.full,
        caption=info.caption or (info.label, info.source),
        file_name=f"{view.name}-{file_name}",
        note=series.note,
    )


def metrics_panel(
    view: RunLike,
    metrics: Sequence[str],
    *,
    key: str,
    title: str,
    file_name: str,
    y_title: str | None = None,
    caption_text: tuple[str, str] | None = None,
    references: Sequence[tuple[float, str]] = (),
) -> Panel | None:
    """Several scalar metrics over training on one axis, captioned from the first one's MetricInfo.

    Args:
        view: the run.
        metrics: the series to draw, in order; absent ones are skipped.
        key: the chart's name on its page.
        title: the chart title.
        file_name: CSV file name (without the run name and extension).
        y_title: the y axis title (default: none).
        caption_text: the caption; default the first metric's :class:`~cldiag.figures.MetricInfo` caption.
        references: horizontal reference lines ``(value, label)`` (chance levels).

    Returns:
        The panel, or None when none of ``metrics`` has points in the step range.
    """
    series = view.series(list(metrics))
    if series.full.empty:
        return None
    info = metric_info(metrics[0], dim=view.dim)
    return Panel(
        key=key,
        build=lambda: F.fig_metric_series(
            series.plot, list(metrics), title=title, y_title=y_title, references=references
        ),
        data=series.full,
        caption=caption_text or info.caption or (info.label, info.source),
        file_name=f"{view.name}-{file_name}",
        note=series.note,
    )


def _series_panel(
    view: RunLike,
    metrics: Sequence[str],
    key: str,
    file_name: str,
    build: Callable[[Series], go.Figure],
    chart: str | None = None,
) -> Panel | None:
    """A panel of scalar series captioned from :data:`CAPTIONS` (``chart``, default ``key``)."""
    series = view.series(metrics)
    if series.full.empty:
        return None
    return Panel(
        key=key,
        build=lambda: build(series),
        data=series.full,
        caption=caption(chart or key),
        file_name=f"{view.name}-{file_name}",
        note=series.note,
    )


# -- Overview ---------------------------------------------------------------------------------------------
MAX_CONFIG_KEYS = 100
"""Config keys a page shows per run (a 100k-key config once took the Overview 130 s and 2 GB)."""


def shown_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A run's config as pages show it: at most :data:`MAX_CONFIG_KEYS` keys, sorted by name when cut."""
    if len(config) <= MAX_CONFIG_KEYS:
        return dict(config)
    return {k: config[k] for k in sorted(config, key=str)[:MAX_CONFIG_KEYS]}


def run_summary(view: RunLike, name: str, status: str | None = None) -> dict[str, Any]:
    """One row of the Overview's runs table: status, last step, modalities, dim, config, key values.

    Args:
        view: the run.
        name: its display name.
        status: status for people (the dashboard marks stale runs); default the recorded status.
    """
    meta = view.run.meta
    return {
        "name": name,
        "status": view.run.status if status is None else status,
        "last_step": meta.get("last_step"),
        "modalities": view.run.modalities if view.run.two_modality else ["one modality"],
        "dim": meta.get("dim"),
        "created": meta.get("created"),
        "config": shown_config(view.run.config),
        "last": F.last_values(view.series(KEY_METRICS).full),
    }


def runs_series(views: Sequence[RunLike], metrics: Sequence[str], names: Sequence[str]) -> Series:
    """The metrics of several runs in one frame with a ``run`` column (``names[i]`` names ``views[i]``)."""
    if len(names) != len(views):
        raise ValueError(f"runs_series needs one name per run: {len(views)} runs, {len(names)} names")
    plots, fulls = [], []
    for view, name in zip(views, names, strict=True):
        series = view.series(metrics)
        plots.append(series.plot.assign(run=name))
        fulls.append(series.full.assign(run=name))
    return Series(plot=pd.concat(plots, ignore_index=True), full=pd.concat(fulls, ignore_index=True))


def key_metrics(views: Sequence[RunLike], names: Sequence[str]) -> Panel | str:
    """The Overview's key curves, one panel per metric, one colour per run."""
    series = runs_series(views, KEY_METRICS, names)
    if series.full.empty:
        return EMPTY["scalars"]
    dim = views[0].dim
    return Panel(
        key="key_metrics",
        build=lambda: F.fig_metric_grid(series.plot, KEY_METRICS, title="Key metrics over training", dim=dim),
        data=series.full,
        caption=caption("key_metrics"),
        file_name=f"{views[0].name}-key-metrics",
        note=series.note,
    )


# -- Scores -----------------------------------------------------------------------------------------------
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

    return _series_panel(view, SCORE_MEANS, "means", "score-means", build, chart="score_means")


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


# -- Geometry ---------------------------------------------------------------------------------------------
def uniformity_metric(metrics: Sequence[str]) -> str | None:
    """The uniformity series to plot: the joint one, else the first per-modality one, else None."""
    if schema.M_UNIFORMITY in metrics:
        return schema.M_UNIFORMITY
    per_modality = sorted(m for m in metrics if m.startswith(f"{schema.M_UNIFORMITY}/"))
    return per_modality[0] if per_modality else None


def alignment_uniformity(view: RunLike) -> Panel | None:
    """Alignment and every uniformity series of the run over training, one panel each."""
    metrics = view.metrics()
    uniform = uniformity_metric(metrics)
    shown = [m for m in [schema.M_ALIGNMENT, uniform] if m is not None]
    shown += sorted(m for m in metrics if m.startswith(f"{schema.M_UNIFORMITY}/") and m != uniform)

    def build(s: Series) -> go.Figure:
        return F.fig_metric_grid(s.plot, shown, title="Alignment and uniformity")

    return _series_panel(view, shown, "au_series", "alignment-uniformity", build) if shown else None


def align_uniform_pairs(views: Sequence[RunLike], names: Sequence[str]) -> pd.DataFrame:
    """(uniformity, alignment) at the steps logging both, for each run, with a ``run`` column."""
    parts = []
    for view, name in zip(views, names, strict=True):
        u = uniformity_metric(view.metrics())
        if u is None:
            continue
        full = view.series([schema.M_ALIGNMENT, u]).full
        parts.append(F.align_uniform_pairs(full, uniformity=u).assign(run=name))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def align_uniform_plane(views: Sequence[RunLike], names: Sequence[str]) -> Panel | str:
    """Each run's path through the alignment–uniformity plane."""
    pairs = align_uniform_pairs(views, names)
    if pairs.empty:
        return EMPTY["plane"]
    return Panel(
        key="plane",
        build=lambda: F.fig_align_uniform_plane(pairs),
        data=pairs,
        caption=caption("plane"),
        file_name=f"{views[0].name}-alignment-uniformity-plane",
    )


def tolerance(view: RunLike) -> Panel | str:
    """Same-class cosine over training (needs labels)."""
    if schema.M_TOLERANCE not in view.metrics():
        return EMPTY["tolerance"]
    return metric_panel(
        view,
        schema.M_TOLERANCE,
        key="tolerance",
        title="Tolerance (same-class cosine)",
        file_name="tolerance",
    )


def std_l2(view: RunLike) -> Panel | None:
    """Std of L2-normalized embeddings over training, with the isotropic 1/√d marked."""
    if schema.M_STD_L2 not in view.metrics():
        return None
    dim = view.dim
    refs = [(1 / math.sqrt(dim), f"1/√d = {1 / math.sqrt(dim):.3f} (isotropic)")] if dim else []
    panel = metric_panel(
        view,
        schema.M_STD_L2,
        key="std_l2",
        title="Std of L2-normalized embeddings",
        file_name="std-l2",
        references=refs,
    )
    return panel if isinstance(panel, Panel) else None


# -- Temperature ------------------------------------------------------------------------------------------
def run_tau(view: RunLike, step: int) -> float | None:
    """The τ the run trained with at ``step``: the logged value, else the configured one (else None)."""
    logged = view.value_at(schema.M_TEMPERATURE, step)
    if logged is not None and logged > 0:
        return logged
    config = view.run.config
    for key in CONFIG_KEYS:
        value = config.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return float(value)
    return None


def temperature_curves(view: RunLike, step: int) -> Panel:
    """What the loss would do at each τ on one step's batch, the run's own τ marked."""
    curves = view.at_step("temperature", step)
    tau = run_tau(view, step)
    note = None
    if not (curves["curve"] == schema.CURVE_SAME_CLASS_PENALTY).any():
        note = "No same-class-penalty curve: it needs labels (`labels=` in `Monitor.log`)."
    return Panel(
        key="curves",
        build=lambda: F.fig_temperature_curves(curves, run_tau=tau),
        data=curves,
        caption=caption("tau_curves"),
        file_name=f"{view.name}-temperature-step{step}",
        note=note,
        params=("tau_curves", step),
    )


def fixed_value(series: pd.DataFrame, metric: str) -> float | None:
    """The metric's value when it never changed over the series (a fixed τ), else None."""
    values = series.loc[series["metric"] == metric, "value"].to_numpy(np.float64)
    if values.size == 0 or not np.isfinite(values).all() or values.min() != values.max():
        return None
    return float(values[0])


def temperature_trend(view: RunLike) -> Panel | None:
    """τ, hardness entropy, effective negatives and DCL coupling over training.

    A τ that never changed gets no panel of its own (a flat line says less than the number): the title
    gives its value.
    """

    def build(s: Series) -> go.Figure:
        fixed = fixed_value(s.full, schema.M_TEMPERATURE)
        shown = [m for m in TEMPERATURE_TREND if (s.full["metric"] == m).any()]
        title = "Temperature over training"
        if fixed is not None and len(shown) > 1:
            shown.remove(schema.M_TEMPERATURE)
            title += f" (τ fixed at {fixed:.3g} throughout)"
        return F.fig_metric_grid(s.plot, shown, title=title)

    return _series_panel(view, TEMPERATURE_TREND, "trend", "temperature-trend", build, chart="tau_trend")


def tau_quantiles(view: RunLike) -> Panel | None:
    """Quantiles of a per-sample τ over training (iSogCLR); None for a run with one τ per step."""
    return metrics_panel(
        view,
        TAU_QUANTILE_METRICS,
        key="tau_quantiles",
        title="Per-sample temperature: quantiles over training",
        file_name="tau-quantiles",
        y_title="τ",
        caption_text=TAU_QUANTILES_CAPTION,
    )


# -- Modality gap -----------------------------------------------------------------------------------------
def modality_gap(view: RunLike) -> Panel | str:
    """The gap between the modalities' centroids and the matched-pair distance over training."""
    metrics = [schema.M_GAP, schema.M_MATCHED_DIST]

    def build(s: Series) -> go.Figure:
        title = "Modality gap and matched distance"
        return F.fig_metric_series(s.plot, metrics, title=title, y_title="distance on the unit sphere")

    return _series_panel(view, metrics, "gap", "gap", build) or EMPTY["gap"]


def cones(view: RunLike) -> Panel | None:
    """Each modality's cone (mean within-modality cosine) over training."""
    metrics = [f"{schema.M_CONE}/{m}" for m in view.run.modalities[:2]]

    def build(s: Series) -> go.Figure:
        return F.fig_metric_series(s.plot, metrics, title="Cone: mean cosine within each modality")

    return _series_panel(view, metrics, "cones", "cones", build)


def modality_gap_view(view: RunLike, step: int) -> Panel | str:
    """PCA of both modalities' snapshot embeddings at ``step``, centroids and matched pairs drawn."""
    matrix, info = view.embedding_matrix(step)
    if info["modality"].nunique() < 2:
        return f"The snapshot at step {step} holds only {sorted(info['modality'].unique())}; no 2-D gap view."

    def pca() -> projection.Projection:
        strata = info["modality"].to_numpy()
        return view.cached(
            "gap_pca",
            lambda: projection.compute_projection(matrix, method="pca", cap=4000, strata=strata),
            step,
        )

    def build() -> go.Figure:
        proj = pca()
        x_title, y_title = (f"PC {i + 1} ({share:.0%} of variance)" for i, share in enumerate(proj.explained))
        gap = view.value_at(schema.M_GAP, step)
        return F.fig_modality_gap_view(data(), gap=gap, x_title=x_title, y_title=y_title)

    def data() -> pd.DataFrame:
        return projection.to_points(pca(), info)

    return Panel(
        key="gap_view",
        build=build,
        data=data,
        caption=caption("gap_view"),
        file_name=f"{view.name}-gap-view-step{step}",
        params=("gap_view", step),
    )


# -- Spectrum ---------------------------------------------------------------------------------------------
def spectrum(view: RunLike, step: int) -> Panel:
    """The covariance eigenvalues at one step, largest first."""
    at_step = view.at_step("spectra", step)
    return Panel(
        key="spectrum",
        build=lambda: F.fig_spectrum(at_step),
        data=at_step,
        caption=caption("spectrum"),
        file_name=f"{view.name}-spectrum-step{step}",
        params=("spectrum", step),
    )


def spectrum_waterfalls(view: RunLike) -> list[tuple[str, Panel]]:
    """One waterfall (spectrum at every logged step) per modality, in the order logged."""
    spectra = view.table("spectra")
    panels = []
    for modality in dict.fromkeys(spectra["modality"]):
        part = spectra.loc[spectra["modality"] == modality]
        panel = Panel(
            key=f"waterfall_{modality}",
            build=lambda p=part, m=modality: F.fig_spectrum_waterfall(p, m),
            data=part,
            caption=caption("waterfall"),
            file_name=f"{view.name}-spectra-{modality}",
            params=("waterfall", modality),
        )
        panels.append((str(modality), panel))
    return panels


def effective_rank(view: RunLike) -> Panel | None:
    """RankMe effective rank (each series) beside uniformity over training."""
    ranks = [m for m in view.metrics() if m == schema.M_RANK or m.startswith(f"{schema.M_RANK}/")]
    dim = view.dim

    def build(s: Series) -> go.Figure:
        title = "Effective rank beside uniformity"
        return F.fig_dual_axis(s.plot, ranks, [schema.M_UNIFORMITY], title=title, dim=dim)

    return _series_panel(view, [*ranks, schema.M_UNIFORMITY], "rank", "effective-rank", build)


# -- Embeddings -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProjectionInput:
    """The snapshot rows to project and everything that fixes their projection.

    Attributes:
        x: the stacked snapshot embeddings (N×d).
        info: one row per embedding: ``step, sample_id, modality, label``.
        strata: ``modality/label`` per row, so the point cap samples every group.
        steps: the snapshot steps, ascending.
        run_path: the run's location (the disk cache lives beside it).
    """

    x: np.ndarray
    info: pd.DataFrame
    strata: np.ndarray
    steps: tuple[int, ...]
    run_path: str

    @property
    def finite_rows(self) -> int:
        """Rows without NaN or Inf (what UMAP and t-SNE can use)."""
        return int(np.isfinite(self.x).all(axis=1).sum())

    def pca(self, cap: int) -> projection.Projection:
        """PCA at once (no disk cache)."""
        return projection.compute_projection(self.x, method="pca", cap=cap, strata=self.strata)

    def spec(self, method: str, cap: int) -> dict[str, Any]:
        """The keyword arguments that fix a projection (for :func:`projection.find_cached` and compute)."""
        return {
            "method": method,
            "cap": cap,
            "strata": self.strata,
            "run_path": self.run_path,
            "step": list(self.steps),
        }

    def cache(self) -> projection.ProjectionCache:
        """The run's projection cache on disk."""
        return projection.ProjectionCache(projection.cache_dir_for(self.run_path))

    def cached(self, method: str, cap: int) -> tuple[Hashable, projection.Projection | None]:
        """The cache key of a projection and the cached result, None when it is not on disk yet."""
        return projection.find_cached(self.x, cache=self.cache(), **self.spec(method, cap))

    def compute(self, method: str, cap: int) -> projection.Projection:
        """Compute (and cache on disk) the projection; UMAP and t-SNE take seconds to minutes."""
        return projection.compute_projection(self.x, cache=self.cache(), **self.spec(method, cap))


def projection_input(view: RunLike, steps: Sequence[int]) -> ProjectionInput:
    """The chosen snapshots stacked into one matrix, with their stratification for the point cap.

    Raises:
        ValueError: no steps are given.
    """
    if not steps:
        raise ValueError("projection_input needs at least one snapshot step")
    chosen = tuple(sorted(int(s) for s in steps))
    parts = [view.embedding_matrix(s) for s in chosen]
    x = np.concatenate([m for m, _ in parts]) if len(parts) > 1 else parts[0][0]
    info = pd.concat([i for _, i in parts], ignore_index=True) if len(parts) > 1 else parts[0][1]
    strata = view.cached(
        "strata",
        lambda: (
            info["modality"].astype(str) + "/" + info["label"].astype("string").fillna("none")
        ).to_numpy(),
        chosen,
    )
    return ProjectionInput(x=x, info=info, strata=strata, steps=chosen, run_path=view.path)


def computing_message(label: str, points: int) -> str:
    """What the Embeddings page says while a UMAP or t-SNE of ``points`` rows runs in the background."""
    return (
        f"{label} of {points:,} points is computing in the background (the first UMAP in a new process also "
        "compiles numba: 20–60 s). PCA is shown meanwhile and the page switches when the result is ready; it "
        "is cached on disk, so the next visit is instant."
    )


def embedding_scatter(
    view: RunLike, proj: projection.Projection, info: pd.DataFrame, label: str, color_by: str
) -> Panel:
    """The 2-D map of a projection, coloured by ``label``, ``modality`` or ``step``.

    Args:
        view: the run.
        proj: the projection of the snapshot rows in ``info``.
        info: the snapshot rows (``step, sample_id, modality, label``).
        label: the method's name for people (``PCA``, ``UMAP``, ``t-SNE``).
        color_by: ``label``, ``modality`` or ``step``.
    """
    points = projection.to_points(proj, info)
    if proj.explained is not None:
        x_title, y_title = (f"PC {i + 1} ({s:.0%} of variance)" for i, s in enumerate(proj.explained))
    else:
        x_title, y_title = f"{label} 1", f"{label} 2"
    steps = sorted(int(s) for s in points["step"].unique())
    title = f"{label} of snapshot {', '.join(map(str, steps))} — {len(points):,} of {len(info):,} points"
    return Panel(
        key="embedding",
        build=lambda: F.fig_embedding_scatter(
            points, color_by=color_by, title=title, x_title=x_title, y_title=y_title
        ),
        data=points,
        caption=caption("embedding", method=label),
        file_name=f"{view.name}-{proj.method}-{'-'.join(map(str, steps))}",
        # With the steps, the point count fixes the stratified sample (the seed is fixed).
        params=("embedding_scatter", proj.method, color_by, tuple(steps), proj.coords.shape[0]),
    )


# -- Compare ----------------------------------------------------------------------------------------------
def available_metrics(views: Sequence[RunLike]) -> list[str]:
    """Every scalar metric logged by any of the runs, sorted."""
    return sorted({m for v in views for m in v.metrics()})


def metrics_compared(views: Sequence[RunLike], names: Sequence[str], metrics: Sequence[str]) -> Panel | str:
    """The chosen metrics of several runs, one panel per metric, steps aligned."""
    if not metrics:
        return "Pick at least one metric."
    series = runs_series(views, metrics, names)
    if series.full.empty:
        return "None of the chosen metrics are logged in the selected steps."
    dim = views[0].dim
    shown = list(metrics)
    return Panel(
        key="compare",
        build=lambda: F.fig_metric_grid(series.plot, shown, title="Runs compared, aligned by step", dim=dim),
        data=series.full,
        caption=caption("compare"),
        file_name="compare-" + "-".join(v.name for v in views),
        note=series.note,
        params=(tuple(metrics),),
    )


def config_diff(configs: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Configuration keys whose values differ between runs.

    Args:
        configs: each run's configuration by display name.

    Returns:
        One row per differing key: ``setting`` and one column per run holding the value as JSON (a key a
        run lacks shows as ``null``); empty when all agree.
    """
    keys = sorted({k for c in configs.values() for k in c})
    rows = []
    for key in keys:
        values = {run: json.dumps(c.get(key), sort_keys=True, default=str) for run, c in configs.items()}
        if len(set(values.values())) > 1:
            rows.append({"setting": key, **values})
    return pd.DataFrame(rows)


# -- Examples: neighbours and worst pairs (issue 16) -----------------------------------------------------
NEIGHBOUR_COLUMNS = [
    "rank",
    "sample_id",
    "modality",
    "label",
    "meta",
    "similarity",
    "positive",
    "same_label",
]
PAIR_COLUMNS = [
    "step",
    "anchor_id",
    "anchor_label",
    "anchor_meta",
    "rank",
    "role",
    "sample_id",
    "label",
    "meta",
    "similarity",
    "likely_false_negative",
]
"""One row per (anchor, candidate): the positive, then the hardest negatives, hardest first."""


def _as_view(run: RunLike | Run) -> RunLike:
    return RunData(run) if isinstance(run, Run) else run


@dataclass(frozen=True)
class SnapshotPairs:
    """The paired rows of a snapshot: row ``i`` of side ``a`` and of side ``b`` share one sample id.

    Attributes:
        step: the snapshot step.
        modalities: names of side ``a`` and side ``b``.
        a: ``(P, d)`` float32 rows of side ``a``.
        b: ``(P, d)`` float32 rows of side ``b``.
        info_a: side ``a``'s rows (``sample_id, modality, label, meta``), index 0..P-1.
        info_b: side ``b``'s rows, in the same order.
    """

    step: int
    modalities: tuple[str, str]
    a: np.ndarray
    b: np.ndarray
    info_a: pd.DataFrame
    info_b: pd.DataFrame


def snapshot_pairs(view: RunLike | Run, step: int) -> SnapshotPairs | str:
    """The paired rows of the snapshot at ``step``, or a message saying why it holds no pairs."""
    view = _as_view(view)
    matrix, info = view.embedding_matrix(int(step))
    present = list(dict.fromkeys(info["modality"]))
    named = [m for m in view.run.modalities if m in present]
    sides = named if len(named) == 2 else present[:2]
    if len(sides) < 2:
        return (
            f"The snapshot at step {step} holds one side only ({', '.join(map(str, present)) or 'no rows'}), "
            "so it has no pairs to rank. Snapshots the Monitor takes in `log(step, a, b)` keep both sides; "
            "with `log_embeddings`, log both sides with the same `ids`."
        )
    rows = []
    for side in sides:
        part = info.loc[info["modality"] == side].drop_duplicates("sample_id")
        rows.append(pd.Series(part.index, index=part["sample_id"].to_numpy()))
    common = rows[0].index.intersection(rows[1].index, sort=False)
    if len(common) < 2:
        return f"The snapshot at step {step} has {len(common)} sample(s) with both sides; ranking needs 2."
    ia, ib = rows[0].loc[common].to_numpy(), rows[1].loc[common].to_numpy()
    return SnapshotPairs(
        step=int(step),
        modalities=(str(sides[0]), str(sides[1])),
        a=matrix[ia],
        b=matrix[ib],
        info_a=info.loc[ia].reset_index(drop=True),
        info_b=info.loc[ib].reset_index(drop=True),
    )


def _same_label(x: pd.Series, y: Any) -> pd.Series:
    """Whether each label equals ``y`` (<NA> when either is missing)."""
    if pd.isna(y):
        return pd.Series(pd.NA, index=x.index, dtype="boolean")
    return (x.astype("Int64") == int(y)).astype("boolean")


def neighbours_table(
    view: RunLike | Run, step: int, sample_id: int, k: int = 10, modality: str | None = None
) -> pd.DataFrame:
    """The ``k`` nearest rows to one sample in the full-dimensional snapshot at ``step`` (cosine).

    Args:
        view: the run.
        step: a snapshot step.
        sample_id: the query sample.
        k: neighbours to list (fewer when the snapshot is smaller).
        modality: which side of the sample is the query (default: the first one stored).

    Returns:
        Columns :data:`NEIGHBOUR_COLUMNS`: ``rank`` (1 = nearest), the neighbour's ``sample_id``,
        ``modality``, ``label``, ``meta`` (plain text), cosine ``similarity``, ``positive`` (the other side
        of the query's own pair) and ``same_label`` (<NA> without labels).

    Raises:
        KeyError: no snapshot at ``step``, or the sample (on that side) is not in it.
        ValueError: the snapshot has fewer than 2 rows.
    """
    view = _as_view(view)
    matrix, info = view.embedding_matrix(int(step))
    hits = info.index[(info["sample_id"] == int(sample_id)).to_numpy()]
    if modality is not None:
        hits = hits[(info.loc[hits, "modality"] == modality).to_numpy()]
    if not len(hits):
        side = "" if modality is None else f" on side {modality!r}"
        raise KeyError(f"sample {sample_id}{side} is not in the snapshot at step {step}")
    if len(info) < 2:
        raise ValueError(f"the snapshot at step {step} has {len(info)} row; neighbours need 2")
    query = int(info.index.get_loc(hits[0]))
    z = torch.from_numpy(np.require(matrix, np.float32, "W"))  # the reader's arrays are read-only
    found = FN.nearest_neighbours(z, query, min(int(k), len(info) - 1))
    rows = info.iloc[found.indices[0].numpy()].reset_index(drop=True)
    me = info.iloc[query]
    return pd.DataFrame(
        {
            "rank": np.arange(1, len(rows) + 1),
            "sample_id": rows["sample_id"].to_numpy(),
            "modality": rows["modality"].to_numpy(),
            "label": rows["label"].astype("Int64").to_numpy(),
            "meta": rows["meta"].to_numpy(),
            "similarity": found.similarity[0].numpy().astype(np.float64),
            "positive": (
                (rows["sample_id"] == me["sample_id"]) & (rows["modality"] != me["modality"])
            ).to_numpy(),
            "same_label": _same_label(rows["label"], me["label"]).to_numpy(),
        },
        columns=NEIGHBOUR_COLUMNS,
    )


def worst_pairs_table(
    view: RunLike | Run,
    step: int,
    n: int = 20,
    label: int | None = None,
    k: int = 3,
    compare_step: int | None = None,
) -> pd.DataFrame | str:
    """The anchors whose positive ranks worst at ``step``, each with its positive and hardest negatives.

    Ranks are over every paired sample of the snapshot (anchors on side ``a``, candidates on side ``b``,
    :func:`cldiag.functional.pair_ranks`); the label filter picks which anchors are listed, not which
    candidates count. A hardest negative sharing the anchor's label is flagged ``likely_false_negative``.

    Args:
        view: the run.
        step: a snapshot step.
        n: anchors to list, worst first (ties: lower positive cosine first).
        label: list only anchors with this label (None: all).
        k: hardest negatives per anchor.
        compare_step: an earlier snapshot; adds ``rank_then``, the same anchor's rank there (<NA> when the
            sample is not in it, as with training batches; fixed probe sets keep their ids).

    Returns:
        Columns :data:`PAIR_COLUMNS` (+ ``rank_then``): per anchor a ``positive`` row and ``negative 1`` …
        ``negative k`` rows; or a message when the snapshot holds no pairs or no anchor has ``label``.
    """
    view = _as_view(view)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    pairs = snapshot_pairs(view, step)
    if isinstance(pairs, str):
        return pairs
    a, b = torch.from_numpy(pairs.a), torch.from_numpy(pairs.b)
    ranks = FN.pair_ranks(a, b).numpy()
    pos = FN.positive_similarity(a, b).numpy()
    hard = FN.hardest_negatives(a, b, min(int(k), len(a) - 1))
    ia, ib = pairs.info_a, pairs.info_b
    keep = np.ones(len(ia), bool) if label is None else (ia["label"] == label).fillna(False).to_numpy(bool)
    if not keep.any():
        return f"No anchor has label {label} in the snapshot at step {step}."
    chosen = np.flatnonzero(keep)
    order = np.lexsort((pos[chosen], -np.nan_to_num(ranks[chosen], nan=np.inf)))
    chosen = chosen[order][:n]
    then = _ranks_by_id(view, compare_step) if compare_step is not None else None
    rows = []
    for i in chosen:
        anchor = {
            "step": pairs.step,
            "anchor_id": int(ia.at[i, "sample_id"]),
            "anchor_label": ia.at[i, "label"],
            "anchor_meta": ia.at[i, "meta"],
            "rank": float(ranks[i]),
        }
        if then is not None:
            anchor["rank_then"] = then.get(anchor["anchor_id"], np.nan)
        rows.append({**anchor, "role": "positive", **_candidate(ib, i, pos[i], None)})
        for j, (col, sim) in enumerate(
            zip(hard.indices[i].tolist(), hard.similarity[i].tolist(), strict=True)
        ):
            same = _same_label(ib["label"].iloc[[col]], anchor["anchor_label"]).iloc[0]
            rows.append({**anchor, "role": f"negative {j + 1}", **_candidate(ib, col, sim, same)})
    columns = [*PAIR_COLUMNS, *(["rank_then"] if then is not None else [])]
    out = pd.DataFrame(rows, columns=columns)
    out["anchor_label"] = out["anchor_label"].astype("Int64")
    out["label"] = out["label"].astype("Int64")
    out["likely_false_negative"] = out["likely_false_negative"].astype("boolean")
    return out


def _candidate(info: pd.DataFrame, row: int, similarity: float, same_label: Any) -> dict[str, Any]:
    return {
        "sample_id": int(info.at[row, "sample_id"]),
        "label": info.at[row, "label"],
        "meta": info.at[row, "meta"],
        "similarity": float(similarity),
        "likely_false_negative": same_label,
    }


def _ranks_by_id(view: RunLike, step: int) -> dict[int, float]:
    pairs = snapshot_pairs(view, step)
    if isinstance(pairs, str):
        return {}
    ranks = FN.pair_ranks(torch.from_numpy(pairs.a), torch.from_numpy(pairs.b)).numpy()
    return dict(
        zip(pairs.info_a["sample_id"].astype(int).tolist(), ranks.astype(float).tolist(), strict=True)
    )


def pair_labels(view: RunLike | Run, step: int) -> list[int]:
    """The labels of the paired anchors at ``step`` (for the Pairs page's filter); empty without labels."""
    pairs = snapshot_pairs(_as_view(view), step)
    if isinstance(pairs, str):
        return []
    return sorted(int(v) for v in pairs.info_a["label"].dropna().unique())


def _plain(text: Any, width: int) -> str | None:
    """One line of plain text for a terminal (control characters become spaces, long text is cut)."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return None
    flat = "".join(c if c.isprintable() else " " for c in str(text))
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def format_worst_pairs(table: pd.DataFrame, *, width: int = 100) -> str:
    """A :func:`worst_pairs_table` as text for ``cldiag report --examples`` (metadata cut to ``width``)."""
    if table.empty:
        return "No pairs to show."
    lines = [f"Worst pairs at step {int(table['step'].iloc[0])} (positive rank among all paired samples):"]
    for n, (anchor, rows) in enumerate(table.groupby("anchor_id", sort=False), start=1):
        first = rows.iloc[0]
        label = "" if pd.isna(first["anchor_label"]) else f", label {int(first['anchor_label'])}"
        then = ""
        if "rank_then" in rows and not pd.isna(first["rank_then"]):
            then = f" (was {first['rank_then']:.0f})"
        lines.append(f"{n:>3}. sample {anchor}{label}: positive ranks {first['rank']:.0f}{then}")
        if (text := _plain(first["anchor_meta"], width)) is not None:
            lines.append(f"       anchor      {text}")
        for _, row in rows.iterrows():
            flag = "  [likely false negative]" if row["likely_false_negative"] is True else ""
            tag = "" if pd.isna(row["label"]) else f" (label {int(row['label'])})"
            lines.append(
                f"       {row['role']:<11} cos {row['similarity']:+.3f}  sample {row['sample_id']}{tag}{flag}"
            )
            if (text := _plain(row["meta"], width)) is not None:
                lines.append(f"                   {text}")
    return "\n".join(lines)


PAIRS_CAPTION = (
    "Anchors whose positive ranks worst among all paired samples of the snapshot (rank 1 = found first), "
    "each with its positive and its hardest negatives: metadata, cosine, and the rank at an earlier step.",
    "Read the texts: a positive that is a poor match for its anchor is noisy data; a hardest negative with "
    "the anchor's label (flagged) is likely a false negative (Chuang et al. 2020), one without is a real "
    "confusion. Ranks that grow worse over training point to collapse or a mismatch of rows.",
)
"""How to read the Pairs page's table (what it shows; what to look for, with the paper)."""


def selection_neighbours(
    view: RunLike, points: Sequence[Mapping[str, Any]], k: int = 10
) -> pd.DataFrame | str | None:
    """The neighbours of the point selected on the Embeddings map (None when nothing is selected).

    Args:
        view: the run.
        points: plotly's selected points; each carries ``customdata = [sample_id, label, modality, step, …]``
            (see :func:`cldiag.figures.fig_embedding_scatter`). The first one is the query.
        k: neighbours to list.

    Returns:
        :func:`neighbours_table` of the selected sample at its snapshot step, its ``attrs["caption"]`` naming
        the query; or a message when the point cannot be looked up.
    """
    if not points:
        return None
    data = points[0].get("customdata")
    if not isinstance(data, Sequence) or len(data) < 4:
        return "Click a point of the map (not a centroid or line) to list its nearest neighbours."
    sample_id, modality, step = int(data[0]), str(data[2]), int(data[3])
    try:
        table = neighbours_table(view, step, sample_id, k, modality)
    except KeyError:
        return f"Sample {sample_id} ({modality}) is not in the snapshot at step {step}."
    table.attrs["caption"] = (
        f"Nearest {len(table)} neighbours of sample {sample_id} ({modality}, step {step}) by cosine in the "
        f"full {view.dim or ''}-dimensional snapshot, not in the 2-D map. `positive`: the other side of its "
        "own pair; `same_label`: shares its label."
    )
    return table
