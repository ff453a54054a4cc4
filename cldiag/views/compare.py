"""The Compare page's views: metrics overlaid across runs, and the configuration differences."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from cldiag import figures as F
from cldiag import schema
from cldiag.figures.captions import caption
from cldiag.views.data import RunLike
from cldiag.views.overview import runs_series
from cldiag.views.panel import Panel

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
