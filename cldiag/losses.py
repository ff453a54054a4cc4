"""Contrastive losses: InfoNCE / NT-Xent, CLIP, DCL / DCLW, SupCon and MoCHi hard-negative mixing.

Every loss L2-normalizes its inputs itself, so the similarities it uses are cosines, and validates shapes
with errors that print the actual shapes. Nothing here logs anything: pair a loss with
:class:`cldiag.Monitor` to watch what it does to the embeddings.

Check values (all rows equal, so every logit is the same and the loss is the log of the number of
candidates in each softmax):

==========================  ================================
loss                        collapsed value
==========================  ================================
``info_nce`` (N pairs)      ``log N``
``nt_xent`` (2N views)      ``log(2N - 1)``
``clip_loss`` (N pairs)     ``log N``
``dcl_loss`` / DCLW         ``log(2N - 2)``
``supcon_loss`` (M rows)    ``log(M - 1)``
``mochi_loss``              ``log(1 + K + n_mix + n_mix_query)``
==========================  ================================

Example:
    >>> import torch
    >>> from cldiag.losses import nt_xent
    >>> round(float(nt_xent(torch.ones(8, 16), torch.ones(8, 16), tau=0.5)), 4)  # collapsed: log(15)
    2.7081
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cldiag._checks import check_matrix, check_pair, check_positive, check_rows, check_scalar_temperature

__all__ = [
    "IndividualTemperatureLoss",
    "LogitScale",
    "alignment_only_loss",
    "clip_logits",
    "clip_loss",
    "dcl_loss",
    "dclw_loss",
    "info_nce",
    "isogclr_loss",
    "mix_hard_negatives",
    "mochi_loss",
    "nt_xent",
    "pairwise_clip_loss",
    "supcon_loss",
    "symile_loss",
]

Temperature = float | Tensor


# ---------------------------------------------------------------------------------------------------------
# Input validation (shared with cldiag.functional) and precision. Python numbers are checked eagerly; tensor
# temperatures are not, because reading their value would force a device sync on every step.

_HALF = (torch.float16, torch.bfloat16)


def _up(x: Tensor) -> Tensor:
    """Half precision → float32 (float32/64 unchanged): logits, softmax and log in bf16 lose ~3 digits."""
    return x.float() if x.dtype in _HALF else x


def _pair(a: object, b: object, names: tuple[str, str] = ("a", "b")) -> tuple[Tensor, Tensor]:
    a, b = check_pair(a, b, names)
    check_rows(a, names[0], 2, "negatives are the other rows of the batch")
    return _up(a), _up(b)


def _temperature(value: object, name: str) -> Temperature:
    value = check_scalar_temperature(value, name)
    return _up(value) if isinstance(value, Tensor) else value


# ---------------------------------------------------------------------------------------------------------
# InfoNCE family.


def info_nce(a: Tensor, b: Tensor, tau: Temperature = 0.1, *, symmetric: bool = False) -> Tensor:
    r"""InfoNCE over two aligned batches: row ``i`` of ``b`` is the positive of row ``i`` of ``a``.

    Each anchor ``a_i`` picks its positive among the N candidates ``b_1..b_N`` (the other N − 1 rows of
    ``b`` are its negatives). This is the CLIP-style loss with a fixed temperature; unlike
    :func:`nt_xent`, rows of ``a`` are never negatives of each other.

    .. math::
        \ell_i = -\log \frac{\exp(\hat a_i^\top \hat b_i / \tau)}
                           {\sum_{j=1}^{N} \exp(\hat a_i^\top \hat b_j / \tau)}

    Oord et al., "Representation Learning with Contrastive Predictive Coding", 2018.

    Args:
        a: Anchors, shape (N, d). Normalized inside.
        b: Candidates, shape (N, d). Normalized inside.
        tau: Temperature > 0 (float or scalar tensor, e.g. learnable).
        symmetric: Also score each ``b_i`` against all rows of ``a`` and average the two directions.

    Returns:
        Scalar mean loss. ``log N`` when all rows are equal.

    Raises:
        ValueError: If shapes differ, are not 2-D, N < 2, or ``tau`` is not positive.
        TypeError: If an input is not a floating-point tensor.
    """
    a, b = _pair(a, b)
    tau = _temperature(tau, "tau")
    logits = F.normalize(a, dim=1) @ F.normalize(b, dim=1).T / tau
    targets = torch.arange(a.shape[0], device=a.device)
    loss = F.cross_entropy(logits, targets)
    if symmetric:
        loss = (loss + F.cross_entropy(logits.T, targets)) / 2
    return loss


def nt_xent(z1: Tensor, z2: Tensor, tau: Temperature = 0.5) -> Tensor:
    r"""NT-Xent, the SimCLR loss: 2N views, each anchor has 1 positive and 2N − 2 negatives.

    The two batches are stacked into 2N views ``z``; for anchor ``k`` with positive ``p(k)`` (the other view
    of the same sample), the negatives are all remaining 2N − 2 views of both batches.

    .. math::
        \ell_k = -\log \frac{\exp(\hat z_k^\top \hat z_{p(k)} / \tau)}
                           {\sum_{j \ne k} \exp(\hat z_k^\top \hat z_j / \tau)}

    The returned loss is the mean over all 2N anchors. Chen et al., "A Simple Framework for Contrastive
    Learning of Visual Representations" (SimCLR), ICML 2020.

    Args:
        z1: First view, shape (N, d). Normalized inside.
        z2: Second view, shape (N, d); row i is the positive of ``z1[i]``. Normalized inside.
        tau: Temperature > 0 (float or scalar tensor).

    Returns:
        Scalar mean loss. ``log(2N − 1)`` when all rows are equal.

    Raises:
        ValueError: If shapes differ, are not 2-D, N < 2, or ``tau`` is not positive.
        TypeError: If an input is not a floating-point tensor.
    """
    z1, z2 = _pair(z1, z2, ("z1", "z2"))
    tau = _temperature(tau, "tau")
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = (z @ z.T / tau).masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(logits, targets)


def alignment_only_loss(z1: Tensor, z2: Tensor) -> Tensor:
    r"""Negative-free loss: pull the two views together and nothing else — a textbook way to collapse.

    .. math::
        \ell = \frac{1}{N} \sum_i \lVert \hat z^{(1)}_i - \hat z^{(2)}_i \rVert^2

    This is Wang & Isola's alignment term alone. Without negatives (or the predictor and stop-gradient of
    BYOL/SimSiam, Chen & He, CVPR 2021) every input can map to the same point at zero loss, and training
    finds it: uniformity and ``std_of_l2_normalized`` go to 0, the effective rank to 1. The Lab offers it so
    that learners can watch complete collapse, and the health rules can be seen to fire.

    Args:
        z1: First view, shape (N, d). Normalized inside.
        z2: Second view, shape (N, d); row i is the positive of ``z1[i]``. Normalized inside.

    Returns:
        Scalar mean loss in ``[0, 4]``; 0 when all rows are equal (collapsed).

    Raises:
        ValueError: If shapes differ, are not 2-D or N < 2.
        TypeError: If an input is not a floating-point tensor.
    """
    z1, z2 = _pair(z1, z2, ("z1", "z2"))
    return (F.normalize(z1, dim=1) - F.normalize(z2, dim=1)).pow(2).sum(dim=1).mean()


def _dcl(z1: Tensor, z2: Tensor, tau: Temperature, weight: Tensor | None) -> Tensor:
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / tau
    idx = torch.arange(2 * n, device=z.device)
    partner = (idx + n) % (2 * n)
    pos = sim[idx, partner]
    # Drop the anchor itself and its positive: what remains are the 2N − 2 negatives.
    drop = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    drop[idx, partner] = True
    neg = torch.logsumexp(sim.masked_fill(drop, float("-inf")), dim=1)
    if weight is not None:
        pos = pos * weight.repeat(2)
    return (neg - pos).mean()


def dcl_loss(z1: Tensor, z2: Tensor, tau: Temperature = 0.1) -> Tensor:
    r"""Decoupled contrastive loss (DCL): NT-Xent without the positive in the denominator.

    .. math::
        \ell_k = -\hat z_k^\top \hat z_{p(k)} / \tau
                 + \log \sum_{j \notin \{k, p(k)\}} \exp(\hat z_k^\top \hat z_j / \tau)

    Removing the positive removes the "negative-positive coupling" factor ``1 − p_pos`` from the gradient of
    NT-Xent, which the paper shows slows learning at small batch sizes. Mean over the 2N anchors.
    Yeh et al., "Decoupled Contrastive Learning", ECCV 2022.

    Args:
        z1: First view, shape (N, d). Normalized inside.
        z2: Second view, shape (N, d). Normalized inside.
        tau: Temperature > 0 (float or scalar tensor).

    Returns:
        Scalar mean loss. ``log(2N − 2)`` when all rows are equal.

    Raises:
        ValueError: If shapes differ, are not 2-D, N < 2, or ``tau`` is not positive.
        TypeError: If an input is not a floating-point tensor.
    """
    z1, z2 = _pair(z1, z2, ("z1", "z2"))
    tau = _temperature(tau, "tau")
    return _dcl(z1, z2, tau, None)


def dclw_loss(z1: Tensor, z2: Tensor, tau: Temperature = 0.1, *, sigma: float = 0.5) -> Tensor:
    r"""Weighted DCL (DCLW): DCL whose positive term is weighted by how easy the pair already is.

    .. math::
        w_i = 2 - N \cdot \operatorname{softmax}_i\big(\hat z^{(1)\top}_i \hat z^{(2)}_i / \sigma\big)

    Pairs that are already close (high cosine) get a weight below 1, distant pairs above 1; the weights
    average to 1 over the batch. The weight is part of the graph, as in the authors' code.
    Yeh et al., "Decoupled Contrastive Learning", ECCV 2022 (σ = 0.5 in the paper).

    Args:
        z1: First view, shape (N, d). Normalized inside.
        z2: Second view, shape (N, d). Normalized inside.
        tau: Temperature > 0 (float or scalar tensor).
        sigma: Temperature of the weighting softmax, > 0.

    Returns:
        Scalar mean loss. ``log(2N − 2)`` when all rows are equal (every weight is then 1).

    Raises:
        ValueError: If shapes differ, are not 2-D, N < 2, or ``tau``/``sigma`` is not positive.
        TypeError: If an input is not a floating-point tensor.
    """
    z1, z2 = _pair(z1, z2, ("z1", "z2"))
    tau = _temperature(tau, "tau")
    sigma = check_positive(sigma, "sigma")
    cos = (F.normalize(z1, dim=1) * F.normalize(z2, dim=1)).sum(dim=1)
    weight = 2 - z1.shape[0] * torch.softmax(cos / sigma, dim=0)
    return _dcl(z1, z2, tau, weight)


# ---------------------------------------------------------------------------------------------------------
# CLIP.


def clip_logits(a: Tensor, b: Tensor, logit_scale: Temperature) -> tuple[Tensor, Tensor]:
    """The CLIP similarity logits, ``logit_scale · â b̂ᵀ`` and its transpose.

    This is the seam open_clip's ``ClipLoss.get_logits`` exposes: the matrix the loss uses is the one a
    diagnostic should read.

    Args:
        a: Image-side features, shape (N, d). Normalized inside.
        b: Text-side features, shape (N, d). Normalized inside.
        logit_scale: The multiplicative scale ``1/τ`` (already exponentiated, as in open_clip's output
            dict), float or scalar tensor, > 0.

    Returns:
        ``(logits_per_a, logits_per_b)``, each (N, N); the second is the transpose of the first.

    Raises:
        ValueError: If shapes differ, are not 2-D, N < 2, or ``logit_scale`` is not positive.
        TypeError: If an input is not a floating-point tensor.
    """
    a, b = _pair(a, b, ("a", "b"))
    logit_scale = _temperature(logit_scale, "logit_scale")
    logits = logit_scale * F.normalize(a, dim=1) @ F.normalize(b, dim=1).T
    return logits, logits.T


def clip_loss(a: Tensor, b: Tensor, logit_scale: Temperature = 1 / 0.07) -> Tensor:
    r"""The symmetric CLIP loss: mean of the a→b and b→a cross-entropies with targets ``arange(N)``.

    .. math::
        L = \tfrac12\big(\mathrm{CE}(s\,\hat A \hat B^\top, I) + \mathrm{CE}(s\,\hat B \hat A^\top, I)\big)

    Radford et al., "Learning Transferable Visual Models From Natural Language Supervision", ICML 2021.
    For a learnable scale, pass the output of a :class:`LogitScale` module (clamped at 100 as in open_clip).

    Args:
        a: Image-side features, shape (N, d). Normalized inside.
        b: Text-side features, shape (N, d); row i is the caption of image i. Normalized inside.
        logit_scale: The multiplicative scale ``s = 1/τ`` (already exponentiated), float or scalar tensor.

    Returns:
        Scalar loss. ``log N`` when all rows are equal.

    Raises:
        ValueError: If shapes differ, are not 2-D, N < 2, or ``logit_scale`` is not positive.
        TypeError: If an input is not a floating-point tensor.
    """
    logits_a, logits_b = clip_logits(a, b, logit_scale)
    targets = torch.arange(a.shape[0], device=a.device)
    return (F.cross_entropy(logits_a, targets) + F.cross_entropy(logits_b, targets)) / 2


class LogitScale(nn.Module):
    """A learnable (or fixed) CLIP logit scale, stored in log space and kept in ``[min_scale, max_scale]``.

    The parameter is ``log(1/τ)``, initialised to ``log(1/0.07)`` like CLIP and clipped into
    ``[log min_scale, log max_scale]`` (``[0, log 100]`` by default, i.e. τ in ``[0.01, 1]``), as open_clip
    does. Two mechanisms keep it there without ever freezing it:

    - :meth:`clamp_` projects the parameter back into the range in place. Call it after every
      ``optimizer.step()``, exactly like open_clip's ``logit_scale.clamp_(0, math.log(100))``: the
      parameter then never leaves the range by more than one step, so no momentum builds up beyond it.
    - :meth:`forward` clamps with a *straight-through* estimator: the value is clamped, but the gradient
      is passed through as if it were not. A plain ``clamp`` in ``forward`` would give the parameter a
      gradient of exactly 0 once it passes the bound, so it could never come back (a frozen scale at
      100); with the straight-through clamp the loss's pull back into the range always reaches it,
      even if a caller forgets :meth:`clamp_`.

    Example:
        >>> scale = LogitScale()
        >>> round(scale.temperature, 4)
        0.07
    """

    def __init__(
        self,
        init_temperature: float = 0.07,
        *,
        max_scale: float = 100.0,
        min_scale: float = 1.0,
        learnable: bool = True,
    ) -> None:
        """Create the scale.

        Args:
            init_temperature: Starting τ (> 0); the scale starts at ``1/init_temperature`` clipped into
                ``[min_scale, max_scale]`` (so ``init_temperature < 1/max_scale`` starts *at* the bound,
                with a live gradient, not beyond it).
            max_scale: Upper bound of the scale (> 0); 100 (τ ≥ 0.01) as CLIP.
            min_scale: Lower bound of the scale (> 0, ``<= max_scale``); 1 (τ ≤ 1) as open_clip.
            learnable: Register ``log_scale`` as a parameter (True) or as a fixed buffer (False).

        Raises:
            ValueError: If a value is not a positive finite number, or ``min_scale > max_scale``.
        """
        super().__init__()
        check_positive(init_temperature, "init_temperature")
        check_positive(max_scale, "max_scale")
        check_positive(min_scale, "min_scale")
        if min_scale > max_scale:
            raise ValueError(
                f"min_scale must be <= max_scale, got min_scale={min_scale}, max_scale={max_scale}"
            )
        self.min_log_scale = math.log(min_scale)
        self.max_log_scale = math.log(max_scale)
        start = min(max(math.log(1 / init_temperature), self.min_log_scale), self.max_log_scale)
        value = torch.tensor(start, dtype=torch.float32)
        if learnable:
            self.log_scale = nn.Parameter(value)
        else:
            self.register_buffer("log_scale", value)

    def forward(self) -> Tensor:
        """The scale ``exp(clip(log_scale))`` as a 0-d tensor; the gradient passes the clip unchanged."""
        x = self.log_scale
        clipped = x.clamp(self.min_log_scale, self.max_log_scale)
        return (x + (clipped - x).detach()).exp()

    @torch.no_grad()
    def clamp_(self) -> LogitScale:
        """Project ``log_scale`` into ``[log min_scale, log max_scale]``; call after ``optimizer.step()``.

        Returns:
            ``self``, so ``scale.clamp_()`` can be chained.
        """
        self.log_scale.clamp_(self.min_log_scale, self.max_log_scale)
        return self

    @property
    def temperature(self) -> float:
        """The current temperature ``1/scale`` as a Python float (syncs; not for the hot loop)."""
        return float(1 / self.forward().detach())


# ---------------------------------------------------------------------------------------------------------
# Supervised contrastive.


def supcon_loss(z: Tensor, labels: Tensor, tau: Temperature = 0.1) -> Tensor:
    r"""Supervised contrastive loss (SupCon, the "L_out" variant): all same-label rows are positives.

    .. math::
        \ell_i = -\frac{1}{|P(i)|} \sum_{p \in P(i)} \log
                 \frac{\exp(\hat z_i^\top \hat z_p / \tau)}
                      {\sum_{a \ne i} \exp(\hat z_i^\top \hat z_a / \tau)}

    ``P(i)`` is every other row with the label of row ``i``. Stack the views of a batch into ``z`` and repeat
    the labels accordingly; with ``labels = arange(N)`` repeated for two views this is exactly NT-Xent.
    Anchors without any positive are left out of the mean. Khosla et al., "Supervised Contrastive
    Learning", NeurIPS 2020.

    Args:
        z: All views, shape (M, d). Normalized inside.
        labels: Integer labels, shape (M,).
        tau: Temperature > 0 (float or scalar tensor).

    Returns:
        Scalar mean loss over anchors that have a positive. ``log(M − 1)`` when all rows are equal.

    Raises:
        ValueError: If shapes do not match, M < 2, no anchor has a positive, or ``tau`` is not positive.
        TypeError: If ``z`` is not floating point or ``labels`` is not an integer tensor.
    """
    z = _up(check_matrix(z, "z"))
    tau = _temperature(tau, "tau")
    if not isinstance(labels, Tensor) or labels.dtype.is_floating_point or labels.dtype == torch.bool:
        got = labels.dtype if isinstance(labels, Tensor) else type(labels).__name__
        raise TypeError(f"labels must be an integer tensor, got {got}")
    if labels.shape != (z.shape[0],):
        raise ValueError(
            f"labels must have shape ({z.shape[0]},) to match z {tuple(z.shape)}, got {tuple(labels.shape)}"
        )
    if z.shape[0] < 2:
        raise ValueError(f"need at least 2 rows, got {z.shape[0]}")
    m = z.shape[0]
    zn = F.normalize(z, dim=1)
    self_mask = torch.eye(m, dtype=torch.bool, device=z.device)
    log_prob = torch.log_softmax((zn @ zn.T / tau).masked_fill(self_mask, float("-inf")), dim=1)
    positive = (labels[:, None] == labels[None, :]) & ~self_mask
    n_pos = positive.sum(dim=1)
    has_pos = n_pos > 0
    if not bool(has_pos.any()):
        raise ValueError(
            "no row has a positive: every label occurs once; stack at least two views per sample"
        )
    # masked_fill, not multiplication: log_prob is -inf on the diagonal and 0 * -inf would be NaN.
    pos_sum = log_prob.masked_fill(~positive, 0.0).sum(dim=1)
    return -(pos_sum[has_pos] / n_pos[has_pos]).mean()


# ---------------------------------------------------------------------------------------------------------
# Hard negative mixing.


def _mixing_inputs(
    query: Tensor, negatives: Tensor, n_hard: int, n_mix: int, n_mix_query: int, beta_max: float
) -> tuple[Tensor, Tensor]:
    """:func:`mix_hard_negatives`' arguments checked: the query (B, d) and the negatives as (B, K, d)."""
    query = _up(check_matrix(query, "query"))
    if not isinstance(negatives, Tensor) or not negatives.is_floating_point():
        raise TypeError("negatives must be a floating-point tensor")
    negatives = _up(negatives)
    b, d = query.shape
    if negatives.ndim == 2:
        if negatives.shape[1] != d:
            raise ValueError(
                f"negatives (K, d) must have d={d} like query {tuple(query.shape)}, "
                f"got {tuple(negatives.shape)}"
            )
        negatives = negatives.unsqueeze(0).expand(b, -1, -1)
    elif negatives.ndim == 3:
        if negatives.shape[0] != b or negatives.shape[2] != d:
            raise ValueError(
                f"negatives (B, K, d) must match query {tuple(query.shape)}, got {tuple(negatives.shape)}"
            )
    else:
        raise ValueError(f"negatives must be (K, d) or (B, K, d), got shape {tuple(negatives.shape)}")
    if negatives.shape[1] < 1:
        raise ValueError("negatives is empty (K = 0)")
    for name, count in (("n_hard", n_hard), ("n_mix", n_mix), ("n_mix_query", n_mix_query)):
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {count!r}")
    if n_hard < 1:
        raise ValueError(f"n_hard must be >= 1, got {n_hard}")
    if not 0 < beta_max <= 0.5:
        raise ValueError(
            f"beta_max must lie in (0, 0.5] so the query never dominates a mixture, got {beta_max}"
        )
    return query, negatives


def mix_hard_negatives(
    query: Tensor,
    negatives: Tensor,
    *,
    n_hard: int = 16,
    n_mix: int = 16,
    n_mix_query: int = 8,
    beta_max: float = 0.5,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""Synthesize hard negatives for each query by mixing its hardest negatives (MoCHi).

    For each query ``q`` the ``n_hard`` negatives most similar to it are found, then

    .. math::
        h = \frac{\alpha n_i + (1-\alpha) n_j}{\lVert\cdot\rVert}, \quad \alpha \sim U(0, 1)
        \qquad
        h' = \frac{\beta q + (1-\beta) n_j}{\lVert\cdot\rVert}, \quad \beta \sim U(0, \beta_{\max})

    with ``n_i, n_j`` drawn from the hardest negatives. ``n_mix`` points of the first kind and
    ``n_mix_query`` of the second are returned; ``β < 0.5`` keeps the query's share below the negative's, so
    ``h'`` is harder than ``n_j`` but still a negative. The result is detached: synthetic points act as
    constants, as in the paper. Kalantidis et al., "Hard Negative Mixing for Contrastive Learning",
    NeurIPS 2020.

    Args:
        query: Queries, shape (B, d). Normalized inside.
        negatives: A shared bank (K, d) (e.g. a MoCo queue) or per-query negatives (B, K, d).
            Normalized inside.
        n_hard: How many of the hardest negatives to mix from (clipped to K).
        n_mix: Number of negative–negative mixtures per query.
        n_mix_query: Number of query–negative mixtures per query.
        beta_max: Upper bound of the query's mixing weight β, in (0, 0.5].
        generator: Optional random generator for reproducible mixing.

    Returns:
        Unit synthetic negatives, shape (B, n_mix + n_mix_query, d).

    Raises:
        ValueError: On mismatched shapes, K < 1, negative counts, or ``beta_max`` outside (0, 0.5].
        TypeError: If an input is not a floating-point tensor.
    """
    query, negatives = _mixing_inputs(query, negatives, n_hard, n_mix, n_mix_query, beta_max)
    b, d = query.shape
    with torch.no_grad():
        q = F.normalize(query, dim=1)
        neg = F.normalize(negatives, dim=2)
        k = min(n_hard, neg.shape[1])
        sims = torch.einsum("bd,bkd->bk", q, neg)
        hard_idx = sims.topk(k, dim=1).indices
        hard = torch.gather(neg, 1, hard_idx.unsqueeze(-1).expand(-1, -1, d))  # (B, k, d)

        def pick(count: int) -> Tensor:
            idx = torch.randint(k, (b, count), device=q.device, generator=generator)
            return torch.gather(hard, 1, idx.unsqueeze(-1).expand(-1, -1, d))

        def uniform(count: int, high: float) -> Tensor:
            return high * torch.rand(b, count, 1, device=q.device, dtype=q.dtype, generator=generator)

        alpha = uniform(n_mix, 1.0)
        mixed = alpha * pick(n_mix) + (1 - alpha) * pick(n_mix)
        beta = uniform(n_mix_query, beta_max)
        mixed_q = beta * q.unsqueeze(1) + (1 - beta) * pick(n_mix_query)
        return F.normalize(torch.cat([mixed, mixed_q], dim=1), dim=2)


def mochi_loss(
    query: Tensor,
    key: Tensor,
    negatives: Tensor | None = None,
    tau: Temperature = 0.2,
    *,
    n_hard: int = 16,
    n_mix: int = 16,
    n_mix_query: int = 8,
    beta_max: float = 0.5,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""InfoNCE with MoCHi synthetic hard negatives appended to the real ones.

    Each query's softmax runs over its positive key, its real negatives and the
    ``n_mix + n_mix_query`` negatives from :func:`mix_hard_negatives`:

    .. math::
        \ell_i = -\log \frac{e^{q_i^\top k_i/\tau}}
                 {e^{q_i^\top k_i/\tau} + \sum_{n \in N_i} e^{q_i^\top n/\tau}
                  + \sum_{h \in H_i} e^{q_i^\top h/\tau}}

    Kalantidis et al., "Hard Negative Mixing for Contrastive Learning", NeurIPS 2020.

    Args:
        query: Queries, shape (B, d). Normalized inside.
        key: Positive keys, shape (B, d). Normalized inside.
        negatives: A shared negative bank (K, d), e.g. a MoCo queue. ``None`` uses the other keys of the
            batch (K = B − 1 per query), for training without a queue.
        tau: Temperature > 0 (float or scalar tensor).
        n_hard: See :func:`mix_hard_negatives`.
        n_mix: See :func:`mix_hard_negatives`.
        n_mix_query: See :func:`mix_hard_negatives`.
        beta_max: See :func:`mix_hard_negatives`.
        generator: Optional random generator for reproducible mixing.

    Returns:
        Scalar mean loss. ``log(1 + K + n_mix + n_mix_query)`` when all rows are equal.

    Raises:
        ValueError: On mismatched shapes, B < 2, or invalid mixing settings (see :func:`mix_hard_negatives`).
        TypeError: If an input is not a floating-point tensor.
    """
    query, key = _pair(query, key, ("query", "key"))
    tau = _temperature(tau, "tau")
    b = query.shape[0]
    q = F.normalize(query, dim=1)
    k = F.normalize(key, dim=1)
    if negatives is None:
        # Row i of the bank is every key except k_i; the keys stay in the graph like the batch itself.
        others = ~torch.eye(b, dtype=torch.bool, device=k.device)
        neg = k.unsqueeze(0).expand(b, -1, -1)[others].reshape(b, b - 1, -1)
    else:
        negatives = _up(check_matrix(negatives, "negatives"))
        if negatives.shape[1] != q.shape[1]:
            raise ValueError(f"negatives must be (K, {q.shape[1]}), got {tuple(negatives.shape)}")
        neg = F.normalize(negatives, dim=1).unsqueeze(0).expand(b, -1, -1)
    synthetic = mix_hard_negatives(
        q, neg, n_hard=n_hard, n_mix=n_mix, n_mix_query=n_mix_query, beta_max=beta_max, generator=generator
    )
    candidates = torch.cat([k.unsqueeze(1), neg, synthetic], dim=1)  # (B, 1 + K + S, d), positive first
    logits = torch.einsum("bd,bkd->bk", q, candidates) / tau
    return F.cross_entropy(logits, torch.zeros(b, dtype=torch.long, device=q.device))


# ---------------------------------------------------------------------------------------------------------
# -- literature diagnostics (issue 15) --
# Individual temperatures: iSogCLR (Qiu et al., "Not All Semantics are Created Equal: Contrastive
# Self-supervised Learning with Automatic Temperature Individualization", ICML 2023).


def _check_tau_vector(tau: Temperature, n: int) -> Tensor | float:
    if isinstance(tau, Tensor):
        if not tau.is_floating_point():
            raise TypeError(f"tau must be a floating-point tensor, got dtype {tau.dtype}")
        if tau.numel() != 1 and tuple(tau.shape) != (n,):
            raise ValueError(
                f"tau must be a scalar or have shape ({n},) (one per anchor), got {tuple(tau.shape)}"
            )
        return tau.reshape(-1)
    return check_positive(tau, "tau")


def _check_rho(rho: object) -> float:
    if isinstance(rho, bool) or not isinstance(rho, (int, float)):
        raise TypeError(f"rho must be a float, got {type(rho).__name__}")
    if not math.isfinite(rho) or rho < 0:
        raise ValueError(f"rho must be a finite number >= 0, got {rho}")
    return float(rho)


def _log_mean_exp_negatives(a: Tensor, b: Tensor, tau: Tensor | float) -> Tensor:
    """``log (1/(B-1)) Σ_{j≠i} exp((s_ij - s_ii)/τ_i)`` per anchor, with gradients, in float32 or wider."""
    n = a.shape[0]
    # At τ = 0.05 the logits span ±40: half precision would round them coarsely, so compute in float32+.
    dt = torch.promote_types(a.dtype, torch.float32)
    s = F.normalize(a.to(dt), dim=1) @ F.normalize(b.to(dt), dim=1).T
    h = s - torch.diagonal(s)[:, None]
    scale = tau.to(dt)[:, None] if isinstance(tau, Tensor) else tau
    eye = torch.eye(n, dtype=torch.bool, device=a.device)
    return torch.logsumexp((h / scale).masked_fill(eye, float("-inf")), dim=1) - math.log(n - 1)


def isogclr_loss(
    a: Tensor, b: Tensor, tau: Temperature, *, rho: float = 0.4, reduction: str = "mean"
) -> Tensor:
    r"""The iSogCLR objective on one mini-batch: a KL-DRO contrastive loss with a temperature per anchor.

    .. math::
        F_i(\tau_i) = \tau_i \log \frac{1}{B-1} \sum_{j \ne i}
                      \exp\!\Big(\frac{\hat a_i^\top \hat b_j - \hat a_i^\top \hat b_i}{\tau_i}\Big)
                      + \rho\, \tau_i

    This is the dual of a distributionally robust loss: the worst-case mean of the margins
    ``h_ij = s_ij - s_ii`` over distributions ``p`` on the negatives with ``KL(p || uniform) <= ρ``, and
    ``τ_i`` is its Lagrange multiplier. Its derivative in ``τ_i`` is ``ρ - KL(w_i || uniform)`` where
    ``w_i = softmax_j(h_ij / τ_i)``, so minimizing over ``τ_i`` moves it until the anchor's softmax over
    its negatives sits exactly ``ρ`` (in KL) from uniform: an anchor whose negatives are all alike needs a
    small τ to reach that, one with a few standout negatives a large τ. Limits: ``τ → 0`` gives the
    hardest margin ``max_j h_ij``, ``τ → ∞`` the mean margin plus ``ρτ``. Collapse (all rows equal) gives
    ``ρ·τ``.

    This function is the plain mini-batch estimate (autograd through the log of a batch mean, i.e.
    iSogCLR with moving-average weight γ = 1). The paper's algorithm keeps a per-sample moving average
    of the inner mean to remove the bias that small batches give; :class:`IndividualTemperatureLoss`
    implements that with learnable per-sample τ.

    Args:
        a: Anchors, shape (B, d). Normalized inside.
        b: Candidates, shape (B, d); row i is the positive of ``a[i]``, the other rows are its negatives.
            Normalized inside.
        tau: Per-anchor temperatures, a (B,) tensor (may require grad), or one temperature (float or
            scalar tensor) for every anchor. Tensors are not range-checked (that would sync); keep them > 0.
        rho: KL radius ρ >= 0 of the DRO constraint (the authors' unimodal script uses 0.4).
        reduction: ``"mean"`` over anchors, or ``"none"`` for the (B,) values ``F_i``.

    Returns:
        Scalar mean loss, or (B,) per anchor. ``ρ·τ`` when all rows are equal.

    Raises:
        ValueError: If shapes differ, are not 2-D, B < 2, ``tau`` has the wrong shape or is not positive,
            ``rho < 0`` or ``reduction`` is unknown.
        TypeError: If an input is not a floating-point tensor.

    Example:
        >>> import torch
        >>> round(float(isogclr_loss(torch.ones(4, 3), torch.ones(4, 3), torch.full((4,), 0.5))), 4)  # ρ·τ
        0.2
    """
    a, b = _pair(a, b)
    tau_v = _check_tau_vector(tau, a.shape[0])
    rho = _check_rho(rho)
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    per_anchor = tau_v * (_log_mean_exp_negatives(a, b, tau_v) + rho)
    return per_anchor.mean() if reduction == "mean" else per_anchor


class IndividualTemperatureLoss(nn.Module):
    r"""iSogCLR with learnable per-sample temperatures ``τ_i``, indexed by dataset sample ids.

    The objective is :func:`isogclr_loss` with ``τ_i = clamp(tau[index_i], tau_min, tau_max)`` (the
    paper's bounds [0.05, 1.0] by default). As in the paper's algorithm, the inner mean
    ``g_i = (1/(B-1)) Σ_{j≠i} exp(h_ij/τ_i)`` is tracked per sample by a moving average
    ``u_i ← (1-γ) u_i + γ g_i`` (stored as ``log u``; the first visit of a sample sets ``u_i = g_i``), and
    the gradients use it in place of the batch's ``g_i``:

    .. math::
        \nabla_w = \frac{\tau_i}{u_i} \nabla_w g_i, \qquad
        \partial_{\tau_i} = \log u_i + \rho + \frac{\tau_i}{u_i} \partial_{\tau_i} g_i

    With ``gamma = 1`` this is exactly the gradient of :func:`isogclr_loss`. The returned value is the
    moving-average estimate ``mean_i τ_i (log u_i + ρ)`` of the objective.

    Simplifications against the authors' code (``SogCLR_DRO_Loss``), said plainly: τ is an ``nn.Parameter``
    stepped by *your* optimizer (give it its own parameter group; the authors use plain momentum SGD on τ
    with step 0.03 and clip the τ-gradient at ±3); one direction only, anchors ``a`` against the rows of
    ``b`` (for a symmetric or two-tower loss use one module per side, as the paper's bimodal version keeps
    separate image and text temperatures); the negatives are the other ``B - 1`` rows of ``b``, not the
    ``2B - 2`` views of a SimCLR batch.

    Bounds: the clamp's value is used in the loss but the gradient passes straight through it, so a τ
    pushed past a bound is never frozen there (a plain clamp would zero its gradient for good). Call
    :meth:`project_` after each ``optimizer.step()`` to make the step a projected one, as in the paper.

    In ``eval()`` mode the moving averages are neither read nor updated (the batch's own ``g_i`` is used).
    Indices must be unique within a batch (not checked: that would sync).

    Example:
        >>> import torch
        >>> loss_fn = IndividualTemperatureLoss(num_samples=100)
        >>> z = torch.randn(8, 16)
        >>> loss = loss_fn(z, z + 0.1 * torch.randn(8, 16), torch.arange(8))
        >>> loss.backward()
        >>> loss_fn.tau.grad.shape, bool(loss_fn.tau.grad[8:].eq(0).all())
        (torch.Size([100]), True)
    """

    def __init__(
        self,
        num_samples: int,
        *,
        tau_init: float = 0.1,
        tau_min: float = 0.05,
        tau_max: float = 1.0,
        rho: float = 0.4,
        gamma: float = 0.8,
    ) -> None:
        """Create the temperatures and the moving-average state.

        Args:
            num_samples: Size of the dataset; the ``index`` passed to ``forward`` lies in
                ``[0, num_samples)``.
            tau_init: Starting τ of every sample (the authors' unimodal script uses 0.1).
            tau_min: Lower bound of τ (> 0).
            tau_max: Upper bound of τ (>= tau_min).
            rho: KL radius ρ >= 0 (0.4 in the authors' unimodal script).
            gamma: Weight of the new batch in the moving average, in (0, 1] (0.8 in the authors' script).

        Raises:
            ValueError: On a non-positive ``num_samples``, bounds that do not enclose ``tau_init``, a
                negative ``rho`` or ``gamma`` outside (0, 1].
            TypeError: On non-numeric settings.
        """
        super().__init__()
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be an integer >= 1, got {num_samples!r}")
        for name, value in (("tau_init", tau_init), ("tau_min", tau_min), ("tau_max", tau_max)):
            check_positive(value, name)
        if not tau_min <= tau_init <= tau_max:
            raise ValueError(f"need tau_min <= tau_init <= tau_max, got {tau_min}, {tau_init}, {tau_max}")
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not 0 < gamma <= 1:
            raise ValueError(f"gamma must be a number in (0, 1], got {gamma!r}")
        self.tau_min, self.tau_max = float(tau_min), float(tau_max)
        self.rho = _check_rho(rho)
        self.gamma = float(gamma)
        self.tau = nn.Parameter(torch.full((num_samples,), float(tau_init)))
        self.register_buffer("log_u", torch.zeros(num_samples))
        self.register_buffer("seen", torch.zeros(num_samples, dtype=torch.bool))

    def temperatures(self, index: Tensor | None = None) -> Tensor:
        """The clamped temperatures (detached): all ``num_samples`` of them, or those of ``index``."""
        tau = self.tau.detach() if index is None else self.tau.detach()[index]
        return tau.clamp(self.tau_min, self.tau_max)

    @torch.no_grad()
    def project_(self) -> None:
        """Clamp the stored temperatures into ``[tau_min, tau_max]`` in place (after ``optimizer.step()``)."""
        self.tau.clamp_(self.tau_min, self.tau_max)

    def forward(self, a: Tensor, b: Tensor, index: Tensor) -> Tensor:
        """The iSogCLR loss of one batch.

        Args:
            a: Anchors, shape (B, d). Normalized inside.
            b: Candidates, shape (B, d); row i is the positive of ``a[i]``. Normalized inside.
            index: (B,) integer dataset ids of the rows (unique within the batch).

        Returns:
            Scalar loss ``mean_i τ_i (log u_i + ρ)``, differentiable in the embeddings and in ``tau``.

        Raises:
            ValueError: If shapes differ, are not 2-D, B < 2, or ``index`` is not (B,).
            TypeError: If an input is not floating point or ``index`` is not an integer tensor.
        """
        a, b = _pair(a, b)
        n = a.shape[0]
        if not isinstance(index, Tensor) or index.is_floating_point() or index.dtype == torch.bool:
            got = index.dtype if isinstance(index, Tensor) else type(index).__name__
            raise TypeError(f"index must be an integer tensor of sample ids, got {got}")
        if tuple(index.shape) != (n,):
            raise ValueError(f"index must have shape ({n},) to match the batch, got {tuple(index.shape)}")
        index = index.to(self.tau.device)
        raw = self.tau[index]
        # Straight-through clamp: the bounded value, the unbounded gradient.
        tau = raw + (raw.clamp(self.tau_min, self.tau_max) - raw).detach()
        log_g = _log_mean_exp_negatives(a, b, tau)
        if self.training:
            with torch.no_grad():
                fresh = log_g.detach().to(self.log_u.dtype)
                if self.gamma < 1:
                    old = self.log_u[index] + math.log1p(-self.gamma)
                    decayed = torch.logaddexp(old, fresh + math.log(self.gamma))
                else:
                    decayed = fresh
                log_u = torch.where(self.seen[index], decayed, fresh)
                self.log_u[index] = log_u
                self.seen[index] = True
        else:
            log_u = log_g.detach()
        log_u = log_u.to(log_g.dtype)
        # ratio has value 1 when u = g; only its gradient (∇g / u) matters, the value term carries τ's.
        ratio = torch.exp(log_g - log_u)
        per_anchor = tau * (ratio - ratio.detach()) + tau * (log_u + self.rho)
        return per_anchor.mean()


# ---------------------------------------------------------------------------------------------------------
# More than two modalities: Symile (Saporta et al., "Contrasting with Symile: Simple Model-Agnostic
# Representation Learning for Unlimited Modalities", NeurIPS 2024) and its pairwise-CLIP baseline.


def _check_modality_tuple(zs: tuple[object, ...]) -> list[Tensor]:
    if len(zs) < 2:
        raise ValueError(f"need at least 2 modalities (one (N, d) tensor each), got {len(zs)}")
    checked = [check_matrix(z, f"zs[{k}]") for k, z in enumerate(zs)]
    for k, z in enumerate(checked[1:], start=1):
        _pair(checked[0], z, ("zs[0]", f"zs[{k}]"))
    return [_up(z) for z in checked]


def symile_loss(*zs: Tensor, tau: Temperature = 0.1) -> Tensor:
    r"""Symile: contrastive loss on the multilinear inner product (MIP) of ``M >= 2`` modalities.

    With unit rows and ``MIP(x, y, z) = Σ_k x_k y_k z_k``, each modality ``m`` in turn is predicted from the
    others: the candidates for tuple ``i`` are modality ``m``'s rows ``j``, scored with every other modality
    kept at row ``i``; the target is ``j = i``:

    .. math::
        L = \frac1M \sum_m \frac1N \sum_i -\log
            \frac{e^{\mathrm{MIP}(z^{(m)}_i, z^{(-m)}_i)/\tau}}
                 {\sum_j e^{\mathrm{MIP}(z^{(m)}_j, z^{(-m)}_i)/\tau}}

    These are the ``O(N)`` in-batch negatives of Symile (the batch's other rows of the predicted modality);
    the candidates are exactly those of :func:`cldiag.functional.multilinear_scores`. Because the MIP is a
    product over all modalities, it can score information that only the whole tuple carries (e.g.
    ``c = a XOR b``, where every pair is independent) — what a sum of pairwise CLIP losses cannot see.
    For ``M = 2`` the MIP is the cosine and the loss is :func:`clip_loss` at scale ``1/τ``.

    The MIP of ``M`` unit vectors in ``d`` dims is at most ``1`` and usually far smaller (``d^{1-M/2}``
    for ``M`` copies of one evenly spread direction), so Symile needs a lower τ (or a learned scale) than
    two-modality CLIP.

    Args:
        *zs: ``M >= 2`` tensors (N, d) with matched rows (row i of each is the same tuple). Normalized inside.
        tau: Temperature > 0 (float or scalar tensor).

    Returns:
        Scalar loss. ``log N`` when all rows are equal.

    Raises:
        ValueError: Fewer than 2 modalities, shapes that differ, N < 2, or a non-positive ``tau``.
        TypeError: If an input is not a floating-point tensor.

    Example:
        >>> import torch
        >>> round(float(symile_loss(torch.ones(4, 3), torch.ones(4, 3), torch.ones(4, 3))), 4)  # log 4
        1.3863
    """
    checked = _check_modality_tuple(zs)
    tau = _temperature(tau, "tau")
    units = torch.stack([F.normalize(z, dim=1) for z in checked])  # (M, N, d)
    n = units.shape[1]
    targets = torch.arange(n, device=units.device)
    total = units.new_zeros(())
    for m in range(units.shape[0]):
        others = torch.cat([units[:m], units[m + 1 :]]).prod(dim=0)  # (N, d): the other modalities at row i
        total = total + F.cross_entropy(others @ units[m].T / tau, targets)
    return total / units.shape[0]


def pairwise_clip_loss(*zs: Tensor, tau: Temperature = 0.1) -> Tensor:
    r"""The pairwise-CLIP baseline for ``M >= 2`` modalities: :func:`clip_loss` summed over every pair.

    .. math::
        L = \sum_{p < q} \mathrm{CLIP}(z^{(p)}, z^{(q)};\ 1/\tau)

    This is how Symile's baseline trains three modalities: each pair is aligned on its own, so the loss
    only sees what some pair of modalities shares.

    Args:
        *zs: ``M >= 2`` tensors (N, d) with matched rows. Normalized inside.
        tau: Temperature > 0 (float or scalar tensor).

    Returns:
        Scalar loss. ``M(M-1)/2 · log N`` when all rows are equal.

    Raises:
        ValueError: Fewer than 2 modalities, shapes that differ, N < 2, or a non-positive ``tau``.
        TypeError: If an input is not a floating-point tensor.
    """
    checked = _check_modality_tuple(zs)
    tau = _temperature(tau, "tau")
    total = checked[0].new_zeros(())
    for p in range(len(checked)):
        for q in range(p + 1, len(checked)):
            total = total + clip_loss(checked[p], checked[q], 1 / tau)
    return total
