"""Tables for the Overview page: last values of metrics and one summary row per run."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from cldiag.figures._common import require_columns
from cldiag.figures.metrics import metric_info

__all__ = ["column_help", "configs_table", "last_values", "round_significant", "runs_table"]


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


def round_significant(value: float, digits: int = 3) -> float:
    """``value`` rounded to ``digits`` significant digits (22.0007 → 22.0, 5.123e-05 → 5.12e-05).

    NaN and infinities are returned as they are.

    Raises:
        ValueError: ``digits`` is not positive.
    """
    if digits < 1:
        raise ValueError(f"digits must be >= 1, got {digits}")
    value = float(value)
    if not math.isfinite(value) or value == 0.0:
        return value
    return float(f"{value:.{digits}g}")


def runs_table(
    summaries: Sequence[Mapping[str, Any]], metrics: Sequence[str] = (), *, digits: int = 3
) -> pd.DataFrame:
    """One row per run: identity, status, progress and the last value of key metrics, for people.

    Headers are words (``last step``; a metric's short name with its better-direction arrow, e.g.
    ``loss ↓``) and values are rounded to ``digits`` significant digits, so the table fits a laptop
    screen; the dimension, creation time and configuration are in :func:`configs_table`.

    Args:
        summaries: per run a mapping with ``name``, ``status``, ``last_step``, ``modalities`` and ``last``
            (metric → value).
        metrics: the metric columns to show, in order (a run without one gets NaN).
        digits: significant digits of the metric values.

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
        }
        last = s.get("last") or {}
        for metric in metrics:
            value = last.get(metric)
            shown = np.nan if value is None else round_significant(value, digits)
            row[metric_info(metric).column_title] = shown
        rows.append(row)
    return pd.DataFrame(rows)


def column_help(metrics: Sequence[str]) -> dict[str, str]:
    """Tooltip text for the metric columns of :func:`runs_table`: header → the metric's full axis title."""
    return {metric_info(m).column_title: metric_info(m).axis_title for m in metrics}


def configs_table(summaries: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per run: when it was created, its embedding dimension and its configuration (nested as JSON).

    Args:
        summaries: per run a mapping with ``name``, ``created``, ``dim`` and ``config`` (dict).

    Returns:
        Columns ``run``, ``created``, ``dim`` and the configuration keys, sorted; a key a run lacks is empty.
    """
    rows = []
    for s in summaries:
        if "name" not in s:
            raise ValueError(f"each summary needs a 'name'; got keys {sorted(s)}")
        row: dict[str, Any] = {"run": s["name"], "created": s.get("created"), "dim": s.get("dim")}
        for key, value in sorted((s.get("config") or {}).items()):
            row[str(key)] = _cell(value)
        rows.append(row)
    return pd.DataFrame(rows)
