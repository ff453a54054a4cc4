"""cldiag.jobs: the background job runner, without Streamlit."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from cldiag.jobs import BackgroundJobs


def test_jobs_module_imports_no_streamlit():
    code = "import sys, cldiag.jobs; print('streamlit' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_background_jobs_deduplicate_and_retry_failures():
    jobs = BackgroundJobs()
    gate = threading.Event()
    calls = []

    def slow():
        calls.append(1)
        gate.wait(5)
        return "done"

    first = jobs.submit("k", slow)
    assert jobs.submit("k", slow) is first
    gate.set()
    assert first.result(5) == "done" and len(calls) == 1
    assert jobs.submit("k", slow) is first  # a finished job is the cached result

    def broken():
        raise RuntimeError("boom")

    failed = jobs.submit("bad", broken)
    with pytest.raises(RuntimeError):
        failed.result(5)
    retried = jobs.submit("bad", slow)
    assert retried is not failed and retried.result(5) == "done"


def test_background_jobs_forget_old_finished_jobs():
    jobs = BackgroundJobs(max_done=2)
    old = jobs.submit("old", lambda: 0)
    old.result(5)
    for i in range(4):
        jobs.submit(i, lambda i=i: i).result(5)
    assert jobs.submit(3, lambda: -1).result(5) == 3  # recent: still remembered
    assert jobs.submit("old", lambda: -1) is not old  # forgotten: computed again


@pytest.mark.parametrize(("workers", "max_done"), [(0, 1), (1, 0)])
def test_background_jobs_reject_bad_sizes(workers, max_done):
    with pytest.raises(ValueError, match="must be >= 1"):
        BackgroundJobs(workers=workers, max_done=max_done)
