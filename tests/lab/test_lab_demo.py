"""The sample-run builder: the runs it writes, quickly (steps scaled down), and what the bundle contains."""

from __future__ import annotations

import os

import pytest

from cldiag import list_runs
from cldiag.lab.demo import SAMPLE_RUNS, make_sample_runs


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
    assert kept == set(SAMPLE_RUNS)
    assert "/*" in ignore


def test_demo_configs_are_the_ones_the_bundled_samples_were_made_with():
    # The Lab's default changed; the bundled samples must not (cldiag demo would silently produce other runs).
    from pathlib import Path

    from cldiag import read_run

    root = Path(__file__).resolve().parents[2] / "sample_runs"
    for name, config in SAMPLE_RUNS.items():
        stored = dict(read_run(root / name).config)
        assert stored.pop("source") == "cldiag.lab"
        assert stored == config.to_dict(), name
