"""A run as views see it: :class:`RunData`, plotted :class:`Series`, and table access.

The dashboard's cached ``cldiag.ui.RunView`` follows the same :class:`RunLike` protocol and shares the
table access functions.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import numpy as np
import pandas as pd

from cldiag.reader import Run, downsample
from cldiag.views.base import MAX_POINTS

T = TypeVar("T")


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
    scalars: pd.DataFrame,
    *,
    limit: int | None = None,
    first: Callable[[str], bool] | None = None,
    last: Callable[[str], bool] | None = None,
) -> tuple[dict[str, pd.DataFrame], int]:
    """Each metric's rows of a long ``scalars`` frame, in step order, by metric name.

    One factorize and a stable argsort split a million rows several times faster than ``groupby`` on
    strings, and keep each metric's rows in their original (step) order.

    Args:
        scalars: ``step, metric, value`` rows, sorted by step.
        limit: keep at most this many metric names (None: all).
        first: names for which this is true are kept before the others when ``limit`` cuts (e.g. cldiag's
            own metrics before a flood of user metrics); ties by name.
        last: names for which this is true are kept after all others (e.g. one series per class, which a
            run with many classes has by the thousand).

    Returns:
        ``(metric name → its rows with a fresh index, sorted by name; how many names the frame holds)``.

    Raises:
        ValueError: ``limit`` is negative.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    codes, names = pd.factorize(scalars["metric"])

    def order_key(k: int) -> tuple[bool, bool, str]:
        name = str(names[k])
        return (first is not None and not first(name), last is not None and last(name), name)

    kept = sorted(range(len(names)), key=order_key)
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
