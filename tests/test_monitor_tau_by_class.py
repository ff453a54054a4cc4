"""Per-sample τ per class (issue 15, iSogCLR): what the Monitor logs, against a brute-force groupby."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from cldiag import Monitor, read_run, schema
from cldiag.host_tables import tau_by_class

PAIRWISE_ONLY = dict(pairwise_every=2, spectrum_every=0, curves_every=0, snapshot_every=0, budget=None)


def _batch(seed: int, n: int = 40, d: int = 8, classes: int = 5):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, d, generator=g)
    b = a + 0.5 * torch.randn(n, d, generator=g)
    labels = torch.randint(0, classes, (n,), generator=g)
    tau = 0.05 + torch.rand(n, generator=g)
    return a, b, labels, tau


def _per_class(path) -> pd.DataFrame:
    """``step, label, tau, count`` as logged, from the scalars."""
    df = read_run(path).scalars()
    assert not df.duplicated(["step", "metric"]).any()
    out = {}
    for prefix, column in ((schema.TAU_CLASS_PREFIX, "tau"), (schema.TAU_CLASS_COUNT_PREFIX, "count")):
        part = df.loc[df.metric.str.startswith(prefix)]
        out[column] = pd.DataFrame(
            {"step": part.step, "label": part.metric.str[len(prefix) :].astype(int), column: part.value}
        )
    if out["tau"].empty and out["count"].empty:
        return pd.DataFrame(columns=["step", "label", "tau", "count"])
    merged = out["tau"].merge(out["count"], on=["step", "label"], how="outer", validate="one_to_one")
    return merged.sort_values(["step", "label"]).reset_index(drop=True)


def _brute_force(step: int, labels: torch.Tensor, tau: torch.Tensor) -> pd.DataFrame:
    rows = pd.DataFrame({"label": labels.numpy(), "tau": tau.double().numpy()})
    g = rows.groupby("label")["tau"].agg(["mean", "size"]).reset_index()
    return pd.DataFrame(
        {"step": step, "label": g["label"], "tau": g["mean"], "count": g["size"].astype(float)}
    ).sort_values("label")


def test_per_class_tau_equals_a_groupby_of_the_steps_finite_rows(tmp_path):
    batches = {step: _batch(step) for step in range(5)}
    batches[2][0][7] = float("nan")  # a non-finite row: dropped from every statistic, its τ too
    batches[4][1][0, 0] = float("inf")
    with Monitor(tmp_path / "r", **PAIRWISE_ONLY) as mon:
        for step, (a, b, y, tau) in batches.items():
            mon.log(step, a, b, labels=y, temperature=tau)
    got = _per_class(tmp_path / "r")
    want = []
    for step in (0, 2, 4):
        a, b, y, tau = batches[step]
        keep = torch.isfinite(a).all(1) & torch.isfinite(b).all(1)
        want.append(_brute_force(step, y[keep], tau[keep]))
    want = pd.concat(want).sort_values(["step", "label"]).reset_index(drop=True)
    assert sorted(got.step.unique()) == [0, 2, 4]  # pairwise steps only
    pd.testing.assert_frame_equal(
        got[["step", "label", "count"]], want[["step", "label", "count"]], check_dtype=False
    )
    np.testing.assert_allclose(got.tau, want.tau, rtol=1e-6)
    assert got.loc[got.step == 2, "count"].sum() == 39 and got.loc[got.step == 4, "count"].sum() == 39


def test_at_most_the_64_most_frequent_classes_are_written_ties_to_the_smaller_label(tmp_path):
    # Classes 0-9 hold 8 rows each, classes 10-69 one row each: 70 classes, 64 written.
    labels = torch.cat([torch.arange(10).repeat_interleave(8), torch.arange(10, 70)])
    n = labels.numel()
    a = torch.randn(n, 6, generator=torch.Generator().manual_seed(0))
    tau = torch.linspace(0.05, 1.0, n)
    with Monitor(tmp_path / "r", **{**PAIRWISE_ONLY, "pairwise_every": 1}) as mon:
        mon.log(0, a, a.clone(), labels=labels, temperature=tau)
    got = _per_class(tmp_path / "r")
    assert schema.MAX_TAU_CLASSES == 64
    assert sorted(got.label) == list(range(64))
    want = _brute_force(0, labels, tau)
    want = want.loc[want.label < 64].reset_index(drop=True)
    np.testing.assert_allclose(got.tau, want.tau, rtol=1e-6)
    np.testing.assert_array_equal(got["count"], want["count"])


@pytest.mark.parametrize(
    ("labelled", "tau"),
    [
        (False, torch.linspace(0.1, 0.5, 40)),  # per-sample τ without labels
        (True, 0.2),  # one τ for the batch
        (True, torch.tensor(0.2)),  # a 0-d tensor τ (a learnable global τ)
        (True, None),
    ],
)
def test_nothing_is_logged_without_labels_or_without_a_per_sample_tau(tmp_path, labelled, tau):
    a, b, y, _ = _batch(3)
    with Monitor(tmp_path / "r", **{**PAIRWISE_ONLY, "pairwise_every": 1}) as mon:
        mon.log(0, a, b, labels=y if labelled else None, temperature=tau)
    metrics = read_run(tmp_path / "r").metrics()
    assert schema.M_UNIFORMITY in metrics  # the pairwise step did run
    assert not [m for m in metrics if m.startswith(("tau_class/", "tau_class_count/"))]


def test_the_buffered_rows_are_copies_of_the_step(tmp_path):
    """A τ parameter updated in place by the optimizer (or a reused label buffer) before the flush must not
    change what was logged for the step."""
    a, b, y, tau = _batch(5)
    want = _brute_force(0, y.clone(), tau.clone()).reset_index(drop=True)
    with Monitor(
        tmp_path / "r", flush_every=10**6, flush_secs=1e9, **{**PAIRWISE_ONLY, "pairwise_every": 1}
    ) as mon:
        mon.log(0, a, b, labels=y, temperature=tau)
        tau.mul_(3.0)  # the flush happens after this
        y.add_(100)
    got = _per_class(tmp_path / "r")
    np.testing.assert_array_equal(got.label, want.label)
    np.testing.assert_allclose(got.tau, want.tau, rtol=1e-6)


def test_no_tensor_value_is_read_at_ordinary_steps_or_by_the_per_class_buffer(tmp_path, monkeypatch):
    """On an accelerator a value read is a host sync: ordinary steps make none, and keeping the per-class
    rows adds none to a pairwise step (they are reduced on the host at the flush's one copy)."""
    mon = Monitor(tmp_path / "r", flush_every=10**6, flush_secs=1e9, **{**PAIRWISE_ONLY, "pairwise_every": 4})
    reads: list[str] = []
    for attr in ("item", "tolist", "__bool__", "__float__", "__int__", "cpu", "numpy", "unique", "nonzero"):
        real = getattr(torch.Tensor, attr)

        def spy(self, *args, _real=real, _attr=attr, **kwargs):
            reads.append(_attr)
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, attr, spy)
    real_buffer = Monitor._tau_by_class
    in_buffer: list[list[str]] = []

    def buffer(self, step, labels, tau):
        before = len(reads)
        real_buffer(self, step, labels, tau)
        in_buffer.append(reads[before:])

    monkeypatch.setattr(Monitor, "_tau_by_class", buffer)
    per_step = {}
    for step in range(1, 5):
        a, b, y, tau = _batch(step)
        before = len(reads)
        mon.log(step, a, b, labels=y, temperature=tau, loss=torch.tensor(1.0))
        per_step[step] = reads[before:]
    assert per_step[1] == per_step[2] == per_step[3] == [] and mon.errors == []
    assert in_buffer == [[]]  # called once, at the pairwise step 4, reading nothing
    monkeypatch.undo()
    mon.close()
    assert sorted(_per_class(tmp_path / "r").step.unique()) == [4]


def test_a_step_dropped_at_the_flush_loses_its_per_class_rows_too(tmp_path):
    path = tmp_path / "r"
    mon = Monitor(path, flush_every=10**6, flush_secs=1e9, **{**PAIRWISE_ONLY, "pairwise_every": 1})
    freed = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for step in range(3):
            a, b, y, tau = _batch(step)
            loss = torch.tensor(float(step))
            mon.log(step, a, b, labels=y, temperature=tau, loss=loss)
            if step == 1:
                freed.append(loss)
        freed[0].untyped_storage().resize_(0)  # its value cannot be copied at the flush
        mon.close()
    assert len(mon.errors) == 1 and "step 1: loss" in mon.errors[0]
    assert sorted(_per_class(path).step.unique()) == [0, 2]


def test_tau_by_class_is_a_groupby_most_frequent_first():
    rng = np.random.default_rng(0)
    labels = rng.integers(-3, 9, 500)
    tau = rng.uniform(0.05, 1.0, 500)
    classes, means, counts = tau_by_class(labels, tau, cap=5)
    g = pd.DataFrame({"label": labels, "tau": tau}).groupby("label")["tau"].agg(["mean", "size"])
    g = g.reset_index().sort_values(["size", "label"], ascending=[False, True]).head(5)
    np.testing.assert_array_equal(classes, g["label"])
    np.testing.assert_allclose(means, g["mean"], rtol=1e-12)
    np.testing.assert_array_equal(counts, g["size"])
    with pytest.raises(ValueError, match="1-D of one length"):
        tau_by_class(labels, tau[:-1])
    with pytest.raises(ValueError, match="cap must be >= 1"):
        tau_by_class(labels, tau, cap=0)
