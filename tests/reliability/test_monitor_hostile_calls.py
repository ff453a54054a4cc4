"""Hostile calls into the Monitor (issue 11): one bad step, name or value drops only its own call, never a
flush; repeated steps never write a (step, metric) row twice; a live run is never overwritten or written
by two Monitors; a deleted run is not silently recreated; and a short run ends with a snapshot."""

from __future__ import annotations

import math
import os
import select
import shutil
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import torch
from rel_helpers import batch, child_env

from cldiag import Monitor, read_run
from cldiag.store import RunStoreError

QUIET = dict(pairwise_every=0, spectrum_every=0, curves_every=0, snapshot_every=0)
META = "meta"


def _good_steps(mon, steps):
    for step in steps:
        a, b, _ = batch(step)
        mon.log(step, a, b, loss=float(step))
        mon.log_scalar(step, "x", float(step))


def _meta_tensor(*shape):
    return torch.ones(shape, device=META)


# Each call was accepted at call time by the old code and then failed the whole flush of every buffered
# step ("flush failed, N steps of diagnostics lost"), or was stored at a wrong step, or raised into the
# training loop.
BAD_CALLS = {
    "meta loss": (lambda mon, a, b: mon.log(3, a, b, loss=_meta_tensor()), ValueError, "loss.*meta device"),
    "meta temperature": (
        lambda mon, a, b: mon.log(3, a, b, temperature=_meta_tensor()),
        ValueError,
        "temperature.*meta",
    ),
    "meta labels": (
        lambda mon, a, b: mon.log(3, a, b, labels=torch.zeros(16, dtype=torch.long, device=META)),
        ValueError,
        "labels.*meta",
    ),
    "step 2**63": (lambda mon, a, b: mon.log(2**63, a, b), ValueError, "outside the int64 range"),
    "step uint64 max": (
        lambda mon, a, b: mon.log(np.uint64(2**64 - 1), a, b),
        ValueError,
        "18446744073709551615 is outside the int64 range",
    ),
    "float step 3.7": (lambda mon, a, b: mon.log(3.7, a, b), TypeError, "step must be an int, got float 3.7"),
    "bool step": (lambda mon, a, b: mon.log(True, a, b), TypeError, "step must be an int, got bool"),
    "float tensor step": (
        lambda mon, a, b: mon.log(torch.tensor(3.0), a, b),
        TypeError,
        "0-d integer tensor",
    ),
    "log_scalar str step": (lambda mon, a, b: mon.log_scalar("3", "y", 1.0), TypeError, "got str '3'"),
    "log_scalar float step": (
        lambda mon, a, b: mon.log_scalar(3.7, "y", 1.0),
        TypeError,
        "step must be an int, got float",
    ),
    "log_scalar step 2**63": (lambda mon, a, b: mon.log_scalar(2**63, "y", 1.0), ValueError, "int64"),
    "log_scalar str value": (
        lambda mon, a, b: mon.log_scalar(3, "y", "abc"),
        TypeError,
        "must be a number or a one-element tensor, got str 'abc'",
    ),
    "log_scalar meta value": (
        lambda mon, a, b: mon.log_scalar(3, "y", _meta_tensor()),
        ValueError,
        "scalar 'y' is a tensor on the meta device",
    ),
    "log_scalar empty name": (lambda mon, a, b: mon.log_scalar(3, "", 1.0), ValueError, "non-empty string"),
    "log_embeddings meta": (
        lambda mon, a, b: mon.log_embeddings(3, _meta_tensor(4, 8)),
        ValueError,
        "z is a tensor on the meta device",
    ),
    "log_embeddings int tensor": (
        lambda mon, a, b: mon.log_embeddings(3, torch.ones(4, 8, dtype=torch.long)),
        TypeError,
        "floating-point",
    ),
    "log_embeddings changed dim": (
        lambda mon, a, b: mon.log_embeddings(3, torch.ones(4, 5)),
        ValueError,
        "dim changed from 8 to 5",
    ),
    "log_embeddings step 2**63": (
        lambda mon, a, b: mon.log_embeddings(2**63, torch.ones(4, 8)),
        ValueError,
        "int64",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CALLS))
def test_one_bad_call_drops_only_itself(tmp_path, case):
    bad_call, exc_type, match = BAD_CALLS[case]
    path = tmp_path / "run"
    mon = Monitor(path, flush_every=1000, flush_secs=1e9, **QUIET)  # every step lands in one flush
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        _good_steps(mon, range(3))
        a, b, _ = batch(3)
        bad_call(mon, a, b)  # must not raise into the training loop
        bad_call(mon, a, b)  # the same error again: not reported twice
        _good_steps(mon, range(3, 6))
        mon.close()
    assert len(mon.errors) == 1, mon.errors
    assert [str(w.message) for w in record if w.category is RuntimeWarning] == [
        f"cldiag: {mon.errors[0]} (training continues; pass strict=True to raise instead)"
    ]
    df = read_run(path).scalars()
    assert sorted(df[df.metric == "alignment"].step) == list(range(6))
    assert sorted(df[df.metric == "x"].step) == list(range(6))
    assert "y" not in set(df.metric)  # the bad log_scalar calls wrote nothing, at no step
    assert not df.duplicated(["step", "metric"]).any()
    assert df.step.max() == 5 and read_run(path).snapshot_steps() == []

    strict = Monitor(tmp_path / "strict", strict=True, **QUIET)
    _good_steps(strict, range(3))
    with pytest.raises(exc_type, match=match):
        bad_call(strict, a, b)
    strict.close()


def test_valid_step_forms_are_stored_as_int64(tmp_path):
    path = tmp_path / "run"
    with Monitor(path, **QUIET, strict=True) as mon:
        a, b, _ = batch(0)
        mon.log(np.int64(0), a, b)
        mon.log(torch.tensor(1), a, b)
        mon.log(np.uint8(2), a, b)
        mon.log(2**63 - 1, a, b)  # the largest step a run can store
        mon.log_scalar(torch.tensor(7, dtype=torch.int32), "y", np.float32(0.5))
        mon.log_scalar(8, "y", np.array([0.25]))
    df = read_run(path).scalars()
    assert sorted(df[df.metric == "alignment"].step) == [0, 1, 2, 2**63 - 1]
    assert df[df.metric == "y"].set_index("step").value.to_dict() == {7: 0.5, 8: 0.25}


def test_repeated_or_backwards_steps_are_dropped_and_reported_once(tmp_path):
    path = tmp_path / "run"
    mon = Monitor(path, flush_every=2, pairwise_every=1, spectrum_every=0, curves_every=0, snapshot_every=0)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for step in [0, 1, 2, 2, 1, 3, 0, 4]:  # gradient accumulation or a restarted loop
            a, b, _ = batch(step)
            mon.log(step, a, b)
            mon.log_scalar(step, "x", float(step))
        mon.log_embeddings(4, torch.randn(4, 8))
        mon.log_embeddings(4, torch.randn(4, 8))
        mon.close()
    assert len(mon.errors) == 1 and "step 2 comes after step 2; steps must increase" in mon.errors[0]
    assert len([w for w in record if w.category is RuntimeWarning]) == 1
    run = read_run(path)
    df = run.scalars()
    assert not df.duplicated(["step", "metric"]).any()
    assert sorted(df[df.metric == "alignment"].step) == [0, 1, 2, 3, 4]
    assert sorted(df[df.metric == "x"].step) == [0, 1, 2, 3, 4]
    assert not run.histograms().duplicated(["step", "kind", "bin_left"]).any()
    assert len(run.embeddings(4)) == 4  # the second probe at step 4 was dropped
    strict = Monitor(tmp_path / "strict", strict=True, **QUIET)
    _good_steps(strict, range(3))
    with pytest.raises(ValueError, match="step 1 comes after step 2"):
        strict.log(1, *batch(1)[:2])
    with pytest.raises(ValueError, match="scalar 'x': step 2 comes after step 2"):
        strict.log_scalar(2, "x", 1.0)
    strict.close()


@pytest.mark.parametrize("tau", [-0.1, 0.0, float("nan")])
def test_bad_temperature_tensor_is_rejected_like_the_float(tmp_path, tau):
    path = tmp_path / "run"
    mon = Monitor(
        path, flush_every=1000, pairwise_every=2, spectrum_every=0, curves_every=0, snapshot_every=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for step in range(6):
            a, b, _ = batch(step)
            bad = step in (2, 3)  # step 2 has pairwise statistics (hardness at τ), step 3 has not
            mon.log(step, a, b, temperature=torch.tensor(tau) if bad else torch.tensor(0.2))
        mon.log(6, *batch(6)[:2], temperature=tau)  # the float form
        mon.close()
    df = read_run(path).scalars()
    assert 2 not in set(df.step) and 6 not in set(df.step)  # dropped whole: no hardness at a bad τ
    assert set(df[df.metric == "neg_entropy"].step) == {0, 4}
    assert not (df[df.metric == "temperature"].value <= 0).any()
    if math.isnan(tau):
        # Without a host sync of its own, a NaN tensor τ at step 3 is found at the flush: flagged like any
        # non-finite scalar; the step's other values stay.
        assert set(df[df.metric == "nonfinite/temperature"].step) == {3}
        assert 3 in set(df[df.metric == "alignment"].step)
    else:
        assert 3 not in set(df.step)  # found at the flush: the step is dropped, the flush is written
    assert sorted(df[df.metric == "alignment"].step) == sorted(
        {0, 1, 4, 5} | ({3} if math.isnan(tau) else set())
    )
    assert any("temperature must be positive and finite" in e for e in mon.errors)


def test_a_run_deleted_mid_training_is_not_recreated(tmp_path):
    path = tmp_path / "run"
    mon = Monitor(path, flush_every=1, heartbeat_secs=0.1, **QUIET)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        _good_steps(mon, range(5))
        mon.flush(wait=True)
        shutil.rmtree(path)
        _good_steps(mon, range(5, 15))  # the training goes on
        time.sleep(0.3)  # heartbeats come and go: they must not recreate meta.json either
        mon.close()
    assert not path.exists()
    assert len(mon.errors) == 1 and "was deleted while this Monitor was writing it" in mon.errors[0]
    assert len([w for w in record if w.category is RuntimeWarning]) == 1

    strict = Monitor(tmp_path / "strict", flush_every=1, strict=True, **QUIET)
    _good_steps(strict, range(2))
    strict.flush(wait=True)
    shutil.rmtree(tmp_path / "strict")
    _good_steps(strict, range(2, 3))
    with warnings.catch_warnings(), pytest.raises(RunStoreError, match="was deleted"):
        warnings.simplefilter("ignore", RuntimeWarning)  # the writer thread's report, before the raise
        strict.flush(wait=True)
    strict.close()
    assert not (tmp_path / "strict").exists()


def test_a_second_monitor_in_this_process_is_refused(tmp_path):
    path = tmp_path / "run"
    first = Monitor(path, **QUIET)
    _good_steps(first, range(3))
    first.flush(wait=True)
    for mode in ("resume", "overwrite"):
        with pytest.raises(FileExistsError, match="another Monitor in this process"):
            Monitor(path, if_exists=mode)
        # The same directory under another spelling is the same run.
        with pytest.raises(FileExistsError, match="another Monitor in this process"):
            Monitor(os.path.join(tmp_path, ".", "run"), if_exists=mode)
    _good_steps(first, range(3, 5))
    first.close()
    with Monitor(path, if_exists="resume", **QUIET) as again:  # closed: resuming is allowed
        _good_steps(again, range(5, 7))
    df = read_run(path).scalars(["alignment"])
    assert sorted(df.step) == list(range(7))


CHILD = """
import sys, time, torch
from cldiag import Monitor
mon = Monitor(sys.argv[1], flush_every=1, heartbeat_secs=0.2, pairwise_every=1, snapshot_every=5,
              snapshot_size=8, budget=None)
step = 0
while True:
    g = torch.Generator().manual_seed(step)
    a = torch.randn(16, 8, generator=g)
    mon.log(step, a, a + 0.1, loss=1.0)
    if step == 5:
        mon.flush(wait=True)
        print("ready", flush=True)
    step += 1
    time.sleep(0.01)
"""


def _files(path):
    return {os.path.relpath(os.path.join(d, f), path) for d, _, fs in os.walk(path) for f in fs}


def test_overwrite_refuses_a_run_another_process_writes(tmp_path):
    path = tmp_path / "live"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)], env=child_env(), stdout=subprocess.PIPE, text=True
    )
    try:
        ready, _, _ = select.select([child.stdout], [], [], 120)  # a child that dies must not hang the test
        assert ready and child.stdout.readline().strip() == "ready"
        before = {f for f in _files(path) if f.endswith(".parquet") and not f.startswith(".")}
        assert before
        with pytest.raises(FileExistsError, match=f"still being written by process {child.pid}"):
            Monitor(path, if_exists="overwrite")
        after = _files(path)
        assert before <= after  # nothing was deleted
        assert child.poll() is None  # and the writer goes on
    finally:
        child.kill()
        child.wait()
    with Monitor(path, if_exists="overwrite", **QUIET) as mon:  # its writer is dead: overwrite proceeds
        mon.log(100, *batch(0)[:2])
    assert sorted(read_run(path).scalars(["alignment"]).step) == [100]


def test_short_run_ends_with_a_snapshot_and_spectrum(tmp_path):
    path = tmp_path / "short"
    last = {}
    with Monitor(path, pairwise_every=0, curves_every=0, snapshot_size=8) as mon:  # default cadences
        for step in range(300):  # the quick start's length: snapshot_every=1000, spectrum_every=250
            a, b, _ = batch(step)
            mon.log(step, a, b)
            last = {"a": a}
    run = read_run(path)
    assert run.snapshot_steps() == [0, 299]
    z, info = run.embedding_matrix(299)
    view1 = (info.modality == "view1").to_numpy()  # the snapshot holds both views of each pair
    np.testing.assert_array_equal(z[view1], last["a"][:8].numpy())  # the trained model's last batch
    assert sorted(run.spectra().step.unique()) == [0, 250, 299]
    assert sorted(run.scalars(["effective_rank"]).step) == [0, 250, 299]
    assert not run.scalars().duplicated(["step", "metric"]).any()

    # A run whose last step already had both adds nothing.
    with Monitor(tmp_path / "aligned", spectrum_every=5, snapshot_every=5, snapshot_size=8) as mon:
        for step in range(11):
            mon.log(step, *batch(step)[:2])
    run = read_run(tmp_path / "aligned")
    assert run.snapshot_steps() == [0, 5, 10] and sorted(run.spectra().step.unique()) == [0, 5, 10]

    with Monitor(tmp_path / "off", snapshot_size=8, final_snapshot=False) as mon:  # keeps to the cadences
        for step in range(300):
            mon.log(step, *batch(step)[:2])
    run = read_run(tmp_path / "off")
    assert run.snapshot_steps() == [0] and sorted(run.spectra().step.unique()) == [0, 250]


def test_a_user_scalar_named_like_a_metric_of_log_is_not_written_twice(tmp_path):
    path = tmp_path / "run"
    mon = Monitor(path, **QUIET)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        a, b, _ = batch(0)
        mon.log(0, a, b, loss=1.0)
        mon.log_scalar(0, "loss", 2.0)  # after log: this call is dropped
        mon.log_scalar(1, "loss", 3.0)
        mon.log(1, a, b, loss=4.0)  # after log_scalar: this step is dropped, whole
        mon.log(2, a, b, loss=5.0)
        mon.close()
    df = read_run(path).scalars()
    assert not df.duplicated(["step", "metric"]).any()
    assert df[df.metric == "loss"].set_index("step").value.to_dict() == {0: 1.0, 1: 3.0, 2: 5.0}
    assert sorted(df[df.metric == "alignment"].step) == [0, 2]
    assert len(mon.errors) == 1 and "scalar 'loss': step 0 comes after step 0" in mon.errors[0]


def test_validation_reads_no_tensor_value_at_ordinary_steps(tmp_path, monkeypatch):
    """On an accelerator a read of a tensor's value is a host sync: the checks of a tensor τ, loss or
    user scalar must not add one. Counted here on CPU by intercepting every way to read a value."""
    mon = Monitor(tmp_path / "run", flush_every=10**6, flush_secs=1e9, **QUIET)
    reads = []
    for attr in ("item", "tolist", "__bool__", "__float__", "__int__", "cpu", "numpy"):
        real = getattr(torch.Tensor, attr)

        def spy(self, *args, _real=real, _attr=attr, **kwargs):
            reads.append(_attr)
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, attr, spy)
    a, b, y = batch(0)
    for step in range(5):
        tau = torch.tensor(-0.1 if step == 3 else 0.2)  # the bad one is found at the flush, not here
        mon.log(step, a, b, labels=y, temperature=tau, loss=torch.tensor(1.0))
        mon.log_scalar(step, "x", torch.tensor(0.5))
    assert reads == [] and mon.errors == []
    monkeypatch.undo()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mon.close()
    assert len(mon.errors) == 1 and "dropped at flush (first: step 3: temperature" in mon.errors[0]
    assert sorted(read_run(tmp_path / "run").scalars(["alignment"]).step) == [0, 1, 2, 4]


def test_a_value_that_cannot_be_copied_at_the_flush_drops_only_its_step(tmp_path):
    """What the checks at call time cannot see (here: a loss whose storage is freed after the call, as
    FSDP frees shards) costs its own step at the flush, in every table, not the flush."""
    path = tmp_path / "run"
    mon = Monitor(path, flush_every=10**6, flush_secs=1e9, **{**QUIET, "pairwise_every": 1})
    freed = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for step in range(6):
            a, b, _ = batch(step)
            loss = torch.tensor(float(step))
            mon.log(step, a, b, loss=loss)
            if step == 2:
                freed.append(loss)
        freed[0].untyped_storage().resize_(0)
        mon.close()
    assert len(mon.errors) == 1 and "dropped at flush (first: step 2: loss" in mon.errors[0]
    run = read_run(path)
    for table in (run.scalars(), run.histograms()):
        assert sorted(table.step.unique()) == [0, 1, 3, 4, 5]


def test_a_recurring_bad_value_is_reported_once_whatever_its_value(tmp_path):
    mon = Monitor(tmp_path / "run", **QUIET)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        a, b, _ = batch(0)
        for i in range(3):
            mon.log(i + 0.5, a, b)  # e.g. fractional epochs as steps
            mon.log(i, a, b, temperature=-0.1 * (i + 1))  # a τ that drifts negative
            mon.log_scalar(i, "y", f"value {i}")
            mon.log(2**63 + i, a, b)
        mon.close()
    assert len(mon.errors) == 4, mon.errors
    assert len([w for w in record if w.category is RuntimeWarning]) == 4
