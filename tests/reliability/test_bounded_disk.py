"""Bounded disk: histogram bins and snapshot sizes are capped, and what is written respects the caps."""

from __future__ import annotations

import pytest
import torch
from rel_helpers import batch

from cldiag import Monitor, read_run
from cldiag.monitor import MAX_BINS, MAX_SNAPSHOT


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"bins": MAX_BINS + 1}, r"bins must be an int in \[2, 1000\], got 1001"),
        ({"bins": 1}, "bins"),
        ({"snapshot_size": MAX_SNAPSHOT + 1}, r"snapshot_size must be an int in \[1, 100000\], got 100001"),
        ({"snapshot_size": 0}, "snapshot_size"),
    ],
)
def test_caps_are_enforced(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        Monitor(tmp_path / "run", **kwargs)
    assert not (tmp_path / "run").exists()  # refused before anything is written


def test_writes_stay_within_the_caps(tmp_path):
    path = tmp_path / "run"
    with Monitor(
        path,
        bins=MAX_BINS,
        snapshot_size=10,
        snapshot_every=3,
        pairwise_every=2,
        spectrum_every=0,
        curves_every=0,
    ) as mon:
        for step in range(6):
            mon.log(step, *batch(step)[:2])  # batches of 16: a snapshot takes 10 of them
        mon.log_embeddings(6, torch.randn(500, 8), labels=torch.arange(500))  # a probe larger than the cap
    run = read_run(path)
    hist = run.histograms()
    assert hist.groupby(["step", "kind"]).size().eq(MAX_BINS).all()
    assert run.snapshot_steps() == [0, 3, 6]
    for step in run.snapshot_steps():  # 10 samples each; the training snapshots hold both views of each
        assert len(run.embeddings(step)) == (10 if step == 6 else 20)
    kept = run.embeddings(6).label.tolist()
    assert kept[0] == 0 and kept[-1] == 499  # evenly spaced rows of the probe, not its first 10
