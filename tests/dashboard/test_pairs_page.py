"""The Pairs page and the Embeddings page's neighbour list (issue 16) through AppTest and the view layer."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from streamlit.testing.v1 import AppTest

from cldiag import Monitor, read_run, ui, views

APP = "../../app.py"
TIMEOUT = 120
TRICKY = ["<script>alert(1)</script>", "**bold** [x](http://e.com)", "", "日本語 🐈", "x" * 900]


@pytest.fixture(scope="module")
def meta_root(tmp_path_factory):
    """A two-view run with labels and tricky metadata, snapshots at steps 0 and 5."""
    root = tmp_path_factory.mktemp("pairs")
    g = torch.Generator().manual_seed(3)
    with Monitor(root / "texts", snapshot_every=5, snapshot_size=30, pairwise_every=5, strict=True) as mon:
        for step in range(8):
            a = torch.randn(30, 8, generator=g)
            b = a + 0.5 * torch.randn(30, 8, generator=g)
            labels = torch.arange(30) % 3
            meta = [TRICKY[i % len(TRICKY)] + f" #{i}" for i in range(30)]
            mon.log(step, a, b, labels=labels, ids=torch.arange(30), meta=meta)
    return root


def open_pairs(root, monkeypatch, run: str) -> AppTest:
    monkeypatch.setenv(ui.ENV_ROOT, str(root))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["run"] = run
    at.run()
    assert not at.exception
    return at.switch_page("pages/9_pairs.py").run()


def test_pairs_page_lists_worst_pairs_with_metadata_as_text(meta_root, monkeypatch):
    at = open_pairs(meta_root, monkeypatch, "texts")
    assert not at.exception and not at.error
    assert at.title[0].value == "Pairs"
    now, before = (df.value for df in at.dataframe)
    run = read_run(meta_root / "texts")
    steps = run.snapshot_steps()  # the cadence's 0 and 5, and the final snapshot at close (7)
    expected = views.worst_pairs_table(run, steps[-1], 20, compare_step=steps[0])
    pd.testing.assert_frame_equal(now.reset_index(drop=True), expected)
    assert before["step"].eq(0).all() and now["meta"].notna().all()
    assert any(m.startswith("<script>alert(1)</script>") for m in now["meta"])  # stored and shown verbatim
    markdown = "\n".join(str(e.value) for e in [*at.markdown, *at.caption])
    assert "<script>" not in markdown and "alert(1)" not in markdown  # never rendered as Markdown/HTML
    assert len(at.get("download_button")) == 2


def test_pairs_page_filters_by_label_and_compares_no_step(meta_root, monkeypatch):
    at = open_pairs(meta_root, monkeypatch, "texts")
    at.selectbox(key="pairs_label").set_value(1).run()
    at.selectbox(key="pairs_then").set_value("none").run()
    assert not at.exception and len(at.dataframe) == 1
    table = at.dataframe[0].value
    assert set(table["anchor_label"]) == {1} and "rank_then" not in table.columns


def test_pairs_page_explains_a_run_without_pairs(tmp_path, monkeypatch):
    with Monitor(tmp_path / "probe", snapshot_every=0) as mon:
        mon.log_embeddings(0, torch.randn(10, 4))
    at = open_pairs(tmp_path, monkeypatch, "probe")
    assert not at.exception and not at.dataframe
    assert "holds one side only" in "\n".join(i.value for i in at.info)


def test_selection_neighbours_reads_the_clicked_point(meta_root):
    view = views.RunData(read_run(meta_root / "texts"))
    assert views.selection_neighbours(view, []) is None
    assert "Click a point" in views.selection_neighbours(view, [{"customdata": None}])
    points = [{"curve_number": 0, "point_index": 4, "customdata": ["7", "1", "view2", "5", ""]}]
    table = views.selection_neighbours(view, points, k=5)
    pd.testing.assert_frame_equal(table, views.neighbours_table(view, 5, 7, 5, "view2"))
    assert "sample 7 (view2, step 5)" in table.attrs["caption"]
    assert "not in the snapshot" in views.selection_neighbours(view, [{"customdata": [999, 0, "view1", 5]}])


def test_embedding_hover_shows_metadata_escaped(meta_root):
    run = read_run(meta_root / "texts")
    view = views.RunData(run)
    inp = views.projection_input(view, [5])
    fig = views.embedding_scatter(view, inp.pca(5000), inp.info, "PCA", "label").build()
    hover = [str(row[4]) for trace in fig.data for row in trace.customdata]
    assert any(h.startswith("<br>&lt;script&gt;alert(1)&lt;/script&gt; #") for h in hover)
    assert not any("<script>" in h for h in hover)
    assert max(len(h) for h in hover) <= len("<br>") + 160 + 20  # long text is cut (escaping adds a little)
    assert "%{customdata[4]}" in fig.data[0].hovertemplate
