"""Losses against collapsed-embedding identities (METRICS.md) and brute-force NumPy loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cldiag.losses import (
    LogitScale,
    clip_logits,
    clip_loss,
    dcl_loss,
    dclw_loss,
    info_nce,
    mix_hard_negatives,
    mochi_loss,
    nt_xent,
    supcon_loss,
)


def _unit(x: torch.Tensor) -> np.ndarray:
    x = x.detach().double().numpy()
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _lse(v) -> float:
    v = np.asarray(v, dtype=np.float64)
    m = v.max()
    return float(m + np.log(np.exp(v - m).sum()))


# --- brute-force references: one anchor at a time, explicit candidate lists --------------------------


def ref_info_nce(a, b, tau, symmetric=False):
    a, b = _unit(a), _unit(b)
    n = len(a)
    one = [-(a[i] @ b[i]) / tau + _lse([a[i] @ b[j] / tau for j in range(n)]) for i in range(n)]
    if not symmetric:
        return np.mean(one)
    two = [-(b[i] @ a[i]) / tau + _lse([b[i] @ a[j] / tau for j in range(n)]) for i in range(n)]
    return (np.mean(one) + np.mean(two)) / 2


def ref_nt_xent(z1, z2, tau):
    z = np.concatenate([_unit(z1), _unit(z2)])
    n2, n = len(z), len(z1)
    losses = []
    for k in range(n2):
        p = (k + n) % n2
        denom = [z[k] @ z[j] / tau for j in range(n2) if j != k]
        losses.append(-(z[k] @ z[p]) / tau + _lse(denom))
    return np.mean(losses)


def ref_dcl(z1, z2, tau, weights=None):
    z = np.concatenate([_unit(z1), _unit(z2)])
    n2, n = len(z), len(z1)
    losses = []
    for k in range(n2):
        p = (k + n) % n2
        w = 1.0 if weights is None else weights[k % n]
        neg = [z[k] @ z[j] / tau for j in range(n2) if j not in (k, p)]
        losses.append(-w * (z[k] @ z[p]) / tau + _lse(neg))
    return np.mean(losses)


def ref_dclw_weights(z1, z2, sigma):
    cos = np.sum(_unit(z1) * _unit(z2), axis=1) / sigma
    soft = np.exp(cos - cos.max())
    soft /= soft.sum()
    return 2 - len(cos) * soft


def ref_supcon(z, labels, tau):
    z = _unit(z)
    labels = labels.numpy()
    m = len(z)
    losses = []
    for i in range(m):
        pos = [p for p in range(m) if p != i and labels[p] == labels[i]]
        if not pos:
            continue
        denom = _lse([z[i] @ z[a] / tau for a in range(m) if a != i])
        losses.append(-np.mean([z[i] @ z[p] / tau - denom for p in pos]))
    return np.mean(losses)


def ref_clip(a, b, scale):
    a, b = _unit(a), _unit(b)
    n = len(a)
    la = [-scale * (a[i] @ b[i]) + _lse([scale * (a[i] @ b[j]) for j in range(n)]) for i in range(n)]
    lb = [-scale * (b[i] @ a[i]) + _lse([scale * (b[i] @ a[j]) for j in range(n)]) for i in range(n)]
    return (np.mean(la) + np.mean(lb)) / 2


@pytest.fixture
def pair():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(7, 5, generator=g, dtype=torch.float64)
    b = a + 0.7 * torch.randn(7, 5, generator=g, dtype=torch.float64)
    return a, 3.0 * b  # b unnormalized on purpose: every loss must normalize


# --- collapsed identities ------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 5, 32])
@pytest.mark.parametrize("tau", [0.05, 0.5, 2.0])
def test_collapsed_values(n, tau):
    z = torch.ones(n, 8) * 3.0
    assert float(info_nce(z, z, tau)) == pytest.approx(math.log(n), abs=1e-5)
    assert float(info_nce(z, z, tau, symmetric=True)) == pytest.approx(math.log(n), abs=1e-5)
    assert float(nt_xent(z, z, tau)) == pytest.approx(math.log(2 * n - 1), abs=1e-5)
    assert float(clip_loss(z, z, 1 / tau)) == pytest.approx(math.log(n), abs=1e-5)
    assert float(dcl_loss(z, z, tau)) == pytest.approx(math.log(2 * n - 2), abs=1e-5)
    assert float(dclw_loss(z, z, tau)) == pytest.approx(math.log(2 * n - 2), abs=1e-5)
    labels = torch.arange(n).repeat(2)
    assert float(supcon_loss(torch.cat([z, z]), labels, tau)) == pytest.approx(math.log(2 * n - 1), abs=1e-5)


def test_mochi_collapsed_value():
    z = torch.ones(6, 4)
    bank = torch.ones(10, 4)
    loss = mochi_loss(z, z, bank, 0.2, n_hard=4, n_mix=3, n_mix_query=2)
    assert float(loss) == pytest.approx(math.log(1 + 10 + 3 + 2), abs=1e-5)
    in_batch = mochi_loss(z, z, None, 0.2, n_hard=4, n_mix=3, n_mix_query=2)
    assert float(in_batch) == pytest.approx(math.log(1 + 5 + 3 + 2), abs=1e-5)


def test_perfect_separation_goes_to_zero():
    # Orthogonal unit pairs at tiny tau: the positive dominates every softmax.
    e = torch.eye(4)
    assert float(info_nce(e, e, 0.01)) < 1e-6
    assert float(nt_xent(e, e, 0.01)) < 1e-6
    assert float(clip_loss(e, e, 100.0)) < 1e-6


# --- brute force -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("tau", [0.1, 0.7])
def test_against_brute_force(pair, tau):
    a, b = pair
    assert float(info_nce(a, b, tau)) == pytest.approx(ref_info_nce(a, b, tau), rel=1e-9)
    assert float(info_nce(a, b, tau, symmetric=True)) == pytest.approx(
        ref_info_nce(a, b, tau, True), rel=1e-9
    )
    assert float(nt_xent(a, b, tau)) == pytest.approx(ref_nt_xent(a, b, tau), rel=1e-9)
    assert float(clip_loss(a, b, 1 / tau)) == pytest.approx(ref_clip(a, b, 1 / tau), rel=1e-9)
    assert float(dcl_loss(a, b, tau)) == pytest.approx(ref_dcl(a, b, tau), rel=1e-9)
    w = ref_dclw_weights(a, b, 0.5)
    assert w.mean() == pytest.approx(1.0)
    assert float(dclw_loss(a, b, tau)) == pytest.approx(ref_dcl(a, b, tau, w), rel=1e-9)


def test_supcon_brute_force_and_reduction_to_nt_xent(pair):
    a, b = pair
    z = torch.cat([a, b])
    labels = torch.tensor([0, 1, 0, 2, 1, 3, 0]).repeat(2)
    assert float(supcon_loss(z, labels, 0.3)) == pytest.approx(ref_supcon(z, labels, 0.3), rel=1e-9)
    # Unique labels per sample: SupCon is exactly NT-Xent.
    unique = torch.arange(7).repeat(2)
    assert float(supcon_loss(z, unique, 0.3)) == pytest.approx(float(nt_xent(a, b, 0.3)), rel=1e-12)


def test_supcon_skips_anchors_without_positive(pair):
    a, _ = pair
    labels = torch.tensor([0, 0, 1, 2, 3, 4, 5])  # only rows 0 and 1 have a positive
    assert float(supcon_loss(a, labels, 0.5)) == pytest.approx(ref_supcon(a, labels, 0.5), rel=1e-9)
    with pytest.raises(ValueError, match="no row has a positive"):
        supcon_loss(a, torch.arange(7), 0.5)


def test_clip_logits_seam(pair):
    a, b = pair
    la, lb = clip_logits(a, b, 10.0)
    expected = 10.0 * _unit(a) @ _unit(b).T
    np.testing.assert_allclose(la.numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(lb.numpy(), expected.T, rtol=1e-12)


def test_mochi_brute_force_with_fixed_generator(pair):
    a, b = pair
    bank = torch.randn(9, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    kw = dict(n_hard=4, n_mix=5, n_mix_query=3)
    synth = mix_hard_negatives(a, bank, generator=torch.Generator().manual_seed(1), **kw)
    loss = mochi_loss(a, b, bank, 0.2, generator=torch.Generator().manual_seed(1), **kw)
    q, k, nb = _unit(a), _unit(b), _unit(bank)
    s = synth.numpy()
    ref = []
    for i in range(len(q)):
        cands = [q[i] @ k[i]] + [q[i] @ n for n in nb] + [q[i] @ h for h in s[i]]
        ref.append(-cands[0] / 0.2 + _lse(np.array(cands) / 0.2))
    assert float(loss) == pytest.approx(np.mean(ref), rel=1e-9)


def test_mix_hard_negatives_properties(pair):
    q, _ = pair
    bank = torch.randn(50, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    synth = mix_hard_negatives(
        q, bank, n_hard=5, n_mix=20, n_mix_query=20, generator=torch.Generator().manual_seed(0)
    )
    assert synth.shape == (7, 40, 5)
    assert not synth.requires_grad
    np.testing.assert_allclose(synth.norm(dim=2).numpy(), 1.0, rtol=1e-12)
    qn, bn = _unit(q), _unit(bank)
    sims_bank = qn @ bn.T
    for i in range(len(qn)):
        hard = bn[np.argsort(-sims_bank[i])[:5]]
        # Negative-negative mixtures lie in the span of the 5 hardest negatives.
        coef, *_ = np.linalg.lstsq(hard.T, synth[i, :20].numpy().T, rcond=None)
        np.testing.assert_allclose(hard.T @ coef, synth[i, :20].numpy().T, atol=1e-9)
        # Each query mixture lies in span{q, n} for one of the hard negatives n, and is closer to q than n.
        for h in synth[i, 20:].numpy():
            fits = []
            for n in hard:
                basis = np.stack([qn[i], n], axis=1)
                coef, *_ = np.linalg.lstsq(basis, h, rcond=None)
                fits.append((np.linalg.norm(basis @ coef - h), coef, n))
            residual, coef, n = min(fits, key=lambda f: f[0])
            assert residual < 1e-9
            assert 0 < coef[0] < coef[1]  # beta < 0.5: the negative keeps the larger share
            assert h @ qn[i] > n @ qn[i]


# --- gradients, learnable scale ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fn",
    [
        lambda a, b: info_nce(a, b, 0.2),
        lambda a, b: nt_xent(a, b, 0.2),
        lambda a, b: clip_loss(a, b, 5.0),
        lambda a, b: dcl_loss(a, b, 0.2),
        lambda a, b: dclw_loss(a, b, 0.2),
        lambda a, b: supcon_loss(torch.cat([a, b]), torch.tensor([0, 1, 0, 1, 2, 2]).repeat(2), 0.2),
        lambda a, b: mochi_loss(a, b, None, 0.2, n_hard=3, n_mix=2, n_mix_query=2),
    ],
)
def test_gradients_flow(fn):
    g = torch.Generator().manual_seed(0)
    a = torch.randn(6, 4, generator=g, requires_grad=True)
    b = torch.randn(6, 4, generator=g, requires_grad=True)
    loss = fn(a, b)
    loss.backward()
    for t in (a, b):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


def test_learnable_temperature_gets_gradient():
    tau = torch.tensor(0.3, requires_grad=True)
    a, b = torch.randn(5, 3), torch.randn(5, 3)
    nt_xent(a, b, tau).backward()
    assert tau.grad is not None and tau.grad != 0


def test_logit_scale_init_clamp_and_gradient():
    scale = LogitScale()
    assert float(scale().detach()) == pytest.approx(1 / 0.07, rel=1e-6)
    assert scale.temperature == pytest.approx(0.07, rel=1e-6)
    a, b = torch.randn(6, 4), torch.randn(6, 4)
    clip_loss(a, b, scale()).backward()
    assert scale.log_scale.grad is not None and scale.log_scale.grad != 0
    fixed = LogitScale(0.5, learnable=False)
    assert list(fixed.parameters()) == []
    assert float(fixed()) == pytest.approx(2.0)


def _noisy_pairs() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(64, 16, generator=g)
    return a, a + 2.0 * torch.randn(64, 16, generator=g)


@pytest.mark.parametrize("project", [True, False], ids=["clamp_after_step", "straight_through_only"])
def test_logit_scale_above_the_bound_is_not_frozen(project):
    # Issue 11's reproducer: a scale of 101 on noisy pairs. With the clamp inside forward the gradient was
    # exactly 0 and the scale stayed at 100 with loss 18.6; open_clip's scheme moves to ≈7.4, loss ≈2.8.
    a, b = _noisy_pairs()
    scale = LogitScale()
    with torch.no_grad():
        scale.log_scale.fill_(math.log(101.0))
    optimizer = torch.optim.Adam(scale.parameters(), lr=0.05)
    first = float(clip_loss(a, b, scale()).detach())
    for _ in range(200):
        loss = clip_loss(a, b, scale())
        optimizer.zero_grad()
        loss.backward()
        assert scale.log_scale.grad != 0
        optimizer.step()
        if project:
            scale.clamp_()
    assert first > 15.0
    assert float(loss.detach()) < 3.0
    assert float(scale().detach()) < 10.0


@pytest.mark.parametrize("init", [0.001, 0.005, 0.0099])
def test_logit_scale_tiny_init_temperature_starts_at_the_bound_with_a_gradient(init):
    scale = LogitScale(init)
    assert float(scale.log_scale.detach()) == pytest.approx(math.log(100.0), abs=1e-6)
    assert float(scale().detach()) == pytest.approx(100.0, rel=1e-6)
    a, b = _noisy_pairs()
    clip_loss(a, b, scale()).backward()
    assert scale.log_scale.grad is not None and float(scale.log_scale.grad) > 0  # the loss wants it lower


def test_logit_scale_clamp_keeps_the_parameter_in_range():
    # Perfectly separable pairs push the scale up without end: clamp_ stops the parameter at log(100),
    # and forward never returns more than 100 even before clamp_ runs.
    scale = LogitScale(0.5)
    optimizer = torch.optim.Adam(scale.parameters(), lr=1.0)
    e = torch.eye(8)
    for _ in range(20):
        loss = clip_loss(e, e, scale())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        assert float(scale().detach()) <= 100.0 * (1 + 1e-6)
        scale.clamp_()
        assert math.log(1.0) <= float(scale.log_scale) <= math.log(100.0) + 1e-6
    assert float(scale.log_scale.detach()) == pytest.approx(math.log(100.0), abs=1e-6)
    low = LogitScale(5.0)  # τ = 5 is below the default scale floor of 1 (τ ≤ 1)
    assert float(low().detach()) == pytest.approx(1.0)
    assert float(LogitScale(5.0, min_scale=0.1)().detach()) == pytest.approx(0.2, rel=1e-6)
    with pytest.raises(ValueError, match="min_scale"):
        LogitScale(min_scale=200.0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("loss", [nt_xent, info_nce, dcl_loss, clip_loss])
def test_half_precision_losses_are_computed_in_float32(loss, dtype):
    # Same (rounded) inputs in float64: the bf16 NT-Xent used to be off by 8e-3; upcast it is ~1e-6.
    g = torch.Generator().manual_seed(3)
    a = torch.randn(32, 8, generator=g).to(dtype)
    b = torch.randn(32, 8, generator=g).to(dtype)
    tau = 10.0 if loss is clip_loss else 0.1
    got = loss(a, b, tau)
    want = loss(a.double(), b.double(), tau)
    assert got.dtype == torch.float32
    assert float(got) == pytest.approx(float(want), abs=1e-5)


def test_half_precision_gradients_flow_back_in_the_input_dtype():
    a = torch.randn(16, 8).bfloat16().requires_grad_()
    b = torch.randn(16, 8).bfloat16().requires_grad_()
    nt_xent(a, b, 0.2).backward()
    assert a.grad is not None and a.grad.dtype == torch.bfloat16 and torch.isfinite(a.grad.float()).all()


# --- validation ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("loss", [info_nce, nt_xent, dcl_loss, dclw_loss])
def test_shape_errors_name_the_shapes(loss):
    with pytest.raises(ValueError, match=r"same batch size .* \(4, 3\) and [a-z0-9]+ \(5, 3\)"):
        loss(torch.randn(4, 3), torch.randn(5, 3), 0.1)
    with pytest.raises(ValueError, match=r"2-D.*\(4,\)"):
        loss(torch.randn(4), torch.randn(4), 0.1)
    with pytest.raises(ValueError, match="at least 2"):
        loss(torch.randn(1, 3), torch.randn(1, 3), 0.1)
    with pytest.raises(TypeError, match="int64"):
        loss(torch.ones(4, 3, dtype=torch.long), torch.ones(4, 3, dtype=torch.long), 0.1)
    with pytest.raises(TypeError, match="ndarray"):
        loss(np.ones((4, 3)), torch.ones(4, 3), 0.1)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="tau"):
            loss(torch.randn(4, 3), torch.randn(4, 3), bad)


def test_other_validation():
    a = torch.randn(4, 3)
    with pytest.raises(ValueError, match="logit_scale"):
        clip_loss(a, a, 0.0)
    with pytest.raises(ValueError, match="sigma"):
        dclw_loss(a, a, 0.1, sigma=0)
    with pytest.raises(TypeError, match="integer"):
        supcon_loss(a, torch.zeros(4), 0.1)
    with pytest.raises(ValueError, match=r"\(4,\)"):
        supcon_loss(a, torch.zeros(3, dtype=torch.long), 0.1)
    with pytest.raises(ValueError, match="beta_max"):
        mix_hard_negatives(a, a, beta_max=0.7)
    with pytest.raises(ValueError, match=r"\(K, d\) or \(B, K, d\)"):
        mix_hard_negatives(a, torch.randn(2, 2, 2, 2))
    with pytest.raises(ValueError, match="d=3"):
        mix_hard_negatives(a, torch.randn(5, 4))
    with pytest.raises(ValueError, match="n_mix"):
        mix_hard_negatives(a, a, n_mix=-1)
    with pytest.raises(ValueError, match=r"\(K, 3\)"):
        mochi_loss(a, a, torch.randn(5, 4))
    with pytest.raises(ValueError, match="one-element tensor"):
        nt_xent(a, a, torch.ones(2))


def test_alignment_only_loss_values_and_collapse_optimum():
    from cldiag.losses import alignment_only_loss

    z = torch.randn(6, 5)
    assert float(alignment_only_loss(z, 3 * z)) == pytest.approx(0.0, abs=1e-6)
    assert float(alignment_only_loss(z, -z)) == pytest.approx(4.0, abs=1e-5)
    a, b = torch.randn(7, 4), torch.randn(7, 4)
    an = a.double().numpy() / np.linalg.norm(a.double().numpy(), axis=1, keepdims=True)
    bn = b.double().numpy() / np.linalg.norm(b.double().numpy(), axis=1, keepdims=True)
    ref = np.mean([np.sum((an[i] - bn[i]) ** 2) for i in range(7)])
    assert float(alignment_only_loss(a, b)) == pytest.approx(ref, rel=1e-5)
    # every input mapped to one point is a global minimum: nothing in the loss prevents collapse
    same = torch.ones(7, 4)
    assert float(alignment_only_loss(same, same)) == 0.0
    with pytest.raises(ValueError):
        alignment_only_loss(a, b[:3])
