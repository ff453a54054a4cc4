"""cldiag.ui: names it re-exports, the run root, and the step picker (through AppTest)."""

from __future__ import annotations

import pandas as pd

from cldiag import ui, views


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


def test_split_by_metric_keeps_per_class_series_after_the_users_metrics():
    # 1000 classes of per-class τ (and their counts) must not crowd out a user's "val/acc" under the cap.
    rows = [(0, "alignment", 1.0), (0, "val/acc", 0.5)]
    rows += [(0, f"{prefix}{c}", 0.1) for c in range(1000) for prefix in ("tau_class/", "tau_class_count/")]
    df = pd.DataFrame(rows, columns=["step", "metric", "value"])
    builtin = ui._is_builtin
    capped, total = views.split_by_metric(df, limit=10, first=builtin, last=ui._is_per_class)
    assert total == 2002 and "val/acc" in capped and "alignment" in capped
    assert len(capped) == 10
    without, _ = views.split_by_metric(df, limit=10, first=builtin)
    assert "val/acc" not in without  # the old order: "tau_class…" sorts before "val/acc"
