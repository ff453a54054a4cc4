"""One hostile run beside healthy ones (tests/hostile_root.py): the reader lists every other run, names
the bad one with its reason, and ``cldiag report`` answers on each without hanging."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hostile_root import BAD, HEALTHY, ODD, build_hostile_root

from cldiag import list_runs, read_run, schema

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def hostile_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hostile") / "root"
    build_hostile_root(root)
    return root


def _bounded(fn, seconds: float = 60.0):
    """``fn()`` on a thread; fails (instead of hanging the suite) if it has not returned in time."""
    out: dict = {}
    worker = threading.Thread(target=lambda: out.update(value=fn()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"{fn} still running after {seconds} s (blocked on a FIFO?)"
    return out["value"]


def test_list_runs_keeps_every_other_run_and_names_each_bad_one(hostile_root):
    problems: list[str] = []
    runs = _bounded(lambda: list_runs(hostile_root, problems=problems))
    listed = {os.path.basename(r.path) for r in runs}
    assert set(HEALTHY) | set(ODD) == listed
    assert len(problems) == len(BAD)
    for name, reason in BAD.items():
        line = next(p for p in problems if f"/{name}:" in p)
        assert reason in line, line
    assert not any("SECRET" in r.name for r in runs)


@pytest.mark.parametrize("name", sorted(ODD))
def test_an_odd_field_is_set_aside_with_a_note(hostile_root, name):
    run = read_run(hostile_root / name)
    note = ODD[name]
    assert (note is None) == (not any(p.startswith("meta.json") for p in run.problems)), run.problems
    if note is not None:
        assert any(note in p for p in run.problems), run.problems
    assert isinstance(run.config, dict)
    step = run.meta.get("last_step")
    assert step is None or 0 <= step <= schema.MAX_SAFE_STEP


def test_meta_linked_out_of_the_run_is_not_read(hostile_root):
    with pytest.raises(ValueError, match="links outside"):
        read_run(hostile_root / "meta-links-out")


def _report(path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "cldiag", "report", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=REPO,
    )


@pytest.mark.parametrize("name", sorted(BAD))
def test_report_on_a_bad_run_fails_clearly_and_never_hangs(hostile_root, name):
    result = _report(hostile_root / name)
    assert result.returncode == 2, result.stderr
    assert BAD[name] in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("name", ["config-int", "step-2e60", "bad-types"])
def test_report_on_an_odd_run_still_reports(hostile_root, name):
    result = _report(hostile_root / name)
    assert result.returncode in (0, 1), result.stderr
    assert "Traceback" not in result.stderr and result.stdout.strip()
