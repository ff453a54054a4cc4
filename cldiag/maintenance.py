"""Run maintenance: :func:`compact_run` merges the small part files of a run into one part per table.

Every flush of a :class:`~cldiag.Monitor` adds one small part file per table, so a long run holds
thousands of them, and listing and opening them dominates read time. Compaction merges the parts of each
table directory into one, without ever letting a reader lose or double-count a row:

1. read every part of the directory (unreadable or foreign parts are left alone and reported);
2. write the merged part atomically (temp name + rename, like every part), naming the parts it holds in
   its parquet metadata (``cldiag.replaces``);
3. delete the originals.

Between steps 2 and 3 a reader lists both the merged part and its originals; :mod:`cldiag.reader` hides
every part that another part declares it replaces, so it counts each row once. A reader that lists the
directory before step 2 and finds a part gone in step 3 lists again and then sees the merged part. A
compaction killed between 2 and 3 leaves a consistent run; the next compaction deletes the leftovers.

Compaction is safe while a Monitor is still writing the run (it only adds new parts, which compaction does
not touch), but two compactions of the same run must not overlap: a local run is locked with a
``.compact.lock`` file; for object stores the caller must serialize compactions.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from cldiag import schema
from cldiag.store import RunStore, RunStoreError

__all__ = ["REPLACES_META_KEY", "CompactResult", "compact_run", "replaced_parts"]

REPLACES_META_KEY = b"cldiag.replaces"
"""Parquet schema-metadata key of a merged part: a JSON list of the part names (same directory) it holds."""

LOCK_FILE = ".compact.lock"
_TEMP_MAX_AGE_SECS = 3600.0


def replaced_parts(table: pa.Table) -> frozenset[str]:
    """Names of the parts (same directory) whose rows the part ``table`` was read from already holds.

    Args:
        table: a part file as read by pyarrow, schema metadata included.

    Returns:
        The names listed under :data:`REPLACES_META_KEY`; empty for a part written by a Monitor or for
        metadata that is not a JSON list of strings.
    """
    raw = (table.schema.metadata or {}).get(REPLACES_META_KEY)
    if raw is None:
        return frozenset()
    try:
        names = json.loads(raw)
    except ValueError:
        return frozenset()
    if not isinstance(names, list):
        return frozenset()
    return frozenset(n for n in names if isinstance(n, str))


@dataclass(frozen=True)
class CompactResult:
    """What :func:`compact_run` did.

    Attributes:
        path: the run that was compacted.
        parts_before: part files in the run before compaction (all tables, snapshots included).
        parts_after: part files after compaction.
        rows: rows written into merged parts (equal to the rows of the parts they replaced).
        bytes_before: total size of the part files before compaction.
        bytes_after: total size after compaction.
        problems: parts left untouched and why (unreadable, or a schema other than the table's).
        temp_files_removed: temporary files of killed writers deleted (local runs; older than an hour).
    """

    path: str
    parts_before: int
    parts_after: int
    rows: int
    bytes_before: int
    bytes_after: int
    problems: tuple[str, ...] = ()
    temp_files_removed: int = 0


def compact_run(
    path: str | os.PathLike[str],
    *,
    storage_options: dict[str, Any] | None = None,
    tables: Sequence[str] | None = None,
) -> CompactResult:
    """Merge the part files of each table of a run into one part, atomically, keeping every row once.

    Safe while a Monitor writes the run and while readers poll it (see the module docstring). Parts that
    cannot be read, or whose columns differ from the table's schema, are left in place and reported in
    :attr:`CompactResult.problems`. Running it again on a compacted run changes nothing.

    Args:
        path: the run directory (local path or fsspec URI).
        storage_options: fsspec options for remote URIs.
        tables: compact only these table directories (``"scalars"``, ``"histograms"``, ``"spectra"``,
            ``"temperature"``, or a snapshot's ``"embeddings/step=N"``); None = every one. Part counts
            and sizes in the result are then those of these directories. The Monitor's writer uses it
            to compact a table that holds too many parts while the run is written.

    Returns:
        A :class:`CompactResult` with part counts, sizes and the parts left alone.

    Raises:
        FileNotFoundError: ``path`` holds no ``meta.json``.
        SchemaVersionError: the run was written by another schema version (its parts are left alone).
        ValueError: ``meta.json`` is not valid JSON.
        RunStoreError: another compaction of this run is running (local runs).
        OSError: writing or deleting a part failed; the run stays consistent, and a later compaction
            finishes the job.

    Example:
        >>> import tempfile, torch
        >>> from cldiag import Monitor, read_run
        >>> path = tempfile.mkdtemp() + "/run"
        >>> cadence = dict(pairwise_every=0, spectrum_every=0, curves_every=0, snapshot_every=0)
        >>> with Monitor(path, flush_every=1, compact_on_close=False, **cadence) as mon:
        ...     for step in range(3):
        ...         mon.log(step, torch.randn(8, 4), torch.randn(8, 4))
        >>> result = compact_run(path)
        >>> result.parts_before, result.parts_after
        (3, 1)
    """
    store = _run_store(path, storage_options)
    problems: list[str] = []
    dirs = list(_table_dirs(store)) if tables is None else [_table_dir(t) for t in tables]
    before = _sizes(store, dirs)
    rows = removed = 0
    with _lock(store):
        for relpath, expected in dirs:
            rows += _compact_dir(store, relpath, expected, problems)
            removed += _remove_stale_temp_files(store, relpath)
    after = _sizes(store, dirs)
    return CompactResult(
        path=store.uri,
        parts_before=len(before),
        parts_after=len(after),
        rows=rows,
        bytes_before=sum(before.values()),
        bytes_after=sum(after.values()),
        problems=tuple(problems),
        temp_files_removed=removed,
    )


def _table_dirs(store: RunStore) -> Iterator[tuple[str, pa.Schema | None]]:
    """Each directory that holds parts, with its schema (None for snapshots: the dim varies by run)."""
    for table in schema.TABLES:
        if table == "embeddings":
            for sub in store.listdir(table):
                yield posixpath.join(table, sub), None
        else:
            yield table, schema.SCHEMAS[table]


def _run_store(path: str | os.PathLike[str], storage_options: dict[str, Any] | None) -> RunStore:
    """The store of the run at ``path``, after checking it is a run of this schema version."""
    store = RunStore(path, storage_options)
    if not store.exists(schema.META_FILE):
        raise FileNotFoundError(f"{store.uri!r} is not a cldiag run: it has no meta.json")
    version = store.read_meta().get("schema_version")
    if version not in schema.READABLE_SCHEMA_VERSIONS:
        raise schema.SchemaVersionError(
            f"{store.uri!r} was written with cldiag schema version {version!r}; this cldiag compacts "
            f"versions {list(schema.READABLE_SCHEMA_VERSIONS)} only",
        )
    return store


def _table_dir(table: str) -> tuple[str, pa.Schema | None]:
    """``table`` (a table name or ``embeddings/step=N``) with its schema, or a ValueError naming it."""
    if table in schema.SCHEMAS and table != "embeddings":
        return table, schema.SCHEMAS[table]
    head, _, sub = table.partition("/")
    if head == "embeddings" and sub.startswith("step=") and "/" not in sub:
        return table, None
    raise ValueError(f"tables: {table!r} is not a table of a run (scalars, histograms, spectra, ...)")


def _sizes(store: RunStore, dirs: list[tuple[str, pa.Schema | None]]) -> dict[str, int]:
    sizes = {}
    for part in (p for relpath, _ in dirs for p in store.part_files(relpath)):
        with contextlib.suppress(FileNotFoundError):  # a concurrent compaction or clear removed it
            sizes[part] = store.signature(part)[0]
    return sizes


def _compact_dir(store: RunStore, relpath: str, expected: pa.Schema | None, problems: list[str]) -> int:
    """Merge the parts of one directory; returns the number of rows written into the merged part."""
    tables: dict[str, pa.Table] = {}
    hidden: set[str] = set()
    if _links_out(store, store.join(relpath)):
        problems.append(f"left {store.join(relpath)} alone: it links outside the run directory")
        return 0
    paths = {posixpath.basename(p): p for p in store.part_files(relpath)}
    for name, path in paths.items():
        if store.is_local and os.path.islink(path):  # never copy linked data into the run, nor delete it
            problems.append(f"left linked part {path} in place")
            continue
        try:
            table = store.read_table(path)
        except FileNotFoundError:
            continue
        except Exception as exc:  # noqa: BLE001 - any parse failure: leave the part alone and say so
            problems.append(f"left unreadable part {path} in place: {type(exc).__name__}: {exc}")
            continue
        hidden |= replaced_parts(table)
        tables[name] = table.replace_schema_metadata(None)

    # Leftovers of a compaction that stopped before deleting its originals: their rows are in a
    # readable merged part already.
    for name in sorted(hidden & tables.keys()):
        _remove(store, paths[name])
        del tables[name]

    reference = expected if expected is not None else next(iter(tables.values()), pa.schema([])).schema
    live = {}
    for name, table in tables.items():
        if table.schema.equals(reference):
            live[name] = table
        else:
            problems.append(
                f"left part {paths[name]} in place: its columns {table.schema.names} "
                f"({_types(table.schema)}) differ from the table's ({_types(reference)})",
            )
    if len(live) < 2:
        return 0

    names = sorted(live)
    merged = pa.concat_tables([live[n] for n in names]).sort_by("step")
    merged = merged.replace_schema_metadata({REPLACES_META_KEY: json.dumps(names).encode("utf-8")})
    store.write_part(relpath, merged, _next_seq(names))
    for name in names:
        _remove(store, paths[name])
    return merged.num_rows


def _remove_stale_temp_files(store: RunStore, relpath: str) -> int:
    """Delete the hidden temp files a writer killed mid-write left behind (it never renames them).

    A live writer's temp file exists for milliseconds; one older than an hour is an orphan.
    """
    if not store.is_local:
        return 0  # object stores never hold partial uploads as files
    removed = 0
    now = time.time()
    for name in store.listdir(relpath):
        path = store.join(relpath, name)
        if not (name.startswith(".") and name.endswith(".tmp")) or os.path.islink(path):
            continue
        with contextlib.suppress(FileNotFoundError):
            if now - os.path.getmtime(path) > _TEMP_MAX_AGE_SECS:
                os.unlink(path)
                removed += 1
    return removed


def _links_out(store: RunStore, path: str) -> bool:
    if not store.is_local:
        return False
    root = os.path.realpath(store.root)
    return os.path.commonpath([os.path.realpath(path), root]) != root


def _types(s: pa.Schema) -> str:
    return ", ".join(str(t) for t in s.types)


def _next_seq(names: list[str]) -> int:
    """A sequence number above every merged part's, so the merged part sorts after its originals."""
    seqs = [0]
    for name in names:
        with contextlib.suppress(ValueError, IndexError):
            seqs.append(int(name[len(schema.PART_PREFIX) :].split("-")[0]))
    return max(seqs) + 1


def _remove(store: RunStore, path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        store.remove(path)


@contextlib.contextmanager
def _lock(store: RunStore) -> Iterator[None]:
    """Hold ``.compact.lock`` in a local run for the duration; a lock left by a dead process is taken over."""
    if not store.is_local:
        yield
        return
    lock = store.join(LOCK_FILE)
    owner = f"{socket.gethostname()} {os.getpid()}"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if not _stale_lock(lock):
                raise RunStoreError(
                    f"another compaction of {store.uri!r} is running (lock file {lock}); "
                    "delete the lock file if no compaction is running",
                ) from None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock)
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(owner)
        break
    else:
        raise RunStoreError(f"cannot take the compaction lock {lock}")
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)


def _stale_lock(lock: str) -> bool:
    """Whether a lock file was left by a process of this host that no longer runs."""
    try:
        with open(lock, encoding="utf-8") as fh:
            host, pid = fh.read().split()
        if host != socket.gethostname():
            return False
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (OSError, ValueError):
        return False
    return False
