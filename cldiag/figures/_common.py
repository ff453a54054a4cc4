"""Helpers shared by the figure builders: input checks, layout, colours, bucketing of long axes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from cldiag.figures.metrics import MetricInfo

# Colour-blind-safe, and distinct enough for a handful of runs or modalities.
PALETTE: tuple[str, ...] = tuple(qualitative.Safe) + tuple(qualitative.Plotly)
KIND_COLORS: dict[str, str] = {"pos": "#1b9e77", "neg": "#d95f02", "hard_neg": "#7570b3"}
KIND_LABELS: dict[str, str] = {"pos": "positive", "neg": "negative", "hard_neg": "hardest negative"}


def require_columns(df: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    """Raise ``TypeError``/``ValueError`` unless ``df`` is a DataFrame holding ``columns``."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{what} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what} lacks columns {missing}; it has {list(df.columns)}")


def require_rows(df: pd.DataFrame, what: str) -> None:
    """Raise ``ValueError`` for an empty frame (pages say "no data" before calling a builder)."""
    if df.empty:
        raise ValueError(f"{what} is empty: nothing to plot")


def color_map(names: Sequence[Any]) -> dict[Any, str]:
    """A stable colour per name, in the order given (so a run keeps its colour across charts)."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def unique_in_order(values: Iterable[Any]) -> list[Any]:
    """Distinct values in first-seen order."""
    return list(dict.fromkeys(values))


TITLE_TOP_PX = 44
"""Distance of a chart title's middle line from the top of the figure: below plotly's toolbar (the modebar,
about 30 px high in the top-right corner), so a long title never runs under it."""
TOP_MARGIN_PX = 72
"""Top margin of a single-panel chart: room for the toolbar and the title under it."""


def finish(
    fig: go.Figure,
    *,
    title: str,
    x_title: str | None = None,
    y_title: str | None = None,
    height: int = 380,
    top: int = TOP_MARGIN_PX,
) -> go.Figure:
    """Apply the shared title, axis titles, legend and margins, and return the figure.

    The title sits on its own line under the toolbar (see :data:`TITLE_TOP_PX`); ``top`` is the margin above
    the plot area (larger for charts with panel titles or a legend above the plot).
    """
    fig.update_layout(
        title={
            "text": title,
            "x": 0.0,
            "xanchor": "left",
            "yref": "container",
            "y": 1.0 - TITLE_TOP_PX / height,
            "yanchor": "middle",
        },
        height=height,
        margin={"l": 60, "r": 20, "t": max(top, TOP_MARGIN_PX), "b": 50},
        hovermode="closest",
    )
    if x_title is not None:
        fig.update_xaxes(title_text=x_title)
    if y_title is not None:
        fig.update_yaxes(title_text=y_title)
    return fig


def legend_on_top(fig: go.Figure, height: int) -> None:
    """One horizontal legend under the title, above every panel (a grid's legend belongs to all panels)."""
    fig.update_layout(
        legend={
            "orientation": "h",
            "x": 0.0,
            "xanchor": "left",
            "yref": "container",
            "y": 1.0 - (TITLE_TOP_PX + 28) / height,
            "yanchor": "middle",
        },
    )


def bound_axis(info: MetricInfo) -> dict[str, Any]:
    """Axis settings that keep autorange inside the metric's natural bounds (never beyond them)."""
    options: dict[str, float] = {}
    if info.lower is not None:
        options["clipmin"] = info.lower
    if info.upper is not None:
        options["clipmax"] = info.upper
    return (
        {"title_text": info.axis_title, "autorangeoptions": options}
        if options
        else {
            "title_text": info.axis_title,
        }
    )


def bucket_index(n: int, max_buckets: int) -> np.ndarray:
    """Assign ``n`` consecutive positions to at most ``max_buckets`` contiguous, near-equal buckets."""
    if max_buckets < 1:
        raise ValueError(f"max_buckets must be >= 1, got {max_buckets}")
    if n <= max_buckets:
        return np.arange(n, dtype=np.int64)
    return (np.arange(n, dtype=np.int64) * max_buckets // n).astype(np.int64)


def bucket_reduce(
    values: np.ndarray,
    rows: np.ndarray,
    max_rows: int,
    how: str,
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Reduce a (rows × columns) array to at most ``max_rows`` rows by summing or averaging buckets.

    Args:
        values: 2-D array, one row per logged step.
        rows: the step of each row (ascending).
        max_rows: the most rows to keep.
        how: ``"sum"`` (histogram counts) or ``"mean"`` (log-eigenvalues).

    Returns:
        ``(reduced values, step of each reduced row — the bucket's last step, whether rows were merged)``.
    """
    if values.ndim != 2 or values.shape[0] != rows.shape[0]:
        raise ValueError(
            f"values must be 2-D with one row per step; got {values.shape} for {rows.shape} steps",
        )
    if how not in ("sum", "mean"):
        raise ValueError(f"how must be 'sum' or 'mean', got {how!r}")
    bucket = bucket_index(values.shape[0], max_rows)
    n_buckets = int(bucket[-1]) + 1 if bucket.size else 0
    if n_buckets == values.shape[0]:
        return values, rows, False
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    sums = np.add.reduceat(values.astype(np.float64, copy=False), starts, axis=0)
    if how == "mean":
        sums /= np.diff(np.r_[starts, values.shape[0]])[:, None]
    last = np.r_[starts[1:] - 1, values.shape[0] - 1]
    return sums, rows[last], True
