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


def series_panel(
    view: RunLike,
    metrics: Sequence[str],
    key: str,
    file_name: str,
    build: Callable[[Series], go.Figure],
    chart: str | None = None,
    *,
    caption_text: tuple[str, str] | None = None,
) -> Panel | None:
    """A panel of scalar series: ``build`` draws them, the CSV holds every point.

    Args:
        view: the run.
        metrics: the series to draw.
        key: the chart's name on its page.
        file_name: CSV file name (without the run name and extension).
        build: makes the figure from the (downsampled) series.
        chart: the :data:`~cldiag.figures.captions.CAPTIONS` entry of the caption (default ``key``).
        caption_text: the caption itself, instead of a ``CAPTIONS`` entry.

    Returns:
        The panel, or None when none of ``metrics`` has points in the step range.
    """
    series = view.series(list(metrics))
    if series.full.empty:
        return None
    return Panel(
        key=key,
        build=lambda: build(series),
        data=series.full,
        caption=caption_text or caption(chart or key),
        file_name=f"{view.name}-{file_name}",
        note=series.note,
    )


def _info_caption(view: RunLike, metric: str) -> tuple[str, str]:
    info = metric_info(metric, dim=view.dim)
    return info.caption or (info.label, info.source)


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
    dim = view.dim if references else None

    def build(series: Series) -> go.Figure:
        return F.fig_metric_series(series.plot, title=title, dim=dim, references=references)

    panel = series_panel(view, [metric], key, file_name, build, caption_text=_info_caption(view, metric))
    return panel or f"No `{metric}` logged in the selected steps."


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

    def build(series: Series) -> go.Figure:
        return F.fig_metric_series(
            series.plot, list(metrics), title=title, y_title=y_title, references=references
        )

    text = caption_text or _info_caption(view, metrics[0])
    return series_panel(view, metrics, key, file_name, build, caption_text=text)
