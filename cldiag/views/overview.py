"""The Overview page's views: run summaries, key metrics across runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from cldiag import figures as F
from cldiag import schema
from cldiag.figures.captions import caption
from cldiag.views.base import EMPTY
from cldiag.views.data import RunLike, Series
from cldiag.views.panel import Panel

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
