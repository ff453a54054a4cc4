"""The Temperature page's views: the run's τ, temperature curves and their trend, per-sample τ (by class)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from cldiag import figures as F
from cldiag import schema
from cldiag.figures import temperature as FT
from cldiag.figures.captions import caption
from cldiag.views.data import RunLike, Series
from cldiag.views.panel import Panel, metrics_panel, series_panel

TEMPERATURE_TREND = [schema.M_TEMPERATURE, schema.M_ENTROPY, schema.M_EFF_NEG, schema.M_COUPLING]
TAU_QUANTILE_METRICS = list(schema.TAU_QUANTILES)
TAU_QUANTILES_CAPTION = (
    "Quantiles (10 %, 50 %, 90 %) of the batch's per-sample τ at pairwise steps, when the loss learns one "
    "τ per sample.",
    "A band that stays at zero width means every sample kept the same τ; iSogCLR (Qiu et al., 2023) "
    "learns individual temperatures, so the band should open as samples differ.",
)
TAU_CLASS_CAPTION = (
    "Mean per-sample τ of each class's rows at pairwise steps (at most "
    f"{schema.MAX_TAU_CLASSES} classes per step, the batch's most frequent); a class's share of all rows is "
    "in the legend or row label, its rows at each point in the hover.",
    "iSogCLR (Qiu et al., 2023) finds that samples of frequent semantics learn larger τ and rare ones "
    "smaller; the classes' curves should fan out in that order. A class seen in few rows is a noisy mean.",
)
TAU_FREQUENCY_CAPTION = (
    "One point per class: its share of the rows of the logged batches (log scale) against its mean τ over "
    "the latest quarter of the logged steps shown (row-weighted); Spearman ρ is their rank correlation.",
    "iSogCLR's claim is a rising cloud (ρ > 0): frequent classes at larger τ. ρ near 0 means τ does not "
    "follow class frequency; with few classes ρ is coarse.",
)
TAU_CLASS_LINES = 8
"""Up to this many classes the per-class τ chart draws a line each; more get a heatmap class × step."""
CONFIG_KEYS = ("temperature", "tau", "temp", "t")
"""Configuration keys read as the run's τ when no temperature was logged."""


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

    return series_panel(view, TEMPERATURE_TREND, "trend", "temperature-trend", build, chart="tau_trend")


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


def _class_of(metric: str, prefix: str) -> int | None:
    """The label of a per-class τ metric name (``tau_class/3`` → 3), None for another name."""
    if not metric.startswith(prefix):
        return None
    try:
        return int(metric[len(prefix) :])
    except ValueError:  # a user metric that happens to share the prefix
        return None


def tau_class_frame(view: RunLike) -> pd.DataFrame:
    """The per-class τ of a per-sample τ with labels in the step range: ``step, label, tau, count``.

    Read from the scalars ``tau_class/<label>`` (mean τ) and ``tau_class_count/<label>`` (rows) that the
    Monitor logs at pairwise steps; a mean without its count gets count 1.
    """
    means, counts = {}, {}
    for metric in view.metrics():
        if (label := _class_of(metric, schema.TAU_CLASS_PREFIX)) is not None:
            means[metric] = label
        elif (label := _class_of(metric, schema.TAU_CLASS_COUNT_PREFIX)) is not None:
            counts[metric] = label
    columns = list(FT.TAU_CLASS_COLUMNS)
    if not means:
        return pd.DataFrame(
            {c: pd.Series(dtype=np.int64 if c in ("step", "label") else np.float64) for c in columns}
        )
    full = view.series([*means, *counts]).full
    label = full["metric"].map({**means, **counts})
    is_mean = full["metric"].isin(list(means))
    tau = pd.DataFrame({"step": full["step"], "label": label, "tau": full["value"]})[is_mean]
    rows = pd.DataFrame({"step": full["step"], "label": label, "count": full["value"]})[~is_mean]
    frame = tau.merge(rows, on=["step", "label"], how="left")
    frame["count"] = frame["count"].fillna(1.0)
    frame = frame.astype({"step": np.int64, "label": np.int64, "tau": np.float64, "count": np.float64})
    return frame.sort_values(["step", "label"], kind="stable").reset_index(drop=True)[columns]


def tau_by_class(view: RunLike) -> Panel | None:
    """Each class's mean per-sample τ over training (lines, or a heatmap for many classes).

    Returns:
        The panel, or None when the run logged no per-class τ (no per-sample τ, or no labels).
    """
    frame = view.cached("tau_class_frame", lambda: tau_class_frame(view), view.step_range)
    if frame.empty:
        return None
    return Panel(
        key="tau_by_class",
        build=lambda: FT.fig_tau_by_class(frame, max_lines=TAU_CLASS_LINES),
        data=frame,
        caption=TAU_CLASS_CAPTION,
        file_name=f"{view.name}-tau-by-class",
    )


def tau_vs_class_frequency(view: RunLike) -> Panel | None:
    """Each class's mean τ over the latest quarter of the logged steps against its share of the rows.

    Returns:
        The panel, or None without per-class τ or with a single class.
    """
    frame = view.cached("tau_class_frame", lambda: tau_class_frame(view), view.step_range)
    if frame.empty or frame["label"].nunique() < 2:
        return None
    steps = np.unique(frame["step"].to_numpy(np.int64))
    since = int(steps[-max(1, steps.size // 4)])
    return Panel(
        key="tau_vs_class_frequency",
        build=lambda: FT.fig_tau_vs_class_frequency(frame, since_step=since),
        data=lambda: FT.tau_against_share(frame, since_step=since),
        caption=TAU_FREQUENCY_CAPTION,
        file_name=f"{view.name}-tau-vs-class-frequency",
        params=(since,),
    )
