"""The Monitor's buffers and their way to disk: device tensors → host arrays → arrow tables.

:class:`Pending` holds everything logged since the last flush, still on the tensors' devices.
:func:`to_host` copies it to the host (one stacked copy per device for the scalars) as a plain "job" dict of
NumPy arrays, which the writer thread turns into one arrow table per table with :func:`build` and
:func:`snapshot_tables`, in the schemas of :mod:`cldiag.schema`. Nothing here touches a file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from cldiag import schema

Job = dict[str, Any]
Texts = list[str | None]


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
    n_steps: int = 0

    def empty(self) -> bool:
        """Whether nothing was logged since the last flush."""
        return not (self.scalar_values or self.hist or self.spectra or self.curves or self.snapshots)

    def sizes(self) -> tuple[int, int, int, int, int]:
        """Lengths of the buffers, to :meth:`truncate` back to if a step fails half-way."""
        return (
            len(self.scalar_values),
            len(self.hist),
            len(self.spectra),
            len(self.curves),
            len(self.snapshots),
        )

    def truncate(self, sizes: tuple[int, int, int, int, int]) -> None:
        """Drop what was added after :meth:`sizes` returned ``sizes``."""
        n, hist, spectra, curves, snapshots = sizes
        del self.scalar_steps[n:], self.scalar_names[n:], self.scalar_values[n:]
        del self.hist[hist:], self.spectra[spectra:], self.curves[curves:], self.snapshots[snapshots:]


def to_host(p: Pending, dim: int | None) -> Job:
    """Copy a flush's buffers to the host: one device→host copy per device for all scalars."""
    job: Job = {}
    if p.scalar_values:
        values = np.empty(len(p.scalar_values), dtype=np.float64)
        by_device: dict[torch.device, list[int]] = {}
        for i, v in enumerate(p.scalar_values):
            if isinstance(v, torch.Tensor):
                by_device.setdefault(v.device, []).append(i)
            else:
                values[i] = v
        for idx in by_device.values():
            tensors = [p.scalar_values[i] for i in idx]
            values[idx] = torch.stack([t.float() for t in tensors]).cpu().numpy()  # type: ignore[union-attr]
        job["scalars"] = (np.asarray(p.scalar_steps, np.int64), np.asarray(p.scalar_names, object), values)
    if p.hist:
        job["histograms"] = [(s, k, c.cpu().numpy(), e.cpu().numpy()) for s, k, c, e in p.hist]
    if p.spectra:
        job["spectra"] = [(s, m, e.cpu().numpy()) for s, m, e in p.spectra]
    if p.curves:
        job["temperature"] = [(s, t.cpu().numpy(), c, v.cpu().numpy()) for s, t, c, v in p.curves]
    if p.snapshots:
        job["snapshots"] = [
            (
                s,
                m,
                z.float().cpu().numpy(),
                lab.cpu().numpy() if lab is not None else None,
                ids.cpu().numpy(),
                meta,
            )
            for s, m, z, lab, ids, meta in p.snapshots
        ]
    steps = [*p.scalar_steps, *(s for s, *_ in p.snapshots)]
    job["last_step"] = max(steps) if steps else None
    job["dim"] = dim
    return job


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
    rows: list[tuple[int, str, np.ndarray, np.ndarray | None, np.ndarray, list[str | None] | None]],
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
