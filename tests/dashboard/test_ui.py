"""Pure helpers of cldiag.ui: the background job runner and paths confined to the run root."""

from __future__ import annotations

import os
import threading

import pytest

from cldiag import ui


def test_background_jobs_deduplicate_and_retry_failures():
    jobs = ui.BackgroundJobs()
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
    jobs = ui.BackgroundJobs(max_done=2)
    old = jobs.submit("old", lambda: 0)
    old.result(5)
    for i in range(4):
        jobs.submit(i, lambda i=i: i).result(5)
    assert jobs.submit(3, lambda: -1).result(5) == 3  # recent: still remembered
    assert jobs.submit("old", lambda: -1) is not old  # forgotten: computed again


def test_resolve_under_root(tmp_path):
    root = tmp_path / "runs"
    (root / "a" / "b").mkdir(parents=True)
    assert ui.resolve_under_root(str(root), "a/b") == str(root / "a" / "b")
    assert ui.resolve_under_root(str(root), "./a//b/") == str(root / "a" / "b")
    os.symlink(tmp_path, root / "up")
    for bad in ["", "  ", ".", "../x", "a/../../x", "/abs", "~/x", "C:/x", "http://h/x", "up", "a\\..\\.."]:
        with pytest.raises(ValueError):
            ui.resolve_under_root(str(root), bad)
    assert ui.resolve_under_root("s3://bucket/runs/", "team/r1") == "s3://bucket/runs/team/r1"
    with pytest.raises(ValueError):
        ui.resolve_under_root("s3://bucket/runs", "../other")


def test_resolve_root_precedence(monkeypatch):
    monkeypatch.delenv(ui.ENV_ROOT, raising=False)
    assert ui.resolve_root([], "sample_runs") == "sample_runs"
    monkeypatch.setenv(ui.ENV_ROOT, "/env/runs")
    assert ui.resolve_root([], "sample_runs") == "/env/runs"
    assert ui.resolve_root(["--flag", "/cli/runs"], "sample_runs") == "/cli/runs"


def _step_picker_app() -> None:
    import streamlit as st

    from cldiag import ui

    steps = st.session_state.get("logged", [0, 10, 20])
    st.write(f"picked {ui.step_picker(steps, 'Step', key='step')}")


def test_step_picker_follows_new_steps_until_the_user_moves_it():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_step_picker_app).run()

    def picked() -> int:
        return int(next(m.value for m in at.markdown if m.value.startswith("picked")).split()[1])

    def shown() -> str:
        return " ".join(c.value for c in at.caption)

    assert picked() == 20 and "Showing step 20, the newest logged" in shown()
    at.session_state["logged"] = [0, 10, 20, 30]  # a live run logs a new step
    at.run()
    assert picked() == 30
    at.select_slider(key="step").set_value(10).run()  # the user looks back
    at.session_state["logged"] = [0, 10, 20, 30, 40]
    at.run()
    assert picked() == 10 and "the newest logged is 40" in shown()
    at.select_slider(key="step").set_value(40).run()  # back at the end: follow again
    at.session_state["logged"] = [0, 10, 20, 30, 40, 50]
    at.run()
    assert picked() == 50 and not at.exception
