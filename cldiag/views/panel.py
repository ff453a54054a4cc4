"""What a page shows: a :class:`Panel`, and the helpers that build one from a run's scalar series.

A panel holds the figure's builder, the data behind it (for the CSV) and its two-line caption.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import pandas as pd
import plotly.graph_objects as go

from cldiag import figures as F
from cldiag.figures.captions import caption
from cldiag.figures.metrics import metric_info
from cldiag.views.data import RunLike, Series


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


def series_panel(
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
