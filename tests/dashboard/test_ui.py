"""cldiag.ui: names it re-exports, the run root, and the step picker (through AppTest)."""

from __future__ import annotations

from cldiag import ui


def test_ui_keeps_the_moved_names():
    # BackgroundJobs lives in cldiag.jobs and path confinement in cldiag.paths (tested there, without
    # Streamlit); pages and other callers still reach them through ui.
    from cldiag import jobs, paths

    assert ui.BackgroundJobs is jobs.BackgroundJobs
    assert ui.resolve_under_root is paths.resolve_under_root


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


def test_no_dashboard_function_is_longer_than_60_lines():
    import ast
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    files = [repo / "cldiag" / "ui.py", repo / "app.py", *sorted((repo / "pages").glob("[0-9]_*.py"))]
    files.append(repo / "pages" / "concepts.py")
    long = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > 60:
                    long.append(f"{path.name}:{node.name} ({lines} lines)")
    assert not long, long
