"""Read cldiag runs: ``read_run``, ``list_runs`` and the :class:`Run` object (pandas, no Streamlit).

Reads are safe while a run is being written: writers only ever add whole part files (see
:mod:`cldiag.store`), and a part that cannot be read (truncated, corrupt, another schema) is skipped and
reported in :attr:`Run.problems` instead of failing the read. Each part file is parsed once per
``Run`` object and remembered by (size, mtime), so polling a live run re-reads only the new parts.
Compaction (:mod:`cldiag.maintenance`) writes a merged part before deleting its originals; a part that a
listed merged part declares it replaces is not read, so every row counts once at any moment.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from cldiag import schema
from cldiag.maintenance import replaced_parts
from cldiag.store import RunStore, parse_snapshot_dir, snapshot_dir

if TYPE_CHECKING:
    from cldiag.plot import RunPlots

__all__ = ["Run", "downsample", "list_runs", "read_run"]

_EMBEDDING_COLUMNS = ["step", "sample_id", "modality", "label", "meta", "vector"]
_LIST_ATTEMPTS = 3  # listings of one directory per read when parts vanish (compaction)
_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="cldiag-read")


def _fill_optional(table: pa.Table, expected: pa.Schema | None) -> pa.Table:
    """``table`` with the optional columns of ``expected`` it lacks (a part of an older version) as nulls."""
    names = expected.names if expected is not None else list(schema.OPTIONAL_COLUMNS)
    for name, kind in schema.OPTIONAL_COLUMNS.items():
        if name in names and name not in table.column_names:
            table = table.append_column(pa.field(name, kind), pa.nulls(table.num_rows, kind))
    return table


def _empty(table: str) -> pd.DataFrame:
    if table == "embeddings":
        return pd.DataFrame({c: pd.Series(dtype="object") for c in _EMBEDDING_COLUMNS})
    return schema.SCHEMAS[table].empty_table().to_pandas()


class Run:
    """One run directory, read lazily.

    Use :func:`read_run` to open one. Every table method returns a pandas DataFrame with the columns of
    ``cldiag.schema`` (empty, with those columns, when there is no data yet).
    """

    def __init__(self, store: RunStore, meta: dict[str, Any]) -> None:
        self._store = store
        self.problems: list[str] = []
        self.meta = self._checked(meta)
        self._cache: dict[str, tuple[tuple[int, float], pa.Table | None, frozenset[str]]] = {}
        self._concat: dict[str, tuple[tuple[tuple[str, tuple[int, float]], ...], pa.Table]] = {}
        self._lock = threading.Lock()
        self._real_root = os.path.realpath(store.root) if store.is_local else ""

    # -- identity ---------------------------------------------------------------------------------------
    @property
    def path(self) -> str:
        """The run's location as given (path or URI)."""
        return self._store.uri

    @property
    def name(self) -> str:
        """Short name of the run (``meta['name']``, else the directory name)."""
        return str(self.meta.get("name") or posixpath.basename(self._store.root.rstrip("/")))

    @property
    def status(self) -> str:
        """``running``, ``finished`` or ``failed`` as recorded in meta.json."""
        return str(self.meta.get("status", "unknown"))

    @property
    def modalities(self) -> list[str]:
        """The names of the two sides of each pair (``view1``/``view2`` or e.g. ``image``/``text``)."""
        return list(self.meta.get("modalities") or ["view1", "view2"])

    @property
    def two_modality(self) -> bool:
        """Whether the run logs two modalities (modality-gap metrics exist)."""
        return bool(self.meta.get("two_modality", False))

    @property
    def config(self) -> dict[str, Any]:
        """The user's run configuration from meta.json."""
        return dict(self.meta.get("config") or {})

    def __repr__(self) -> str:
        return f"Run({self.path!r}, status={self.status!r})"

    @property
    def plot(self) -> RunPlots:
        """The dashboard's figures of this run, one call each: ``run.plot.scores()`` (:mod:`cldiag.plot`)."""
        from cldiag.plot import RunPlots  # cldiag.plot builds on this module

        return RunPlots(self)

    def _repr_html_(self) -> str:
        from cldiag.plot import run_html

        return run_html(self)

    def neighbours(
        self, step: int | None, sample_id: int, k: int = 10, *, modality: str | None = None
    ) -> pd.DataFrame:
        """The ``k`` nearest rows (cosine, full dimension) to a sample in a snapshot (None = latest).

        See :func:`cldiag.views.neighbours_table` for the columns.
        """
        from cldiag import views  # cldiag.views builds on this module

        return views.neighbours_table(self, self._snapshot_step(step), sample_id, k, modality)

    def worst_pairs(
        self,
        step: int | None = None,
        n: int = 20,
        *,
        label: int | None = None,
        k: int = 3,
        compare_step: int | None = None,
    ) -> pd.DataFrame:
        """The ``n`` anchors whose positive ranks worst in a snapshot (None = latest), with their examples.

        Each anchor comes with its positive and ``k`` hardest negatives; see
        :func:`cldiag.views.worst_pairs_table`.

        Raises:
            ValueError: the snapshot holds no pairs (one side only) or no anchor with ``label``.
        """
        from cldiag import views  # cldiag.views builds on this module

        table = views.worst_pairs_table(self, self._snapshot_step(step), n, label, k, compare_step)
        if isinstance(table, str):
            raise ValueError(table)
        return table

    def _snapshot_step(self, step: int | None) -> int:
        steps = self.snapshot_steps()
        if step is None:
            if not steps:
                raise KeyError(f"run {self.name!r} has no embedding snapshot")
            return steps[-1]
        return int(step)

    def refresh(self) -> Run:
        """Re-read ``meta.json`` (part files are always listed afresh)."""
        self.meta = self._checked(_load_meta(self._store))
        return self

    def _checked(self, meta: dict[str, Any]) -> dict[str, Any]:
        clean, notes = schema.sanitize_meta(meta)
        for note in notes:
            if note not in self.problems:
                self.problems.append(note)
        return clean

    def is_stale(self, seconds: float = 300.0) -> bool:
        """True when the run says ``running`` but its heartbeat is older than ``seconds`` (crashed/killed)."""
        if self.status != schema.STATUS_RUNNING:
            return False
        age = schema.heartbeat_age(self.meta)
        return age is None or age > seconds

    # -- low level --------------------------------------------------------------------------------------
    def _read_parts(self, relpath: str, expected: pa.Schema | None) -> pa.Table | None:
        """Concatenate the readable parts under ``relpath``; unreadable ones go to ``problems``.

        Parts named in another listed part's ``cldiag.replaces`` metadata are skipped (their rows are in
        that merged part). A part deleted between listing and reading means a compaction finished: the
        directory is listed again, and the new listing holds the merged part.
        """
        if not self._confined(self._store.join(relpath)):
            return None
        for _ in range(_LIST_ATTEMPTS):
            paths = [
                p
                for p in self._store.part_files(relpath)
                if not (self._real_root and os.path.islink(p)) or self._confined(p)
            ]
            # Parsing releases the GIL: new parts of a long run load in parallel (2x on 2 cores).
            parts = list(zip(paths, _POOL.map(lambda p: self._load_part(p, expected), paths), strict=True))
            if all(part is not None for _, part in parts):
                break
        directory, listed = self._store.join(relpath), set(paths)
        with self._lock:
            for path in [p for p in self._cache if posixpath.dirname(p) == directory and p not in listed]:
                del self._cache[path]  # deleted by compaction: do not hold its rows forever
        hidden = frozenset().union(*(part[1] for _, part in parts if part is not None))
        kept = [
            (path, part[0])
            for path, part in parts
            if part is not None
            and part[0] is not None
            and part[0].num_rows
            and posixpath.basename(path) not in hidden
        ]
        if not kept:
            return None
        # The concatenation is remembered for the exact list of parts it was built from (a warm read of an
        # unchanged run costs one listing, not a concat of hundreds of parts).
        with self._lock:
            key = tuple((path, self._cache[path][0]) for path, _ in kept)
            cached = self._concat.get(relpath)
        if cached is not None and cached[0] == key:
            return cached[1]
        tables = [table for _, table in kept]
        table = pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]
        with self._lock:
            self._concat[relpath] = (key, table)
        return table

    def _confined(self, path: str) -> bool:
        """Whether a local ``path`` resolves inside the run directory; a link out of it is noted, not read."""
        if not self._real_root:
            return True
        real = os.path.realpath(path)
        if os.path.commonpath([real, self._real_root]) == self._real_root:
            return True
        self._note(f"skipped {path}: it links outside the run directory")
        return False

    def _load_part(
        self, path: str, expected: pa.Schema | None
    ) -> tuple[pa.Table | None, frozenset[str]] | None:
        """``(table or None if unreadable, names it replaces)`` from the cache or the file; None if gone."""
        try:
            sig = self._store.signature(path)
            with self._lock:
                cached = self._cache.get(path)
            if cached is not None and cached[0] == sig:
                return cached[1], cached[2]
            table, replaces = self._parse_part(path, expected)
        except FileNotFoundError:
            return None
        with self._lock:
            self._cache[path] = (sig, table, replaces)
        return table, replaces

    def _parse_part(self, path: str, expected: pa.Schema | None) -> tuple[pa.Table | None, frozenset[str]]:
        try:
            table = self._store.read_table(path)
        except FileNotFoundError:
            raise
        except Exception as exc:  # noqa: BLE001 - any parse failure means: skip this part and say so
            self._note(f"skipped unreadable part {path}: {type(exc).__name__}: {exc}")
            return None, frozenset()
        replaces = replaced_parts(table)
        if expected is None:
            return table.replace_schema_metadata(None), replaces
        table = _fill_optional(table, expected)
        missing = [f.name for f in expected if f.name not in table.column_names]
        if missing:
            self._note(f"skipped part {path}: missing columns {missing}")
            return None, replaces
        try:
            # Unknown extra columns are dropped; known ones are cast to the declared types.
            return table.select(expected.names).cast(expected), replaces
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            self._note(f"skipped part {path}: columns do not match the schema ({exc})")
            return None, replaces

    def _note(self, message: str) -> None:
        with self._lock:
            if message not in self.problems:
                self.problems.append(message)

    def _table(self, name: str) -> pa.Table | None:
        return self._read_parts(name, schema.SCHEMAS[name])

    @staticmethod
    def _to_pandas(table: pa.Table, keys: list[str]) -> pd.DataFrame:
        """Sorted by ``keys`` in Arrow (stable, much cheaper than in pandas), then converted."""
        return table.sort_by([(k, "ascending") for k in keys]).to_pandas()

    def _select(self, name: str, step: int | None) -> pd.DataFrame:
        table = self._table(name)
        if table is None:
            return _empty(name)
        if step is not None:
            table = table.filter(pc.equal(table["step"], pa.scalar(int(step), pa.int64())))
        return self._to_pandas(table, ["step"])

    # -- tables -----------------------------------------------------------------------------------------
    def scalars(
        self,
        metrics: Sequence[str] | None = None,
        *,
        step_min: int | None = None,
        step_max: int | None = None,
    ) -> pd.DataFrame:
        """Scalar series in long format: columns ``step, metric, value``, sorted by step.

        Args:
            metrics: keep only these metric names (default: all).
            step_min: keep steps ``>= step_min``.
            step_max: keep steps ``<= step_max``.
        """
        table = self._table("scalars")
        if table is None:
            return _empty("scalars")
        if metrics is not None:
            table = table.filter(pc.is_in(table["metric"], value_set=pa.array(list(metrics), pa.string())))
        if step_min is not None:
            table = table.filter(pc.greater_equal(table["step"], step_min))
        if step_max is not None:
            table = table.filter(pc.less_equal(table["step"], step_max))
        return self._to_pandas(table, ["step", "metric"])

    def metrics(self) -> list[str]:
        """Names of all scalar metrics present in the run."""
        table = self._table("scalars")
        if table is None:
            return []
        return sorted(pc.unique(table["metric"]).to_pylist())

    def histograms(self, step: int | None = None) -> pd.DataFrame:
        """Score histograms: ``step, kind (pos/neg/hard_neg), bin_left, bin_right, count``."""
        return self._select("histograms", step)

    def spectra(self, step: int | None = None) -> pd.DataFrame:
        """Covariance spectra: ``step, modality, index, eigenvalue`` (index 0 is the largest)."""
        return self._select("spectra", step)

    def temperature(self, step: int | None = None) -> pd.DataFrame:
        """Temperature curves: ``step, tau, curve, value``."""
        return self._select("temperature", step)

    def snapshot_steps(self) -> list[int]:
        """Steps that have an embedding snapshot, ascending."""
        steps = [parse_snapshot_dir(n) for n in self._store.listdir("embeddings")]
        return sorted(s for s in steps if s is not None and self._store.part_files(snapshot_dir(s)))

    def _snapshot_table(self, step: int | None) -> pa.Table | None:
        steps = self.snapshot_steps()
        if step is None:
            if not steps:
                return None
            step = steps[-1]
        elif step not in steps:
            raise KeyError(f"run {self.name!r} has no embedding snapshot at step {step}; it has {steps}")
        dim = self.meta.get("dim")
        # The run's dim makes a part of another dim a skipped, reported part, not a ragged snapshot.
        expected = schema.embeddings_schema(dim) if isinstance(dim, int) and dim > 0 else None
        return self._read_parts(snapshot_dir(step), expected)

    def embeddings(self, step: int | None = None) -> pd.DataFrame:
        """One snapshot (latest when ``step`` is None): ``step, sample_id, modality, label, meta, vector``.

        ``meta`` is the text stored for a row (None when none; see :func:`cldiag.schema.encode_meta`).
        """
        table = self._snapshot_table(step)
        if table is None:
            return _empty("embeddings")
        df = table.select(_EMBEDDING_COLUMNS).to_pandas()
        df["modality"] = df["modality"].astype(object)
        df["meta"] = pd.Series(table["meta"].to_pylist(), index=df.index, dtype=object)  # None, not NaN
        df["label"] = df["label"].astype("Int64")  # nullable: unlabeled rows stay <NA>, not NaN floats
        return df

    def embedding_matrix(
        self, step: int | None = None, *, max_rows: int | None = None, seed: int = 0
    ) -> tuple[np.ndarray, pd.DataFrame]:
        """A snapshot as ``(N×d float32 array, DataFrame of step, sample_id, modality, label, meta)``.

        Args:
            step: the snapshot's step (None: the latest).
            max_rows: read at most this many rows, a uniform sample (fixed by ``seed``) in file order,
                streamed batch by batch so a huge snapshot is never held whole (see
                :meth:`snapshot_rows` for the full count). None reads every row.
            seed: the sample's seed.
        """
        if max_rows is not None:
            if max_rows < 1:
                raise ValueError(f"max_rows must be >= 1, got {max_rows}")
            sampled = self._sampled_snapshot(step, max_rows, seed)
            if sampled is not None:
                return sampled
        table = self._snapshot_table(step)
        if table is None:
            return np.zeros((0, 0), np.float32), _empty("embeddings").drop(columns=["vector"])
        return self._split_snapshot(table)

    @staticmethod
    def _split_snapshot(table: pa.Table) -> tuple[np.ndarray, pd.DataFrame]:
        vec = table["vector"].combine_chunks()
        dim = vec.type.list_size
        matrix = vec.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        info = table.select(_EMBEDDING_COLUMNS[:-1]).to_pandas()
        info["modality"] = info["modality"].astype(object)
        info["meta"] = pd.Series(table["meta"].to_pylist(), index=info.index, dtype=object)  # None, not NaN
        info["label"] = info["label"].astype("Int64")
        return matrix.reshape(-1, dim), info

    def _snapshot_parts(self, step: int | None) -> list[tuple[str, int]]:
        """``(path, rows)`` of the snapshot's parts, from their footers (merged originals left out)."""
        steps = self.snapshot_steps()
        if step is None:
            if not steps:
                return []
            step = steps[-1]
        elif step not in steps:
            raise KeyError(f"run {self.name!r} has no embedding snapshot at step {step}; it has {steps}")
        relpath = snapshot_dir(step)
        if not self._confined(self._store.join(relpath)):
            return []
        parts, hidden = [], set()
        for path in self._store.part_files(relpath):
            if self._real_root and os.path.islink(path) and not self._confined(path):
                continue
            try:
                footer = self._store.parquet_file(path)
                hidden |= replaced_parts(footer.schema_arrow.empty_table())
                parts.append((path, footer.metadata.num_rows))
            except FileNotFoundError:
                continue
            except Exception as exc:  # noqa: BLE001 - an unreadable footer: skip the part and say so
                self._note(f"skipped unreadable part {path}: {type(exc).__name__}: {exc}")
        return [(p, n) for p, n in parts if posixpath.basename(p) not in hidden]

    def snapshot_rows(self, step: int | None = None) -> int:
        """Rows of a snapshot, counted from the part files' footers (nothing else is read)."""
        return sum(n for _, n in self._snapshot_parts(step))

    def _sampled_snapshot(
        self, step: int | None, max_rows: int, seed: int
    ) -> tuple[np.ndarray, pd.DataFrame] | None:
        """``max_rows`` rows of a larger snapshot, read batch by batch; None when it is small enough."""
        parts = self._snapshot_parts(step)
        total = sum(n for _, n in parts)
        if total <= max_rows:
            return None
        pick = np.sort(np.random.default_rng(seed).choice(total, size=max_rows, replace=False))
        dim = self.meta.get("dim")
        expected = schema.embeddings_schema(dim) if isinstance(dim, int) and dim > 0 else None
        pieces, offset = [], 0
        for path, rows in parts:
            local = pick[(pick >= offset) & (pick < offset + rows)] - offset
            offset += rows
            if not local.size:
                continue
            try:
                pieces.extend(self._take_rows(path, local, expected))
            except Exception as exc:  # noqa: BLE001 - as for whole reads: skip the part and say so
                self._note(f"skipped part {path}: {type(exc).__name__}: {exc}")
        if not pieces:
            return np.zeros((0, 0), np.float32), _empty("embeddings").drop(columns=["vector"])
        return self._split_snapshot(pa.concat_tables(pieces))

    def _take_rows(self, path: str, rows: np.ndarray, expected: pa.Schema | None) -> list[pa.Table]:
        footer = self._store.parquet_file(path)
        present = set(footer.schema_arrow.names)
        columns = [c for c in _EMBEDDING_COLUMNS if c in present]  # older parts lack the optional ones
        out, start = [], 0
        for batch in footer.iter_batches(batch_size=8192, columns=columns):
            end = start + batch.num_rows
            inside = rows[(rows >= start) & (rows < end)] - start
            if inside.size:
                table = _fill_optional(pa.Table.from_batches([batch.take(pa.array(inside))]), expected)
                out.append(table.select(expected.names).cast(expected) if expected is not None else table)
            start = end
        return out

    def version_token(self) -> str:
        """A string that changes whenever a part file or meta.json is added or replaced (a cache key)."""
        h = hashlib.sha1(usedforsecurity=False)
        paths = [*self._store.iter_all_parts(), self._store.join(schema.META_FILE)]
        for path in paths:
            try:
                size, mtime = self._store.signature(path)
            except FileNotFoundError:
                continue
            h.update(f"{path}|{size}|{mtime}\n".encode())
        return h.hexdigest()

    def last_write_time(self) -> float | None:
        """Modification time (epoch seconds) of the newest part file of the tables; None without parts.

        Part names start with the writer's sequence number, so the last name of each table directory is
        its newest part: one stat per table rather than one per part (a request each on object stores).
        """
        newest: float | None = None
        for table in schema.SCHEMAS:
            parts = self._store.part_files(table)
            if not parts:
                continue
            try:
                mtime = self._store.signature(parts[-1])[1]
            except FileNotFoundError:  # compacted away between listing and stat
                continue
            newest = mtime if newest is None else max(newest, mtime)
        return newest

    def last_step(self) -> int | None:
        """The largest step in any table (None for an empty run)."""
        best: int | None = None
        for name in ("scalars", "histograms", "spectra", "temperature"):
            table = self._table(name)
            if table is not None and table.num_rows:
                value = pc.max(table["step"]).as_py()
                best = value if best is None else max(best, value)
        steps = self.snapshot_steps()
        if steps:
            best = steps[-1] if best is None else max(best, steps[-1])
        return best


def _load_meta(store: RunStore) -> dict[str, Any]:
    try:
        meta = store.read_meta()
    except FileNotFoundError:
        raise FileNotFoundError(f"{store.uri!r} is not a cldiag run: it has no meta.json") from None
    version = meta.get("schema_version")
    if version not in schema.READABLE_SCHEMA_VERSIONS:
        raise schema.SchemaVersionError(
            f"{store.uri!r} was written with cldiag schema version {version!r}; this cldiag reads "
            f"versions {list(schema.READABLE_SCHEMA_VERSIONS)}. Use a matching cldiag version to read it.",
        )
    return meta


def read_run(path: str | os.PathLike[str], *, storage_options: dict[str, Any] | None = None) -> Run:
    """Open a run directory (local path or fsspec URI such as ``s3://bucket/runs/name``).

    Raises:
        FileNotFoundError: there is no ``meta.json`` at ``path``.
        SchemaVersionError: the run was written by an incompatible schema version.
        ValueError: ``meta.json`` is not valid JSON.
    """
    store = RunStore(path, storage_options)
    return Run(store, _load_meta(store))


def list_runs(
    root: str | os.PathLike[str],
    *,
    storage_options: dict[str, Any] | None = None,
    problems: list[str] | None = None,
) -> list[Run]:
    """The runs directly under ``root`` (and ``root`` itself if it is a run), sorted by name.

    Directories that are not runs are ignored; runs that cannot be opened (bad meta.json: not a regular
    file, too large, malformed or nested too deeply; other schema version) are skipped, each with a
    message appended to ``problems`` when a list is given, and every other run is still returned.
    Symbolic links that resolve outside ``root`` are skipped too, so a dashboard confined to ``root`` stays
    confined.
    """
    store = RunStore(root, storage_options)
    runs: list[Run] = []
    candidates: list[str] = []
    if store.exists(schema.META_FILE):
        candidates.append(store.uri)
    real_root = os.path.realpath(store.root) if store.is_local else None
    for name in store.listdir():
        if name.startswith("."):
            continue
        child = store.join(name)
        if store.is_local:
            if not os.path.isdir(child):
                continue
            real = os.path.realpath(child)
            if real_root is not None and os.path.commonpath([real, real_root]) != real_root:
                if problems is not None:
                    problems.append(f"skipped {child}: it links outside the run root")
                continue
            uri = child
        else:
            uri = f"{store.uri.rstrip('/')}/{name}"
        child_store = RunStore(uri, storage_options)
        if not child_store.exists(schema.META_FILE):
            if problems is not None and any(child_store.exists(t) for t in schema.TABLES):
                problems.append(f"skipped {uri}: it holds run tables but no meta.json")
            continue
        candidates.append(uri)
    for uri in candidates:
        try:
            runs.append(read_run(uri, storage_options=storage_options))
        except (OSError, ValueError) as exc:
            if problems is not None:
                problems.append(f"skipped {uri}: {exc}")
        except Exception as exc:  # noqa: BLE001 - one hostile run must not hide every other run
            if problems is not None:
                problems.append(f"skipped {uri}: {type(exc).__name__}: {exc}")
    return sorted(runs, key=lambda r: r.name)


def downsample(
    df: pd.DataFrame,
    x: str = "step",
    y: str = "value",
    max_points: int = 2000,
    by: Sequence[str] = ("metric",),
) -> pd.DataFrame:
    """Reduce each series to at most about ``max_points`` rows, keeping its shape (min/max per bucket).

    Each series (a group of ``by``) is cut into ``max_points // 2`` buckets of consecutive ``x``; from each
    bucket the rows holding the minimum and maximum ``y`` are kept (plus the first and last row), so
    spikes and collapses stay visible — nothing is dropped by plain striding. Series already short enough
    are returned unchanged.
    """
    if max_points < 4:
        raise ValueError(f"max_points must be >= 4, got {max_points}")
    by = [c for c in by if c in df.columns]
    groups = df.groupby(by, sort=False, observed=True) if by else [(None, df)]
    out = []
    for _, g in groups:
        if len(g) <= max_points:
            out.append(g)
            continue
        g = g.sort_values(x, kind="stable")
        n_buckets = max_points // 2
        bucket = (np.arange(len(g)) * n_buckets // len(g)).astype(np.int64)
        vals = g[y].to_numpy(dtype=np.float64)
        finite = np.flatnonzero(np.isfinite(vals))
        keep = [np.array([0, len(g) - 1]), np.flatnonzero(~np.isfinite(vals))[:max_points]]
        if finite.size:
            b, v = bucket[finite], vals[finite]
            order = np.lexsort((v, b))
            b_sorted = b[order]
            starts = np.flatnonzero(np.r_[True, b_sorted[1:] != b_sorted[:-1]])
            ends = np.r_[starts[1:] - 1, len(b_sorted) - 1]
            keep += [finite[order[starts]], finite[order[ends]]]
        keep = np.unique(np.concatenate(keep))
        out.append(g.iloc[keep])
    if not out:
        return df.iloc[0:0]
    return pd.concat(out, ignore_index=True)
