"""The background session: progress, one training at a time, stop, errors, presets."""

from __future__ import annotations

import threading
import time

import pytest

from cldiag import read_run
from cldiag.lab.session import LabBusyError, LabSession
from cldiag.lab.trainer import LabConfig

TOY = LabConfig(data="toy", encoder="linear", embed_dim=16, batch_size=32, steps=30, eval_every=10)


def wait(condition, seconds=60.0):
    deadline = time.monotonic() + seconds  # guard against hangs, not a speed assertion
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_session_runs_in_background_and_reports_progress(tmp_path):
    session = LabSession()
    assert session.progress is None and not session.running
    session.start(TOY.replace(steps=200), str(tmp_path / "bg"))
    assert session.join(timeout=120)
    assert session.progress.status == "finished" and session.progress.step == 200
    assert session.result is not None and session.result.steps_done == 200
    assert session.error is None and session.preset is None


def test_session_never_runs_two_trainings_at_once(tmp_path, monkeypatch):
    import cldiag.lab.session as session_module

    active, overlaps, intervals = [0], [], []
    lock = threading.Lock()
    real_train = session_module.train

    def tracked(*args, **kwargs):
        with lock:
            active[0] += 1
            overlaps.append(active[0])
        start = time.monotonic()
        try:
            return real_train(*args, **kwargs)
        finally:
            intervals.append((start, time.monotonic()))
            with lock:
                active[0] -= 1

    monkeypatch.setattr(session_module, "train", tracked)
    session = LabSession()
    long = TOY.replace(steps=20000, eval_every=5000)
    session.start(long, str(tmp_path / "first"))
    wait(lambda: session.progress is not None and session.progress.step > 0)
    with pytest.raises(LabBusyError):
        session.start(long, str(tmp_path / "refused"), replace=False)
    assert session.running
    session.start(TOY, str(tmp_path / "second"))  # replace=True: stops the first, then starts
    assert session.join(timeout=120)
    assert max(overlaps) == 1
    assert len(intervals) == 2
    (_, e1), (s2, _) = sorted(intervals)
    assert e1 <= s2
    assert read_run(str(tmp_path / "first")).last_step() < 20000  # the first was stopped early
    assert session.progress.run_dir.endswith("second") and session.progress.status == "finished"
    assert not (tmp_path / "refused").exists()


def test_session_stop_and_error_reporting(tmp_path):
    session = LabSession()
    session.start(TOY.replace(steps=20000, eval_every=5000), str(tmp_path / "s"))
    wait(lambda: session.progress.step > 0)
    assert session.stop(timeout=60)
    assert session.progress.status == "stopped"
    # A failure inside the thread is kept for the page, not lost.
    session.start(TOY, str(tmp_path / "s"))  # exists already: FileExistsError in the thread
    assert session.join(timeout=60)
    assert isinstance(session.error, FileExistsError)
    assert session.progress.status == "failed" and "FileExistsError" in session.progress.message


def test_session_runs_a_preset(tmp_path):
    session = LabSession()
    positions = []
    session.start_preset("collapse", str(tmp_path), steps_scale=0.01)
    while session.running:
        if session.preset_position is not None:
            positions.append(session.preset_position)
        time.sleep(0.005)
    assert session.preset == "collapse"
    result = session.preset_result
    assert result is not None and result.name == "collapse" and len(result.results) == 2
    assert {p[1] for p in positions} == {2}
    with pytest.raises(ValueError, match="unknown preset"):
        session.start_preset("nope", str(tmp_path))


def _sentence_result(run_dir: str, steps: int, status: str = "finished"):
    """A SentenceRunResult as the MiniLM runner returns it (numbers arbitrary: the wiring is tested)."""
    from cldiag.lab import sentence_preset as sp

    m = sp.HeldOutMeasures(0.08, 0.09, 0.13, -3.5, 1.0, 250.0, 0.85, 0.6, (0.05, 0.15, 0.05))
    config = sp.SentenceConfig().scaled(steps / sp.SentenceConfig().steps)
    return sp.SentenceRunResult(run_dir, config, status, steps, 1.0, {"loss": 1.0}, "done", m, m)


def test_session_runs_the_real_model_preset_through_its_runner(tmp_path, monkeypatch):
    # No MiniLM here: a stand-in runner with the real one's signature shows the session drives it (one run,
    # named by the preset's plan, its progress and result); the fine-tune is tested in test_sentence_preset.
    import dataclasses

    from cldiag.lab import sentence_preset as sp
    from cldiag.lab.presets import PRESETS
    from cldiag.lab.trainer import LabProgress

    release = threading.Event()

    def runner(out_dir, *, steps_scale, progress, stop_event):
        run_dir = f"{out_dir}/{sp.NAME}-minilm"
        progress(0, 1, LabProgress(run_dir, 1, 4, "running", {"loss": 1.0}))
        release.wait(30)
        return (_sentence_result(run_dir, 4),), True, "summary", 0.1

    monkeypatch.setitem(PRESETS, sp.NAME, dataclasses.replace(PRESETS[sp.NAME], runner=runner))
    session = LabSession()
    session.start_preset(sp.NAME, str(tmp_path), steps_scale=0.1)
    first = session.progress
    assert first.run_dir == f"{tmp_path}/{sp.NAME}-minilm" and first.total == 4  # 40 steps × 0.1
    assert session.preset_position == (0, 1)
    release.set()
    assert session.join(timeout=60) and session.error is None
    result = session.preset_result
    assert result.name == sp.NAME and result.passed and result.results[0].steps_done == 4
