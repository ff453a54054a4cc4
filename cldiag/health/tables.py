"""What the health rules read: a run's tables as DataFrames, checked once for hostile numbers.

:class:`RunTables` holds the tables and ``meta.json`` of one run — loaded from a
:class:`~cldiag.reader.Run` by :meth:`RunTables.from_run`, or built by hand in tests. :class:`Context` is
what every rule receives: the tables with rows of implausible steps (negative, beyond 2^53) and non-finite
values taken out and *counted*, each scalar metric as a step-sorted :class:`Series`, and the time to judge
liveness against. The counts let the ``nonfinite`` and ``storage`` rules report what was taken out, so a
NaN written into a part file by hand is never silently read as "no NaN".
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cldiag import schema
from cldiag.health.thresholds import MAX_PLAUSIBLE_STEP, MIN_WINDOW_POINTS, WINDOW_FRACTION
from cldiag.reader import Run

_TABLES = ("scalars", "histograms", "spectra", "temperature")
_VALUE_COLUMNS: dict[str, tuple[str, ...]] = {
    "scalars": ("value",),
    "histograms": ("bin_left", "bin_right"),
    "spectra": ("eigenvalue",),
    "temperature": ("tau", "value"),
}


def empty_table(name: str) -> pd.DataFrame:
    """An empty DataFrame with the columns and dtypes of table ``name`` (see :mod:`cldiag.schema`)."""
    return schema.SCHEMAS[name].empty_table().to_pandas()


@dataclass
class RunTables:
    """A run's tables and metadata, as the rules read them.

    Attributes:
        scalars: ``step, metric, value`` (see ``docs/ARCHITECTURE.md`` for every table's columns).
        spectra: ``step, modality, index, eigenvalue``.
        temperature: ``step, tau, curve, value``.
        histograms: ``step, kind, bin_left, bin_right, count`` (only scanned for non-finite values).
        meta: the run's ``meta.json`` (``status``, ``heartbeat``, ``dim``, ``modalities`` …).
        problems: the reader's notes on part files it skipped.
        last_write: epoch seconds of the newest part file (``None``: unknown or no parts).
        name: the run's name, for messages.
    """

    scalars: pd.DataFrame = field(default_factory=lambda: empty_table("scalars"))
    spectra: pd.DataFrame = field(default_factory=lambda: empty_table("spectra"))
    temperature: pd.DataFrame = field(default_factory=lambda: empty_table("temperature"))
    histograms: pd.DataFrame = field(default_factory=lambda: empty_table("histograms"))
    meta: dict[str, Any] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    last_write: float | None = None
    name: str = ""

    @classmethod
    def from_run(cls, run: Run) -> RunTables:
        """Read every table of ``run`` once (the reader's problems are collected after the reads)."""
        tables = {name: getattr(run, name)() for name in _TABLES}
        running = run.status == schema.STATUS_RUNNING
        return cls(
            **tables,
            meta=dict(run.meta),
            problems=tuple(run.problems),
            last_write=run.last_write_time() if running else None,
            name=run.name,
        )

    @property
    def status(self) -> str:
        """``running``, ``finished`` or ``failed`` as recorded in meta.json (``unknown`` if absent)."""
        return str(self.meta.get("status", "unknown"))

    @property
    def modalities(self) -> list[str]:
        """The names of the two sides of each pair."""
        names = self.meta.get("modalities")
        return [str(m) for m in names] if isinstance(names, list | tuple) and names else ["view1", "view2"]

    @property
    def two_modality(self) -> bool:
        """Whether the run logs two modalities."""
        return bool(self.meta.get("two_modality", False))


def plausible_steps(steps: np.ndarray) -> np.ndarray:
    """Mask of steps a training loop can have written: ``0 ≤ step ≤ 2^53``."""
    return (steps >= 0) & (steps <= MAX_PLAUSIBLE_STEP)


@dataclass(frozen=True)
class Anomalies:
    """Rows taken out of one table before the rules read it.

    Attributes:
        table: the table's name.
        nonfinite: rows holding a NaN/Inf value (plausible steps only).
        nonfinite_first_step: the first such step.
        nonfinite_metrics: the metrics (scalars) or columns (other tables) where they sit.
        bad_steps: rows whose step is negative or beyond 2^53.
        bad_step_examples: up to three of those steps.
    """

    table: str
    nonfinite: int = 0
    nonfinite_first_step: int | None = None
    nonfinite_metrics: tuple[str, ...] = ()
    bad_steps: int = 0
    bad_step_examples: tuple[int, ...] = ()


def _clean(name: str, df: pd.DataFrame) -> tuple[pd.DataFrame, Anomalies]:
    """``df`` without implausible steps or non-finite values, and what was taken out."""
    if df.empty:
        return df, Anomalies(name)
    steps = df["step"].to_numpy(np.int64)
    plausible = plausible_steps(steps)
    bad_examples = tuple(int(s) for s in np.unique(steps[~plausible])[:3])
    columns = [c for c in _VALUE_COLUMNS[name] if c in df.columns]
    values = df[columns].to_numpy(np.float64)
    finite = np.isfinite(values).all(axis=1)
    hit = plausible & ~finite
    where: tuple[str, ...] = ()
    if hit.any():
        if name == "scalars":
            where = tuple(dict.fromkeys(df["metric"].to_numpy()[hit].astype(str)))
        else:
            where = tuple(c for i, c in enumerate(columns) if (~np.isfinite(values[hit, i])).any())
    anomalies = Anomalies(
        name,
        nonfinite=int(hit.sum()),
        nonfinite_first_step=int(steps[hit].min()) if hit.any() else None,
        nonfinite_metrics=where,
        bad_steps=int((~plausible).sum()),
        bad_step_examples=bad_examples,
    )
    keep = plausible & finite
    return (df if keep.all() else df[keep]), anomalies


@dataclass(frozen=True)
class Window:
    """Median of consecutive logged points of one metric."""

    median: float
    first_step: int
    last_step: int

    def evidence(self) -> dict[str, Any]:
        """``value`` (the median) and the ``window`` of steps it was taken over."""
        return self.evidence_as("value", "window")

    def evidence_as(self, name: str, window_key: str | None = None) -> dict[str, Any]:
        """The median under ``name`` and its steps under ``window_key`` (default ``<name>_window``).

        How a trend's reference window (the peak, the best, the first …) joins a verdict's evidence.
        """
        return {
            name: round_sig(self.median),
            window_key or f"{name}_window": [self.first_step, self.last_step],
        }

    @property
    def steps_text(self) -> str:
        """``steps a–b``, for a reason that names the window."""
        return f"steps {self.first_step}–{self.last_step}"


@dataclass(frozen=True)
class Series:
    """One scalar metric: finite values sorted by step."""

    metric: str
    steps: np.ndarray
    values: np.ndarray

    @property
    def size(self) -> int:
        """Number of logged points."""
        return len(self.values)

    @property
    def width(self) -> int:
        """Points per window: 20 % of the series, at least 3 (or all of a shorter series)."""
        return window_width(self.size)

    @property
    def short(self) -> bool:
        """Too few points for the recent window to be separate from the first one."""
        return self.size < 2 * self.width

    def _window(self, start: int, stop: int) -> Window:
        return Window(
            float(np.median(self.values[start:stop])),
            int(self.steps[start]),
            int(self.steps[stop - 1]),
        )

    def tail(self) -> Window:
        """The recent window."""
        return self._window(self.size - self.width, self.size)

    def head(self) -> Window:
        """The first window."""
        return self._window(0, self.width)

    def chunks(self) -> list[Window]:
        """Consecutive full windows, counted back from the end, in step order (the last is :meth:`tail`)."""
        w = self.width
        return [self._window(stop - w, stop) for stop in range(self.size, w - 1, -w)][::-1]

    def lowest(self) -> Window:
        """The full window (of :meth:`chunks`) with the lowest median."""
        return min(self.chunks(), key=lambda w: w.median)

    def highest(self) -> Window:
        """The full window (of :meth:`chunks`) with the highest median."""
        return max(self.chunks(), key=lambda w: w.median)

    def median_between(self, first_step: int, last_step: int) -> float | None:
        """Median of the points logged in ``[first_step, last_step]`` (None if there are none)."""
        inside = (self.steps >= first_step) & (self.steps <= last_step)
        return float(np.median(self.values[inside])) if inside.any() else None

    def at(self, step: int) -> float | None:
        """The value logged at ``step``, if any."""
        i = int(np.searchsorted(self.steps, step))
        return float(self.values[i]) if i < self.size and self.steps[i] == step else None

    def scaled(self, factor: float) -> Series:
        """The same series with every value multiplied by ``factor``."""
        return Series(self.metric, self.steps, self.values * factor)


def window_width(size: int) -> int:
    """Points per window for a series of ``size`` points: 20 %, at least 3 (or all of a shorter one)."""
    return min(size, max(MIN_WINDOW_POINTS, math.ceil(WINDOW_FRACTION * size)))


def round_sig(x: float, digits: int = 4) -> float:
    """Round to ``digits`` significant digits so evidence reads well and stays exact through JSON."""
    if x == 0 or not math.isfinite(x):
        return float(x)
    return float(f"{x:.{digits}g}")


def _series(scalars: pd.DataFrame) -> dict[str, Series]:
    series: dict[str, Series] = {}
    for metric, group in scalars.groupby("metric", sort=False):
        steps = group["step"].to_numpy(np.int64)
        order = np.argsort(steps, kind="stable")
        series[str(metric)] = Series(str(metric), steps[order], group["value"].to_numpy(np.float64)[order])
    return series


def _utc(now: _dt.datetime | None) -> _dt.datetime:
    if now is None:
        return _dt.datetime.now(_dt.timezone.utc)
    return now.replace(tzinfo=_dt.timezone.utc) if now.tzinfo is None else now


@dataclass
class Context:
    """Everything the rules read, cleaned once per evaluation.

    Attributes:
        tables: the run's tables as given (``tables.meta``, ``tables.problems`` …).
        now: the time liveness is judged against (aware, UTC if given naive).
        series: each scalar metric's plausible, finite points, sorted by step.
        spectra: the spectra without implausible steps or non-finite eigenvalues.
        temperature: the temperature curves, cleaned the same way.
        dim: the embedding dimension (meta.json, else the spectrum's length; ``None`` if unknown).
        anomalies: what was taken out of each table.
    """

    tables: RunTables
    now: _dt.datetime
    series: dict[str, Series]
    spectra: pd.DataFrame
    temperature: pd.DataFrame
    dim: int | None
    anomalies: tuple[Anomalies, ...]

    @classmethod
    def load(cls, tables: RunTables, now: _dt.datetime | None = None) -> Context:
        """Clean ``tables`` and index the scalars by metric."""
        cleaned = {name: _clean(name, getattr(tables, name)) for name in _TABLES}
        spectra = cleaned["spectra"][0]
        dim = tables.meta.get("dim")
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
            dim = int(spectra["index"].max()) + 1 if len(spectra) else None
        return cls(
            tables=tables,
            now=_utc(now),
            series=_series(cleaned["scalars"][0]),
            spectra=spectra,
            temperature=cleaned["temperature"][0],
            dim=dim,
            anomalies=tuple(a for _, a in cleaned.values()),
        )

    def get(self, metric: str) -> Series | None:
        """The series of ``metric``, or None when it has no finite point."""
        return self.series.get(metric)

    def family(self, metric: str) -> list[Series]:
        """``metric`` and its per-modality variants ``metric/<modality>`` that were logged."""
        names = [metric, *(f"{metric}/{m}" for m in self.tables.modalities)]
        return [self.series[n] for n in names if n in self.series]

    def finite_rows(self, step: int) -> float | None:
        """Rows the heavy statistics of ``step`` used: batch size × (1 − non-finite share)."""
        batch = self.get(schema.M_BATCH)
        n = batch.at(step) if batch is not None else None
        if n is None:
            return None
        bad = self.get(schema.M_NONFINITE)
        share = bad.at(step) if bad is not None else None
        return n * (1.0 - (share or 0.0))

    def recent(self, metric: str) -> float | None:
        """The median of ``metric``'s recent window, or None when it has no finite point."""
        series = self.get(metric)
        return series.tail().median if series is not None else None
