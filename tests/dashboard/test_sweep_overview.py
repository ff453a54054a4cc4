"""The Overview's runs table over a sweep: it reads summaries, not tables; old and hostile runs still show."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import streamlit as st
from streamlit.testing.v1 import AppTest

from cldiag import figures as F
from cldiag import schema, summary, ui, views
from cldiag.reader import read_run
from cldiag.store import RunStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_summary import write_run

APP = "../../app.py"


def _sweep(root: Path) -> None:
    for i in range(5):
        write_run(root / f"run-{i}", flushes=2, seed=i)
        if i < 3:  # what the writer leaves at close
            store = RunStore(root / f"run-{i}")
            summary.after_flush(store, store.read_meta())
    (root / "run-4" / summary.SUMMARY_FILE).write_text("{not json")


def _table(at: AppTest, column: str = "status"):
    """The runs table (``status`` column) or the configurations table (``created`` column)."""
    frames = [d.value for d in at.dataframe if column in d.value.columns]
    assert len(frames) == 1
    return frames[0]


def test_overview_table_comes_from_summaries_and_computes_the_missing_in_background(tmp_path, monkeypatch):
    _sweep(tmp_path)
    st.cache_resource.clear()
    monkeypatch.setenv(ui.ENV_ROOT, str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception
    for _ in range(100):  # two runs have no usable summary: computed on the background thread
        if not any("in the background" in str(c.value) for c in at.caption):
            break
        time.sleep(0.1)
        at.run()
    table = _table(at).set_index("run")
    assert sorted(table.index) == [f"run-{i}" for i in range(5)]
    for i in range(5):
        expected = summary.summarize_run(read_run(tmp_path / f"run-{i}"))["metrics"]
        for metric in (schema.M_LOSS, schema.M_ALIGNMENT, schema.M_UNIFORMITY):
            shown = table.loc[f"run-{i}", F.metric_info(metric).column_title]
            assert shown == F.round_significant(expected[metric]["value"], 3)
    assert (tmp_path / "run-3" / ".cldiag_cache" / "summary.json").is_file()  # cached for the next start
    assert (tmp_path / "run-4" / summary.SUMMARY_FILE).read_text() == "{not json"  # never rewritten


def test_overview_reads_no_table_of_runs_it_does_not_show(tmp_path, monkeypatch):
    _sweep(tmp_path)
    for i in (3, 4):
        store = RunStore(tmp_path / f"run-{i}")
        (tmp_path / f"run-{i}" / summary.SUMMARY_FILE).unlink(missing_ok=True)
        summary.after_flush(store, store.read_meta())
    st.cache_resource.clear()
    read: list[str] = []
    real = RunStore.read_table
    monkeypatch.setattr(
        RunStore, "read_table", lambda self, *a, **k: read.append(self.root) or real(self, *a, **k)
    )
    monkeypatch.setenv(ui.ENV_ROOT, str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["_cldiag_compare"] = []
    at.run()
    assert not at.exception
    assert len(_table(at)) == 5
    assert {Path(p).name for p in read} <= {"run-0"}  # only the focused run's own charts read tables


def test_runs_table_caps_config_columns(tmp_path, monkeypatch):
    write_run(tmp_path / "wide", flushes=1)
    store = RunStore(tmp_path / "wide")
    meta = store.read_meta()
    meta["config"] = {f"key{i:04d}": i for i in range(3 * views.MAX_CONFIG_KEYS)}
    store.write_meta(meta)
    st.cache_resource.clear()
    monkeypatch.setenv(ui.ENV_ROOT, str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception
    columns = [c for c in _table(at, "created").columns if c.startswith("key")]
    assert len(columns) == views.MAX_CONFIG_KEYS
    assert not any("overlaid at most" in str(m.value) for m in at.markdown)  # no stray string shown (magic)
