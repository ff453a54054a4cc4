"""The Monitor's buffers and their way to disk: device tensors → host arrays → arrow tables.

:class:`Pending` holds everything logged since the last flush, still on the tensors' devices.
:func:`to_host` copies it to the host (one stacked copy per device for the scalars) as a plain "job" dict of
:class:`FlushJob` of NumPy arrays, which the writer thread turns into one arrow table per table with
:func:`build` and :func:`snapshot_tables`, in the schemas of :mod:`cldiag.schema`. Nothing here touches a
file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from cldiag import schema

ScalarRows = tuple[np.ndarray, np.ndarray, np.ndarray]
HistRow = tuple[int, str, np.ndarray, np.ndarray]
SpectrumRow = tuple[int, str, np.ndarray]
CurveRow = tuple[int, np.ndarray, str, np.ndarray]
Texts = list[str | None]
SnapshotRow = tuple[int, str, np.ndarray, "np.ndarray | None", np.ndarray, "Texts | None"]

TABLES: tuple[str, ...] = ("scalars", "histograms", "spectra", "temperature")
"""The tables of a flush written one part each (snapshots go one part per snapshot step)."""


@dataclass
class FlushJob:
    """One flush's rows on the host, as the writer thread receives them.

    A table's rows are set to None once its part is written, so a retry after a later failure in the same
    job never writes a part twice.

    Attributes:
        scalars: ``(steps, names, values)``, or None.
        histograms: ``[(step, kind, counts, edges)]``, or None.
        spectra: ``[(step, modality, eigenvalues)]``, or None.
        temperature: ``[(step, taus, curve, values)]``, or None.
        snapshots: ``[(step, modality, vectors, labels, ids, meta)]``, or None (meta: texts or None).
        last_step: the largest step of the job's rows (None when it holds none).
        dim: the run's embedding dim, once known.
        dropped: steps left out at the copy, each with the reason.
    """

    scalars: ScalarRows | None = None
    histograms: list[HistRow] | None = None
    spectra: list[SpectrumRow] | None = None
    temperature: list[CurveRow] | None = None
    snapshots: list[SnapshotRow] | None = None
    last_step: int | None = None
    dim: int | None = None
    dropped: dict[int, str] = field(default_factory=dict)

    def rows(self, table: str) -> Any:
        """The rows of ``table`` (one of :data:`TABLES`), or None when written or empty."""
        return getattr(self, table)

    def written(self, table: str) -> None:
        """Forget ``table``'s rows: its part is on disk."""
        setattr(self, table, None)


@dataclass
class Pending:
    """Everything logged since the last flush; tensors stay on their devices until the flush."""

    scalar_steps: list[int] = field(default_factory=list)
    scalar_names: list[str] = field(default_factory=list)
    scalar_values: list[torch.Tensor | float] = field(default_factory=list)
    hist: list[tuple[int, str, torch.Tensor, torch.Tensor]] = field(default_factory=list)
    spectra: list[tuple[int, str, torch.Tensor]] = field(default_factory=list)
    curves: list[tuple[int, torch.Tensor, str, torch.Tensor]] = field(default_factory=list)
    # (step, modality, vectors, labels, ids, meta): meta is host text already (schema.encode_meta) or None.
    snapshots: list[tuple[int, str, torch.Tensor, torch.Tensor | None, torch.Tensor, Texts | None]] = field(
        default_factory=list,
    )
    # (step, labels, τ): a pairwise step's rows of a per-sample τ, reduced per class on the host at the flush
    # (a per-class reduction on the device would need the classes' count, a host sync).
    tau_rows: list[tuple[int, torch.Tensor, torch.Tensor]] = field(default_factory=list)
    n_steps: int = 0

    def empty(self) -> bool:
        """Whether nothing was logged since the last flush."""
        return not (
            self.scalar_values or self.hist or self.spectra or self.curves or self.snapshots or self.tau_rows
        )

    def sizes(self) -> tuple[int, ...]:
        """Lengths of the buffers, to :meth:`truncate` back to if a step fails half-way."""
        return (
            len(self.scalar_values),
            len(self.hist),
            len(self.spectra),
            len(self.curves),
            len(self.snapshots),
            len(self.tau_rows),
        )

    def truncate(self, sizes: tuple[int, ...]) -> None:
        """Drop what was added after :meth:`sizes` returned ``sizes``."""
        n, hist, spectra, curves, snapshots, tau_rows = sizes
        del self.scalar_steps[n:], self.scalar_names[n:], self.scalar_values[n:]
        del self.hist[hist:], self.spectra[spectra:], self.curves[curves:], self.snapshots[snapshots:]
        del self.tau_rows[tau_rows:]


def to_host(p: Pending, dim: int | None) -> FlushJob:
    """Copy a flush's buffers to the host: one device→host copy per device for all scalars.

    One bad value loses its own step, never the flush: a value that cannot be copied (a tensor without
    data, a failing device) and a temperature that is zero or negative (a tensor τ's value is first seen
    here, at steps without a host sync of their own) drop every row of their step from every table.
    ``job.dropped`` maps each dropped step to the reason. The buffered (labels, τ) rows of a per-sample τ
    become the per-class scalars of :func:`tau_class_scalars` here, after the copy.
    """
    dropped: dict[int, str] = {}
    steps = np.asarray(p.scalar_steps, np.int64)
    names = np.asarray(p.scalar_names, object)
    values = _scalar_values(p, dropped)
    bad_tau = (names == schema.M_TEMPERATURE) & (values <= 0)  # NaN is kept: it becomes a flag row
    for step, tau in zip(steps[bad_tau], values[bad_tau], strict=True):
        dropped.setdefault(int(step), f"temperature must be positive and finite, got {tau:.6g}")
    hist = _copy_rows(p.hist, lambda s, k, c, e: (s, k, c.cpu().numpy(), e.cpu().numpy()), dropped)
    spectra = _copy_rows(p.spectra, lambda s, m, e: (s, m, e.cpu().numpy()), dropped)
    curves = _copy_rows(p.curves, lambda s, t, c, v: (s, t.cpu().numpy(), c, v.cpu().numpy()), dropped)
    snapshots = _copy_rows(
        p.snapshots,
        lambda s, m, z, lab, ids, meta: (
            s,
            m,
            z.float().cpu().numpy(),
            lab.cpu().numpy() if lab is not None else None,
            ids.cpu().numpy(),
            meta,
        ),
        dropped,
    )
    tau_rows = _copy_rows(p.tau_rows, lambda s, y, t: (s, y.cpu().numpy(), t.float().cpu().numpy()), dropped)
    if dropped:
        keep = ~np.isin(steps, np.fromiter(dropped, np.int64, len(dropped)))
        steps, names, values = steps[keep], names[keep], values[keep]
        hist, spectra, curves, snapshots, tau_rows = (
            [row for row in rows if row[0] not in dropped]
            for rows in (hist, spectra, curves, snapshots, tau_rows)
        )
    if tau_rows:
        by_class = tau_class_scalars(tau_rows)
        steps, names, values = (
            np.concatenate(pair) for pair in zip((steps, names, values), by_class, strict=True)
        )
    all_steps = [*steps.tolist(), *(s for s, *_ in snapshots)]
    return FlushJob(
        scalars=(steps, names, values) if len(steps) else None,
        histograms=hist or None,
        spectra=spectra or None,
        temperature=curves or None,
        snapshots=snapshots or None,
        last_step=max(all_steps) if all_steps else None,
        dim=dim,
        dropped=dropped,
    )


def tau_by_class(
    labels: np.ndarray, tau: np.ndarray, cap: int = schema.MAX_TAU_CLASSES
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean τ and row count of each class among one step's rows, the ``cap`` most frequent classes.

    Args:
        labels: ``(n,)`` integer class labels.
        tau: ``(n,)`` per-sample temperatures of the same rows.
        cap: most classes kept: the most frequent, ties to the smaller label.

    Returns:
        ``(classes, mean τ (float64), counts)``, most frequent class first.

    Raises:
        ValueError: ``labels`` and ``tau`` are not 1-D of one length, or ``cap < 1``.

    Example:
        >>> tau_by_class(np.array([2, 0, 2, 1]), np.array([0.1, 0.5, 0.3, 0.2]), cap=2)
        (array([2, 0]), array([0.2, 0.5]), array([2, 1]))
    """
    if labels.ndim != 1 or labels.shape != tau.shape:
        raise ValueError(f"labels and tau must be 1-D of one length, got {labels.shape} and {tau.shape}")
    if cap < 1:
        raise ValueError(f"cap must be >= 1, got {cap}")
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=tau.astype(np.float64), minlength=len(classes))
    order = np.lexsort((classes, -counts))[:cap]
    return classes[order], sums[order] / counts[order], counts[order]


def tau_class_scalars(rows: list[tuple[int, np.ndarray, np.ndarray]]) -> ScalarRows:
    """``[(step, labels, τ)]`` → scalar rows ``tau_class/<label>`` (mean τ) and ``tau_class_count/<label>``.

    At most :data:`cldiag.schema.MAX_TAU_CLASSES` classes per step (:func:`tau_by_class`).
    """
    steps: list[np.ndarray] = []
    names: list[np.ndarray] = []
    values: list[np.ndarray] = []
    for step, labels, tau in rows:
        classes, means, counts = tau_by_class(labels, tau)
        k = len(classes)
        steps.append(np.full(2 * k, step, np.int64))
        names.append(
            np.array(
                [f"{schema.TAU_CLASS_PREFIX}{c}" for c in classes.tolist()]
                + [f"{schema.TAU_CLASS_COUNT_PREFIX}{c}" for c in classes.tolist()],
                object,
            )
        )
        values.append(np.concatenate([means, counts.astype(np.float64)]))
    return np.concatenate(steps), np.concatenate(names), np.concatenate(values)


def _scalar_values(p: Pending, dropped: dict[int, str]) -> np.ndarray:
    """The scalars as float64, one stacked copy per device; value by value only if that copy fails."""
    values = np.empty(len(p.scalar_values), dtype=np.float64)
    by_device: dict[torch.device, list[int]] = {}
    for i, v in enumerate(p.scalar_values):
        if isinstance(v, torch.Tensor):
            by_device.setdefault(v.device, []).append(i)
        else:
            values[i] = v
    for idx in by_device.values():
        try:
            values[idx] = torch.stack([p.scalar_values[i].float() for i in idx]).cpu().numpy()  # type: ignore[union-attr]
        except Exception:  # noqa: BLE001 - find the values at fault; the others are written
            for i in idx:
                try:
                    values[i] = float(p.scalar_values[i].float().cpu())  # type: ignore[union-attr]
                except Exception as exc:  # noqa: BLE001 - its step is dropped, with the reason
                    values[i] = np.nan
                    reason = f"{p.scalar_names[i]}: {type(exc).__name__}: {exc}"
                    dropped.setdefault(p.scalar_steps[i], reason)
    return values


def _copy_rows(
    rows: list[tuple[Any, ...]], copy: Callable[..., tuple[Any, ...]], dropped: dict[int, str]
) -> list:
    """``copy`` applied to each buffered row; a row that fails to copy drops its step (first field)."""
    out = []
    for row in rows:
        try:
            out.append(copy(*row))
        except Exception as exc:  # noqa: BLE001 - its step is dropped, with the reason
            dropped.setdefault(row[0], f"{type(exc).__name__}: {exc}")
    return out


def scalars_table(rows: tuple[np.ndarray, np.ndarray, np.ndarray]) -> pa.Table:
    """``(steps, names, values)`` → the scalars table.

    A non-finite value is never written as a number: it becomes a flag row ``nonfinite/<metric>`` = 1 at
    that step, so a NaN loss is visible instead of silently missing.
    """
    steps, names, values = rows
    bad = ~np.isfinite(values)
    if bad.any():
        names = names.copy()
        names[bad] = [f"{schema.NONFINITE_PREFIX}{n}" for n in names[bad]]
        values = np.where(bad, 1.0, values)
    return pa.table(
        {"step": steps, "metric": pa.array(names, pa.string()), "value": values},
        schema=schema.SCALARS,
    )


def histograms_table(rows: list[tuple[int, str, np.ndarray, np.ndarray]]) -> pa.Table:
    """``[(step, kind, counts, edges)]`` → the histograms table (one row per bin)."""
    cols: dict[str, list[np.ndarray]] = {"step": [], "kind": [], "bin_left": [], "bin_right": [], "count": []}
    for step, kind, counts, edges in rows:
        k = len(counts)
        cols["step"].append(np.full(k, step, np.int64))
        cols["kind"].append(np.full(k, kind, object))
        cols["bin_left"].append(edges[:-1].astype(np.float32))
        cols["bin_right"].append(edges[1:].astype(np.float32))
        cols["count"].append(counts.astype(np.int64))
    return pa.table({c: np.concatenate(v) for c, v in cols.items()}, schema=schema.HISTOGRAMS)


def spectra_table(rows: list[tuple[int, str, np.ndarray]]) -> pa.Table:
    """``[(step, modality, eigenvalues)]`` → the spectra table (index 0 = largest eigenvalue)."""
    return pa.concat_tables(
        [
            pa.table(
                {
                    "step": np.full(len(e), s, np.int64),
                    "modality": np.full(len(e), m, object),
                    "index": np.arange(len(e), dtype=np.int32),
                    "eigenvalue": e.astype(np.float64),
                },
                schema=schema.SPECTRA,
            )
            for s, m, e in rows
        ],
    )


def temperature_table(rows: list[tuple[int, np.ndarray, str, np.ndarray]]) -> pa.Table:
    """``[(step, taus, curve, values)]`` → the temperature table; undefined (NaN) points are left out."""
    parts = []
    for s, taus, curve, values in rows:
        ok = np.isfinite(values)
        n = int(ok.sum())
        parts.append(
            pa.table(
                {
                    "step": np.full(n, s, np.int64),
                    "tau": taus[ok].astype(np.float64),
                    "curve": np.full(n, curve, object),
                    "value": values[ok].astype(np.float64),
                },
                schema=schema.TEMPERATURE,
            ),
        )
    return pa.concat_tables(parts)


_BUILDERS: dict[str, Callable[[Any], pa.Table]] = {
    "scalars": scalars_table,
    "histograms": histograms_table,
    "spectra": spectra_table,
    "temperature": temperature_table,
}


def build(table: str, rows: Any) -> pa.Table:
    """The arrow table of ``table`` (scalars, histograms, spectra or temperature) from a job's rows."""
    return _BUILDERS[table](rows)


def snapshot_tables(
    rows: list[SnapshotRow],
) -> dict[int, pa.Table]:
    """``[(step, modality, vectors, labels, ids, meta)]`` → one embeddings table per snapshot step."""
    by_step: dict[int, list[pa.Table]] = {}
    for s, m, z, lab, ids, meta in rows:
        n, d = z.shape
        by_step.setdefault(s, []).append(
            pa.table(
                {
                    "step": np.full(n, s, np.int64),
                    "sample_id": ids.astype(np.int64),
                    "modality": np.full(n, m, object),
                    "label": pa.array(lab.astype(np.int64) if lab is not None else [None] * n, pa.int64()),
                    "vector": pa.FixedSizeListArray.from_arrays(
                        pa.array(z.reshape(-1).astype(np.float32)), d
                    ),
                    "meta": pa.array(meta if meta is not None else [None] * n, pa.string()),
                },
                schema=schema.embeddings_schema(d),
            ),
        )
    return {s: pa.concat_tables(tables) for s, tables in by_step.items()}
