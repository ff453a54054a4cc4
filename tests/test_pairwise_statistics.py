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


# --- ranks, ordering and false negatives from the same matrix (issue 15) ------------------------------


def _brute_force(a, b, labels=None, tau=None):
    """Float64 loops: positive ranks (ties pessimistic), ordering violations (ties ½), false negatives."""
    ua = torch.nn.functional.normalize(a.double(), dim=1, eps=1e-12)
    ub = torch.nn.functional.normalize(b.double(), dim=1, eps=1e-12)
    s = (ua @ ub.T).tolist()
    n = len(s)
    ranks, viol, counts, penalties = [], [], [], []
    for i in range(n):
        negs = [j for j in range(n) if j != i]
        ranks.append(1 + sum(s[i][j] >= s[i][i] for j in negs))
        viol.append(
            sum(1.0 if s[i][j] > s[i][i] else 0.5 if s[i][j] == s[i][i] else 0.0 for j in negs) / (n - 1)
        )
        if labels is not None and tau is not None:
            t = float(tau[i]) if isinstance(tau, torch.Tensor) and tau.numel() > 1 else float(tau)
            top = max(s[i][j] for j in negs)
            w = {j: torch.tensor((s[i][j] - top) / t, dtype=torch.float64).exp().item() for j in negs}
            same = [j for j in negs if int(labels[j]) == int(labels[i])]
            counts.append(len(same) / (n - 1))
            penalties.append(sum(w[j] for j in same) / sum(w.values()))
    r = torch.tensor(ranks, dtype=torch.float64)
    out = {
        "ranks": r,
        "mrr": (1.0 / r).mean(),
        "recall_at_1": (r <= 1).double().mean(),
        "recall_at_5": (r <= 5).double().mean(),
        "recall_at_10": (r <= 10).double().mean(),
        "ordering_violations": torch.tensor(viol, dtype=torch.float64).mean(),
    }
    if counts:
        out["count_share"] = torch.tensor(counts, dtype=torch.float64).mean()
        out["penalty_share"] = torch.tensor(penalties, dtype=torch.float64).mean()
    return out


def _assert_fused_equals_standalone(st, a, b, labels, tau) -> None:
    """The fused fields are the standalone functions' results, bit for bit (they share one implementation)."""
    ranks = F.positive_ranks(a, b)
    torch.testing.assert_close(st.ranks, ranks, rtol=0, atol=0, equal_nan=True)
    for got, want in zip(st.rank_summary, F.rank_summary(ranks), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(
        st.ordering_violations, F.ordering_violations(a, b), rtol=0, atol=0, equal_nan=True
    )
    if labels is None or tau is None:
        assert st.false_negatives is None
        return
    fn = F.false_negative_share(a, b, labels, tau)
    torch.testing.assert_close(st.false_negatives.count_share, fn.count_share, rtol=0, atol=0)
    torch.testing.assert_close(
        st.false_negatives.penalty_share, fn.penalty_share, rtol=0, atol=0, equal_nan=True
    )


TAUS = {
    "none": None,
    "scalar": 0.1,
    "tensor": torch.tensor(0.3),
    "per_anchor": "per_anchor",
}


@pytest.mark.parametrize(("n", "d"), [(2, 3), (7, 1), (40, 8), (130, 16)])
@pytest.mark.parametrize("with_labels", [True, False])
@pytest.mark.parametrize("tau_kind", sorted(TAUS))
def test_fused_ranks_ordering_false_negatives_equal_standalone_and_float64(n, d, with_labels, tau_kind):
    a, b, y = _batch(n, d, seed=7 * n + d)
    labels = y if with_labels else None
    tau = TAUS[tau_kind]
    if tau == "per_anchor":
        tau = torch.rand(n, generator=torch.Generator().manual_seed(n)) * 0.5 + 0.02
    st = F.pairwise_statistics(a, b, labels=labels, temperature=tau, bins=10)
    _assert_fused_equals_standalone(st, a, b, labels, tau)
    ref = _brute_force(a, b, labels, tau)
    _close(st.ranks, ref["ranks"], 0.0)
    for field in ("mrr", "recall_at_1", "recall_at_5", "recall_at_10"):
        _close(getattr(st.rank_summary, field), ref[field], 1e-6)
    _close(st.ordering_violations, ref["ordering_violations"], 1e-6)
    if labels is not None and tau is not None:
        _close(st.false_negatives.count_share, ref["count_share"], 1e-6)
        _close(st.false_negatives.penalty_share, ref["penalty_share"], 1e-5)
    scalars = st.scalars()
    assert ("false_negative_penalty_share" in scalars) == (labels is not None and tau is not None)
    assert {"mrr", "recall_at_1", "recall_at_5", "recall_at_10", "ordering_violations"} <= set(scalars)


def test_per_anchor_temperature_gives_hardness_at_the_mean_and_false_negatives_per_anchor():
    a, b, y = _batch(30, 6, seed=11)
    tau = torch.linspace(0.02, 0.8, 30)
    st = F.pairwise_statistics(a, b, labels=y, temperature=tau)
    at_mean = F.pairwise_statistics(a, b, labels=y, temperature=tau.mean())
    for got, want in zip(st.hardness, at_mean.hardness, strict=True):
        _close(got, want, 0.0)
    _close(st.coupling, at_mean.coupling, 0.0)
    # each anchor's own τ, not the mean: the two penalty shares differ
    _close(st.false_negatives.penalty_share, F.false_negative_share(a, b, y, tau).penalty_share, 0.0)
    assert abs(float(st.false_negatives.penalty_share - at_mean.false_negatives.penalty_share)) > 1e-3
    with pytest.raises(ValueError, match="1 or B=30"):
        F.pairwise_statistics(a, b, labels=y, temperature=torch.full((7,), 0.1))


@pytest.mark.parametrize("tau_kind", ["scalar", "per_anchor"])
@pytest.mark.parametrize(("n", "cap"), [(90, 32), (F.ROW_CAP + 40, F.ROW_CAP)])
def test_fused_subsample_uses_the_same_rows_for_ranks_and_false_negatives(tau_kind, n, cap):
    a, b, y = _batch(n, 5, seed=2)
    tau = 0.2 if tau_kind == "scalar" else torch.linspace(0.05, 0.6, n)
    st = F.pairwise_statistics(a, b, labels=y, temperature=tau, max_rows=cap, seed=4)
    rows = F.subsample_rows(n, cap, seed=4)
    assert torch.equal(st.rows, rows) and st.ranks.shape == (cap,)
    tau_rows = tau if tau_kind == "scalar" else tau[rows]
    _assert_fused_equals_standalone(st, a[rows], b[rows], y[rows], tau_rows)
    if tau_kind == "per_anchor":  # hardness at the mean τ of every row, as the Monitor logs it
        _close(st.hardness.entropy, F.hardness(a[rows], b[rows], tau.mean()).entropy, 1e-5)


def test_fused_non_finite_row_follows_the_standalone_nan_policy():
    a, b, y = _batch(12, 4, seed=5)
    a[2, 1] = float("nan")
    a[7, 0] = float("inf")  # normalize turns a row holding Inf into NaN
    for tau in (0.1, torch.linspace(0.1, 0.5, 12)):
        st = F.pairwise_statistics(a, b, labels=y, temperature=tau)
        _assert_fused_equals_standalone(st, a, b, y, tau)
        assert torch.isnan(st.ranks[[2, 7]]).all() and not torch.isnan(st.ranks[[0, 1, 3]]).any()
        assert all(bool(torch.isnan(x)) for x in st.rank_summary) and bool(
            torch.isnan(st.ordering_violations)
        )
        assert bool(torch.isnan(st.false_negatives.penalty_share))
        assert not bool(torch.isnan(st.false_negatives.count_share))
    b_nan = b.clone()
    b_nan[0, 0] = float("nan")  # a NaN candidate poisons every anchor's scores
    st = F.pairwise_statistics(a[:2].nan_to_num(), b_nan[:2], temperature=0.1)
    assert torch.isnan(st.ranks).all()


def test_fused_ties_count_pessimistic_for_ranks_and_half_for_ordering():
    ones = torch.ones(5, 3)  # collapse: every score ties
    st = F.pairwise_statistics(ones, ones, labels=torch.tensor([0, 0, 1, 1, 2]), temperature=0.2)
    assert st.ranks.tolist() == [5.0] * 5 and float(st.ordering_violations) == 0.5
    assert float(st.rank_summary.recall_at_1) == 0.0 and float(st.rank_summary.recall_at_5) == 1.0
    _close(st.false_negatives.penalty_share, torch.tensor(0.2), 1e-6)  # uniform weights: 1 same of 4
    eye = torch.eye(4)
    st = F.pairwise_statistics(eye, -eye)
    assert st.ranks.tolist() == [4.0] * 4 and float(st.ordering_violations) == 1.0
    # rounded coordinates make exact ties common (d = 1: every score is ±1)
    for d in (1, 2):
        a = (torch.randn(16, d, generator=torch.Generator().manual_seed(d)) * 2).round()
        b = (torch.randn(16, d, generator=torch.Generator().manual_seed(d + 9)) * 2).round() + a
        a[a.norm(dim=1) == 0] = 1.0
        b[b.norm(dim=1) == 0] = 1.0
        st = F.pairwise_statistics(a, b)
        _assert_fused_equals_standalone(st, a, b, None, None)
        _close(st.ordering_violations, _brute_force(a, b)["ordering_violations"], 1e-6)


def test_penalty_pass_is_exact_at_any_temperature():
    # The exp pass drops the self pair with a sentinel; exp(sentinel / τ) is no longer 0 once τ ≳ 100.
    a, b, y = _batch(9, 4, seed=6)
    for tau in (1e3, 1e4):
        c = F.temperature_curves(a, b, [tau], labels=y)
        _close(c.effective_negatives[0], F.hardness(a, b, tau).effective_negatives, 1e-5)
        fn = F.false_negative_share(a, b, y, tau)
        _close(fn.penalty_share, _brute_force(a, b, y, tau)["penalty_share"], 1e-6)


def test_per_anchor_temperature_and_false_negatives_read_no_value_on_the_host():
    # Meta tensors have no data: any .item(), bool() or .cpu() of a value would raise.
    a, b, y = (x.to("meta") for x in _batch(40, 6, seed=8))
    tau = torch.linspace(0.05, 0.5, 40, device="meta")
    for max_rows in (None, 16):
        st = F.pairwise_statistics(a, b, labels=y, temperature=tau, max_rows=max_rows)
        assert st.false_negatives is not None and st.hardness is not None
        for name, value in st.scalars().items():
            assert value.device.type == "meta" and value.shape == (), name
        assert st.ranks.device.type == "meta" and st.ranks.shape == (max_rows or 40,)
    fn = F.false_negative_share(a, b, y, tau)
    assert fn.penalty_share.device.type == "meta"
