"""UMAP's warm-up (cldiag.projection.warm_up): once per process, off by switch, never raises; disk cache."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from cldiag import projection

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(projection, "_warm_thread", None)
    monkeypatch.delenv(projection.ENV_WARM, raising=False)
    return monkeypatch


def test_warm_up_runs_once_per_process_on_a_daemon_thread(fresh):
    calls = []
    done = threading.Event()
    fresh.setattr(projection, "_warm", lambda: (calls.append(threading.current_thread().name), done.set()))
    first = projection.warm_up()
    assert first is not None and first.daemon
    assert projection.warm_up() is first
    first.join(10)
    assert done.is_set() and calls == ["cldiag-umap-warm-up"]


def test_warm_up_can_be_turned_off(fresh):
    fresh.setenv(projection.ENV_WARM, "0")
    fresh.setattr(projection, "_warm", lambda: pytest.fail("warm-up ran although turned off"))
    assert projection.warm_up() is None


def test_failed_warm_up_is_logged_not_raised(fresh, caplog):
    def boom() -> None:
        raise RuntimeError("numba is broken")

    fresh.setattr(projection, "_warm", boom)
    with caplog.at_level(logging.WARNING, logger="cldiag.projection"):
        projection.warm_up().join(10)
    assert "UMAP warm-up failed" in caplog.text and "numba is broken" in caplog.text


def test_umap_functions_get_a_numba_disk_cache():
    # In a child process: switching umap's dispatchers to a disk cache is process-wide. Nothing is compiled
    # here (no UMAP runs), so no cache file is written; the environment's numba cache dir is left as is
    # (a fresh one makes pynndescent recompile its eagerly compiled functions at import: minutes).
    code = (
        "import umap\n"
        "from cldiag import projection\n"
        "n = projection._cache_umap_jit()\n"
        "from umap import layouts\n"
        "print(n, type(layouts._nb_optimize_layout_euclidean_single_epoch._cache).__name__)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    switched, kind = out.stdout.split()
    assert int(switched) >= 10 and kind == "FunctionCache"
