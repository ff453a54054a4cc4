"""Tables for the Overview page: last values of metrics and one summary row per run."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from cldiag.figures._common import require_columns

__all__ = ["last_values", "runs_table"]


def last_values(scalars: pd.DataFrame, metrics: Sequence[str] | None = None) -> dict[str, float]:
    """The value of each metric at its largest logged step (finite or not, as logged).

    Args:
        scalars: long scalars frame ``step, metric, value`` of one run.
        metrics: restrict to these metrics (absent ones are left out).

    Returns:
        Metric name → value.
    """
    require_columns(scalars, ("step", "metric", "value"), "scalars frame")
    df = scalars if metrics is None else scalars.loc[scalars["metric"].isin(list(metrics))]
    if df.empty:
        return {}
    last = df.sort_values("step", kind="stable").drop_duplicates("metric", keep="last")
    return {str(m): float(v) for m, v in zip(last["metric"], last["value"], strict=True)}


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str, np.integer, np.floating)):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def runs_table(summaries: Sequence[Mapping[str, Any]], metrics: Sequence[str] = ()) -> pd.DataFrame:
    """One row per run: identity, status, progress, configuration and the last value of key metrics.

    Args:
        summaries: per run a mapping with ``name``, ``status``, ``last_step``, ``modalities``, ``dim``,
            ``created`` and ``config`` (dict; flattened into ``config.<key>`` columns, nested values as
            JSON) and ``last`` (metric → value).
        metrics: the metric columns to show, in order (a run without one gets NaN).

    Returns:
        The table, runs in the order given.
    """
    rows = []
    for s in summaries:
        if "name" not in s:
            raise ValueError(f"each summary needs a 'name'; got keys {sorted(s)}")
        row: dict[str, Any] = {
            "run": s["name"],
            "status": s.get("status", "unknown"),
            "last step": s.get("last_step"),
            "modalities": " / ".join(map(str, s.get("modalities") or [])),
            "dim": s.get("dim"),
            "created": s.get("created"),
        }
        last = s.get("last") or {}
        for metric in metrics:
            row[metric] = last.get(metric, np.nan)
        for key, value in sorted((s.get("config") or {}).items()):
            row[f"config.{key}"] = _cell(value)
        rows.append(row)
    return pd.DataFrame(rows)
