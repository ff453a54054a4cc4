"""Property tests of cldiag.functional: invariances and bounds on small random batches."""

from __future__ import annotations

import math

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cldiag import functional as F

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def paired_batches(draw, min_rows=2, max_rows=9, max_dim=6):
    """A paired batch (a, b) with rows bounded away from zero, plus labels, scales and a permutation."""
    n = draw(st.integers(min_rows, max_rows))
    d = draw(st.integers(1, max_dim))
    seed = draw(st.integers(0, 2**31 - 1))
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(n, d, generator=gen)
    b = torch.randn(n, d, generator=gen)
    if draw(st.booleans()):  # correlated views, as in training
        b = a + 0.3 * b
    # Rows with tiny norms make normalization ill-conditioned; the properties are about the sphere.
    a = torch.where(a.norm(dim=1, keepdim=True) < 1e-3, torch.ones_like(a), a)
    b = torch.where(b.norm(dim=1, keepdim=True) < 1e-3, torch.ones_like(b), b)
    scales_a = torch.exp(torch.empty(n, 1).uniform_(-4, 4, generator=gen))
    scales_b = torch.exp(torch.empty(n, 1).uniform_(-4, 4, generator=gen))
    labels = torch.randint(0, draw(st.integers(1, 3)), (n,), generator=gen)
    perm = torch.randperm(n, generator=gen)
    return a, b, labels, scales_a, scales_b, perm


def assert_same(x, y, atol=2e-5):
    torch.testing.assert_close(x, y, atol=atol, rtol=1e-4)


@SETTINGS
@given(paired_batches())
def test_invariant_to_positive_row_scaling(batch):
    a, b, labels, sa, sb, _ = batch
    a2, b2 = a * sa, b * sb
    assert_same(F.alignment(a2, b2), F.alignment(a, b))
    assert_same(F.uniformity(a2), F.uniformity(a))
    assert_same(F.tolerance(a2, labels, normalized=False), F.tolerance(a, labels, normalized=False))
    assert_same(F.retrieval_accuracy(a2, b2), F.retrieval_accuracy(a, b))
    for x, y in zip(F.hardness(a2, b2, 0.3), F.hardness(a, b, 0.3), strict=True):
        assert_same(x, y)
    for x, y in zip(F.modality_gap(a2, b2), F.modality_gap(a, b), strict=True):
        assert_same(x, y)
    assert_same(F.spectrum(a2), F.spectrum(a))
    assert_same(F.std_of_l2_normalized(a2), F.std_of_l2_normalized(a))
    s1, s2 = F.step_statistics(a2, b2, two_modality=True), F.step_statistics(a, b, two_modality=True)
    for key in s1.keys() - {"norm_a", "norm_b"}:
        assert_same(s1[key], s2[key])


@SETTINGS
@given(paired_batches())
def test_invariant_to_permuting_pairs(batch):
    a, b, labels, _, _, perm = batch
    ap, bp, lp = a[perm], b[perm], labels[perm]
    assert_same(F.alignment(ap, bp), F.alignment(a, b))
    assert_same(F.uniformity(ap), F.uniformity(a))
    assert_same(F.tolerance(ap, lp, normalized=False), F.tolerance(a, labels, normalized=False))
    assert_same(F.retrieval_accuracy(ap, bp), F.retrieval_accuracy(a, b))
    for x, y in zip(F.hardness(ap, bp, 0.2), F.hardness(a, b, 0.2), strict=True):
        assert_same(x, y)
    cp = F.temperature_curves(ap, bp, [0.05, 0.5], labels=lp)
    c = F.temperature_curves(a, b, [0.05, 0.5], labels=labels)
    for x, y in zip(cp, c, strict=True):
        assert_same(x, y)
    hp, h = F.score_histograms(ap, bp, bins=10), F.score_histograms(a, b, bins=10)
    for x, y in zip(hp[:4], h[:4], strict=True):
        assert torch.equal(x, y)
    for x, y in zip(F.modality_gap(ap, bp), F.modality_gap(a, b), strict=True):
        assert_same(x, y)
    assert_same(F.spectrum(ap), F.spectrum(a))
    assert_same(F.effective_rank(ap), F.effective_rank(a))


@SETTINGS
@given(paired_batches(), st.floats(0.1, 10.0))
def test_bounds(batch, t):
    a, b, labels, *_ = batch
    n, d = a.shape
    assert float(F.uniformity(a, t=t)) <= 1e-6
    assert float(F.uniformity(a, t=t)) >= -4.0 * t * (1 + 1e-5)
    assert -1e-6 <= float(F.alignment(a, b)) <= 4.0 + 1e-5
    rank = float(F.effective_rank(a))
    assert 1.0 - 1e-5 <= rank <= min(n, d) + 1e-3
    assert 0.0 <= float(F.retrieval_accuracy(a, b)) <= 1.0
    cone = float(F.cone(a))
    assert -1.0 / (n - 1) - 1e-5 <= cone <= 1.0 + 1e-5
    assert float(F.spectrum(a).min()) >= 0.0
    tol = F.tolerance(a, labels)
    assert math.isnan(float(tol)) or -1.0 - 1e-5 <= float(tol) <= 1.0 + 1e-5


@SETTINGS
@given(paired_batches(), st.floats(1e-3, 1e3))
def test_hardness_bounds(batch, tau):
    a, b, labels, *_ = batch
    n = a.shape[0]
    h = F.hardness(a, b, tau)
    assert 0.0 <= float(h.entropy) <= 1.0
    assert 1.0 - 1e-4 <= float(h.effective_negatives) <= (n - 1) * (1 + 1e-4)
    assert 0.0 <= float(h.pos_prob) <= 1.0
    c = F.temperature_curves(a, b, [tau], labels=labels)
    assert -1e-6 <= float(c.same_class_penalty[0]) <= 1.0 + 1e-5
    assert float(c.uniformity[0]) <= 1e-6


@SETTINGS
@given(paired_batches(), st.integers(1, 30))
def test_histogram_counts(batch, bins):
    a, b, *_ = batch
    n = a.shape[0]
    h = F.score_histograms(a, b, bins=bins)
    assert int(h.pos.sum()) == n
    assert int(h.neg.sum()) == n * (n - 1)
    assert int(h.hard_neg.sum()) == n
    assert bool((h.pos >= 0).all() and (h.neg >= 0).all())
