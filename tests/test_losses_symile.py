"""Symile's loss and its pairwise-CLIP baseline against brute-force loops and known values."""

from __future__ import annotations

import math

import pytest
import torch

from cldiag import functional as F
from cldiag.losses import clip_loss, info_nce, mochi_loss, pairwise_clip_loss, symile_loss


def brute_symile(zs: list[torch.Tensor], tau: float) -> float:
    units = [torch.nn.functional.normalize(z.double(), dim=1) for z in zs]
    n, total = units[0].shape[0], 0.0
    for m in range(len(units)):
        for i in range(n):
            logits = []
            for j in range(n):
                value = 0.0
                for k in range(units[0].shape[1]):
                    prod = float(units[m][j, k])
                    for o in range(len(units)):
                        if o != m:
                            prod *= float(units[o][i, k])
                    value += prod
                logits.append(value / tau)
            top = max(logits)
            log_z = top + math.log(sum(math.exp(x - top) for x in logits))
            total += log_z - logits[i]
    return total / (len(units) * n)


@pytest.mark.parametrize(("m", "n", "d"), [(3, 5, 4), (4, 3, 2), (2, 4, 3)])
def test_symile_matches_brute_force(m, n, d):
    g = torch.Generator().manual_seed(m * 10 + n)
    zs = [torch.randn(n, d, generator=g) for _ in range(m)]
    assert float(symile_loss(*zs, tau=0.3)) == pytest.approx(brute_symile(zs, 0.3), rel=1e-5)


def test_symile_logits_are_the_functional_multilinear_scores():
    g = torch.Generator().manual_seed(0)
    zs = [torch.randn(6, 5, generator=g) for _ in range(3)]
    s = F.multilinear_scores(*zs)
    expected = 0.0
    for m in range(3):
        # Row i's candidates: its positive and its B-1 negatives, positive first.
        logits = torch.cat([s.pos[:, None], s.neg[m]], dim=1) / 0.2
        expected += float(torch.nn.functional.cross_entropy(logits, torch.zeros(6, dtype=torch.long)))
    assert float(symile_loss(*zs, tau=0.2)) == pytest.approx(expected / 3, rel=1e-5)


def test_symile_of_two_modalities_is_clip_and_collapse_is_log_n():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(8, 4, generator=g), torch.randn(8, 4, generator=g)
    assert float(symile_loss(a, b, tau=0.1)) == pytest.approx(float(clip_loss(a, b, 10.0)), rel=1e-6)
    ones = torch.ones(5, 3)
    assert float(symile_loss(ones, ones, ones)) == pytest.approx(math.log(5), rel=1e-6)


def test_symile_scores_the_xor_triple_that_pairs_cannot():
    # ±1 bits with c = a·b: identity embeddings give the matched triple the largest MIP, so Symile's loss
    # is far below log N, while every pair is uncorrelated and pairwise CLIP stays near 3·log N.
    g = torch.Generator().manual_seed(2)
    a = 1.0 - 2.0 * torch.randint(2, (256, 6), generator=g).float()
    b = 1.0 - 2.0 * torch.randint(2, (256, 6), generator=g).float()
    c = a * b
    assert float(symile_loss(a, b, c, tau=0.02)) < 0.5 * math.log(256)
    assert float(pairwise_clip_loss(a, b, c, tau=0.02)) > 3 * math.log(256)


def test_pairwise_clip_is_the_sum_over_pairs():
    g = torch.Generator().manual_seed(3)
    a, b, c = (torch.randn(6, 4, generator=g) for _ in range(3))
    expected = clip_loss(a, b, 5.0) + clip_loss(a, c, 5.0) + clip_loss(b, c, 5.0)
    assert float(pairwise_clip_loss(a, b, c, tau=0.2)) == pytest.approx(float(expected), rel=1e-6)


def test_mochi_without_mixes_is_info_nce():
    """The hard-negatives preset compares the two; without synthetic negatives they must be one loss."""
    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)
    plain = mochi_loss(a, b, None, 0.2, n_hard=4, n_mix=0, n_mix_query=0)
    assert float(plain) == pytest.approx(float(info_nce(a, b, 0.2)), rel=1e-6)


@pytest.mark.parametrize("loss", [symile_loss, pairwise_clip_loss])
def test_bad_inputs_are_named(loss):
    z = torch.randn(4, 3)
    with pytest.raises(ValueError, match="at least 2 modalities"):
        loss(z)
    with pytest.raises(ValueError, match=r"same batch size|same dim"):
        loss(z, torch.randn(5, 3))
    with pytest.raises(ValueError, match="tau must be positive and finite"):
        loss(z, z, tau=0.0)
    with pytest.raises(TypeError, match="floating-point"):
        loss(z, z.long())
