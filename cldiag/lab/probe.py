"""The kNN probe: how well do embeddings of held-out data find their class among training embeddings?"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["knn_accuracy"]


@torch.no_grad()
def knn_accuracy(
    bank: Tensor, bank_labels: Tensor, queries: Tensor, query_labels: Tensor, k: int = 5
) -> float:
    """Cosine k-nearest-neighbour accuracy of ``queries`` against a labelled ``bank``.

    Each query takes the majority label of its ``k`` most cosine-similar bank rows; a tie goes to the class
    whose tied neighbours are nearer. Inputs are normalized inside. A probe needs no training, which is why
    contrastive papers report it beside linear accuracy (Wu et al. 2018; DINO).

    Args:
        bank: Reference embeddings (M, d), e.g. the training set.
        bank_labels: Integer labels (M,).
        queries: Held-out embeddings (Q, d).
        query_labels: Integer labels (Q,).
        k: Neighbours per query, 1 ≤ k ≤ M.

    Returns:
        Accuracy in [0, 1].

    Raises:
        ValueError: If shapes do not match or ``k`` is out of range.
    """
    if bank.ndim != 2 or queries.ndim != 2 or bank.shape[1] != queries.shape[1]:
        raise ValueError(
            f"bank (M, d) and queries (Q, d) must share d, got {tuple(bank.shape)} and {tuple(queries.shape)}"
        )
    if bank_labels.shape != (bank.shape[0],) or query_labels.shape != (queries.shape[0],):
        raise ValueError(
            f"labels must be (M,) and (Q,), got {tuple(bank_labels.shape)} and {tuple(query_labels.shape)} "
            f"for bank {tuple(bank.shape)} and queries {tuple(queries.shape)}"
        )
    if not 1 <= k <= bank.shape[0]:
        raise ValueError(f"k must lie in [1, {bank.shape[0]}], got {k}")
    sims = F.normalize(queries.float(), dim=1) @ F.normalize(bank.float(), dim=1).T
    nearest = sims.topk(k, dim=1).indices
    votes = bank_labels[nearest]
    classes = int(torch.cat([bank_labels, query_labels]).max()) + 1
    # One vote per neighbour plus a tie-break smaller than one vote that favours nearer neighbours.
    weight = 1.0 + torch.linspace(0.5, 0.0, k) / k
    scores = torch.zeros(queries.shape[0], classes).scatter_add_(
        1, votes, weight.expand_as(votes).contiguous()
    )
    return float((scores.argmax(dim=1) == query_labels).float().mean())
