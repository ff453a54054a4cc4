"""pairwise_statistics (fused) against the single-purpose reference functions, and its row cap."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import cldiag.functional as F


def _batch(n: int, d: int, dtype: torch.dtype = torch.float32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, d, generator=g)
    b = a + 0.7 * torch.randn(n, d, generator=g)
    y = torch.randint(0, 3, (n,), generator=g)
    return a.to(dtype), b.to(dtype), y


def _close(got: torch.Tensor, want: torch.Tensor, tol: float) -> None:
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want.float(), rtol=tol, atol=tol, equal_nan=True)


CASES = [(2, 3), (3, 1), (7, 5), (64, 16), (257, 32)]


@pytest.mark.parametrize(("n", "d"), CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("with_labels", [True, False])
@pytest.mark.parametrize("tau", [None, 0.07, 0.5, torch.tensor(0.2)])
def test_fused_equals_the_references(n, d, dtype, with_labels, tau):
    a, b, y = _batch(n, d, dtype, seed=n * d)
    labels = y if with_labels else None
    st = F.pairwise_statistics(a, b, labels=labels, temperature=tau, bins=20)
    tol = 2e-5
    assert st.rows is None
    _close(st.uniformity_a, F.uniformity(a), tol)
    _close(st.uniformity_b, F.uniformity(b), tol)
    _close(st.std_a, F.std_of_l2_normalized(a), tol)
    if with_labels:
        _close(st.tolerance, F.tolerance(a, y), tol)
    else:
        assert st.tolerance is None
    ref = F.score_histograms(a, b, bins=20)
    for field in ("edges", "pos", "neg", "hard_neg"):
        assert torch.equal(getattr(st.histograms, field), getattr(ref, field)), field
    _close(st.histograms.pos_scores, ref.pos_scores, tol)
    _close(st.histograms.hardest_neg, ref.hardest_neg, tol)
    _close(st.overlap, F.histogram_overlap(ref.pos, ref.neg), tol)
    _close(st.negative_similarity, F.negative_similarity(a, b), tol)
    _close(st.hardest_negative, ref.hardest_neg.mean(), tol)
    _close(st.retrieval, F.retrieval_accuracy(a, b), 0.0)
    if tau is None:
        assert st.hardness is None and st.coupling is None
    else:
        h = F.hardness(a, b, tau)
        _close(st.hardness.entropy, h.entropy, 1e-4)
        _close(st.hardness.effective_negatives, h.effective_negatives, 1e-4)
        _close(st.hardness.pos_prob, h.pos_prob, 1e-4)
        _close(st.coupling, 1.0 - h.pos_prob, 1e-4)
    scalars = st.scalars()
    assert all(v.ndim == 0 for v in scalars.values())
    assert ("tolerance" in scalars) == with_labels and ("entropy" in scalars) == (tau is not None)


def test_fused_with_custom_edges_zero_rows_and_exact_scores():
    e = torch.eye(4)
    a = torch.cat([e, torch.zeros(1, 4)])  # a zero row stays zero, as in normalize
    b = torch.cat([e, e[:1]])
    edges = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0])
    st = F.pairwise_statistics(a, b, bins=edges, temperature=0.1)
    ref = F.score_histograms(a, b, bins=edges)
    assert torch.equal(st.histograms.neg, ref.neg) and torch.equal(st.histograms.pos, ref.pos)
    _close(st.uniformity_a, F.uniformity(a), 1e-6)
    _close(st.hardness.entropy, F.hardness(a, b, 0.1).entropy, 1e-5)


def test_fused_b1_raises_and_b2_has_one_negative():
    with pytest.raises(ValueError, match="at least 2 rows"):
        F.pairwise_statistics(torch.randn(1, 3), torch.randn(1, 3))
    st = F.pairwise_statistics(torch.randn(2, 3), torch.randn(2, 3), temperature=0.3)
    assert float(st.hardness.entropy) == 0.0 and float(st.hardness.effective_negatives) == 1.0


def test_temperature_curves_equal_hardness_and_uniformity_per_tau():
    a, b, y = _batch(50, 8, seed=3)
    taus = [0.005, 0.02, 0.1, 0.5, 2.0]
    c = F.temperature_curves(a, b, taus, labels=y)
    for k, tau in enumerate(taus):
        h = F.hardness(a, b, tau)
        _close(c.entropy[k], h.entropy, 1e-4)
        _close(c.effective_negatives[k], h.effective_negatives, 1e-4)
        _close(c.pos_prob[k], h.pos_prob, 1e-4)
        _close(c.uniformity[k], F.uniformity(a, t=1 / (2 * tau)), 1e-4)


def test_subsample_rows_is_seeded_sorted_and_pairs_rows():
    assert F.subsample_rows(100, 100) is None and F.subsample_rows(5, None) is None
    idx = F.subsample_rows(100, 10, seed=7)
    assert idx.shape == (10,) and torch.equal(idx, idx.sort().values) and len(set(idx.tolist())) == 10
    assert torch.equal(idx, F.subsample_rows(100, 10, seed=7))
    assert not torch.equal(idx, F.subsample_rows(100, 10, seed=8))
    a, b, y = _batch(60, 4)
    st = F.pairwise_statistics(a, b, labels=y, temperature=0.2, max_rows=20, seed=5)
    rows = F.subsample_rows(60, 20, seed=5)
    assert torch.equal(st.rows, rows)
    ref = F.pairwise_statistics(a[rows], b[rows], labels=y[rows], temperature=0.2)
    for key, value in ref.scalars().items():
        _close(st.scalars()[key], value, 0.0)
    c = F.temperature_curves(a, b, [0.1, 1.0], labels=y, max_rows=20, seed=5)
    ref_c = F.temperature_curves(a[rows], b[rows], [0.1, 1.0], labels=y[rows])
    assert torch.equal(c.rows, rows) and ref_c.rows is None
    for field in ("entropy", "effective_negatives", "pos_prob", "uniformity", "same_class_penalty"):
        _close(getattr(c, field), getattr(ref_c, field), 0.0)
    with pytest.raises(ValueError, match="cap must be >= 2"):
        F.subsample_rows(10, 1)
    with pytest.raises(TypeError, match="n must be an int"):
        F.subsample_rows(10.0, 4)


_PROBE = textwrap.dedent(
    """
    import json, resource, sys, torch
    torch.set_num_threads(1)
    import cldiag.functional as F
    n, d = int(sys.argv[1]), 128
    a = torch.randn(n, d); b = a + 0.5 * torch.randn(n, d); y = torch.randint(0, 10, (n,))
    F.pairwise_statistics(a[:64], b[:64], labels=y[:64], temperature=0.1)  # load kernels before the baseline
    F.temperature_curves(a[:64], b[:64], [0.1], labels=y[:64])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    st = F.pairwise_statistics(a, b, labels=y, temperature=0.1, seed=1)
    c = F.temperature_curves(a, b, torch.logspace(-2, 0, 13), labels=y, seed=1)
    assert torch.equal(c.rows, st.rows)
    rows = st.rows
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"extra_mib": (after - before) / 1024, "rows": int(rows.numel()),
                      "finite": bool(torch.isfinite(c.entropy).all() and torch.isfinite(st.uniformity_a))}))
    """
)


def test_big_batch_is_capped_with_bounded_peak_memory():
    # B = 20,000: without the cap one B x B float32 matrix alone is 1.5 GiB (the old step peaked at 16 GB).
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, "20000"], capture_output=True, text=True, timeout=600, env=env
    )
    assert out.returncode == 0, out.stderr
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    assert probe["rows"] == F.ROW_CAP and probe["finite"]
    assert probe["extra_mib"] < 250, probe  # measured 170 MiB; one uncapped B x B matrix is 1.5 GiB
