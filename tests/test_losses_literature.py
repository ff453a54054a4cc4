"""Tests of the iSogCLR loss and per-sample temperatures (issue 15) against float64 NumPy loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cldiag.losses import IndividualTemperatureLoss, isogclr_loss

# ----------------------------------------------------------------------------- NumPy reference (float64)


def np_margins(a, b):
    """h[i][j] = cos(a_i, b_j) - cos(a_i, b_i) for j != i, as lists per anchor."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    ua = [row / math.sqrt(sum(v * v for v in row)) for row in a]
    ub = [row / math.sqrt(sum(v * v for v in row)) for row in b]
    n = len(ua)
    cos = [[sum(x * y for x, y in zip(ua[i], ub[j], strict=True)) for j in range(n)] for i in range(n)]
    return [[cos[i][j] - cos[i][i] for j in range(n) if j != i] for i in range(n)]


def np_objective(a, b, taus, rho):
    h = np_margins(a, b)
    out = []
    for i, hi in enumerate(h):
        g = sum(math.exp(x / taus[i]) for x in hi) / len(hi)
        out.append(taus[i] * math.log(g) + rho * taus[i])
    return np.array(out)


def np_tau_gradient(a, b, taus, log_u, rho):
    """The paper's τ-gradient: log u + ρ - (1/u) mean_j exp(h_ij/τ) h_ij/τ."""
    h = np_margins(a, b)
    out = []
    for i, hi in enumerate(h):
        u = math.exp(log_u[i])
        out.append(log_u[i] + rho - sum(math.exp(x / taus[i]) * x / taus[i] for x in hi) / len(hi) / u)
    return np.array(out)


def np_log_g(a, b, taus):
    h = np_margins(a, b)
    return np.array([math.log(sum(math.exp(x / taus[i]) for x in hi) / len(hi)) for i, hi in enumerate(h)])


def np_kl_to_uniform(a, b, taus):
    h = np_margins(a, b)
    out = []
    for i, hi in enumerate(h):
        w = np.exp(np.array(hi) / taus[i] - max(hi) / taus[i])
        w /= w.sum()
        out.append(float(sum(p * math.log(p * len(hi)) for p in w if p > 0)))
    return np.array(out)


def gaussian(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# ----------------------------------------------------------------------------- isogclr_loss


def test_objective_matches_numpy_per_anchor_and_mean():
    a, b = gaussian(9, 5, seed=1), gaussian(9, 5, seed=2)
    taus = torch.linspace(0.05, 1.0, 9, dtype=torch.float64)
    ref = np_objective(a.numpy(), b.numpy(), taus.numpy(), 0.4)
    per = isogclr_loss(a, b, taus, rho=0.4, reduction="none")
    np.testing.assert_allclose(per.detach().numpy(), ref, rtol=1e-10)
    np.testing.assert_allclose(float(isogclr_loss(a, b, taus, rho=0.4)), ref.mean(), rtol=1e-10)
    # One global temperature, as a float and as a scalar tensor.
    ref_global = np_objective(a.numpy(), b.numpy(), [0.2] * 9, 0.0).mean()
    np.testing.assert_allclose(float(isogclr_loss(a, b, 0.2, rho=0.0)), ref_global, rtol=1e-10)
    np.testing.assert_allclose(float(isogclr_loss(a, b, torch.tensor(0.2), rho=0.0)), ref_global, rtol=1e-6)


def test_objective_collapse_and_temperature_limits():
    ones = torch.ones(6, 4)
    taus = torch.tensor([0.05, 0.1, 0.2, 0.5, 1.0, 2.0])
    torch.testing.assert_close(isogclr_loss(ones, ones, taus, rho=0.7), 0.7 * taus.mean())
    a, b = gaussian(7, 3, seed=3), gaussian(7, 3, seed=4)
    h = np_margins(a.numpy(), b.numpy())
    hardest = np.array([max(hi) for hi in h])
    mean_margin = np.array([np.mean(hi) for hi in h])
    small = isogclr_loss(a, b, torch.full((7,), 1e-4, dtype=torch.float64), rho=0.0, reduction="none")
    np.testing.assert_allclose(small.numpy(), hardest, atol=1e-3)  # τ log(1/6) bias is ~2e-4
    large = isogclr_loss(a, b, torch.full((7,), 1e4, dtype=torch.float64), rho=0.0, reduction="none")
    np.testing.assert_allclose(large.numpy(), mean_margin, atol=1e-3)


def test_tau_derivative_is_rho_minus_kl_of_softmax_to_uniform():
    a, b = gaussian(8, 4, seed=5), gaussian(8, 4, seed=6)
    taus = torch.linspace(0.05, 0.8, 8, dtype=torch.float64).requires_grad_()
    isogclr_loss(a, b, taus, rho=0.3, reduction="none").sum().backward()
    kl = np_kl_to_uniform(a.numpy(), b.numpy(), taus.detach().numpy())
    np.testing.assert_allclose(taus.grad.numpy(), 0.3 - kl, atol=1e-10)


def test_objective_float32_and_half_inputs_are_computed_in_float32():
    a, b = gaussian(6, 8, seed=7, dtype=torch.float32), gaussian(6, 8, seed=8, dtype=torch.float32)
    taus = torch.full((6,), 0.05)
    ref = np_objective(a.double().numpy(), b.double().numpy(), taus.double().numpy(), 0.4).mean()
    out32 = isogclr_loss(a, b, taus)
    assert out32.dtype == torch.float32
    np.testing.assert_allclose(float(out32), ref, rtol=1e-5)
    out16 = isogclr_loss(a.half(), b.half(), taus)
    assert out16.dtype == torch.float32
    np.testing.assert_allclose(float(out16), ref, atol=2e-3)


def test_objective_validation():
    a = gaussian(4, 3)
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        isogclr_loss(a, a, torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="positive"):
        isogclr_loss(a, a, -0.1)
    with pytest.raises(TypeError, match="floating-point"):
        isogclr_loss(a, a, torch.ones(4, dtype=torch.long))
    with pytest.raises(ValueError, match="rho"):
        isogclr_loss(a, a, 0.1, rho=-1.0)
    with pytest.raises(ValueError, match="reduction"):
        isogclr_loss(a, a, 0.1, reduction="sum")
    with pytest.raises(ValueError, match="at least 2"):
        isogclr_loss(a[:1], a[:1], 0.1)


# ----------------------------------------------------------------------------- IndividualTemperatureLoss


def test_module_with_gamma_one_is_the_plain_objective():
    a = gaussian(6, 4, seed=1, dtype=torch.float32).requires_grad_()
    b = gaussian(6, 4, seed=2, dtype=torch.float32).requires_grad_()
    index = torch.tensor([3, 0, 7, 9, 1, 5])
    module = IndividualTemperatureLoss(10, tau_init=0.3, gamma=1.0, rho=0.4)
    with torch.no_grad():
        module.tau.copy_(torch.linspace(0.06, 0.9, 10))
    loss = module(a, b, index)
    loss.backward()
    grads = (a.grad.clone(), b.grad.clone(), module.tau.grad[index].clone())
    a.grad = b.grad = None
    taus = module.tau.detach()[index].clone().requires_grad_()
    ref = isogclr_loss(a, b, taus, rho=0.4)
    ref.backward()
    torch.testing.assert_close(loss, ref)
    for got, want in zip(grads, (a.grad, b.grad, taus.grad), strict=True):
        torch.testing.assert_close(got, want)


def test_module_moving_average_follows_the_papers_estimator():
    gamma, rho = 0.5, 0.4
    module = IndividualTemperatureLoss(6, tau_init=0.2, gamma=gamma, rho=rho).double()
    index = torch.tensor([4, 1, 0, 5])
    a1, b1 = gaussian(4, 3, seed=1), gaussian(4, 3, seed=2)
    module(a1, b1, index)  # first visit: u = g
    t = module.temperatures(index).numpy()  # 0.2 as stored in float32, then widened
    g1 = np_log_g(a1.numpy(), b1.numpy(), t)
    np.testing.assert_allclose(module.log_u[index].numpy(), g1, rtol=1e-9)
    assert module.seen.tolist() == [True, True, False, False, True, True]

    a2 = gaussian(4, 3, seed=3).requires_grad_()
    b2 = gaussian(4, 3, seed=4)
    loss = module(a2, b2, index)
    loss.backward()
    g2 = np_log_g(a2.detach().numpy(), b2.numpy(), t)
    log_u = np.log((1 - gamma) * np.exp(g1) + gamma * np.exp(g2))
    np.testing.assert_allclose(module.log_u[index].numpy(), log_u, rtol=1e-9)
    np.testing.assert_allclose(float(loss.detach()), np.mean(t * (log_u + rho)), rtol=1e-9)
    grad_tau = np_tau_gradient(a2.detach().numpy(), b2.numpy(), t, log_u, rho) / 4
    np.testing.assert_allclose(module.tau.grad[index].numpy(), grad_tau, rtol=1e-9)
    # Embedding gradient: τ ∇g / u = (g/u) ∇F_batch, i.e. the plain objective reweighted per anchor.
    grad_a = a2.grad.clone()
    a2.grad = None
    weights = torch.from_numpy(np.exp(g2 - log_u))
    (weights * isogclr_loss(a2, b2, torch.from_numpy(t), reduction="none")).mean().backward()
    torch.testing.assert_close(grad_a, a2.grad)


def test_module_clamp_passes_gradient_and_project_bounds_the_values():
    module = IndividualTemperatureLoss(4, tau_init=0.1, tau_min=0.05, tau_max=1.0)
    with torch.no_grad():
        module.tau.copy_(torch.tensor([0.01, 0.5, 3.0, 0.05]))
    torch.testing.assert_close(module.temperatures(), torch.tensor([0.05, 0.5, 1.0, 0.05]))
    a, b = gaussian(4, 3, seed=1, dtype=torch.float32), gaussian(4, 3, seed=2, dtype=torch.float32)
    loss = module(a, b, torch.arange(4))
    ref = isogclr_loss(a, b, module.temperatures(), rho=module.rho)  # the first visit: u = g
    torch.testing.assert_close(loss, ref)
    loss.backward()
    assert bool((module.tau.grad != 0).all())  # out-of-bound τ are not frozen by the clamp
    module.project_()
    torch.testing.assert_close(module.tau.detach(), torch.tensor([0.05, 0.5, 1.0, 0.05]))


def test_module_eval_mode_leaves_the_state_alone():
    module = IndividualTemperatureLoss(5).eval()
    a, b = gaussian(3, 4, seed=1, dtype=torch.float32), gaussian(3, 4, seed=2, dtype=torch.float32)
    loss = module(a, b, torch.tensor([0, 2, 4]))
    assert not bool(module.seen.any()) and bool((module.log_u == 0).all())
    torch.testing.assert_close(loss, isogclr_loss(a, b, torch.full((3,), 0.1), rho=0.4))


def test_learned_temperatures_reach_the_kl_constraint():
    # Fixed embeddings, τ trained alone with γ = 1: the optimum of τ log g + ρτ has KL(w || U) = ρ.
    a, b = gaussian(8, 6, seed=11, dtype=torch.float32), gaussian(8, 6, seed=12, dtype=torch.float32)
    b = a + 0.5 * b
    module = IndividualTemperatureLoss(8, tau_init=0.3, tau_min=0.01, tau_max=5.0, rho=0.3, gamma=1.0)
    opt = torch.optim.SGD(module.parameters(), lr=2.0)  # the mean over 8 anchors scales each gradient by 1/8
    for _ in range(150):
        opt.zero_grad()
        module(a, b, torch.arange(8)).backward()
        opt.step()
        module.project_()
    taus = module.temperatures()
    assert bool(((taus > 0.011) & (taus < 4.9)).all())  # interior optimum, not a bound
    kl = np_kl_to_uniform(a.double().numpy(), b.double().numpy(), taus.double().numpy())
    np.testing.assert_allclose(kl, 0.3, atol=1e-3)


def test_module_validation():
    with pytest.raises(ValueError, match="num_samples"):
        IndividualTemperatureLoss(0)
    with pytest.raises(ValueError, match="tau_min <= tau_init <= tau_max"):
        IndividualTemperatureLoss(3, tau_init=2.0)
    with pytest.raises(ValueError, match="gamma"):
        IndividualTemperatureLoss(3, gamma=0.0)
    with pytest.raises(ValueError, match="rho"):
        IndividualTemperatureLoss(3, rho=-0.1)
    module = IndividualTemperatureLoss(3)
    a = torch.randn(3, 2)
    with pytest.raises(TypeError, match="integer tensor"):
        module(a, a, torch.zeros(3))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        module(a, a, torch.arange(2))
    with pytest.raises(ValueError, match="at least 2"):
        module(a[:1], a[:1], torch.arange(1))
