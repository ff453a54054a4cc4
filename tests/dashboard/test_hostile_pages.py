"""Every page over the hostile run root (tests/hostile_root.py): no exception on any page whichever run
is focused, bad runs listed with their reasons, odd fields set aside, caps said on the page, and text from
files and the URL shown as literal text, never as Markdown."""

from __future__ import annotations

from pathlib import Path

import pytest
from hostile_root import BAD, CONFIG_KEYS, METRIC_NAMES, SNAPSHOT_ROWS, build_hostile_root
from streamlit.testing.v1 import AppTest

from cldiag import ui

APP = "../../app.py"
REPO = Path(__file__).resolve().parents[2]
PAGES = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "pages").glob("[0-9]_*.py"))
HOSTILE_QUERY = "![x](http://127.0.0.1:9/leak.png) [Click here](http://127.0.0.1:9/click)"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hostile-pages") / "root"
    build_hostile_root(root)
    return root


def open_page(root: Path, monkeypatch, run: str, page: str | None = None) -> AppTest:
    monkeypatch.setenv(ui.ENV_ROOT, str(root))
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["run"] = run
    at.run()
    assert not at.exception, at.exception
    if page is not None:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def markdown_sources(at: AppTest) -> list[str]:
    """The Markdown source of every element Streamlit renders as Markdown (main area and sidebar)."""
    kinds = ("markdown", "caption", "warning", "info", "error", "success", "title", "header", "subheader")
    return [str(e.value) for kind in kinds for e in at.get(kind)]


def unescaped_link(source: str) -> bool:
    return "](" in source.replace("\\]\\(", "")


@pytest.mark.parametrize("page", PAGES)
def test_every_page_survives_the_hostile_root(hostile, monkeypatch, page):
    # step-2e60 is focused; by default three other runs are compared beside it.
    at = open_page(hostile, monkeypatch, "step-2e60", page)
    warnings = "\n".join(str(w.value) for w in at.warning)
    assert f"{len(BAD)} run(s) under the root could not be opened" in warnings
    for name in BAD:
        assert f"{name}:" in warnings.replace("\\", "")
    assert any("last_step is not a step" in c.value for c in at.get("code"))  # the odd field, named
    assert not any(unescaped_link(s) for s in markdown_sources(at))


@pytest.mark.parametrize("page", ["pages/1_overview.py", "pages/3_geometry.py", "pages/8_compare.py"])
def test_markdown_run_name_and_query_are_literal_text(hostile, monkeypatch, page):
    at = open_page(hostile, monkeypatch, "markdown-name", page)
    sources = markdown_sources(at)
    assert any("\\!\\[x\\]\\(http" in s for s in sources)  # the name is shown, escaped
    assert not any(unescaped_link(s) for s in sources), [s for s in sources if unescaped_link(s)]
    at = open_page(hostile, monkeypatch, HOSTILE_QUERY)
    warning = "\n".join(str(w.value) for w in at.sidebar.warning)
    assert "not under the run root" in warning and "\\[Click here\\]" in warning
    assert not any(unescaped_link(s) for s in markdown_sources(at))


def test_caps_are_said_on_the_page(hostile, monkeypatch):
    at = open_page(hostile, monkeypatch, "many-config-keys", "pages/1_overview.py")
    captions = "\n".join(str(c.value) for c in at.caption).replace("\\", "")
    assert f"showing {ui.MAX_CONFIG_KEYS} of {CONFIG_KEYS:,} keys" in captions
    at = open_page(hostile, monkeypatch, "many-metrics", "pages/8_compare.py")
    captions = "\n".join(str(c.value) for c in at.caption).replace("\\", "")
    assert f"offering {ui.MAX_METRICS:,} of {METRIC_NAMES:,} metric names" in captions
    at = open_page(hostile, monkeypatch, "big-snapshot", "pages/7_embeddings.py")
    captions = "\n".join(str(c.value) for c in at.caption).replace("\\", "")
    assert f"sample of {ui.MAX_SNAPSHOT_ROWS:,} of its {SNAPSHOT_ROWS:,} rows" in captions
    title = at.get("plotly_chart")[0].proto.spec
    assert f"of {ui.MAX_SNAPSHOT_ROWS:,} points" in title  # the page worked on the sample only


@pytest.mark.parametrize("page", ["pages/lab.py", "pages/concepts.py"])
def test_learn_pages_open_beside_the_hostile_root(hostile, monkeypatch, page):
    at = open_page(hostile, monkeypatch, "markdown-name", page)
    assert at.title and not at.error
    assert not any(unescaped_link(s) for s in markdown_sources(at))
