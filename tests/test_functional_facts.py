"""Numerical checks of the facts that functional.py's docstrings state (issue 11, "Correctness")."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.special import gammaln, ive

import cldiag.functional as F
from cldiag.concepts import uniform_sphere_uniformity

NAN, INF = float("nan"), float("inf")


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- spectrum: the trace is N/(N-1) (1 - |mean|^2), at most N/(N-1) ------------------------------------


@pytest.mark.parametrize(("n", "d"), [(2, 2), (3, 5), (10, 4), (200, 16)])
def test_spectrum_sum_is_the_trace_of_the_unit_covariance(n, d):
    z = torch.randn(n, d, generator=_gen(n)) + 0.5
    u = F.normalize(z).double()
    want = n / (n - 1) * (1.0 - float(u.mean(dim=0).square().sum()))
    ev = F.spectrum(z).double()
    assert float(ev.sum()) == pytest.approx(want, rel=1e-5)
    assert float(ev.sum()) <= n / (n - 1) + 1e-6


def test_spectrum_sum_reaches_n_over_n_minus_one():
    assert float(F.spectrum(torch.tensor([[1.0, 0.0], [-1.0, 0.0]])).sum()) == pytest.approx(2.0)
    e = torch.eye(4)
    assert float(F.spectrum(torch.cat([e, -e])).sum()) == pytest.approx(8 / 7, rel=1e-6)


# --- std_of_l2_normalized: at most sqrt(N / ((N-1) d)), attained by ±e_k --------------------------------


def test_std_of_l2_normalized_bound_and_where_it_is_reached():
    assert float(F.std_of_l2_normalized(torch.tensor([[1.0], [-1.0]]))) == pytest.approx(math.sqrt(2))
    for d in (1, 2, 8, 64):
        e = torch.eye(d)
        n = 2 * d
        bound = math.sqrt(n / ((n - 1) * d))
        assert float(F.std_of_l2_normalized(torch.cat([e, -e]))) == pytest.approx(bound, rel=1e-5)
    for seed, (n, d) in enumerate([(2, 3), (5, 2), (50, 16), (1000, 128)]):
        z = torch.randn(n, d, generator=_gen(seed))
        assert float(F.std_of_l2_normalized(z)) <= math.sqrt(n / ((n - 1) * d)) + 1e-6
    iso = float(F.std_of_l2_normalized(torch.randn(4000, 128, generator=_gen(9))))
    assert iso == pytest.approx(1 / math.sqrt(128), rel=0.01)  # healthy is (nearly) the maximum


# --- uniformity of the uniform sphere: exact Bessel form; -4 + 8/d only for large d ---------------------


def _uniform_sphere_exact(d: int, t: float = 2.0) -> float:
    k, nu = 2 * t, d / 2 - 1
    return -2 * t + float(gammaln(d / 2)) + nu * math.log(2 / k) + math.log(float(ive(nu, k))) + k


@pytest.mark.parametrize(("d", "value"), [(3, -2.0798), (8, -3.0825), (32, -3.7518), (128, -3.9375)])
def test_uniformity_of_the_uniform_sphere_matches_the_docstring(d, value):
    assert _uniform_sphere_exact(d) == pytest.approx(value, abs=1e-4)
    assert uniform_sphere_uniformity(d) == pytest.approx(value, abs=1e-4)
    z = torch.randn(4000, d, generator=_gen(d))  # Gaussian rows, normalized: uniform on the sphere
    assert float(F.uniformity(z)) == pytest.approx(value, abs=0.01)


def test_large_d_approximation_is_only_good_for_large_d():
    assert abs(_uniform_sphere_exact(3) - (-4 + 8 / 3)) > 0.7
    assert abs(_uniform_sphere_exact(8) - (-4 + 8 / 8)) > 0.05
    assert abs(_uniform_sphere_exact(32) - (-4 + 8 / 32)) < 0.002


# --- cone: range [-1/(B-1), 1]; the bound is reached by a regular simplex -------------------------------


def test_cone_lower_bound_is_reached_by_a_simplex():
    b = 5
    simplex = torch.eye(b) - 1.0 / b  # centered basis vectors: a regular simplex in its span
    assert float(F.cone(simplex)) == pytest.approx(-1 / (b - 1), abs=1e-6)


# --- temperature_curves: the identity holds for the within-a cosines, not the cross cosines ------------


def test_temperature_curves_identity_uses_within_a_cosines():
    a = torch.randn(12, 6, generator=_gen(1))
    b = torch.randn(12, 6, generator=_gen(2))
    taus = [0.1, 0.3, 1.0]
    curves = F.temperature_curves(a, b, taus)
    ua, ub = F.normalize(a).double(), F.normalize(b).double()
    off = ~torch.eye(12, dtype=torch.bool)
    for k, tau in enumerate(taus):
        within = torch.logsumexp((ua @ ua.T)[off] / tau, 0) - math.log(off.sum()) - 1 / tau
        cross = torch.logsumexp((ua @ ub.T)[off] / tau, 0) - math.log(off.sum()) - 1 / tau
        assert float(curves.uniformity[k]) == pytest.approx(float(within), abs=1e-4)
        assert float(F.uniformity(a, t=1 / (2 * tau))) == pytest.approx(float(within), abs=1e-4)
        assert abs(float(curves.uniformity[k]) - float(cross)) > 1e-2


# --- one non-finite policy: never raise, NaN out (histogram counts skip, step_statistics masks) -------


def _cases(a, b, y):
    return {
        "alignment": lambda: F.alignment(a, b),
        "uniformity": lambda: F.uniformity(a),
        "tolerance": lambda: F.tolerance(a, y),
        "negative_similarity": lambda: F.negative_similarity(a, b),
        "retrieval_accuracy": lambda: F.retrieval_accuracy(a, b),
        "hardness": lambda: F.hardness(a, b, 0.1).entropy,
        "curves": lambda: F.temperature_curves(a, b, [0.1, 1.0], y).uniformity,
        "cone": lambda: F.cone(a),
        "gap": lambda: F.modality_gap(a, b).gap,
        "spectrum": lambda: F.spectrum(a),
        "effective_rank": lambda: F.effective_rank(a),
        "std_of_l2_normalized": lambda: F.std_of_l2_normalized(a),
        "pairwise": lambda: F.pairwise_statistics(a, b, labels=y, temperature=0.1).uniformity_a,
        "pairwise_hardness": lambda: F.pairwise_statistics(a, b, temperature=0.1).hardness.entropy,
        "pairwise_retrieval": lambda: F.pairwise_statistics(a, b).retrieval,
    }


@pytest.mark.parametrize("bad", [NAN, INF, -INF])
@pytest.mark.parametrize("name", list(_cases(None, None, None)))
def test_non_finite_input_gives_nan_and_never_raises(name, bad):
    a, b = torch.randn(6, 4, generator=_gen(4)), torch.randn(6, 4, generator=_gen(5))
    a[2, 1] = bad
    out = _cases(a, b, torch.tensor([0, 0, 1, 1, 2, 2]))[name]()
    assert torch.isnan(out).all(), (name, out)


def test_histogram_counts_skip_non_finite_scores():
    a, b = torch.randn(6, 4, generator=_gen(4)), torch.randn(6, 4, generator=_gen(5))
    a[2, 1] = NAN
    h = F.score_histograms(a, b, bins=10)
    assert int(h.pos.sum()) == 5 and int(h.neg.sum()) == 5 * 6 - 5
