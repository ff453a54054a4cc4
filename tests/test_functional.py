"""Tests of cldiag.functional against analytic values and an independent float64 NumPy reference."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
import torch

from cldiag import functional as F

# ----------------------------------------------------------------------------- NumPy reference (float64)
# Written with loops and plain NumPy, independently of the torch code paths.


def np_unit(z):
    z = np.asarray(z, dtype=np.float64)
    out = np.zeros_like(z)
    for i, row in enumerate(z):
        norm = math.sqrt(sum(v * v for v in row))
        out[i] = row / max(norm, 1e-12)
    return out


def np_alignment(x, y, alpha=2.0):
    ux, uy = np_unit(x), np_unit(y)
    return np.mean([np.linalg.norm(ux[i] - uy[i]) ** alpha for i in range(len(ux))])


def np_uniformity(z, t=2.0):
    u = np_unit(z)
    vals = [-t * np.sum((u[i] - u[j]) ** 2) for i in range(len(u)) for j in range(i + 1, len(u))]
    vals = np.array(vals)
    m = vals.max()
    return m + math.log(np.mean(np.exp(vals - m)))


def np_tolerance(z, labels, normalized=True):
    u = np_unit(z)
    n = len(u)
    same_scores = [u[i] @ u[j] for i in range(n) for j in range(n) if i != j and labels[i] == labels[j]]
    if normalized:
        return np.mean(same_scores) if same_scores else float("nan")
    return np.sum(same_scores) / (n * (n - 1))


def np_similarity(a, b):
    ua, ub = np_unit(a), np_unit(b)
    return np.array([[ua[i] @ ub[j] for j in range(len(ub))] for i in range(len(ua))])


def np_scores(a, b):
    s = np_similarity(a, b)
    n = len(s)
    pos = np.array([s[i, i] for i in range(n)])
    neg = np.array([s[i, j] for i in range(n) for j in range(n) if i != j])
    hardest = np.array([max(s[i, j] for j in range(n) if j != i) for i in range(n)])
    return pos, neg, hardest


def np_softmax(v):
    v = np.asarray(v, dtype=np.float64)
    e = np.exp(v - v.max())
    return e / e.sum()


def np_hardness(a, b, tau, labels=None):
    s = np_similarity(a, b)
    n = len(s)
    ents, effs, pps, same_shares = [], [], [], []
    for i in range(n):
        negs = [j for j in range(n) if j != i]
        r = np_softmax([s[i, j] / tau for j in negs])
        h = -sum(p * math.log(p) for p in r if p > 0)
        ents.append(h)
        effs.append(math.exp(h))
        pps.append(np_softmax(s[i] / tau)[i])
        if labels is not None:
            same_shares.append(sum(p for p, j in zip(r, negs, strict=True) if labels[j] == labels[i]))
    entropy = np.mean(ents) / math.log(n - 1) if n > 2 else 0.0
    same = np.mean(same_shares) if labels is not None else None
    return entropy, np.mean(effs), np.mean(pps), same


def np_cone(z):
    u = np_unit(z)
    n = len(u)
    return np.mean([u[i] @ u[j] for i in range(n) for j in range(n) if i != j])


def np_modality_gap(a, b):
    ua, ub = np_unit(a), np_unit(b)
    vec = ua.mean(axis=0) - ub.mean(axis=0)
    matched = np.mean([np.linalg.norm(ua[i] - ub[i]) for i in range(len(ua))])
    return np.linalg.norm(vec), vec, np_cone(a), np_cone(b), matched


def np_spectrum(z):
    cov = np.cov(np_unit(z), rowvar=False, ddof=1)
    return np.sort(np.linalg.eigvalsh(np.atleast_2d(cov)))[::-1].clip(min=0)


def np_effective_rank(z, eps=1e-7):
    sigma = np.linalg.svd(np.asarray(z, dtype=np.float64), compute_uv=False)
    p = sigma / sigma.sum() + eps
    return math.exp(-np.sum(p * np.log(p)))


def np_std_of_l2_normalized(z):
    return np.std(np_unit(z), axis=0, ddof=1).mean()


# ----------------------------------------------------------------------------- fixtures and helpers


def randn(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(dtype)


@pytest.fixture
def pair():
    a = randn(12, 6, seed=1)
    b = a + 0.7 * randn(12, 6, seed=2)
    return a, b


@pytest.fixture
def labels():
    return torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 3, 3, 0, 2])


def close(actual, expected, atol=1e-5, rtol=1e-5):
    assert isinstance(actual, torch.Tensor)
    assert actual.dtype == torch.float32
    np.testing.assert_allclose(actual.numpy(), np.asarray(expected, dtype=np.float64), atol=atol, rtol=rtol)


# ----------------------------------------------------------------------------- analytic check values


def test_normalize_unit_rows_and_zero_rows_stay_zero():
    z = torch.tensor([[3.0, 4.0], [0.0, 0.0], [-2.0, 0.0]], dtype=torch.float16)
    u = F.normalize(z)
    assert u.dtype == torch.float32
    close(u, [[0.6, 0.8], [0.0, 0.0], [-1.0, 0.0]], atol=1e-7)


def test_alignment_check_values():
    e = torch.eye(3)
    close(F.alignment(e, e), 0.0, atol=1e-7)
    close(F.alignment(e, -e), 4.0)
    close(F.alignment(e, -e, alpha=1.0), 2.0)
    # Independent uniform pairs: E||x - y||^2 = 2 on the sphere.
    close(F.alignment(randn(4000, 64, seed=3), randn(4000, 64, seed=4)), 2.0, atol=2e-2)


def test_uniformity_identical_points_is_zero():
    z = torch.ones(10, 5)
    close(F.uniformity(z), 0.0, atol=1e-6)


@pytest.mark.parametrize(("d", "expected"), [(128, -3.9375), (32, -3.7518), (8, -3.0825)])
def test_uniformity_of_uniform_sphere(d, expected):
    # 4000 Monte Carlo points agree with the exact value to ~1e-3 (METRICS.md); seed fixed.
    close(F.uniformity(randn(4000, d, seed=d)), expected, atol=5e-3)


def test_uniformity_is_finite_where_naive_log_mean_underflows():
    z = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float16)
    close(F.uniformity(z, t=100.0), -400.0)  # exp(-400) underflows float32; log-space does not


def test_uniformity_temperature_identity():
    z = randn(20, 7, seed=5)
    u = np_unit(z)
    s = u @ u.T
    taus = [0.05, 0.25, 1.0]
    off = ~np.eye(20, dtype=bool)
    for tau in taus:
        lhs = math.log(np.mean(np.exp(s[off] / tau))) - 1.0 / tau
        close(F.uniformity(z, t=1.0 / (2.0 * tau)), lhs, atol=1e-4)
    curves = F.temperature_curves(z, randn(20, 7, seed=6), taus)
    expected = [math.log(np.mean(np.exp(s[off] / t))) - 1.0 / t for t in taus]
    close(curves.uniformity, expected, atol=1e-4)


def test_effective_rank_check_values():
    close(
        F.effective_rank(torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])), 2.0, atol=1e-5
    )
    close(F.effective_rank(torch.ones(4, 2)), 1.0, atol=1e-5)
    q, _ = torch.linalg.qr(randn(40, 10, seed=7))
    for k in (1, 3, 7):
        close(F.effective_rank(q[:, :k] @ torch.eye(k, 10)), float(k), atol=1e-3)
    close(F.effective_rank(randn(10000, 128, seed=8)), 127.8, atol=0.1)


def test_effective_rank_is_not_normalized_or_centered():
    # Rows of very different lengths: RankMe reads the raw matrix, so scaling one row changes it.
    z = randn(6, 4, seed=9)
    scaled = z.clone()
    scaled[0] *= 100.0
    assert not torch.allclose(F.effective_rank(z), F.effective_rank(scaled), atol=1e-3)
    close(F.effective_rank(torch.zeros(3, 4)), 1.0, atol=1e-4)


def test_modality_gap_check_values():
    z = randn(8, 4, seed=10)
    g = F.modality_gap(z, z)
    close(g.gap, 0.0, atol=1e-7)
    close(g.matched_distance, 0.0, atol=1e-7)
    e1 = torch.tensor([[1.0, 0.0, 0.0]]).repeat(5, 1)
    e2 = torch.tensor([[0.0, 1.0, 0.0]]).repeat(5, 1)
    g = F.modality_gap(3.0 * e1, e2)
    close(g.gap, math.sqrt(2.0))
    close(g.gap_vector, [1.0, -1.0, 0.0])
    close(g.cone_a, 1.0)
    close(g.cone_b, 1.0)
    close(g.matched_distance, math.sqrt(2.0))


def test_entropy_limits_in_temperature():
    a, b = randn(16, 8, seed=11), randn(16, 8, seed=12)
    cold = F.hardness(a, b, tau=1e-4)
    hot = F.hardness(a, b, tau=1e4)
    assert float(cold.entropy) < 1e-3
    close(cold.effective_negatives, 1.0, atol=1e-2)
    assert float(hot.entropy) > 0.9999
    close(hot.effective_negatives, 15.0, atol=1e-2)
    close(hot.pos_prob, 1.0 / 16.0, atol=1e-4)
    curves = F.temperature_curves(a, b, torch.logspace(-3, 3, 13))
    assert bool((curves.entropy[1:] >= curves.entropy[:-1] - 1e-6).all())


def test_tolerance_literal_is_p_same_times_mean(pair, labels):
    z = pair[0]
    n = len(labels)
    p_same = sum(int(labels[i] == labels[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    close(F.tolerance(z, labels, normalized=False), p_same * F.tolerance(z, labels).numpy(), atol=1e-6)


def test_cone_matches_pairwise_loop_including_zero_rows():
    z = randn(9, 5, seed=13)
    z[3] = 0.0
    close(F.cone(z), np_cone(z.numpy()), atol=1e-6)


def test_penalty_weights_limits():
    s = torch.tensor([[0.9, 0.1, -0.3], [0.2, 0.2, 0.2]])
    w = F.penalty_weights(s, tau=1e-3)
    close(w[0], [1.0, 0.0, 0.0], atol=1e-6)
    close(w[1], [1 / 3] * 3)
    close(F.penalty_weights(s, tau=1e5), np.full((2, 3), 1 / 3), atol=1e-5)


# ----------------------------------------------------------------------------- NumPy reference comparison


def test_reference_alignment_uniformity(pair):
    a, b = pair
    for alpha in (0.5, 1.0, 2.0, 3.0):
        close(F.alignment(a, b, alpha=alpha), np_alignment(a.numpy(), b.numpy(), alpha))
    for t in (0.5, 2.0, 10.0):
        close(F.uniformity(a, t=t), np_uniformity(a.numpy(), t), atol=1e-5)


def test_reference_tolerance(pair, labels):
    z = pair[0]
    for normalized in (True, False):
        close(
            F.tolerance(z, labels, normalized=normalized), np_tolerance(z.numpy(), labels.numpy(), normalized)
        )


def test_reference_similarity_matrix():
    a, b = randn(5, 3, seed=14), randn(7, 3, seed=15)
    s = F.similarity_matrix(a, b)
    assert s.shape == (5, 7)
    close(s, np_similarity(a.numpy(), b.numpy()))


def test_reference_score_histograms(pair):
    a, b = pair
    h = F.score_histograms(a, b, bins=20)
    pos, neg, hardest = np_scores(a.numpy(), b.numpy())
    edges = np.linspace(-1, 1, 21)
    close(h.edges, edges, atol=1e-6)
    close(h.pos_scores, pos)
    close(h.hardest_neg, hardest)
    for counts, values in ((h.pos, pos), (h.neg, neg), (h.hard_neg, hardest)):
        assert counts.dtype == torch.int64
        np.testing.assert_array_equal(counts.numpy(), np.histogram(values, bins=edges)[0])


def test_reference_retrieval_accuracy(pair):
    a, b = pair
    pos, _, hardest = np_scores(a.numpy(), b.numpy())
    expected = np.mean(pos > hardest)
    assert 0.0 < expected < 1.0  # the fixture must exercise both outcomes
    close(F.retrieval_accuracy(a, b), expected)


@pytest.mark.parametrize("tau", [0.05, 0.2, 1.0])
def test_reference_hardness(pair, tau):
    a, b = pair
    h = F.hardness(a, b, tau)
    ent, eff, pp, _ = np_hardness(a.numpy(), b.numpy(), tau)
    close(h.entropy, ent)
    close(h.effective_negatives, eff)
    close(h.pos_prob, pp)
    h_tensor = F.hardness(a, b, torch.tensor(tau))
    close(h_tensor.entropy, ent)


def test_reference_penalty_weights():
    s = randn(4, 9, seed=16).tanh()
    w = F.penalty_weights(s, tau=0.3)
    close(w, np.stack([np_softmax(row / 0.3) for row in s.numpy()]))


def test_reference_temperature_curves(pair, labels):
    a, b = pair
    taus = [0.02, 0.1, 0.5, 2.0]
    c = F.temperature_curves(a, b, taus, labels=labels)
    close(c.taus, taus)
    for k, tau in enumerate(taus):
        ent, eff, pp, same = np_hardness(a.numpy(), b.numpy(), tau, labels.numpy())
        close(c.entropy[k], ent)
        close(c.effective_negatives[k], eff, rtol=1e-4)
        close(c.pos_prob[k], pp)
        close(c.same_class_penalty[k], same)
        close(c.uniformity[k], np_uniformity(a.numpy(), 1.0 / (2.0 * tau)), atol=1e-4)
        h = F.hardness(a, b, tau)
        close(c.entropy[k], h.entropy.numpy(), atol=1e-6)
    assert F.temperature_curves(a, b, taus).same_class_penalty is None
    torch.testing.assert_close(F.temperature_curves(a, b, np.array(taus)).entropy, c.entropy)


def test_temperature_curves_chunking_matches_single_pass(monkeypatch, pair, labels):
    a, b = pair
    taus = torch.logspace(-2, 0, 7)
    whole = F.temperature_curves(a, b, taus, labels=labels)
    monkeypatch.setattr(F, "_MAX_CURVE_ELEMENTS", 2 * 12 * 12)  # forces chunks of 2 taus
    chunked = F.temperature_curves(a, b, taus, labels=labels)
    for x, y in zip(whole, chunked, strict=True):
        torch.testing.assert_close(x, y)


def test_same_class_penalty_is_zero_without_same_class_pairs(pair):
    a, b = pair
    c = F.temperature_curves(a, b, [0.1], labels=torch.arange(12))
    close(c.same_class_penalty, [0.0])


def test_reference_modality_gap_and_cone(pair):
    a, b = pair
    g = F.modality_gap(a, b)
    gap, vec, cone_a, cone_b, matched = np_modality_gap(a.numpy(), b.numpy())
    close(g.gap, gap)
    close(g.gap_vector, vec)
    close(g.cone_a, cone_a)
    close(g.cone_b, cone_b)
    close(g.matched_distance, matched)
    close(F.cone(a), cone_a)


def test_reference_spectrum_effective_rank_std(pair):
    z = pair[0]
    ev = F.spectrum(z)
    assert ev.shape == (6,)
    close(ev, np_spectrum(z.numpy()), atol=1e-6)
    assert bool((ev[:-1] >= ev[1:]).all())
    close(F.effective_rank(z), np_effective_rank(z.numpy()))
    close(F.effective_rank(z, eps=0.0), np_effective_rank(z.numpy(), eps=0.0))
    close(F.std_of_l2_normalized(z), np_std_of_l2_normalized(z.numpy()))


def test_spectrum_shows_dimensional_collapse():
    z = randn(200, 3, seed=17) @ randn(3, 8, seed=18)  # rank 3 in 8 dims
    ev = F.spectrum(z)
    assert bool((ev[:3] > 1e-3).all())
    assert bool((ev[3:] < 1e-9).all())
    close(ev.sum(), np.trace(np.cov(np_unit(z.numpy()), rowvar=False)), atol=1e-6)


# ----------------------------------------------------------------------------- histograms: edges


def test_exact_one_lands_in_last_bin():
    e = torch.eye(4)
    h = F.score_histograms(e, e, bins=10)
    assert int(h.pos[-1]) == 4
    assert int(h.neg[5]) == 12  # cosine 0 is the left edge of bin 5 of [-1, 1]
    assert int(h.hard_neg[5]) == 4
    h = F.score_histograms(e, -e, bins=10)
    assert int(h.pos[0]) == 4


def test_scores_beyond_custom_edges_go_to_end_bins():
    e = torch.eye(3)
    edges = torch.tensor([-0.5, 0.0, 0.5])
    h = F.score_histograms(e, e, bins=edges)
    close(h.edges, edges.numpy())
    assert h.pos.tolist() == [0, 3]  # 1.0 > 0.5
    assert h.neg.tolist() == [0, 6]  # 0.0 is the left edge of the second bin
    h = F.score_histograms(e, -e, bins=edges)
    assert h.pos.tolist() == [3, 0]  # -1.0 < -0.5


def test_nan_scores_are_not_counted():
    a = torch.eye(3)
    a[0, 0] = float("nan")
    h = F.score_histograms(a, torch.eye(3), bins=4)
    assert int(h.pos.sum()) == 2
    assert int(h.neg.sum()) == 4  # row 0 of the score matrix is NaN; column 0 is not


# ----------------------------------------------------------------------------- dtypes and layouts


ALL_CALLS = {
    "normalize": lambda a, b, y: F.normalize(a),
    "alignment": lambda a, b, y: F.alignment(a, b),
    "uniformity": lambda a, b, y: F.uniformity(a),
    "tolerance": lambda a, b, y: F.tolerance(a, y),
    "similarity_matrix": lambda a, b, y: F.similarity_matrix(a, b),
    "score_histograms": lambda a, b, y: F.score_histograms(a, b, bins=8),
    "retrieval_accuracy": lambda a, b, y: F.retrieval_accuracy(a, b),
    "negative_similarity": lambda a, b, y: F.negative_similarity(a, b),
    "histogram_overlap": lambda a, b, y: F.histogram_overlap(
        F.score_histograms(a, b, bins=8).pos, F.score_histograms(a, b, bins=8).neg
    ),
    "hardness": lambda a, b, y: F.hardness(a, b, 0.2),
    "temperature_curves": lambda a, b, y: F.temperature_curves(a, b, [0.1, 0.5], labels=y),
    "modality_gap": lambda a, b, y: F.modality_gap(a, b),
    "cone": lambda a, b, y: F.cone(a),
    "spectrum": lambda a, b, y: F.spectrum(a),
    "effective_rank": lambda a, b, y: F.effective_rank(a),
    "std_of_l2_normalized": lambda a, b, y: F.std_of_l2_normalized(a),
    "step_statistics": lambda a, b, y: F.step_statistics(a, b, two_modality=True),
    # literature diagnostics (issue 15); their own tests are in test_functional_literature.py
    "modality_gap_matrix": lambda a, b, y: [  # the retrieval diagonal is NaN by convention
        x.nan_to_num(-1.0) for x in F.modality_gap_matrix({"a": a, "b": b, "c": b.flip(0)})[1:]
    ],
    "multilinear_histograms": lambda a, b, y: F.multilinear_histograms(a, b, b.flip(0)),
    "multilinear_scores": lambda a, b, y: F.multilinear_scores(a, b, b.flip(0)),
    "positive_ranks": lambda a, b, y: F.positive_ranks(a, b),
    "rank_summary": lambda a, b, y: F.rank_summary(F.positive_ranks(a, b)),
    "ordering_violations": lambda a, b, y: F.ordering_violations(a, b, per_anchor=True),
    "false_negative_share": lambda a, b, y: F.false_negative_share(a, b, y, 0.2),
    "temperature_distribution": lambda a, b, y: F.temperature_distribution(F.normalize(a)[:, 0].abs() + 0.05),
    # examples (issue 16); their own tests are in test_functional_examples.py
    "nearest_neighbours": lambda a, b, y: list(F.nearest_neighbours(a, [0], min(2, a.shape[0] - 1))),
    "pair_ranks": lambda a, b, y: F.pair_ranks(a, b),
    "hardest_negatives": lambda a, b, y: list(F.hardest_negatives(a, b, min(2, a.shape[0] - 1))),
    "positive_similarity": lambda a, b, y: F.positive_similarity(a, b),
    "pairwise_statistics": lambda a, b, y: F.pairwise_statistics(
        a, b, labels=y, temperature=0.2, bins=8
    ).scalars(),
}


def flat_tensors(result):
    if isinstance(result, torch.Tensor):
        return [result]
    if isinstance(result, dict):
        return list(result.values())
    return [x for x in result if x is not None]


def test_every_public_name_is_exported_and_covered():
    public = {n for n in F.__all__ if n[0].islower()}
    assert public == set(ALL_CALLS) | {"penalty_weights", "subsample_rows"}


@pytest.mark.parametrize("name", sorted(ALL_CALLS))
@pytest.mark.parametrize(
    ("dtype", "tol"), [(torch.float16, 1e-2), (torch.bfloat16, 5e-2), (torch.float64, 1e-5)]
)
def test_low_precision_inputs_give_float32_close_to_fp32(name, dtype, tol, pair, labels):
    a, b = pair
    ref = flat_tensors(ALL_CALLS[name](a, b, labels))
    got = flat_tensors(ALL_CALLS[name](a.to(dtype), b.to(dtype), labels))
    for r, g in zip(ref, got, strict=True):
        if r.dtype == torch.int64:  # histogram counts: rounding may move a score across an edge
            assert int(g.sum()) == int(r.sum())
            assert int((g - r).abs().sum()) <= 0.2 * int(r.sum())
        else:
            assert g.dtype == torch.float32
            torch.testing.assert_close(g, r, atol=tol, rtol=tol)


@pytest.mark.parametrize("name", sorted(ALL_CALLS))
def test_non_contiguous_and_requires_grad_inputs(name, pair, labels):
    a, b = pair
    ref = flat_tensors(ALL_CALLS[name](a, b, labels))
    # Transposed storage and a strided column slice both give non-contiguous views of the same values.
    a_nc = a.T.contiguous().T.requires_grad_(True)
    b_nc = torch.cat([b, torch.zeros_like(b)], dim=1)[:, :6]
    assert not a_nc.is_contiguous() and not b_nc.is_contiguous()
    got = flat_tensors(ALL_CALLS[name](a_nc, b_nc, labels[torch.arange(11, -1, -1)].flip(0)))
    for r, g in zip(ref, got, strict=True):
        assert not g.requires_grad
        torch.testing.assert_close(g, r)


@pytest.mark.parametrize("name", sorted(set(ALL_CALLS) - {"effective_rank", "step_statistics"}))
def test_positive_row_scaling_changes_nothing(name, pair, labels):
    a, b = pair
    scale_a = torch.rand(12, 1, generator=torch.Generator().manual_seed(19)) * 100 + 0.01
    scale_b = torch.rand(12, 1, generator=torch.Generator().manual_seed(20)) * 100 + 0.01
    ref = flat_tensors(ALL_CALLS[name](a, b, labels))
    got = flat_tensors(ALL_CALLS[name](a * scale_a, b * scale_b, labels))
    for r, g in zip(ref, got, strict=True):
        torch.testing.assert_close(g, r, atol=1e-5, rtol=1e-5)


def test_runs_on_meta_device_so_no_value_reaches_the_host(pair, labels):
    # Meta tensors have no data: any .item(), bool() or .cpu() of a value raises, which proves the
    # functions never sync with the device (except eigvalsh/svdvals, which sync inside PyTorch on CUDA).
    a, b = (x.to("meta") for x in pair)
    y = labels.to("meta")
    for name, call in ALL_CALLS.items():
        for out in flat_tensors(call(a, b, y)):
            assert out.device.type == "meta", name
            assert out.dtype in (torch.float32, torch.int64), name
    assert F.hardness(a, b, torch.tensor(0.1, device="meta")).entropy.device.type == "meta"
    assert F.temperature_curves(a, b, torch.logspace(-2, 0, 4, device="meta")).taus.device.type == "meta"
    assert F.score_histograms(a, b, bins=torch.linspace(-1, 1, 5, device="meta")).pos.shape == (4,)


def test_output_shapes_and_dtypes(pair, labels):
    a, b = pair
    for name in ("alignment", "uniformity", "tolerance", "retrieval_accuracy", "cone", "effective_rank"):
        out = ALL_CALLS[name](a, b, labels)
        assert out.shape == () and out.dtype == torch.float32, name
    h = F.score_histograms(a, b, bins=7)
    assert h.edges.shape == (8,) and h.pos.shape == h.neg.shape == h.hard_neg.shape == (7,)
    assert h.pos_scores.shape == h.hardest_neg.shape == (12,)
    assert all(x.shape == () for x in F.hardness(a, b, 0.3))
    c = F.temperature_curves(a, b, [0.1, 0.2, 0.3], labels=labels)
    assert all(x.shape == (3,) and x.dtype == torch.float32 for x in c[:6])
    assert c.rows is None  # all 12 rows used (below ROW_CAP)
    g = F.modality_gap(a, b)
    assert g.gap_vector.shape == (6,) and g.gap.shape == ()


def test_doc_examples_run():
    result = doctest.testmod(F, extraglobs={"torch": torch}, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= len(F.__all__) - 4  # every function has an example
    assert result.failed == 0


# ----------------------------------------------------------------------------- small batches, d = 1


def test_batch_of_one():
    z = torch.tensor([[1.0, 2.0]])
    close(F.normalize(z), [[1 / math.sqrt(5), 2 / math.sqrt(5)]])
    close(F.alignment(z, -z), 4.0)
    close(F.similarity_matrix(z, z), [[1.0]])
    close(F.effective_rank(z), 1.0, atol=1e-5)
    stats = F.step_statistics(z, z)
    close(stats["alignment"], 0.0, atol=1e-7)
    close(stats["pos_sim"], 1.0)
    assert bool(torch.isnan(F.step_statistics(z, z, two_modality=True)["cone_a"]))
    for call, match in [
        (lambda: F.uniformity(z), "at least 2 rows"),
        (lambda: F.tolerance(z, torch.tensor([0])), "at least 2 rows"),
        (lambda: F.score_histograms(z, z), "at least 2 rows"),
        (lambda: F.retrieval_accuracy(z, z), "at least 2 rows"),
        (lambda: F.hardness(z, z, 0.1), "at least 2 rows"),
        (lambda: F.temperature_curves(z, z, [0.1]), "at least 2 rows"),
        (lambda: F.modality_gap(z, z), "at least 2 rows"),
        (lambda: F.cone(z), "at least 2 rows"),
        (lambda: F.spectrum(z), "at least 2 rows"),
        (lambda: F.std_of_l2_normalized(z), "at least 2 rows"),
    ]:
        with pytest.raises(ValueError, match=match):
            call()


def test_batch_of_two():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[1.0, 0.2], [0.3, 1.0]])
    close(F.uniformity(a), -4.0)  # the single pair: -2 * ||e1 - e2||^2
    h = F.hardness(a, b, 0.1)
    close(h.entropy, 0.0)  # one negative: defined as 0, never NaN
    close(h.effective_negatives, 1.0)
    c = F.temperature_curves(a, b, [0.01, 1.0, 100.0])
    close(c.entropy, [0.0, 0.0, 0.0])
    hist = F.score_histograms(a, b, bins=4)
    assert int(hist.neg.sum()) == 2
    close(F.cone(a), 0.0)
    close(F.tolerance(a, torch.tensor([0, 0])), 0.0)
    assert bool(torch.isnan(F.tolerance(a, torch.tensor([0, 1]))))  # no same-class pair: undefined
    close(F.tolerance(a, torch.tensor([0, 1]), normalized=False), 0.0)


def test_dimension_one():
    a = torch.tensor([[2.0], [-1.0], [0.5], [-3.0]])
    b = torch.tensor([[1.0], [1.0], [-1.0], [-1.0]])
    close(F.normalize(a), [[1.0], [-1.0], [1.0], [-1.0]])
    close(F.alignment(a, b), 2.0)  # two pairs agree (0), two are antipodal (4)
    close(F.uniformity(a), np_uniformity(a.numpy()))
    close(F.spectrum(a), [4.0 / 3.0])
    close(F.effective_rank(a), 1.0, atol=1e-5)
    close(F.std_of_l2_normalized(a), np.std([1, -1, 1, -1], ddof=1))
    close(F.modality_gap(a, b).gap, 0.0, atol=1e-7)
    h = F.score_histograms(a, b, bins=2)
    assert h.pos.tolist() == [2, 2] and h.neg.tolist() == [6, 6]


# ----------------------------------------------------------------------------- input validation


def test_errors_for_bad_shapes_and_dtypes():
    good = randn(4, 3)
    with pytest.raises(ValueError, match=r"z must be 2-D .* shape \(3,\)"):
        F.uniformity(torch.ones(3))
    with pytest.raises(ValueError, match=r"a must be 2-D .* shape \(2, 4, 3\)"):
        F.modality_gap(torch.ones(2, 4, 3), good)
    with pytest.raises(TypeError, match=r"z must be a floating-point tensor, got dtype torch.int64"):
        F.spectrum(torch.ones(4, 3, dtype=torch.int64))
    with pytest.raises(TypeError, match=r"b must be a floating-point tensor, got dtype torch.bool"):
        F.score_histograms(good, torch.ones(4, 3, dtype=torch.bool))
    with pytest.raises(TypeError, match=r"must be a torch.Tensor, got ndarray"):
        F.cone(np.ones((4, 3)))
    with pytest.raises(
        ValueError, match=r"x and y must have the same batch size .* x \(4, 3\) and y \(5, 3\)"
    ):
        F.alignment(good, randn(5, 3))
    with pytest.raises(
        ValueError, match=r"a and b must have the same batch size .* a \(4, 3\) and b \(5, 3\)"
    ):
        F.step_statistics(good, randn(5, 3))
    with pytest.raises(ValueError, match=r"same embedding dim, got a \(4, 3\) and b \(4, 2\)"):
        F.similarity_matrix(good, randn(4, 2))
    with pytest.raises(ValueError, match=r"at least one row and one column, got shape \(0, 3\)"):
        F.normalize(torch.ones(0, 3))


def test_errors_for_bad_labels():
    z = randn(4, 3)
    with pytest.raises(ValueError, match=r"labels must have shape \(4,\) .* got shape \(3,\)"):
        F.tolerance(z, torch.tensor([0, 1, 0]))
    with pytest.raises(ValueError, match=r"labels must have shape \(4,\) .* got shape \(4, 1\)"):
        F.temperature_curves(z, z, [0.1], labels=torch.zeros(4, 1, dtype=torch.int64))
    with pytest.raises(TypeError, match=r"labels must be an integer tensor, got dtype torch.float32"):
        F.tolerance(z, torch.zeros(4))
    with pytest.raises(TypeError, match=r"labels must be a torch.Tensor, got list"):
        F.tolerance(z, [0, 1, 0, 1])


def test_errors_for_bad_parameters():
    z = randn(4, 3)
    with pytest.raises(ValueError, match=r"t must be positive and finite, got 0.0"):
        F.uniformity(z, t=0.0)
    with pytest.raises(ValueError, match="alpha must be positive"):
        F.alignment(z, z, alpha=-1.0)
    with pytest.raises(ValueError, match="tau must be positive"):
        F.hardness(z, z, tau=0.0)
    with pytest.raises(TypeError, match="tau must be a real number, got str"):
        F.penalty_weights(z, tau="0.1")
    with pytest.raises(ValueError, match=r"tau must be a number or a one-element tensor, got shape \(2,\)"):
        F.hardness(z, z, tau=torch.tensor([0.1, 0.2]))
    with pytest.raises(ValueError, match="taus must be positive"):
        F.temperature_curves(z, z, [0.1, -1.0])
    with pytest.raises(ValueError, match="taus must not be empty"):
        F.temperature_curves(z, z, [])
    with pytest.raises(TypeError, match="taus must be a number, a sequence of numbers or a tensor, got str"):
        F.temperature_curves(z, z, "0.1")
    with pytest.raises(ValueError, match="bins must be >= 1, got 0"):
        F.score_histograms(z, z, bins=0)
    with pytest.raises(TypeError, match="bins must be an int or a 1-D tensor of edges, got bool"):
        F.score_histograms(z, z, bins=True)
    with pytest.raises(ValueError, match="strictly increasing"):
        F.score_histograms(z, z, bins=torch.tensor([0.0, 1.0, 0.5]))
    with pytest.raises(ValueError, match="eps must be >= 0"):
        F.effective_rank(z, eps=-1.0)
    with pytest.raises(ValueError, match=r"non-empty last dim, got shape \(\)"):
        F.penalty_weights(torch.tensor(0.5), tau=0.1)
    with pytest.raises(TypeError, match="neg_scores must be a floating-point tensor"):
        F.penalty_weights(torch.tensor([1, 2]), tau=0.1)


# ----------------------------------------------------------------------------- step_statistics


def _with_bad_rows(x, rows, value):
    x = x.clone()
    for r in rows:
        x[r, r % x.shape[1]] = value
    return x


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_step_statistics_equal_plain_functions_on_finite_rows(pair, dtype):
    a, b = pair
    a_bad = _with_bad_rows(a, [1, 7], float("nan"))
    b_bad = _with_bad_rows(b, [4], float("inf"))
    b_bad = _with_bad_rows(b_bad, [9], float("-inf"))
    keep = [i for i in range(12) if i not in (1, 4, 7, 9)]
    fa, fb = a[keep].to(dtype), b[keep].to(dtype)
    stats = F.step_statistics(a_bad.to(dtype), b_bad.to(dtype), two_modality=True)
    assert set(stats) == {
        "alignment", "pos_sim", "norm_a", "norm_b", "nonfinite_fraction", "n_finite",
        "modality_gap", "cone_a", "cone_b", "matched_distance",
    }  # fmt: skip
    assert all(v.shape == () and v.dtype == torch.float32 for v in stats.values())
    gap = F.modality_gap(fa, fb)
    close(stats["alignment"], F.alignment(fa, fb).numpy())
    close(stats["pos_sim"], torch.diagonal(F.similarity_matrix(fa, fb)).mean().numpy())
    close(stats["norm_a"], np.linalg.norm(fa.float().numpy(), axis=1).mean())
    close(stats["norm_b"], np.linalg.norm(fb.float().numpy(), axis=1).mean())
    close(stats["nonfinite_fraction"], 4 / 12)
    close(stats["n_finite"], 8.0)
    close(stats["modality_gap"], gap.gap.numpy())
    close(stats["cone_a"], gap.cone_a.numpy())
    close(stats["cone_b"], gap.cone_b.numpy())
    close(stats["matched_distance"], gap.matched_distance.numpy())


def test_step_statistics_without_bad_rows_and_single_modality(pair):
    a, b = pair
    stats = F.step_statistics(a, b)
    assert set(stats) == {"alignment", "pos_sim", "norm_a", "norm_b", "nonfinite_fraction", "n_finite"}
    close(stats["alignment"], np_alignment(a.numpy(), b.numpy()))
    close(stats["nonfinite_fraction"], 0.0)
    close(stats["n_finite"], 12.0)


def test_step_statistics_all_rows_non_finite(pair):
    a, b = pair
    stats = F.step_statistics(torch.full_like(a, float("nan")), b, two_modality=True)
    close(stats["nonfinite_fraction"], 1.0)
    close(stats["n_finite"], 0.0)
    for key in (
        "alignment",
        "pos_sim",
        "norm_a",
        "norm_b",
        "modality_gap",
        "cone_a",
        "cone_b",
        "matched_distance",
    ):
        assert bool(torch.isnan(stats[key])), key


def test_negative_similarity_matches_offdiagonal_mean():
    g = torch.Generator().manual_seed(7)
    a, b = torch.randn(9, 5, generator=g), torch.randn(9, 5, generator=g)
    an = a.double().numpy() / np.linalg.norm(a.double().numpy(), axis=1, keepdims=True)
    bn = b.double().numpy() / np.linalg.norm(b.double().numpy(), axis=1, keepdims=True)
    s = an @ bn.T
    ref = np.mean([s[i, j] for i in range(9) for j in range(9) if i != j])
    assert float(F.negative_similarity(a, b)) == pytest.approx(ref, abs=1e-6)
    with pytest.raises(ValueError, match="at least 2"):
        F.negative_similarity(a[:1], b[:1])


def test_histogram_overlap_limits():
    p = torch.tensor([3, 0, 0, 1])
    assert float(F.histogram_overlap(p, p * 5)) == pytest.approx(1.0)
    assert float(F.histogram_overlap(torch.tensor([1, 0]), torch.tensor([0, 7]))) == 0.0
    assert float(F.histogram_overlap(torch.zeros(3), torch.ones(3))) == 0.0
    with pytest.raises(ValueError, match="same length"):
        F.histogram_overlap(torch.ones(3), torch.ones(4))


@pytest.mark.parametrize("bins", [1, 2, 7, 50, 1000])
def test_uniform_bin_fast_path_equals_binary_search(bins):
    # int bins take the linear-guess path; the same edges as a tensor take bucketize's binary search
    g = torch.Generator().manual_seed(bins)
    a, b = torch.randn(64, 6, generator=g), torch.randn(64, 6, generator=g)
    b[:8] = a[:8]  # cosines of exactly 1.0 land in the closed last bin
    fast = F.score_histograms(a, b, bins=bins)
    slow = F.score_histograms(a, b, bins=torch.linspace(-1, 1, bins + 1))
    for name in ("pos", "neg", "hard_neg"):
        assert torch.equal(getattr(fast, name), getattr(slow, name)), name
    edges = torch.linspace(-1, 1, bins + 1)
    x = torch.cat([edges, edges + 1e-7, edges - 1e-7, torch.tensor([float("nan"), float("inf"), -1.5, 1.5])])
    assert torch.equal(F._histogram(x, edges, uniform=True), F._histogram(x, edges))
