"""Every dashboard page through Streamlit's AppTest: synthetic runs, bad input, and the sample runs.

AppTest runs ``app.py`` (router + sidebar) on the first run only: because the app has a ``pages/`` folder,
AppTest's later runs (after ``switch_page`` or a widget change) execute the page script alone, with the
sidebar's selection kept in session state. So sidebar choices are seeded through session state before the
first run, and page widgets are driven normally. The browser test covers the real router.
"""

from __future__ import annotations

import ast
import base64
import datetime as dt
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from cldiag import ui

APP = "../../app.py"  # relative to this file, as AppTest resolves it
REPO = Path(__file__).resolve().parents[2]
PAGES = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "pages").glob("[0-9]_*.py"))
TITLES = {
    "pages/1_overview.py": "Overview",
    "pages/2_scores.py": "Scores",
    "pages/3_geometry.py": "Geometry",
    "pages/4_temperature.py": "Temperature",
    "pages/5_modality_gap.py": "Modality gap",
    "pages/6_spectrum.py": "Spectrum",
    "pages/7_embeddings.py": "Embeddings",
    "pages/8_compare.py": "Compare",
    "pages/9_pairs.py": "Pairs",
}
TIMEOUT = 120  # generous: CI machines are shared; a healthy page takes well under a second


def open_app(root: Path, monkeypatch, run: str | None = None, **sidebar_state) -> AppTest:
    monkeypatch.setenv(ui.ENV_ROOT, str(root))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    if run is not None:
        at.query_params["run"] = run
    for key, value in sidebar_state.items():
        at.session_state[key] = value
    return at.run()


def open_page(root: Path, monkeypatch, run: str, page: str) -> AppTest:
    at = open_app(root, monkeypatch, run)
    assert not at.exception
    return at.switch_page(page).run()


def chart_specs(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def array(value) -> np.ndarray:
    """A plotly JSON array: a list, or a typed array ``{"dtype", "bdata"}`` (base64) as plotly ≥ 6 sends."""
    if isinstance(value, dict) and "bdata" in value:
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
    return np.asarray(value)


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def router_pages() -> list[tuple[str, str, str, str]]:
    """``RUN_PAGES`` as app.py defines it (read from its source: importing app.py starts Streamlit)."""
    tree = ast.parse((REPO / "app.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "RUN_PAGES" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("app.py defines no RUN_PAGES")


def test_the_router_knows_all_eight_pages():
    routed = router_pages()
    assert sorted(f"pages/{file}" for file, *_ in routed) == PAGES
    assert {f"pages/{file}": title for file, title, *_ in routed} == TITLES
    # Each url path is the one Streamlit derives from the file name (see the comment in app.py).
    assert [url for *_, url in routed] == [file.split("_", 1)[1].removesuffix(".py") for file, *_ in routed]


# -- every page on the synthetic runs --------------------------------------------------------------------
@pytest.mark.parametrize("run", ["simclr", "clip"])
@pytest.mark.parametrize("page", PAGES)
def test_page_renders_titled_labelled_downloadable_charts(run_root, monkeypatch, run, page):
    at = open_page(run_root, monkeypatch, run, page)
    assert not at.exception, at.exception
    assert not at.error, texts(at.error)
    assert at.title[0].value == TITLES[page]
    specs = chart_specs(at)
    if page == "pages/9_pairs.py":  # a table page: the worst pairs now and at an earlier step, as CSV too
        assert len(at.dataframe) == 2 and len(at.get("download_button")) == 2
        return
    if page == "pages/5_modality_gap.py" and run == "simclr":
        assert not specs and "no modality gap" in texts(at.info)
        return
    if page == "pages/8_compare.py":  # "Compare with" starts empty: the page says what to pick
        assert not specs and "Compare with" in texts(at.info)
        return
    assert specs, f"no chart on {page} for {run}"
    for spec in specs:
        layout = spec["layout"]
        assert layout["title"]["text"], spec
        axes = [v for k, v in layout.items() if k.startswith(("xaxis", "yaxis"))]
        assert any(a.get("title", {}).get("text") for a in axes), f"unlabelled axes in {layout['title']}"
    # Every chart comes with a CSV download of its data and a caption naming its source.
    assert len(at.get("download_button")) == len(specs)


def test_scores_overlay_defaults_to_the_newest_step(run_root, monkeypatch):
    at = open_page(run_root, monkeypatch, "simclr", "pages/2_scores.py")
    titles = [s["layout"]["title"]["text"] for s in chart_specs(at)]
    assert titles[0].startswith("Score distributions at step 55")  # pairwise_every=5 over steps 0..59
    at.select_slider(key="scores_step").set_value(20).run()
    assert chart_specs(at)[0]["layout"]["title"]["text"].startswith("Score distributions at step 20")


def test_compare_with_starts_empty(run_root, monkeypatch):
    # Pre-filled comparison runs mixed unrelated experiments into the first charts a new user saw.
    at = open_app(run_root, monkeypatch, "simclr")
    assert not at.exception
    assert at.multiselect(key="_cldiag_compare").value == []
    legend = {t.get("name") for t in chart_specs(at)[0]["data"] if t.get("showlegend", True)}
    assert "clip" not in legend


def test_step_range_limits_every_chart(run_root, monkeypatch):
    at = open_app(run_root, monkeypatch, "simclr", _cldiag_compare=[], _cldiag_steps_59=(10, 30))
    at.switch_page("pages/2_scores.py").run()
    assert chart_specs(at)[0]["layout"]["title"]["text"].startswith("Score distributions at step 30")
    at.switch_page("pages/3_geometry.py").run()
    steps = np.concatenate([array(t["x"]) for t in chart_specs(at)[0]["data"]])
    assert steps.min() == 10 and steps.max() == 30


def test_temperature_page_marks_the_runs_own_tau(run_root, monkeypatch):
    at = open_page(run_root, monkeypatch, "simclr", "pages/4_temperature.py")
    names = {t.get("name") for t in chart_specs(at)[0]["data"]}
    assert "run τ = 0.2" in names
    at = open_page(run_root, monkeypatch, "clip", "pages/4_temperature.py")
    assert "run τ = 0.07" in {t.get("name") for t in chart_specs(at)[0]["data"]}
    assert "needs labels" in texts(at.caption)


def test_geometry_tolerance_needs_labels(run_root, monkeypatch):
    at = open_page(run_root, monkeypatch, "simclr", "pages/3_geometry.py")
    assert any("Tolerance" in s["layout"]["title"]["text"] for s in chart_specs(at))
    at = open_page(run_root, monkeypatch, "clip", "pages/3_geometry.py")
    assert "No tolerance" in texts(at.info)


def test_modality_gap_view_shows_both_modalities(run_root, monkeypatch):
    at = open_page(run_root, monkeypatch, "clip", "pages/5_modality_gap.py")
    view = chart_specs(at)[-1]
    assert [t["name"] for t in view["data"]][:2] == ["image", "text"]
    assert "modality gap" in view["layout"]["title"]["text"]


def test_embeddings_tsne_runs_in_background_then_comes_from_disk_cache(run_root, monkeypatch):
    at = open_page(run_root, monkeypatch, "simclr", "pages/7_embeddings.py")
    # 59: the final snapshot the Monitor takes at close (snapshots at 0 and 30 by cadence)
    assert chart_specs(at)[0]["layout"]["title"]["text"].startswith("PCA of snapshot 59")
    at.radio(key="emb_method").set_value("t-SNE").run()
    deadline = time.monotonic() + TIMEOUT
    while "is computing in the background" in texts(at.info):
        assert chart_specs(at)[0]["layout"]["title"]["text"].startswith("PCA")  # shown meanwhile
        assert time.monotonic() < deadline, "t-SNE did not finish"
        time.sleep(0.5)
        at.run()
    assert not at.exception and not at.warning
    assert chart_specs(at)[0]["layout"]["title"]["text"].startswith("t-SNE of snapshot 59")
    cached = list((run_root / "simclr" / ".cldiag_cache" / "projections").glob("*.npz"))
    assert cached
    again = open_page(run_root, monkeypatch, "simclr", "pages/7_embeddings.py")
    again.radio(key="emb_method").set_value("t-SNE").run()
    assert "is computing" not in texts(again.info)
    assert chart_specs(again)[0]["layout"]["title"]["text"].startswith("t-SNE")


def test_compare_overlays_runs_and_lists_differing_settings(run_root, monkeypatch):
    at = open_app(run_root, monkeypatch, "simclr", _cldiag_compare=[str(run_root / "clip")])
    at.switch_page("pages/8_compare.py").run()
    assert not at.exception and not at.error
    runs = {t["name"] for t in chart_specs(at)[0]["data"] if t.get("showlegend")}
    assert runs == {"simclr", "clip"}
    diff = at.dataframe[0].value
    assert set(diff["setting"]) >= {"loss", "temperature"}


# -- bad input -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["empty", "missing"])
def test_empty_or_missing_root_explains_itself(tmp_path, monkeypatch, kind):
    root = tmp_path / "runs"
    if kind == "empty":
        root.mkdir()
    at = open_app(root, monkeypatch)
    assert not at.exception
    assert "No runs under" in texts(at.info)
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception and "No runs under" in texts(at.info), page


def test_run_without_parts_gives_a_message_on_every_page(run_root, monkeypatch):
    at = open_app(run_root, monkeypatch, "empty", _cldiag_compare=[])
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception and not at.error, page
        if page != "pages/1_overview.py":
            assert at.info, f"{page} shows nothing to explain the missing data"


def wait_while(at: AppTest, busy: str) -> AppTest:
    """Rerun until no info/caption mentions ``busy`` (a background job finished)."""
    deadline = time.monotonic() + TIMEOUT
    while busy in texts(at.info) + texts(at.caption):
        assert time.monotonic() < deadline, f"still {busy!r} after {TIMEOUT} s"
        time.sleep(0.3)
        at.run()
    return at


def test_health_verdicts_arrive_from_the_background(run_root, monkeypatch):
    at = wait_while(open_app(run_root, monkeypatch, "corrupt"), "in the background")
    assert not at.exception
    labels = [e.label for e in at.expander]
    assert any("warning" in label and "storage" in label for label in labels), labels
    at.switch_page("pages/6_spectrum.py").run()
    at = wait_while(at, "in the background")
    health_line = next(line for line in texts(at.warning).splitlines() if line.startswith("Health:"))
    assert health_line.startswith("Health: warning") and "storage" in health_line


def test_corrupt_part_is_reported_not_raised(run_root, monkeypatch):
    at = open_page(run_root, monkeypatch, "corrupt", "pages/2_scores.py")
    assert not at.exception
    assert "could not be read" in texts(at.warning)
    assert chart_specs(at)  # the readable parts still draw


def test_query_param_outside_root_is_ignored(run_root, monkeypatch):
    at = open_app(run_root, monkeypatch, "../../etc")
    assert not at.exception
    assert "not under the run root" in texts(at.sidebar.warning)
    assert at.selectbox(key="_cldiag_run").value == str(run_root / "clip")  # the first run instead


@pytest.fixture
def nested_root(tmp_path, run_root):
    root = tmp_path / "root"
    shutil.copytree(run_root / "simclr", root / "group" / "inner")
    outside = tmp_path / "outside"
    shutil.copytree(run_root / "clip", outside)
    os.symlink(outside, root / "escape")
    return root


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("../outside", "may not leave"),
        ("/etc", "relative to the run root"),
        ("escape", "outside the run root"),
        ("s3://bucket/x", "relative to the run root"),
        ("group", "not a cldiag run"),
    ],
)
def test_typed_path_outside_root_or_not_a_run_is_refused(nested_root, monkeypatch, typed, message):
    at = open_app(nested_root, monkeypatch, _cldiag_typed=typed)
    assert not at.exception
    assert message in texts(at.sidebar.warning)
    assert "No runs under" in texts(at.info)  # the symlinked run outside was not listed either


def test_typed_path_to_nested_run_opens_it(nested_root, monkeypatch):
    at = open_app(nested_root, monkeypatch, _cldiag_typed="group/inner")
    assert not at.exception and not at.sidebar.warning
    assert at.selectbox(key="_cldiag_run").value == str(nested_root / "group" / "inner")
    assert "Health of simclr" in texts(at.subheader)


def _with_status(run_root: Path, tmp_path: Path, status: str, heartbeat: dt.datetime) -> Path:
    root = tmp_path / "root"
    shutil.copytree(run_root / "simclr", root / "live")
    meta_path = root / "live" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta.update(status=status, heartbeat=heartbeat.isoformat(timespec="seconds"))
    meta_path.write_text(json.dumps(meta))
    return root


def test_a_page_opened_without_the_router_draws_the_sidebar_itself(run_root, monkeypatch):
    # A fresh server's first request to a page URL runs the page alone (Streamlit's pages/ fallback).
    monkeypatch.setenv(ui.ENV_ROOT, str(run_root))
    at = AppTest.from_file("../../pages/6_spectrum.py", default_timeout=TIMEOUT)
    at.query_params["run"] = "clip"
    at.run()
    assert not at.exception and not at.error
    assert at.selectbox(key="_cldiag_run").value == str(run_root / "clip")
    assert at.title[0].value == "Spectrum" and chart_specs(at)


def test_live_run_redraws_and_stale_run_says_so(run_root, tmp_path, monkeypatch):
    now = dt.datetime.now(dt.timezone.utc)
    root = _with_status(run_root, tmp_path, "running", now)
    at = open_page(root, monkeypatch, "live", "pages/6_spectrum.py")
    assert not at.exception and "live: redraws every" in texts(at.markdown)
    stale = _with_status(run_root, tmp_path / "s", "running", now - dt.timedelta(hours=2))
    at = open_page(stale, monkeypatch, "live", "pages/6_spectrum.py")
    assert "stale" in texts(at.markdown) and "live" not in texts(at.markdown)


# -- the bundled sample runs -----------------------------------------------------------------------------
SAMPLES = sorted(p.name for p in (REPO / "sample_runs").iterdir() if (p / "meta.json").is_file())


def test_sample_runs_are_bundled():
    assert len(SAMPLES) >= 4, SAMPLES


@pytest.mark.parametrize("run", SAMPLES)
def test_every_page_on_each_sample_run(monkeypatch, run):
    at = open_app(REPO / "sample_runs", monkeypatch, run)
    assert not at.exception
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception, (run, page, at.exception)
        # The only red box allowed is the health banner of a run built to be sick (collapse-no-negatives).
        errors = [e.value for e in at.error if not str(e.value).startswith("Health: alarm")]
        assert not errors, (run, page, errors)
