"""The Monitor's mechanism: open a run directory and write flushes to it from a background thread.

:func:`open_run` creates, resumes or overwrites a run directory (refusing one that another live writer
holds). :class:`RunWriter` owns everything that touches it afterwards: a queue of
:class:`~cldiag.host_tables.FlushJob` s, the writer thread that turns them into part files, retries after
transient errors (full disk, lost mount), the ``meta.json`` heartbeat, and compaction at close. It decides
nothing about *what* is logged or *when*: that is :class:`~cldiag.monitor.core.Monitor`'s policy.
"""

from __future__ import annotations

import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from cldiag import __version__, host_tables, schema, summary
from cldiag.host_tables import FlushJob
from cldiag.monitor.report import Reporter
from cldiag.store import IfExists, RunStore, RunStoreError, snapshot_dir

__all__ = ["OpenedRun", "RunWriter", "open_run"]

MAX_RETRY_JOBS = 100
"""Flushes kept for a retry after write errors; newer ones are dropped beyond it."""

_open_runs: set[tuple[str, str]] = set()  # runs an open RunWriter of this process writes
_open_runs_lock = threading.Lock()


@dataclass
class OpenedRun:
    """A run directory ready to be written.

    Attributes:
        store: the run's store.
        meta: its ``meta.json`` as it was just written (status ``running``).
        resume_after: the last step already logged when the run was resumed (None for a new run).
        seq: the number of part files already there (new parts are numbered after them).
        resumed: whether an existing run was reopened (``meta`` then holds its dim and modalities).
    """

    store: RunStore
    meta: dict[str, Any]
    resume_after: int | None = None
    seq: int = 0
    resumed: bool = False


def open_run(
    run_dir: str | os.PathLike[str],
    *,
    config: Mapping[str, Any] | None,
    name: str | None,
    if_exists: IfExists,
    storage_options: dict[str, Any] | None,
    modalities: tuple[str, str],
    two_modality: bool,
    heartbeat_secs: float,
) -> OpenedRun:
    """Create, resume or overwrite the run at ``run_dir`` and mark it running.

    Raises:
        FileExistsError: the run exists and ``if_exists="error"``, or another live writer (a process or
            an open Monitor of this one) still writes it.
        RunStoreError: the directory cannot be opened or written.
    """
    try:
        store = RunStore(run_dir, storage_options)
        exists = store.exists(schema.META_FILE)
    except Exception as exc:  # remote filesystems raise their own types (botocore, aiohttp)
        raise RunStoreError(f"cannot open run directory {os.fspath(run_dir)!r}: {exc}") from exc
    if exists and if_exists == "error":
        raise FileExistsError(
            f"{store.uri!r} already holds a cldiag run. Pass if_exists='resume' to append to it or "
            "if_exists='overwrite' to replace it, or choose another run_dir.",
        )
    _refuse_same_process_writer(store)
    try:
        if exists and if_exists == "overwrite":
            # Nothing is deleted before the live-writer check: a run another process still writes
            # would lose part of its files and then fail ("Directory not empty").
            _refuse_live_writer(store.uri, _meta_or_empty(store))
            store.clear()
            exists = False
        if exists:
            opened = _resume(store, config, storage_options)
        else:
            store.makedirs()
            meta = schema.new_meta(
                name=name or os.path.basename(store.root.rstrip("/")),
                config=dict(config or {}),
                modalities=modalities,
                two_modality=two_modality,
                dim=None,
                cldiag_version=__version__,
                torch_version=torch.__version__,
            )
            meta["pid"] = os.getpid()
            opened = OpenedRun(store, meta)
        opened.meta["heartbeat_secs"] = heartbeat_secs
        store.write_meta(opened.meta)
    except (schema.SchemaVersionError, RunStoreError, FileExistsError):
        raise
    except Exception as exc:  # remote filesystems raise their own types (botocore, aiohttp)
        raise RunStoreError(f"cannot write run directory {store.uri!r}: {exc}") from exc
    return opened


def _resume(
    store: RunStore, config: Mapping[str, Any] | None, storage_options: dict[str, Any] | None
) -> OpenedRun:
    """The existing run at ``store``, reopened for appending after its last logged step."""
    from cldiag.reader import read_run

    previous = read_run(store.uri, storage_options=storage_options)
    _refuse_live_writer(store.uri, previous.meta)
    meta = dict(previous.meta)
    meta.update(host=socket.gethostname(), pid=os.getpid())
    resume_after = previous.last_step()
    meta["status"] = schema.STATUS_RUNNING
    meta["schema_version"] = schema.SCHEMA_VERSION  # new parts are written in this version
    meta.setdefault("resumed", []).append({"at": schema.now_iso(), "after_step": resume_after})
    if config:
        meta["config"] = {**meta.get("config", {}), **dict(config)}
    return OpenedRun(store, meta, resume_after, sum(1 for _ in store.iter_all_parts()), resumed=True)


def _refuse_live_writer(uri: str, meta: Mapping[str, Any]) -> None:
    """Refuse to resume a run that another live process is still writing (two writers would interleave)."""
    if meta.get("status") != schema.STATUS_RUNNING:
        return
    pid, host = meta.get("pid"), meta.get("host")
    if host == socket.gethostname() and isinstance(pid, int):
        if pid == os.getpid():
            return  # this process re-opens its own run (e.g. a Lightning restore in the same process)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return  # the writer died (crash, SIGKILL): resuming is what the user wants
        except PermissionError:
            pass  # alive, owned by another user
        raise FileExistsError(
            f"{uri!r} is still being written by process {pid} on this host; stop it before resuming, or "
            "write to another run_dir",
        )
    interval = float(meta.get("heartbeat_secs") or 30.0)
    age = schema.heartbeat_age(dict(meta))
    if age is not None and age < 3 * interval:
        raise FileExistsError(
            f"{uri!r} is being written on host {host!r} (heartbeat {age:.0f} s ago); resume it once that "
            f"writer has stopped (no heartbeat for {3 * interval:.0f} s), or write to another run_dir",
        )


def _refuse_same_process_writer(store: RunStore) -> None:
    """Refuse a run that another open Monitor of this process writes (the pid check cannot see it)."""
    with _open_runs_lock:
        taken = _run_key(store) in _open_runs
    if taken:
        raise FileExistsError(
            f"{store.uri!r} is still being written by another Monitor in this process; close() that "
            "Monitor before resuming or overwriting the run, or write to another run_dir",
        )


def _run_key(store: RunStore) -> tuple[str, str]:
    """What identifies a run directory: its real path locally (links and ``..`` resolved), else its URI."""
    if store.is_local:
        return "file", os.path.realpath(store.root)
    protocol = store.fs.protocol
    return str(protocol if isinstance(protocol, str) else protocol[0]), store.root.rstrip("/")


def _meta_or_empty(store: RunStore) -> dict[str, Any]:
    """``meta.json`` of a run about to be overwritten; an unreadable one names no writer to wait for."""
    try:
        return store.read_meta()
    except (OSError, ValueError):
        return {}


class RunWriter:
    """Writes a run's flushes from a background thread; owns its queue, retries, heartbeat and compaction.

    Args:
        opened: the run, as :func:`open_run` returned it. ``opened.meta`` is shared with the caller, who
            may update it (modalities found in the first batch); the writer writes it.
        reporter: where errors are reported (once each).
        heartbeat_secs: how often ``meta.json``'s heartbeat is refreshed while nothing is written.
        storage_options: fsspec options, for compaction.
        compact_on_close: merge each table's parts into one at :meth:`compact_at_close`.
        compact_parts: compact a table in the background as soon as it holds more than this many parts
            (after the flush that passed it), so a long live run never has thousands; 0 = only at close.
        cpu_clock: the clock of this thread's CPU time (injected in tests), summed in
            :attr:`cpu_seconds`.
    """

    def __init__(
        self,
        opened: OpenedRun,
        *,
        reporter: Reporter,
        heartbeat_secs: float,
        storage_options: dict[str, Any] | None = None,
        compact_on_close: bool = True,
        compact_parts: int = 0,
        cpu_clock: Callable[[], float] = time.thread_time,
    ) -> None:
        self.store = opened.store
        self.meta = opened.meta
        self._seq = opened.seq
        self._reporter = reporter
        self._heartbeat_secs = heartbeat_secs
        self._storage_options = storage_options
        self._compact_on_close = compact_on_close
        self.run_gone = False
        """The run directory was deleted under us: nothing more is written."""
        self.error: Exception | None = None
        """The first write error not yet raised in the training thread (strict mode raises it)."""
        self.summary: dict[str, Any] | None = None  # summary.json as last written (cldiag.summary)
        self._compact_parts = compact_parts
        self._parts = {t: len(self.store.part_files(t)) if opened.resumed else 0 for t in host_tables.TABLES}
        self.compactions = 0
        """Rolling compactions done so far (tables compacted while the run was written)."""
        self._cpu_clock = cpu_clock
        self.cpu_seconds = 0.0
        """CPU time this writer's thread spent writing (the Monitor charges it to its overhead budget)."""
        self._failed: list[FlushJob] = []  # jobs hit by a transient error, oldest first
        self._queue: queue.Queue[FlushJob | None] = queue.Queue()
        self._key = _run_key(self.store)
        with _open_runs_lock:
            _open_runs.add(self._key)
        self._start()

    @property
    def uri(self) -> str:
        """The run directory's URI."""
        return self.store.uri

    def release(self) -> None:
        """Let another Monitor of this process open the run (this one is closing)."""
        with _open_runs_lock:
            _open_runs.discard(self._key)

    # ---------------------------------------------------------------------------------------------------
    # the thread
    def _start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="cldiag-writer", daemon=True)
        self._thread.start()

    def ensure_alive(self) -> None:
        """Restart the writer thread if it died; the flush it died on stays queued for a retry."""
        if not self._thread.is_alive():
            self._reporter.report("the writer thread stopped unexpectedly; restarted it")
            self._start()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the writer thread to end (after :meth:`finish` queued the end)."""
        self._thread.join(timeout)

    def submit(self, job: FlushJob) -> None:
        """Queue a flush for writing."""
        self.ensure_alive()
        self._queue.put(job)

    def wait(self) -> None:
        """``queue.join()`` that cannot hang on a writer thread that dies while we wait."""
        q = self._queue
        with q.all_tasks_done:
            while q.unfinished_tasks:
                q.all_tasks_done.wait(timeout=0.5)
                if q.unfinished_tasks and not self._thread.is_alive():
                    self.ensure_alive()

    def take_error(self) -> Exception | None:
        """The pending write error, cleared (to raise it once in the training thread)."""
        exc, self.error = self.error, None
        return exc

    def _loop(self) -> None:
        failed = self._failed  # survives this thread: a restarted writer retries them
        while True:
            try:
                job = self._queue.get(timeout=self._heartbeat_secs)
            except queue.Empty:
                self._write_meta_safely()
                continue
            cpu = self._cpu_clock()
            try:
                if job is not None:
                    failed.append(job)
                while failed:
                    self._write_job(failed[0])
                    failed.pop(0)
            except OSError as exc:  # full disk, lost mount, store down: transient, retried at the next flush
                self._on_transient_error(exc)
            except Exception as exc:  # noqa: BLE001 - a bug must not kill training; retrying cannot help
                self.error = self.error or exc
                self._reporter.report(
                    f"cannot write diagnostics ({type(exc).__name__}: {exc}); that flush is dropped"
                )
                failed.pop(0)
            finally:
                self.cpu_seconds += self._cpu_clock() - cpu
                self._queue.task_done()
            if job is None:
                if failed:
                    self._reporter.report(
                        f"closing with {len(failed)} flushes unwritten after repeated write errors"
                    )
                return

    def _on_transient_error(self, exc: OSError) -> None:
        self.error = self.error or exc
        self._reporter.report(
            f"writing to {self.uri} failed: {type(exc).__name__}: {exc}; will retry",
            key=f"write {type(exc).__name__} {exc.errno}",
        )
        if len(self._failed) > MAX_RETRY_JOBS:
            self._failed.pop()
            self._reporter.report(f"{MAX_RETRY_JOBS} flushes wait for a retry; newer diagnostics are dropped")

    # ---------------------------------------------------------------------------------------------------
    # writing
    def run_dir_intact(self) -> bool:
        """Whether the run is still on disk; the first time it is not, say so loudly and stop writing.

        A run directory deleted while the Monitor writes it (by hand, by a clean-up script) is not
        recreated: parts written after the deletion would make a run that seems to start mid-training.
        """
        if self.run_gone:
            return False
        if self.store.exists(schema.META_FILE):
            return True
        self.run_gone = True
        exc = RunStoreError(
            f"the run directory {self.uri} was deleted while this Monitor was writing it (its "
            "meta.json is gone); cldiag stops writing this run instead of recreating a partial one. "
            "Open a new Monitor to keep logging",
        )
        self.error = self.error or exc
        self._reporter.report(str(exc), key="run directory deleted")
        return False

    def _write_meta_safely(self) -> None:
        try:
            if not self.run_dir_intact():
                return
            self.meta["heartbeat"] = schema.now_iso()
            self.store.write_meta(self.meta)
        except Exception as exc:  # noqa: BLE001 - heartbeat failures are reported, never raised
            self._reporter.report(f"cannot update meta.json: {exc}", key=f"meta {type(exc).__name__}")

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _write_job(self, job: FlushJob) -> None:
        store = self.store
        if not self.run_dir_intact():
            return  # the job is dropped: its run is gone
        # Each table's part is forgotten once written, so a retry after a later failure in the same job
        # never writes a part twice.
        for table in host_tables.TABLES:
            rows = job.rows(table)
            if rows is not None:
                store.write_part(table, host_tables.build(table, rows), self._next_seq())
                self._parts[table] += 1
                job.written(table)
        if job.snapshots is not None:
            for step, snapshot in host_tables.snapshot_tables(job.snapshots).items():
                store.write_part(snapshot_dir(step), snapshot, self._next_seq())
                job.snapshots = [snap for snap in job.snapshots if snap[0] != step]
            job.snapshots = None
        if job.last_step is not None:
            last = self.meta.get("last_step")
            self.meta["last_step"] = job.last_step if last is None else max(last, job.last_step)
        if job.dim is not None:
            self.meta["dim"] = job.dim
        self.meta["heartbeat"] = schema.now_iso()
        store.write_meta(self.meta)
        self._after_flush(job)

    def _after_flush(self, job: FlushJob) -> None:
        """The one place that runs after a flush is on disk (its parts and ``meta.json`` written).

        Called in the writer thread; an exception here is handled like a write error of the flush.
        """
        self.summary = summary.after_flush(self.store, self.meta, self.summary)  # before compaction
        self._roll_compaction()

    def _roll_compaction(self) -> None:
        """Compact each table that holds more than ``compact_parts`` parts; a failure is reported.

        Through :func:`cldiag.maintenance.compact_run`, so readers never see a row twice or miss one.
        """
        crowded = [t for t, n in self._parts.items() if self._compact_parts and n > self._compact_parts]
        if not crowded:
            return
        from cldiag.maintenance import compact_run

        try:
            result = compact_run(self.store.uri, storage_options=self._storage_options, tables=crowded)
        except Exception as exc:  # noqa: BLE001 - the run is whole without it; the next flush tries again
            self._reporter.report(
                f"could not compact the run while writing it ({type(exc).__name__}: {exc})",
                key=f"rolling compaction {type(exc).__name__}",
            )
            return
        self.compactions += 1
        for table in crowded:
            self._parts[table] = len(self.store.part_files(table))
        self._seq += 1  # a merged part takes the seq after its newest original: new parts sort after it
        if result.problems:
            self._reporter.report(
                f"compaction left parts alone: {result.problems[0]}", key="compaction problems"
            )

    # ---------------------------------------------------------------------------------------------------
    # closing
    def finish(self, status: str, timeout: float | None, *, strict: bool) -> bool:
        """Write everything queued, stop the thread and record ``status`` in ``meta.json``.

        Returns:
            False when the thread is still busy after ``timeout`` seconds (nothing more is done).

        Raises:
            Exception: with ``strict``, the first write error not raised yet; any error writing the status.
        """
        self.ensure_alive()
        self._queue.put(None)
        self.join(timeout)
        if self._thread.is_alive():
            self._reporter.report(
                f"the writer is still busy after {timeout} s; closing without waiting for it"
            )
            return False
        if strict and (exc := self.take_error()) is not None:
            raise exc
        if self.run_dir_intact():
            self.meta["status"] = status
            self.meta["heartbeat"] = schema.now_iso()
            self.store.write_meta(self.meta)
            self.summary = summary.after_flush(self.store, self.meta, self.summary)
        return True

    def compact_at_close(self) -> None:
        """Merge each table's parts into one (when ``compact_on_close``); a failure is reported."""
        if not self._compact_on_close or self.run_gone:
            return
        from cldiag.maintenance import compact_run

        try:
            compact_run(self.store.uri, storage_options=self._storage_options)
        except Exception as exc:  # noqa: BLE001 - the run is whole without it; a later compact finishes
            self._reporter.report(f"could not compact the run at close ({type(exc).__name__}: {exc})")
