"""Tests of the literature diagnostics of issue 15 against analytic values and float64 NumPy loops."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
import torch

from cldiag import functional as F

NEW = [
    F.modality_gap_matrix,
    F.multilinear_scores,
    F.positive_ranks,
    F.rank_summary,
    F.ordering_violations,
    F.false_negative_share,
    F.temperature_distribution,
]

# ----------------------------------------------------------------------------- NumPy reference (float64)


def np_unit(z):
    z = np.asarray(z, dtype=np.float64)
    out = np.zeros_like(z)
    for i, row in enumerate(z):
        out[i] = row / max(math.sqrt(sum(v * v for v in row)), 1e-12)
    return out


def np_cos(a, b):
    ua, ub = np_unit(a), np_unit(b)
    return np.array([[float(ua[i] @ ub[j]) for j in range(len(ub))] for i in range(len(ua))])


def np_gap_matrix(zs):
    us = [np_unit(z) for z in zs]
    n_mod, n = len(us), len(us[0])
    gap = np.zeros((n_mod, n_mod))
    matched = np.zeros((n_mod, n_mod))
    retrieval = np.full((n_mod, n_mod), np.nan)
    cones = np.zeros(n_mod)
    for p in range(n_mod):
        cones[p] = np.mean([us[p][i] @ us[p][j] for i in range(n) for j in range(n) if i != j])
        for q in range(n_mod):
            gap[p, q] = np.linalg.norm(us[p].mean(axis=0) - us[q].mean(axis=0))
            matched[p, q] = np.mean([np.linalg.norm(us[p][i] - us[q][i]) for i in range(n)])
            if p != q:
                hits = [
                    all(us[p][i] @ us[q][i] > us[p][i] @ us[q][j] for j in range(n) if j != i)
                    for i in range(n)
                ]
                retrieval[p, q] = np.mean(hits)
    return gap, matched, cones, retrieval


def np_mip(rows):
    return sum(math.prod(float(r[k]) for r in rows) for k in range(len(rows[0])))


def np_ranks(a, b):
    s = np_cos(a, b)
    n = len(s)
    return np.array([1 + sum(s[i, j] >= s[i, i] for j in range(n) if j != i) for i in range(n)], dtype=float)


def np_violations(a, b):
    s = np_cos(a, b)
    n = len(s)
    out = []
    for i in range(n):
        pairs = [1.0 if s[i, j] > s[i, i] else 0.5 if s[i, j] == s[i, i] else 0.0 for j in range(n) if j != i]
        out.append(np.mean(pairs))
    return np.array(out)


def np_false_negatives(a, b, labels, taus):
    s = np_cos(a, b)
    n = len(s)
    taus = np.broadcast_to(np.asarray(taus, dtype=np.float64), (n,))
    counts, penalties = [], []
    for i in range(n):
        negs = [j for j in range(n) if j != i]
        logits = np.array([s[i, j] / taus[i] for j in negs])
        w = np.exp(logits - logits.max())
        w /= w.sum()
        same = np.array([labels[j] == labels[i] for j in negs], dtype=float)
        counts.append(same.mean())
        penalties.append(float((w * same).sum()))
    return np.mean(counts), np.mean(penalties)


def close(t, ref, atol=1e-5):
    assert t.dtype == torch.float32
    np.testing.assert_allclose(
        t.numpy(), np.asarray(ref, dtype=np.float64), atol=atol, rtol=0, equal_nan=True
    )


def gaussian(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- modality_gap_matrix


def test_gap_matrix_matches_numpy_loops():
    zs = [gaussian(12, 5, seed=s) + 0.3 * s for s in range(3)]
    out = F.modality_gap_matrix({"image": zs[0], "text": zs[1], "audio": zs[2]})
    gap, matched, cones, retrieval = np_gap_matrix([z.numpy() for z in zs])
    assert out.names == ("image", "text", "audio")
    close(out.gap, gap)
    close(out.matched_distance, matched)
    close(out.cone, cones)
    close(out.retrieval, retrieval)


def test_gap_matrix_analytic_values_and_diagonals():
    e1 = torch.tensor([[1.0, 0.0, 0.0]]).repeat(5, 1)
    e2 = torch.tensor([[0.0, 1.0, 0.0]]).repeat(5, 1)
    out = F.modality_gap_matrix({"a": e1, "b": 3.0 * e2, "c": e1.clone()})
    r2 = math.sqrt(2)
    close(out.gap, [[0, r2, 0], [r2, 0, r2], [0, r2, 0]])
    close(out.matched_distance, [[0, r2, 0], [r2, 0, r2], [0, r2, 0]])
    close(out.cone, [1, 1, 1])
    # All scores tie: every retrieval fails (ties count as failures), diagonal is NaN by convention.
    close(out.retrieval, [[math.nan, 0, 0], [0, math.nan, 0], [0, 0, math.nan]])


def test_gap_matrix_agrees_with_two_modality_functions_both_directions():
    a, b = gaussian(16, 4, seed=1), gaussian(16, 4, seed=2)
    b = a + 0.8 * b  # some pairs retrievable, not all
    out = F.modality_gap_matrix({"a": a, "b": b})
    ref = F.modality_gap(a, b)
    close(out.gap[0, 1], float(ref.gap))
    close(out.matched_distance[1, 0], float(ref.matched_distance))
    close(out.cone, [float(ref.cone_a), float(ref.cone_b)])
    assert float(out.retrieval[0, 1]) == float(F.retrieval_accuracy(a, b))
    assert float(out.retrieval[1, 0]) == float(F.retrieval_accuracy(b, a))
    # Directions differ: a -> b finds only row 1 (rows 0 and 2 tie), b -> a finds rows 0 and 1.
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.8, 0.6]])
    b = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    close(F.modality_gap_matrix({"a": a, "b": b}).retrieval, [[math.nan, 1 / 3], [2 / 3, math.nan]])


def test_gap_matrix_identical_sets_and_small_batch():
    z = gaussian(2, 3)
    out = F.modality_gap_matrix({"x": z, "y": z.clone()})
    close(out.gap, np.zeros((2, 2)))
    close(out.retrieval[0, 1], 1.0 if float(F.similarity_matrix(z, z)[0, 1]) < 1 else 0.0)
    with pytest.raises(ValueError, match="at least 2 rows"):
        F.modality_gap_matrix({"x": z[:1], "y": z[:1]})


def test_gap_matrix_nan_row_propagates_to_gap_not_to_other_pairs():
    zs = {k: gaussian(6, 3, seed=s) for s, k in enumerate("xyz")}
    zs["x"][2, 0] = float("nan")
    out = F.modality_gap_matrix(zs)
    assert bool(torch.isnan(out.gap[0, 1])) and bool(torch.isnan(out.cone[0]))
    assert bool(torch.isfinite(out.gap[1, 2])) and bool(torch.isfinite(out.cone[2]))


def test_gap_matrix_validation():
    z = gaussian(4, 3)
    with pytest.raises(TypeError, match="mapping"):
        F.modality_gap_matrix([z, z])
    with pytest.raises(ValueError, match="at least 2 modalities"):
        F.modality_gap_matrix({"x": z})
    with pytest.raises(TypeError, match="names must be str"):
        F.modality_gap_matrix({0: z, 1: z})
    with pytest.raises(ValueError, match=r"same batch size.*\(4, 3\).*\(5, 3\)"):
        F.modality_gap_matrix({"x": z, "y": gaussian(5, 3)})
    with pytest.raises(ValueError, match="same embedding dim"):
        F.modality_gap_matrix({"x": z, "y": gaussian(4, 2)})
    with pytest.raises(TypeError, match="floating-point"):
        F.modality_gap_matrix({"x": z, "y": torch.ones(4, 3, dtype=torch.long)})


# ----------------------------------------------------------------------------- multilinear_scores


@pytest.mark.parametrize("n_mod", [2, 3, 4])
def test_multilinear_scores_match_numpy_loops(n_mod):
    zs = [gaussian(7, 5, seed=s) for s in range(n_mod)]
    out = F.multilinear_scores(*zs)
    us = [np_unit(z.numpy()) for z in zs]
    n = 7
    pos = [np_mip([u[i] for u in us]) for i in range(n)]
    neg = np.zeros((n_mod, n, n - 1))
    for m in range(n_mod):
        for i in range(n):
            others = [j for j in range(n) if j != i]
            for jj, j in enumerate(others):
                neg[m, i, jj] = np_mip([us[k][j] if k == m else us[k][i] for k in range(n_mod)])
    assert out.neg.shape == (n_mod, n, n - 1)
    close(out.pos, pos)
    close(out.neg, neg)


def test_multilinear_two_modalities_is_the_cosine_matrix():
    a, b = gaussian(5, 3, seed=1), gaussian(5, 3, seed=2)
    out = F.multilinear_scores(a, b)
    s = np_cos(a.numpy(), b.numpy())
    close(out.pos, np.diag(s))
    close(out.neg[1], [[s[i, j] for j in range(5) if j != i] for i in range(5)])  # b's row replaced
    close(out.neg[0], [[s[j, i] for j in range(5) if j != i] for i in range(5)])  # a's row replaced


def test_multilinear_analytic_and_scale_invariant():
    x = torch.tensor([[1.0, 1.0], [1.0, -1.0]])
    # unit rows (±1, ±1)/√2: MIP(x_i, x_i, x_i) = sum_k x_ik^3 = (1 ± 1) / 2^{3/2}
    out = F.multilinear_scores(x, 2.0 * x, 0.5 * x)
    close(out.pos, [2 / 2**1.5, 0.0])
    close(out.neg[0], [[0.0], [2 / 2**1.5]])  # (x_1, x_0, x_0) -> (1 + 1)/2^1.5 for anchor 1


def test_multilinear_validation_and_batch_of_two():
    z = gaussian(2, 3)
    assert F.multilinear_scores(z, z, z).neg.shape == (3, 2, 1)
    with pytest.raises(ValueError, match="at least 2 modalities"):
        F.multilinear_scores(z)
    with pytest.raises(ValueError, match="at least 2 rows"):
        F.multilinear_scores(z[:1], z[:1], z[:1])
    with pytest.raises(ValueError, match="same batch size"):
        F.multilinear_scores(z, z, gaussian(3, 3))


# ----------------------------------------------------------------------------- ranks and ordering


def test_ranks_and_violations_check_values():
    eye = torch.eye(4)
    close(F.positive_ranks(eye, eye), [1, 1, 1, 1])
    close(F.positive_ranks(eye, -eye), [4, 4, 4, 4])
    close(F.ordering_violations(eye, eye), 0.0)
    close(F.ordering_violations(eye, -eye), 1.0)
    ones = torch.ones(5, 3)  # collapse: every score ties
    close(F.positive_ranks(ones, ones), [5] * 5)  # ties pessimistic
    close(F.ordering_violations(ones, ones), 0.5)  # ties count 1/2


@pytest.mark.parametrize("d", [1, 2, 8])
def test_ranks_and_violations_match_numpy_loops_with_ties(d):
    # Rounded coordinates make exact ties common (d = 1: every score is ±1).
    a = (gaussian(10, d, seed=3) * 2).round()
    b = (gaussian(10, d, seed=4) * 2).round() + a
    a[a.norm(dim=1) == 0] = 1.0
    b[b.norm(dim=1) == 0] = 1.0
    close(F.positive_ranks(a, b), np_ranks(a.numpy(), b.numpy()))
    close(F.ordering_violations(a, b, per_anchor=True), np_violations(a.numpy(), b.numpy()))
    close(F.ordering_violations(a, b), np_violations(a.numpy(), b.numpy()).mean())


def test_violations_equal_rank_fraction_without_ties_and_recall1_is_retrieval():
    a, b = gaussian(32, 16, seed=5), gaussian(32, 16, seed=6)
    b = a + b
    ranks = F.positive_ranks(a, b)
    close(F.ordering_violations(a, b, per_anchor=True), (ranks - 1) / 31)
    assert float(F.rank_summary(ranks).recall_at_1) == float(F.retrieval_accuracy(a, b))


def test_violations_near_half_for_independent_embeddings():
    v = F.ordering_violations(gaussian(256, 64, seed=7), gaussian(256, 64, seed=8))
    assert abs(float(v) - 0.5) < 0.03  # mean of 256 x 255 comparisons; the sd of v is ~0.018 here


def test_ranks_batch_of_two_and_one():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[1.0, 0.0], [1.0, -0.1]])
    close(F.positive_ranks(a, b), [1, 2])
    close(F.ordering_violations(a, b, per_anchor=True), [0, 1])
    with pytest.raises(ValueError, match="at least 2 rows"):
        F.positive_ranks(a[:1], b[:1])
    with pytest.raises(ValueError, match="at least 2 rows"):
        F.ordering_violations(a[:1], b[:1])


def test_ranks_and_violations_nan_policy():
    a, b = gaussian(5, 3, seed=1), gaussian(5, 3, seed=2)
    a[1, 0] = float("nan")
    a[3, 2] = float("inf")  # normalize turns a row holding Inf into NaN, as everywhere in functional
    ranks = F.positive_ranks(a, b)
    v = F.ordering_violations(a, b, per_anchor=True)
    assert bool(torch.isnan(ranks[[1, 3]]).all()) and bool(torch.isnan(v[[1, 3]]).all())
    keep = [0, 2, 4]
    with np.errstate(invalid="ignore"):  # the reference's inf / inf in row 3, which is not compared
        ref = np_ranks(a.numpy(), b.numpy())
    close(ranks[keep], ref[keep])
    assert bool(torch.isnan(F.ordering_violations(a, b)))
    summary = F.rank_summary(ranks)
    assert all(bool(torch.isnan(x)) for x in summary)


def test_rank_summary_values():
    ranks = torch.tensor([1, 3, 6, 12, 1])
    s = F.rank_summary(ranks)
    close(s.mrr, np.mean([1, 1 / 3, 1 / 6, 1 / 12, 1]))
    close(s.recall_at_1, 0.4)
    close(s.recall_at_5, 0.6)
    close(s.recall_at_10, 0.8)
    with pytest.raises(ValueError, match="non-empty 1-D"):
        F.rank_summary(torch.ones(2, 2))
    with pytest.raises(TypeError, match="real-valued"):
        F.rank_summary(torch.ones(2, dtype=torch.bool))
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        F.rank_summary([1, 2])


# ----------------------------------------------------------------------------- false negatives


def test_false_negative_share_matches_numpy_and_temperature_curves():
    a, b = gaussian(12, 6, seed=1), gaussian(12, 6, seed=2)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 0, 1, 3, 3, 2])
    for tau in (0.05, 0.3, 2.0):
        out = F.false_negative_share(a, b, labels, tau)
        count, penalty = np_false_negatives(a.numpy(), b.numpy(), labels.numpy(), tau)
        close(out.count_share, count)
        close(out.penalty_share, penalty)
        curve = F.temperature_curves(a, b, [tau], labels=labels).same_class_penalty
        close(out.penalty_share, float(curve[0]))


def test_false_negative_share_per_anchor_temperatures():
    a, b = gaussian(8, 4, seed=3), gaussian(8, 4, seed=4)
    labels = torch.tensor([0, 0, 1, 1, 0, 1, 2, 2])
    taus = torch.linspace(0.05, 1.0, 8)
    out = F.false_negative_share(a, b, labels, taus)
    _, penalty = np_false_negatives(a.numpy(), b.numpy(), labels.numpy(), taus.numpy())
    close(out.penalty_share, penalty)
    with pytest.raises(ValueError, match="1 or B=8"):
        F.false_negative_share(a, b, labels, torch.ones(3))


def test_false_negative_share_check_values():
    a, b = gaussian(6, 4, seed=5), gaussian(6, 4, seed=6)
    same = F.false_negative_share(a, b, torch.zeros(6, dtype=torch.long), 0.1)
    close(same.count_share, 1.0)
    close(same.penalty_share, 1.0)
    distinct = F.false_negative_share(a, b, torch.arange(6), 0.1)
    close(distinct.count_share, 0.0)
    close(distinct.penalty_share, 0.0)
    # B = 2: one negative per anchor, so the penalty share is the count share.
    two = F.false_negative_share(a[:2], b[:2], torch.tensor([4, 4]), 0.1)
    close(two.penalty_share, float(two.count_share))


def test_false_negative_low_tau_concentrates_on_a_hard_same_label_negative():
    # Anchor 0's same-label negative (row 1) is its hardest: at low τ it takes nearly all the penalty.
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    b = torch.tensor([[1.0, 0.0], [0.9, 0.1], [-1.0, 0.0], [0.0, -1.0]])
    labels = torch.tensor([0, 0, 1, 2])
    low = F.false_negative_share(a, b, labels, 0.01)
    high = F.false_negative_share(a, b, labels, 100.0)
    _, ref_low = np_false_negatives(a.numpy(), b.numpy(), labels.numpy(), 0.01)
    close(low.penalty_share, ref_low)
    assert float(low.penalty_share) > 0.24 > float(high.penalty_share) > float(high.count_share) - 0.01


def test_false_negative_validation_and_nan():
    a = gaussian(4, 3)
    labels = torch.tensor([0, 0, 1, 1])
    with pytest.raises(ValueError, match="positive"):
        F.false_negative_share(a, a, labels, 0.0)
    with pytest.raises(TypeError, match="integer"):
        F.false_negative_share(a, a, labels.float(), 0.1)
    with pytest.raises(ValueError, match="labels must have shape"):
        F.false_negative_share(a, a, labels[:3], 0.1)
    with pytest.raises(ValueError, match="at least 2 rows"):
        F.false_negative_share(a[:1], a[:1], labels[:1], 0.1)
    a_nan = a.clone()
    a_nan[0, 0] = float("nan")
    out = F.false_negative_share(a_nan, a, labels, 0.1)
    assert bool(torch.isnan(out.penalty_share)) and not bool(torch.isnan(out.count_share))


# ----------------------------------------------------------------------------- temperature distribution


def test_temperature_quantiles_match_numpy_linear():
    tau = torch.rand(101, generator=torch.Generator().manual_seed(0)) * 0.95 + 0.05
    probs = [0.0, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 1.0]
    out = F.temperature_distribution(tau, probs=probs)
    close(out.probs, probs)
    close(out.quantiles, np.quantile(tau.double().numpy(), probs), atol=1e-6)
    close(out.mean, tau.double().mean().item(), atol=1e-6)
    close(torch.quantile(tau, torch.tensor(probs)), np.quantile(tau.double().numpy(), probs), atol=1e-6)


def test_temperature_histogram_log_edges_and_end_bins():
    tau = torch.tensor([0.001, 0.05, 0.05, 0.2, 1.0, 50.0, float("nan")])
    out = F.temperature_distribution(tau, bins=3)  # edges 0.01, 0.1, 1, 10
    close(out.edges, [0.01, 0.1, 1.0, 10.0], atol=1e-6)
    assert out.counts.tolist() == [3, 1, 2]  # 0.001 -> first bin, 50 -> last, NaN not counted
    assert out.counts.dtype == torch.int64
    assert bool(torch.isnan(out.quantiles).all()) and bool(torch.isnan(out.mean))
    ref, _ = np.histogram(tau[1:5].numpy(), bins=np.logspace(-2, 1, 4))
    out2 = F.temperature_distribution(tau[1:5], bins=3)
    assert out2.counts.tolist() == ref.tolist()


def test_temperature_distribution_single_value_and_custom_edges():
    out = F.temperature_distribution(torch.tensor([0.3]))
    close(out.quantiles, [0.3] * 7)
    edges = torch.tensor([0.0, 0.5, 1.0])
    assert F.temperature_distribution(torch.tensor([0.1, 0.7, 0.9]), bins=edges).counts.tolist() == [1, 2]


def test_temperature_distribution_validation():
    with pytest.raises(ValueError, match="non-empty 1-D"):
        F.temperature_distribution(torch.ones(2, 2))
    with pytest.raises(ValueError, match="non-empty 1-D"):
        F.temperature_distribution(torch.ones(0))
    with pytest.raises(TypeError, match="floating-point"):
        F.temperature_distribution(torch.ones(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        F.temperature_distribution(torch.ones(3), probs=[0.5, 1.5])
    with pytest.raises(ValueError, match="must not be empty"):
        F.temperature_distribution(torch.ones(3), probs=[])
    with pytest.raises(ValueError, match="bins must be >= 1"):
        F.temperature_distribution(torch.ones(3), bins=0)


# ----------------------------------------------------------------------------- common contract


@pytest.mark.parametrize("dtype", [torch.float16, torch.float64])
def test_float32_out_for_other_dtypes(dtype):
    a, b = gaussian(6, 4, seed=1).to(dtype), gaussian(6, 4, seed=2).to(dtype)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    outs = [
        *F.modality_gap_matrix({"a": a, "b": b})[1:],
        *F.multilinear_scores(a, b, a),
        F.positive_ranks(a, b),
        *F.rank_summary(F.positive_ranks(a, b)),
        F.ordering_violations(a, b),
        *F.false_negative_share(a, b, labels, 0.2),
        *F.temperature_distribution(a[:, 0].abs()).__getattribute__("_asdict")().values(),
    ]
    for t in outs:
        if t.is_floating_point():
            assert t.dtype == torch.float32


def test_functions_do_not_track_gradients():
    a = gaussian(5, 3).requires_grad_()
    assert not F.positive_ranks(a, a).requires_grad
    assert not F.multilinear_scores(a, a, a).pos.requires_grad
    assert not F.false_negative_share(a, a, torch.arange(5), 0.1).penalty_share.requires_grad


def test_new_names_exported_and_doctests_pass():
    for fn in NEW:
        assert fn.__name__ in F.__all__
        finder = doctest.DocTestFinder()
        runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
        tests = finder.find(fn, fn.__name__, globs={"torch": torch, **{n: getattr(F, n) for n in F.__all__}})
        for t in tests:
            runner.run(t)
        result = runner.summarize(verbose=False)
        assert result.attempted >= 1, fn.__name__
        assert result.failed == 0, fn.__name__
