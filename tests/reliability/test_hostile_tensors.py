"""Hostile tensors through Monitor.log and the functional layer: each case has one documented behaviour
(the table in docs/reliability.md), checked here against the functional values or NumPy."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from rel_helpers import batch

from cldiag import Monitor, read_run
from cldiag import functional as F

ALL = dict(pairwise_every=1, spectrum_every=1, curves_every=1, snapshot_every=1, snapshot_size=8)


def _log(tmp_path, a, b, labels=None, strict=False, **kwargs):
    """Log one step; returns (scalars as {metric: value}, run, monitor)."""
    path = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
    mon = Monitor(path, strict=strict, **{**ALL, **kwargs})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mon.log(0, a, b, labels=labels, temperature=0.2)
        mon.close()
    run = read_run(path)
    df = run.scalars()
    assert not df.duplicated(["step", "metric"]).any()
    assert np.isfinite(df.value).all(), "NaN/Inf written to the run"
    return dict(zip(df.metric, df.value, strict=True)), run, mon


def _approx(x):
    return pytest.approx(float(x), rel=1e-5, abs=1e-6)


def test_nan_and_inf_rows(tmp_path):
    a, b, y = batch(0)
    a[1, 3], b[4, 0], a[6] = float("nan"), float("inf"), -float("inf")
    got, run, mon = _log(tmp_path, a, b, labels=y)
    keep = torch.ones(16, dtype=torch.bool)
    keep[[1, 4, 6]] = False
    assert got["nonfinite_fraction"] == pytest.approx(3 / 16)
    assert got["alignment"] == _approx(F.alignment(a[keep], b[keep]))
    assert got["tolerance"] == _approx(F.tolerance(a[keep], y[keep]))
    assert got["effective_rank"] == _approx(F.effective_rank(a[keep]))
    assert run.histograms().groupby("kind")["count"].sum()["pos"] == 13  # finite pairs only
    assert mon.errors == []
    assert math.isnan(float(F.uniformity(a)))  # the functional layer propagates NaN; the Monitor filters


def test_every_row_nonfinite(tmp_path):
    a = torch.full((8, 4), float("nan"))
    got, _, mon = _log(tmp_path, a, a.clone())
    assert got["nonfinite_fraction"] == 1.0
    assert "alignment" not in got and "uniformity" not in got  # undefined: never written as a number,
    assert got["nonfinite/alignment"] == 1  # but flagged
    assert any("fewer than 2 finite rows" in e for e in mon.errors)


def test_zero_rows(tmp_path):
    a, b, _ = batch(1)
    a[:3] = 0
    got, _, mon = _log(tmp_path, a, b)
    assert got["nonfinite_fraction"] == 0  # a zero row is finite: it stays, as the zero vector
    assert got["alignment"] == _approx(F.alignment(a, b))
    assert float(F.alignment(a[:3], b[:3])) == pytest.approx(1.0, abs=1e-5)  # ||0 - unit b||² = 1
    zeros, _, _ = _log(tmp_path, torch.zeros(8, 4), torch.zeros(8, 4))
    # An all-zero batch reads as total collapse, and nothing is NaN.
    assert zeros["alignment"] == 0 and zeros["uniformity"] == 0 and zeros["std_l2"] == 0
    assert zeros["effective_rank"] == pytest.approx(1.0, abs=1e-4)
    assert mon.errors == []


def test_fp16_large_values_and_overflow(tmp_path):
    a, b, _ = batch(2)
    a16 = (a / a.abs().max() * 6e4).half()  # finite in fp16, but squared norms overflow fp16 (max 65504)
    b16 = (b / b.abs().max() * 6e4).half()
    assert torch.isfinite(a16).all() and not torch.isfinite((a16 * a16).sum(1)).all()
    got, _, _ = _log(tmp_path, a16, b16)
    assert got["alignment"] == _approx(F.alignment(a16.float(), b16.float()))
    assert got["norm/view1"] == pytest.approx(float(a16.float().norm(dim=1).mean()), rel=1e-4)
    assert float(F.uniformity(a16)) == _approx(F.uniformity(a16.float()))
    over = a16.clone()
    over[0, 0] = 7e4  # overflows to inf on the cast to fp16
    got, _, _ = _log(tmp_path, over, b16)
    assert got["nonfinite_fraction"] == pytest.approx(1 / 16)


def test_empty_batch(tmp_path):
    got, _, mon = _log(tmp_path, torch.zeros(0, 8), torch.zeros(0, 8))
    assert got == {} and len(mon.errors) == 1 and "empty batch" in mon.errors[0]
    with pytest.raises(ValueError, match="empty batch"):
        _log(tmp_path, torch.zeros(0, 8), torch.zeros(0, 8), strict=True)
    with pytest.raises(ValueError, match=r"at least one row.*\(0, 8\)"):
        F.alignment(torch.zeros(0, 8), torch.zeros(0, 8))


def test_single_row_and_single_dim(tmp_path):
    a, b, _ = batch(3)
    got, run, mon = _log(tmp_path, a[:1], b[:1])
    assert got["alignment"] == _approx(F.alignment(a[:1], b[:1])) and got["batch_size"] == 1
    assert "uniformity" not in got and run.histograms().empty  # pairwise statistics need two rows
    assert len(mon.errors) == 1 and "fewer than 2" in mon.errors[0]
    with pytest.raises(ValueError, match="at least 2 rows"):
        F.uniformity(a[:1])
    got, _, mon = _log(tmp_path, a[:, :1], b[:, :1])
    signs = torch.sign(a[:, 0]) == torch.sign(b[:, 0])
    assert got["pos_sim"] == pytest.approx(float(signs.float().mean() * 2 - 1))  # unit rows are ±1
    assert got["effective_rank"] == pytest.approx(1.0, abs=1e-4) and mon.errors == []


def test_non_contiguous_equals_contiguous(tmp_path):
    a, b, y = batch(4, d=16)
    a_nc, b_nc = a.T.contiguous().T[:, ::2], b[:, ::2]  # transposed storage, then strided columns
    assert not a_nc.is_contiguous() and not b_nc.is_contiguous()
    got_nc, _, _ = _log(tmp_path, a_nc, b_nc, labels=y)
    got, _, _ = _log(tmp_path, a_nc.contiguous(), b_nc.contiguous(), labels=y)
    assert got_nc.keys() == got.keys()
    for metric, value in got.items():
        assert got_nc[metric] == pytest.approx(value, rel=1e-6, abs=1e-7), metric


def test_requires_grad_is_not_kept(tmp_path):
    lin = torch.nn.Linear(8, 8)
    a, b, _ = batch(5)
    za, zb = lin(a), lin(b)
    mon = Monitor(tmp_path / "g", flush_every=1000, **ALL)
    mon.log(0, za, zb, temperature=torch.tensor(0.2, requires_grad=True), loss=(za * zb).sum())
    buffered = [v for v in mon._pending.scalar_values if isinstance(v, torch.Tensor)]
    assert buffered and not any(v.requires_grad for v in buffered)  # no autograd graph kept alive
    mon.close()
    assert not F.alignment(za, zb).requires_grad
    got = read_run(tmp_path / "g").scalars()
    assert got[got.metric == "alignment"].value.item() == _approx(F.alignment(za.detach(), zb.detach()))


def test_tensors_on_different_devices(tmp_path):
    a, b, _ = batch(6)
    got, _, mon = _log(tmp_path, a, b.to("meta"))
    assert got == {} and "different devices (cpu and meta)" in mon.errors[0]
    with pytest.raises(ValueError, match="cpu and meta"):
        _log(tmp_path, a, b.to("meta"), strict=True)
    with pytest.raises(ValueError, match="same device, got cpu and meta"):
        F.alignment(a, b.to("meta"))


def test_a_bad_step_does_not_poison_the_flush(tmp_path):
    """A step that fails half-way (here: tensors on the meta device, which hold no data) is dropped whole;
    the other steps of the same flush are written."""
    path = tmp_path / "run"
    mon = Monitor(path, flush_every=10, pairwise_every=1, spectrum_every=0, curves_every=0, snapshot_every=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for step in range(10):
            a, b, _ = batch(step)
            if step == 5:
                a, b = a.to("meta"), b.to("meta")
            mon.log(step, a, b)
        mon.close()
    assert len(mon.errors) == 1 and "step 5" in mon.errors[0]
    df = read_run(path).scalars()
    assert sorted(df[df.metric == "alignment"].step) == [0, 1, 2, 3, 4, 6, 7, 8, 9]
    assert 5 not in set(df.step)


def test_integer_tensors(tmp_path):
    a, b, _ = batch(7)
    got, _, mon = _log(tmp_path, a.long(), b.long())
    assert got == {} and "floating-point tensor, got dtype torch.int64" in mon.errors[0]
    with pytest.raises(TypeError, match=r"torch\.int32"):
        F.uniformity(a.int())
    with pytest.raises(TypeError, match="must hold integers"):
        _log(tmp_path, a, b, labels=torch.zeros(16), strict=True)


def test_one_class_labels(tmp_path):
    a, b, _ = batch(8)
    y = torch.zeros(16, dtype=torch.long)
    got, run, _ = _log(tmp_path, a, b, labels=y)
    u = (a / a.norm(dim=1, keepdim=True)).double().numpy()
    cos = u @ u.T
    assert got["tolerance"] == pytest.approx(cos[~np.eye(16, dtype=bool)].mean(), rel=1e-5)
    same = run.temperature().query("curve == 'same_class_penalty'")
    assert len(same) == 13 and np.allclose(same.value, 1.0)  # every negative is a same-class negative


def test_ten_thousand_classes(tmp_path):
    a, b, _ = batch(9)
    y = torch.arange(16) * 625 + 1  # 16 distinct labels spread over 10k classes: no same-class pair
    got, run, mon = _log(tmp_path, a, b, labels=y)
    assert "tolerance" not in got and got["nonfinite/tolerance"] == 1  # undefined: a flag, not a number
    same = run.temperature().query("curve == 'same_class_penalty'")
    assert np.allclose(same.value, 0.0)
    assert mon.errors == []
    big = torch.tensor([2**62, 2**62, -(2**62), 7] * 4)  # label values are never used as indices
    got, _, _ = _log(tmp_path, a, b, labels=big)
    assert got["tolerance"] == _approx(F.tolerance(a, big))
