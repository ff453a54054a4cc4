"""functional: neighbours, pair ranks and hardest negatives (issue 16) against brute force on a snapshot."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cldiag import Monitor, read_run
from cldiag import functional as F


def _cos(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64) / np.linalg.norm(x, axis=1, keepdims=True)
    y = y.astype(np.float64) / np.linalg.norm(y, axis=1, keepdims=True)
    return x @ y.T


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    """A two-modality snapshot written and read back through the Monitor: (image rows, text rows)."""
    path = tmp_path_factory.mktemp("snap") / "run"
    g = torch.Generator().manual_seed(0)
    a = torch.randn(60, 12, generator=g)
    b = a + 0.8 * torch.randn(60, 12, generator=g)
    with Monitor(path, modalities=("image", "text"), snapshot_every=1, snapshot_size=60, strict=True) as mon:
        mon.log(0, a, b)
    matrix, info = read_run(path).embedding_matrix(0)
    img, txt = (info.modality == "image").to_numpy(), (info.modality == "text").to_numpy()
    assert (info[img].sample_id.to_numpy() == info[txt].sample_id.to_numpy()).all()
    return matrix[img], matrix[txt]


def test_pair_ranks_match_brute_force_and_positive_ranks(snapshot):
    a, b = snapshot
    s = _cos(a, b)
    brute = [1 + sum(s[i, j] >= s[i, i] for j in range(len(a)) if j != i) for i in range(len(a))]
    ranks = F.pair_ranks(torch.from_numpy(a), torch.from_numpy(b), chunk=7)  # blocks that do not divide 60
    assert ranks.tolist() == brute
    assert max(brute) > 1 and min(brute) == 1  # the data has both found and missed positives
    torch.testing.assert_close(ranks, F.positive_ranks(torch.from_numpy(a), torch.from_numpy(b)))


def test_hardest_negatives_match_brute_force(snapshot):
    a, b = snapshot
    s = _cos(a, b)
    got = F.hardest_negatives(torch.from_numpy(a), torch.from_numpy(b), 5, chunk=8)
    for i in range(len(a)):
        order = [j for j in np.argsort(-s[i], kind="stable") if j != i][:5]
        assert got.indices[i].tolist() == order
        np.testing.assert_allclose(got.similarity[i].numpy(), s[i, order], rtol=1e-5, atol=1e-6)


def test_nearest_neighbours_match_brute_force_in_the_full_snapshot(snapshot):
    z = np.concatenate(snapshot)  # both sides, as the Embeddings page searches them
    s = _cos(z, z)
    queries = [0, 17, 60, 119]
    got = F.nearest_neighbours(torch.from_numpy(z), queries, 8, chunk=3)
    for row, q in enumerate(queries):
        order = [j for j in np.argsort(-s[q], kind="stable") if j != q][:8]
        assert got.indices[row].tolist() == order
        np.testing.assert_allclose(got.similarity[row].numpy(), s[q, order], rtol=1e-5, atol=1e-6)
    same = F.nearest_neighbours(torch.from_numpy(z), torch.tensor(queries), 8)
    assert torch.equal(same.indices, got.indices)
    assert F.nearest_neighbours(torch.from_numpy(z), -1, 1).indices.shape == (1, 1)


def test_nonfinite_rows_rank_last_and_score_nan():
    z = torch.tensor([[1.0, 0.0], [math.nan, 1.0], [0.8, 0.6], [0.0, 1.0]])
    nn = F.nearest_neighbours(z, 0, 3)
    assert nn.indices.tolist() == [[2, 3, 1]] and math.isnan(nn.similarity[0, 2])
    hard = F.hardest_negatives(z, z, 2)
    assert hard.indices[0].tolist() == [2, 3]
    ranks = F.pair_ranks(z, z)  # as positive_ranks: a NaN in an anchor's scores makes its rank NaN
    assert torch.isnan(ranks).all() and torch.isnan(F.positive_ranks(z, z)).all()
    assert F.pair_ranks(z[[0, 2, 3]], z[[0, 2, 3]]).tolist() == [1.0, 1.0, 1.0]


def test_example_functions_refuse_bad_input():
    z = torch.randn(4, 3)
    with pytest.raises(ValueError, match=r"k must be in \[1, 3\]"):
        F.nearest_neighbours(z, 0, 4)
    with pytest.raises(ValueError, match="out of range"):
        F.nearest_neighbours(z, 4, 1)
    with pytest.raises(TypeError, match="query_idx must hold integers"):
        F.nearest_neighbours(z, torch.tensor([0.5]), 1)
    with pytest.raises(TypeError, match="k must be an int"):
        F.hardest_negatives(z, z, 1.0)
    with pytest.raises(ValueError, match="same batch size"):
        F.hardest_negatives(z, z[:3], 1)
    with pytest.raises(ValueError, match="at least 2 rows"):
        F.pair_ranks(z[:1], z[:1])
    with pytest.raises(ValueError, match="chunk"):
        F.pair_ranks(z, z, chunk=0)
