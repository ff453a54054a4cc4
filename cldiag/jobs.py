"""Slow work off the page's thread: one runner per kind of job, deduplicated by key (plain Python).

The dashboard submits a UMAP projection or the health rules of a large run here and keeps drawing; a later
rerun submits the same key again and gets the same future, finished by then. Nothing here imports
Streamlit: ``cldiag.ui.background_jobs`` keeps one :class:`BackgroundJobs` per kind for the process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

__all__ = ["BackgroundJobs"]

T = TypeVar("T")


class BackgroundJobs(Generic[T]):
    """Runs slow work on background threads, one job per key.

    A job is started once per key and its future handed to every caller with that key; a finished job
    stays (its future is the in-memory cache of the result) until more than ``max_done`` finished jobs are
    remembered, oldest first. A job that failed is started again on the next submit.

    Args:
        workers: concurrent jobs (1 on small machines: the dashboard itself needs a core too).
        max_done: finished futures remembered.

    Raises:
        ValueError: ``workers`` or ``max_done`` is smaller than 1.

    Example:
        >>> jobs = BackgroundJobs()
        >>> jobs.submit("answer", lambda: 42).result(timeout=5)
        42
    """

    def __init__(self, workers: int = 1, max_done: int = 32) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if max_done < 1:
            raise ValueError(f"max_done must be >= 1, got {max_done}")
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cldiag-job")
        self._jobs: dict[Hashable, Future[T]] = {}
        self._lock = threading.Lock()
        self._max_done = max_done

    def submit(self, key: Hashable, fn: Callable[[], T]) -> Future[T]:
        """Start ``fn`` unless a job with ``key`` is queued, running or done; a failed one is retried."""
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and not (job.done() and job.exception() is not None):
                return job
            job = self._pool.submit(fn)
            self._jobs[key] = job
            done = [k for k, f in self._jobs.items() if f.done()]
            for k in done[: max(0, len(done) - self._max_done)]:
                del self._jobs[k]
            return job
