"""A run's summary: the last value and step of each metric, row counts and status, in one small file.

A sweep's root holds hundreds or thousands of runs; a table of them must not read every run's scalars (the
Overview took 70 s cold for 1,000 runs that way: benchmarks/README.md). The writer therefore keeps
``<run>/summary.json`` up to date after each flush and at close (:func:`after_flush`, called by
``RunWriter``), and a table of many runs (the Overview's) reads ``meta.json`` and that file only:

```json
{"summary_version": 1, "meta": {"status": "finished", "last_step": 999, "created": "…"},
 "last_step": 999, "updated": "…",
 "metrics": {"loss": {"step": 999, "value": 1.93}, "uniformity": {"step": 990, "value": -3.1}, …},
 "metrics_truncated": false,
 "tables": {"scalars": {"rows": 18200, "first_step": 0, "last_step": 999}, …,
            "embeddings": {"snapshots": 1, "last_step": 999}}}
```

``meta`` repeats the fields of ``meta.json`` that change when the run does; a summary whose copy differs
from the run's current ``meta.json`` is out of date (a run resumed, or a writer that died between its
flush and the summary) and is computed afresh from the tables. Runs written before summaries existed get
theirs computed from the tables too, and the dashboard caches it in ``<run>/.cldiag_cache/summary.json``
when the run is a writable local directory (created under the rules of :mod:`cldiag.paths`).

:func:`summarize` is the pure computation, from whole tables or by folding one flush's tables into the
previous summary (the two agree; a test checks it). A ``summary.json`` is read like ``meta.json``: a
regular file, at most :data:`MAX_SUMMARY_BYTES`, every field checked (:func:`check_summary`); one that
fails is ignored with its reason in ``Run.problems``, and the summary is computed from the tables.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from cldiag import paths, schema
from cldiag.maintenance import replaced_parts
from cldiag.reader import Run
from cldiag.store import RunStore, parse_snapshot_dir

__all__ = [
    "MAX_SUMMARY_BYTES",
    "MAX_SUMMARY_METRICS",
    "SUMMARY_FILE",
    "SUMMARY_VERSION",
    "after_flush",
    "check_summary",
    "is_current",
    "load_summary",
    "run_summary",
    "stored_summary",
    "summarize",
    "summarize_run",
    "table_row",
]

SUMMARY_FILE = "summary.json"
SUMMARY_VERSION = 1
MAX_SUMMARY_BYTES = 1 << 20
"""Readers refuse a larger ``summary.json`` (the writer's own stay under 40 kB: metrics are capped)."""
MAX_SUMMARY_METRICS = 256
"""Metrics kept per summary: cldiag's own first, then by name (a run may log thousands of its own)."""
CACHE_LEVELS = (".cldiag_cache",)
"""Where the dashboard caches a summary it computed, inside the run (each level made by cldiag)."""
STEP_TABLES = ("scalars", "histograms", "spectra", "temperature")
_META_KEYS = ("status", "last_step", "created")
_BUILTIN = frozenset(v for k, v in vars(schema).items() if k.startswith("M_") and isinstance(v, str))


def _metric_order(name: str) -> tuple[bool, str]:
    """Sort key: cldiag's own metrics (and their ``/modality`` variants) first, then by name."""
    return (name.split("/")[0] not in _BUILTIN, name)


def _meta_key(meta: Mapping[str, Any]) -> dict[str, Any]:
    return {k: meta.get(k) for k in _META_KEYS}


def _last_per_metric(scalars: pa.Table) -> dict[str, dict[str, Any]]:
    """Each metric's value at its largest step; among rows of one step the last written wins."""
    if scalars.num_rows == 0:
        return {}
    order = pc.sort_indices(scalars, sort_keys=[("metric", "ascending"), ("step", "ascending")])
    # sort_indices is stable: rows of one metric and step keep their written order, so the last is newest.
    metric = pc.take(scalars["metric"], order).combine_chunks()
    n = len(metric)
    last = pc.not_equal(metric.slice(0, n - 1), metric.slice(1))
    keep = pc.filter(order, pa.concat_arrays([last, pa.array([True])]))
    rows = scalars.take(keep).to_pydict()
    return {
        str(name): {"step": int(step), "value": _number(value)}
        for name, step, value in zip(rows["metric"], rows["step"], rows["value"], strict=True)
    }


def _number(value: Any) -> float | None:
    """A float JSON can carry: NaN and ±inf are kept as Python floats (``json`` writes NaN/Infinity)."""
    return None if value is None else float(value)


def _table_counts(table: pa.Table | None) -> dict[str, Any]:
    if table is None or table.num_rows == 0:
        return {"rows": 0, "first_step": None, "last_step": None}
    bounds = pc.min_max(table["step"]).as_py()
    return {"rows": table.num_rows, "first_step": int(bounds["min"]), "last_step": int(bounds["max"])}


def _merge_counts(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    def pick(a: int | None, b: int | None, f: Any) -> int | None:
        return b if a is None else a if b is None else f(a, b)

    return {
        "rows": int(old.get("rows") or 0) + int(new["rows"]),
        "first_step": pick(old.get("first_step"), new["first_step"], min),
        "last_step": pick(old.get("last_step"), new["last_step"], max),
    }


def summarize(
    meta: Mapping[str, Any],
    tables: Mapping[str, pa.Table | None],
    snapshot_steps: Iterable[int],
    previous: Mapping[str, Any] | None = None,
    *,
    updated: str | None = None,
) -> dict[str, Any]:
    """A run's summary from its tables, or from ``previous`` and the tables of one more flush.

    Args:
        meta: the run's current ``meta.json`` (status, last step and creation time are copied).
        tables: ``scalars`` / ``histograms`` / ``spectra`` / ``temperature`` tables (absent or None: no
            rows). Whole tables, or only the rows written since ``previous``.
        snapshot_steps: every step with an embedding snapshot (all of them, not only new ones).
        previous: the summary before these rows were written (None: ``tables`` are the whole run).
        updated: the time stamp to record (default: now).

    Returns:
        The summary (see the module docstring). Folding flushes one by one into ``previous`` gives the
        same summary as one call on the whole tables, metric cap included (the kept metrics are the first
        :data:`MAX_SUMMARY_METRICS` of all names in :func:`_metric_order`, whichever way they arrived).
    """
    prev = previous or {}
    metrics: dict[str, dict[str, Any]] = dict(prev.get("metrics") or {})
    scalars = tables.get("scalars")
    if scalars is not None:
        for name, last in _last_per_metric(scalars).items():
            old = metrics.get(name)
            if old is None or last["step"] >= old["step"]:
                metrics[name] = last
    names = sorted(metrics, key=_metric_order)
    truncated = bool(prev.get("metrics_truncated")) or len(names) > MAX_SUMMARY_METRICS
    metrics = {n: metrics[n] for n in names[:MAX_SUMMARY_METRICS]}
    counts: dict[str, Any] = {}
    prev_tables = prev.get("tables") or {}
    for name in STEP_TABLES:
        new = _table_counts(tables.get(name))
        counts[name] = _merge_counts(prev_tables.get(name) or {}, new) if previous is not None else new
    snaps = sorted({int(s) for s in snapshot_steps})
    counts["embeddings"] = {"snapshots": len(snaps), "last_step": snaps[-1] if snaps else None}
    steps = [c["last_step"] for c in counts.values() if c["last_step"] is not None]
    return {
        "summary_version": SUMMARY_VERSION,
        "meta": _meta_key(meta),
        "updated": updated or schema.now_iso(),
        "last_step": max(steps) if steps else None,
        "metrics": metrics,
        "metrics_truncated": truncated,
        "tables": counts,
    }


def summarize_run(run: Run) -> dict[str, Any]:
    """The summary computed from every table of ``run`` (what the reader sees now)."""
    tables = {name: run._table(name) for name in STEP_TABLES}
    return summarize(run.meta, tables, run.snapshot_steps())


# -- checking a summary read from disk ---------------------------------------------------------------------
def _is_step(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= schema.MAX_SAFE_STEP


def _is_opt_step(value: Any) -> bool:
    return value is None or _is_step(value)


def _check_metric(name: Any, entry: Any) -> str | None:
    if not isinstance(name, str) or len(name) > 1000:
        return "a metric name is not a string of at most 1,000 characters"
    if not isinstance(entry, dict) or not _is_step(entry.get("step")):
        return f"metric {name[:80]!r} has no valid step"
    value = entry.get("value")
    if not (value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))):
        return f"metric {name[:80]!r} has a value that is not a number"
    return None


def _check_tables(tables: Any) -> str | None:
    if not isinstance(tables, dict):
        return "tables is not an object"
    for name in STEP_TABLES:
        entry = tables.get(name)
        if not isinstance(entry, dict):
            return f"tables.{name} is missing"
        rows = entry.get("rows")
        if not (isinstance(rows, int) and not isinstance(rows, bool) and rows >= 0):
            return f"tables.{name}.rows is not a count"
        if not (_is_opt_step(entry.get("first_step")) and _is_opt_step(entry.get("last_step"))):
            return f"tables.{name} has a step that is not a step"
    snaps = tables.get("embeddings")
    if not isinstance(snaps, dict) or not _is_opt_step(snaps.get("last_step")):
        return "tables.embeddings is missing"
    count = snaps.get("snapshots")
    if not (isinstance(count, int) and not isinstance(count, bool) and count >= 0):
        return "tables.embeddings.snapshots is not a count"
    return None


def check_summary(obj: Any) -> dict[str, Any]:
    """``obj`` if it is a summary this cldiag can use; otherwise ``ValueError`` saying what is wrong.

    Every field a reader relies on is checked (types, steps in ``[0, 2**53-1]``, numbers, at most
    :data:`MAX_SUMMARY_METRICS` metrics), so a hand-edited or hostile file never reaches a page.
    """
    if not isinstance(obj, dict):
        raise ValueError("it does not hold a JSON object")
    if obj.get("summary_version") != SUMMARY_VERSION:
        raise ValueError(f"summary_version is {obj.get('summary_version')!r}, not {SUMMARY_VERSION}")
    meta = obj.get("meta")
    if not isinstance(meta, dict) or set(meta) != set(_META_KEYS):
        raise ValueError(f"meta must hold exactly {list(_META_KEYS)}")
    if not _is_opt_step(obj.get("last_step")):
        raise ValueError("last_step is not a step")
    metrics = obj.get("metrics")
    if not isinstance(metrics, dict) or len(metrics) > MAX_SUMMARY_METRICS:
        raise ValueError(f"metrics is not an object of at most {MAX_SUMMARY_METRICS} entries")
    for name, entry in metrics.items():
        problem = _check_metric(name, entry)
        if problem:
            raise ValueError(problem)
    if not isinstance(obj.get("metrics_truncated"), bool):
        raise ValueError("metrics_truncated is not true or false")
    problem = _check_tables(obj.get("tables"))
    if problem:
        raise ValueError(problem)
    return obj


def is_current(summary: Mapping[str, Any], meta: Mapping[str, Any]) -> bool:
    """Whether ``summary`` was written for the run as ``meta`` says it is now (status, last step, created)."""
    return summary.get("meta") == _meta_key(meta)


# -- reading, caching, writing -----------------------------------------------------------------------------
def load_summary(store: RunStore, name: str = SUMMARY_FILE) -> dict[str, Any]:
    """Read and check a summary file of the run (``FileNotFoundError`` if absent, else ``ValueError``)."""
    try:
        return check_summary(store.read_json(name, MAX_SUMMARY_BYTES))
    except ValueError as exc:
        raise ValueError(f"{store.join(name)}: {exc}") from None


def _cache_dir(run: Run, create: bool) -> str | None:
    store = run._store
    if not store.is_local or not os.access(store.root, os.W_OK | os.X_OK):
        return None
    try:
        return os.fspath(paths.owned_dir(store.root, CACHE_LEVELS, create=create))
    except (OSError, ValueError):  # absent, unwritable, or a link / file where the cache would go
        return None


def _read_cached(run: Run) -> dict[str, Any] | None:
    directory = _cache_dir(run, create=False)
    if directory is None:
        return None
    try:
        return load_summary(RunStore(directory), SUMMARY_FILE)
    except (OSError, ValueError):
        return None


def _write_cached(run: Run, summary: Mapping[str, Any]) -> bool:
    """Cache a computed summary in the run (local, writable, no link on the way); False if not written."""
    directory = _cache_dir(run, create=True)
    if directory is None:
        return False
    with contextlib.suppress(OSError):
        RunStore(directory).write_json(SUMMARY_FILE, dict(summary), indent=None)
        return True
    return False


def run_summary(run: Run, *, cache: bool = True) -> dict[str, Any]:
    """The run's summary: the stored one if current (:func:`stored_summary`), else computed from its tables.

    A summary computed from the tables is cached in ``<run>/.cldiag_cache/summary.json`` when ``cache``
    is true and the run is finished or failed (a running run's writer keeps its own) and a writable
    local directory.
    """
    found = stored_summary(run)
    if found is not None:
        return found
    computed = summarize_run(run)
    if cache and run.status in (schema.STATUS_FINISHED, schema.STATUS_FAILED):
        _write_cached(run, computed)
    return computed


_PARTS_KEY = "_parts"
"""In the writer's copy only (never on disk): the part files already folded in, per table directory."""


def _listed(store: RunStore) -> dict[str, set[str]]:
    return {t: {posixpath.basename(p) for p in store.part_files(t)} for t in STEP_TABLES}


def _fold_new_parts(store: RunStore, folded: dict[str, set[str]]) -> dict[str, pa.Table] | None:
    """The rows of the parts written since ``folded`` (updated in place); None if that cannot be told.

    A merged part (compaction) whose originals were all folded already is only renamed in ``folded``; one
    that merged parts not folded yet makes the answer None (the caller recomputes from every table).
    """
    new_rows: dict[str, pa.Table] = {}
    for table in STEP_TABLES:
        seen = folded[table]
        listed = store.part_files(table)
        pieces = []
        for path in listed:
            name = posixpath.basename(path)
            if name in seen:
                continue
            replaces = replaced_parts(store.parquet_file(path).schema_arrow.empty_table())  # footer only
            if replaces:
                if not replaces <= seen:
                    return None
                seen -= replaces
            else:
                part = store.read_table(path, columns=schema.SCHEMAS[table].names)
                pieces.append(part.cast(schema.SCHEMAS[table]))
            seen.add(name)
        seen &= {posixpath.basename(p) for p in listed}
        if pieces:
            new_rows[table] = pa.concat_tables(pieces)
    return new_rows


def after_flush(
    store: RunStore, meta: Mapping[str, Any], previous: Mapping[str, Any] | None = None
) -> dict[str, Any] | None:
    """The writer's hook: fold the parts written since ``previous`` in, write ``summary.json``, return it.

    Args:
        store: the run being written.
        meta: ``meta.json`` as just written (after a flush, or with the final status at close).
        previous: what the last call returned (None on the writer's first call: the summary is then
            computed from every table, so a resumed run's earlier rows count too).

    Returns:
        The new summary, for the next call (it also remembers which part files it has read, so each
        flush reads only its own new parts, and a compaction of parts already read reads nothing);
        ``previous`` when it could not be written (the next call retries). Never raises: a summary is
        derived data, and training goes on without it.
    """
    try:
        folded = {t: set(n) for t, n in (previous or {}).get(_PARTS_KEY, {}).items()}
        new_rows = _fold_new_parts(store, folded) if previous is not None and folded else None
        if new_rows is None:
            folded = _listed(store)
            summary = summarize_run(Run(store, dict(meta)))
        else:
            steps = [s for s in map(parse_snapshot_dir, store.listdir("embeddings")) if s is not None]
            summary = summarize(meta, new_rows, steps, previous)
        store.write_json(SUMMARY_FILE, summary, indent=None)
    except Exception:  # noqa: BLE001 - the summary is derived data: training must go on without it
        return dict(previous) if previous is not None else None
    return {**summary, _PARTS_KEY: folded}


def stored_summary(run: Run) -> dict[str, Any] | None:
    """The run's current summary if one is on disk (its ``summary.json`` or the dashboard's cache), else None.

    Reads one or two small files and no table. A ``summary.json`` that cannot be used is named in
    ``run.problems``.
    """
    try:
        found = load_summary(run._store)
        if is_current(found, run.meta):
            return found
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        run._note(f"ignored {SUMMARY_FILE}: {exc}")
    cached = _read_cached(run)
    return cached if cached is not None and is_current(cached, run.meta) else None


def table_row(
    run: Run, summary: Mapping[str, Any] | None, *, name: str, status: str, config: Mapping[str, Any]
) -> dict[str, Any]:
    """One row of the runs table (the input of ``cldiag.figures.runs_table``) from meta and the summary.

    Args:
        run: the run (its meta.json: dim, modalities, creation time).
        summary: its summary (None: not known yet, the metric cells stay empty).
        name: the display name.
        status: the status for people (the dashboard marks stale runs).
        config: the configuration to show (pages cap it: ``cldiag.views.shown_config``).
    """
    metrics = (summary or {}).get("metrics") or {}
    return {
        "name": name,
        "status": status,
        "last_step": run.meta.get("last_step"),
        "modalities": run.modalities if run.two_modality else ["one modality"],
        "dim": run.meta.get("dim"),
        "created": run.meta.get("created"),
        "config": dict(config),
        "last": {m: entry["value"] for m, entry in metrics.items()},
    }
