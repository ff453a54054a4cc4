"""Pure diagnostics for contrastive embeddings: torch in, float32 torch out.

Every function here is stateless and runs under :func:`torch.no_grad`. Each one L2-normalizes its inputs
itself (in float32; half-precision inputs are upcast first, float64 inputs are computed in float32), so
raw encoder outputs can be passed directly. Results are float32 tensors on the input's device.

Nothing in this module moves data to the host: no ``.item()``, ``.cpu()`` or data-dependent Python
branching, so the functions can run inside a CUDA training step without stalling it. The one exception is
the eigen/singular-value solvers behind :func:`spectrum` and :func:`effective_rank`, which synchronize
on CUDA inside PyTorch itself; call those at snapshot cadence, not every step.

Conventions: ``a`` and ``b`` are ``(B, d)`` matrices whose row ``i`` forms a positive pair; every other
row of ``b`` is a negative of ``a[i]``. ``s_ij`` is the cosine of ``a[i]`` and ``b[j]``.

Non-finite policy (one rule for the whole module): a NaN or ±Inf in an input never raises and is never
counted as an ordinary value; every output that depends on it is NaN. So :func:`spectrum`,
:func:`effective_rank` and :func:`retrieval_accuracy` return NaN (all eigenvalues NaN for the spectrum) as
soon as any entry of their input is non-finite, and scalar means over pairs (uniformity, tolerance, cone,
hardness, ...) are NaN. The two deliberate exceptions: histogram *counts* (:func:`score_histograms`,
:func:`pairwise_statistics`) count only finite scores, since a count cannot be NaN; and
:func:`step_statistics` masks non-finite rows and reports their share, because it runs on every step.
The Monitor drops non-finite rows before it calls the ``O(B²)`` functions.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from numbers import Real
from typing import NamedTuple

import torch
import torch.nn.functional as nnf
from torch import Tensor

from cldiag._checks import (
    INT_DTYPES,
    check_int,
    check_labels,
    check_matrix,
    check_pair,
    check_positive,
    check_rows,
    check_taus,
)

__all__ = [
    "ROW_CAP",
    "FalseNegativeShare",
    "Hardness",
    "ModalityGap",
    "ModalityGapMatrix",
    "MultilinearHistograms",
    "MultilinearScores",
    "Neighbours",
    "PairwiseStatistics",
    "RankSummary",
    "ScoreHistograms",
    "TemperatureCurves",
    "TemperatureDistribution",
    "alignment",
    "cone",
    "effective_rank",
    "false_negative_share",
    "hardest_negatives",
    "hardness",
    "histogram_overlap",
    "modality_gap",
    "modality_gap_matrix",
    "multilinear_histograms",
    "multilinear_scores",
    "nearest_neighbours",
    "negative_similarity",
    "normalize",
    "ordering_violations",
    "pair_ranks",
    "pairwise_statistics",
    "penalty_weights",
    "positive_ranks",
    "positive_similarity",
    "rank_summary",
    "retrieval_accuracy",
    "score_histograms",
    "similarity_matrix",
    "spectrum",
    "std_of_l2_normalized",
    "step_statistics",
    "subsample_rows",
    "temperature_curves",
    "temperature_distribution",
    "tolerance",
    "uniformity",
]

_EPS = 1e-12  # same floor as torch.nn.functional.normalize: zero rows stay zero instead of becoming NaN
_MAX_CURVE_ELEMENTS = 1 << 16  # (taus, B, B) chunks of 256 KiB: per-τ passes stay in cache

ROW_CAP = 2048
"""Row cap of the ``O(B²)`` statistics: above it :func:`pairwise_statistics` and :func:`temperature_curves`
use a seeded subsample of this many rows (:func:`subsample_rows`). At 2048 rows one ``B × B`` float32 matrix
is 16 MiB (a step holds about five) and 4 M pairs still resolve every histogram bin; 4096 rows made a
13-τ curves step take seconds on one CPU core. Batch-size dependent statistics (retrieval, effective
negatives) are then those of a 2048-row batch."""


class ScoreHistograms(NamedTuple):
    """Fixed-bin histograms of positive, negative and hardest-negative cosine scores.

    Attributes:
        edges: ``(bins + 1,)`` float32 bin edges; bin ``k`` is ``[edges[k], edges[k+1])``, the last bin is
            closed on the right.
        pos: ``(bins,)`` int64 counts of the ``B`` positive scores ``s_ii``.
        neg: ``(bins,)`` int64 counts of the ``B(B-1)`` negative scores ``s_ij``, ``i != j``.
        hard_neg: ``(bins,)`` int64 counts of each anchor's hardest negative ``max_{j != i} s_ij``.
        pos_scores: ``(B,)`` float32 positive scores.
        hardest_neg: ``(B,)`` float32 hardest negative score per anchor.
    """

    edges: Tensor
    pos: Tensor
    neg: Tensor
    hard_neg: Tensor
    pos_scores: Tensor
    hardest_neg: Tensor


class Hardness(NamedTuple):
    """How the contrastive loss at one temperature spreads its penalty over negatives (all 0-d).

    Attributes:
        entropy: mean normalized entropy of the relative penalty over negatives, in ``[0, 1]``.
        effective_negatives: mean ``exp(H)``: how many negatives effectively receive the penalty.
        pos_prob: mean softmax probability of the positive; ``1 - pos_prob`` is DCL's coupling factor.
    """

    entropy: Tensor
    effective_negatives: Tensor
    pos_prob: Tensor


class TemperatureCurves(NamedTuple):
    """Diagnostics of one snapshot over a grid of temperatures; every field is ``(len(taus),)`` float32.

    Attributes:
        taus: the temperatures.
        entropy: normalized penalty entropy, see :func:`hardness`.
        effective_negatives: ``exp`` of the penalty entropy, see :func:`hardness`.
        pos_prob: softmax probability of the positive, see :func:`hardness`.
        uniformity: :func:`uniformity` of ``a`` at ``t = 1/(2 tau)``.
        same_class_penalty: share of the negative penalty that falls on same-class samples; ``None``
            without labels.
        rows: ``None`` when all rows were used, else the sorted indices of the row subsample.
    """

    taus: Tensor
    entropy: Tensor
    effective_negatives: Tensor
    pos_prob: Tensor
    uniformity: Tensor
    same_class_penalty: Tensor | None
    rows: Tensor | None = None


class ModalityGap(NamedTuple):
    """Geometry of two modalities on the sphere (Liang et al. 2022).

    Attributes:
        gap: 0-d ``||mean(a_hat) - mean(b_hat)||``.
        gap_vector: ``(d,)`` ``mean(a_hat) - mean(b_hat)``.
        cone_a: 0-d mean pairwise cosine within ``a``, see :func:`cone`.
        cone_b: 0-d mean pairwise cosine within ``b``.
        matched_distance: 0-d mean ``||a_hat_i - b_hat_i||`` over matched pairs.
    """

    gap: Tensor
    gap_vector: Tensor
    cone_a: Tensor
    cone_b: Tensor
    matched_distance: Tensor


# --------------------------------------------------------------------------------------------- validation


# One set of validators for functional, losses, projection and concepts (value first, then its name).
_check_matrix = check_matrix
_check_pair = check_pair
_check_rows = check_rows
_check_labels = check_labels
_check_positive = check_positive
_check_taus = check_taus


# --------------------------------------------------------------------------------------------- helpers


def _to_device(values: list[float] | list[int], dtype: torch.dtype, device: torch.device) -> Tensor:
    """A small host list as a tensor on ``device`` without a host sync.

    ``torch.tensor(values, device=cuda)`` is a blocking copy (the host waits for the GPU's queue); an
    asynchronous copy from pageable memory is staged at once and does not wait.
    """
    return torch.tensor(values, dtype=dtype).to(device, non_blocking=True)


def _unit(z: Tensor) -> Tensor:
    return nnf.normalize(z.float(), p=2.0, dim=1, eps=_EPS)


def _finite_or_zero(z: Tensor) -> tuple[Tensor, Tensor]:
    """Whether every entry is finite (0-d bool, no sync), and ``z`` with non-finite entries zeroed.

    The LAPACK solvers raise (or print MKL errors) on NaN/Inf; they get a clean matrix and the caller
    replaces the answer with NaN where it was undefined.
    """
    ok = torch.isfinite(z)
    return ok.all(), torch.where(ok, z, 0.0)


def _offdiag_log_mean_exp(x: Tensor) -> Tensor:
    """``log mean_{i != j} exp(x_ij)`` over the last two dims (for symmetric ``x``, the same as ``i < j``)."""
    n = x.shape[-1]
    eye = torch.eye(n, dtype=torch.bool, device=x.device)
    return torch.logsumexp(x.masked_fill(eye, -math.inf), dim=(-2, -1)) - math.log(n * (n - 1))


def _squared_distances(u: Tensor) -> Tensor:
    # The Gram form costs O(B^2 d) without a B x B x d intermediate; clamping removes rounding below zero.
    sq = (u * u).sum(dim=1)
    return (sq[:, None] + sq[None, :] - 2.0 * (u @ u.T)).clamp_min_(0.0)


def _histogram(x: Tensor, edges: Tensor, *, uniform: bool = False) -> Tensor:
    nbins = edges.shape[0] - 1
    x = x.reshape(-1)
    finite = torch.isfinite(x)
    if uniform:
        # Equal-width edges: the bin is a linear guess (right up to rounding), corrected by one comparison
        # with the real edges on each side. ~30x faster than bucketize's binary search on CPU.
        lo, hi = edges[0], edges[-1]
        xs = torch.where(finite, x, lo)
        idx = ((xs - lo) * (nbins / (hi - lo))).floor_().clamp_(0, nbins - 1).long()
        idx -= (xs < edges[idx]).long() & (idx > 0).long()
        idx += (xs >= edges[idx + 1]).long() & (idx < nbins - 1).long()
    else:
        # right=True gives edges[k] <= x < edges[k+1]; clamping the index closes the last bin on the right
        # (so x == 1.0 counts) and puts rounding just outside [-1, 1] into the end bins.
        idx = (torch.bucketize(x, edges, right=True) - 1).clamp_(0, nbins - 1)
    return torch.zeros(nbins, dtype=torch.int64, device=x.device).scatter_add_(0, idx, finite.long())


def _edges(bins: int | Tensor, device: torch.device) -> Tensor:
    if isinstance(bins, Tensor):
        if not bins.is_floating_point():
            raise TypeError(
                f"bins must be an int or a floating-point tensor of edges, got dtype {bins.dtype}"
            )
        if bins.ndim != 1 or bins.shape[0] < 2:
            raise ValueError(
                f"bins as edges must be a 1-D tensor of >= 2 values, got shape {tuple(bins.shape)}"
            )
        # Only edges already on the host can be checked without a device sync.
        if bins.device.type == "cpu" and not bool((bins[1:] > bins[:-1]).all()):
            raise ValueError("bins as edges must be strictly increasing")
        return bins.to(device=device, dtype=torch.float32)
    if isinstance(bins, bool) or not isinstance(bins, int):
        raise TypeError(f"bins must be an int or a 1-D tensor of edges, got {type(bins).__name__}")
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    return torch.linspace(-1.0, 1.0, bins + 1, dtype=torch.float32, device=device)


def _cosines_and_hardest(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    s = _unit(a) @ _unit(b).T
    pos = torch.diagonal(s).clone()
    eye = torch.eye(s.shape[0], dtype=torch.bool, device=s.device)
    hardest = s.masked_fill(eye, -math.inf).amax(dim=1)
    return s, pos, hardest


def _penalty_stats(
    s: Tensor, taus: Tensor, same: Tensor | None
) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """Entropy, effective negatives, positive probability and same-class penalty share for each tau."""
    n = s.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=s.device)
    logits = s[None] / taus[:, None, None]
    pos_prob = torch.diagonal(logits.log_softmax(dim=-1), dim1=-2, dim2=-1).exp().mean(dim=-1)
    log_r = logits.masked_fill(eye, -math.inf).log_softmax(dim=-1)
    r = log_r.exp()
    # The positive has r = 0 and log r = -inf; zeroing its log keeps 0 * log 0 = 0 out of NaN.
    ent = -(r * log_r.masked_fill(eye, 0.0)).sum(dim=-1)
    # With one negative (B = 2) the entropy is exactly 0 and so is its normalized value (documented).
    scale = math.log(n - 1) if n > 2 else 1.0
    entropy = (ent.mean(dim=-1) / scale).clamp(0.0, 1.0)
    effective = ent.exp().mean(dim=-1)
    same_share = None if same is None else (r * same).sum(dim=-1).mean(dim=-1)
    return entropy, effective, pos_prob, same_share


# --------------------------------------------------------------------------------------------- fused core
# The fast paths below share one similarity matrix per pair of sides and make every O(B^2) pass count: one
# exp per temperature, no (B, B) boolean eye, diagonals edited in place. They are tested equal to the
# single-purpose functions above, which stay the readable references.

_DIAG_SENTINEL = -1.0e4  # exp(-1e4 / tau) is 0 for any tau <= 100 (and < 1e-43 up to tau = 1e3)


def _squared_distances_masked(u: Tensor) -> Tensor:
    """``_squared_distances(u)`` with ``+inf`` on the diagonal (so ``exp(-t·D)`` drops the self pairs)."""
    d = _squared_distances(u)
    d.diagonal().fill_(math.inf)
    return d


def _uniformity_from_distances(d_masked: Tensor, ts: Tensor) -> Tensor:
    """``log mean_{i != j} exp(-t D_ij)`` for each ``t``, in log space with one global shift.

    Shifting by the smallest off-diagonal distance makes the largest term exactly 1, so the sum never
    underflows (as logsumexp) while each ``t`` costs a single exp pass.
    """
    n = d_masked.shape[0]
    d_min = d_masked.amin()
    shifted = d_masked - d_min
    chunk = max(1, _MAX_CURVE_ELEMENTS // (n * n))
    buf = torch.empty((min(chunk, ts.shape[0]), n, n), dtype=shifted.dtype, device=shifted.device)
    out = []
    for t in torch.split(ts, chunk):
        terms = buf[: t.shape[0]]  # one buffer for every chunk: no allocator churn of (B, B) blocks
        torch.mul(shifted[None], -t[:, None, None], out=terms)
        out.append(terms.exp_().sum(dim=(-2, -1)).log() - t * d_min)
    return torch.cat(out) - math.log(n * (n - 1))


def _hardness_from_scores(
    s: Tensor, pos: Tensor, hardest: Tensor, taus: Tensor, same: Tensor | None
) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """:func:`_penalty_stats` from ``s`` and its hardest negatives, one exp pass per τ.

    With ``x_ij = (s_ij - max_{k != i} s_ik) / τ`` over the negatives, ``Z_i = Σ_j e^{x_ij} >= 1`` and
    ``H_i = log Z_i - Σ_j e^{x_ij} x_ij / Z_i``; the positive's softmax probability is
    ``sigmoid((s_ii - max_neg_i)/τ - log Z_i)``, which never overflows however far the positive leads.
    The same-class share is ``Σ_{j: y_j = y_i} e^{x_ij} / Z_i`` (the false negatives' share of the penalty).

    ``taus`` is ``(T,)`` (one τ per pass) or ``(T, B)`` (pass ``t`` gives anchor ``i`` the τ ``taus[t, i]``,
    e.g. iSogCLR's per-sample temperatures); every result is ``(T,)``.
    """
    n = s.shape[0]
    shifted = s - hardest[:, None]
    shifted.diagonal().fill_(_DIAG_SENTINEL)
    scale = math.log(n - 1) if n > 2 else 1.0
    lead = pos - hardest
    cols: list[list[Tensor]] = [[], [], [], []]
    chunk = max(1, _MAX_CURVE_ELEMENTS // (n * n))
    # Two buffers reused by every chunk: fresh (B, B) blocks per τ fragment the heap (peak RSS doubled).
    x_buf = torch.empty((min(chunk, taus.shape[0]), n, n), dtype=s.dtype, device=s.device)
    e_buf = torch.empty_like(x_buf)
    for tau in torch.split(taus, chunk):
        inv = (1.0 / tau).reshape(tau.shape[0], -1, 1)  # (T, 1, 1) or per anchor (T, B, 1)
        x, e = x_buf[: tau.shape[0]], e_buf[: tau.shape[0]]
        torch.mul(shifted[None], inv, out=x)
        torch.exp(x, out=e)
        # exp(sentinel / τ) underflows to 0 only for τ below ~70; zeroing keeps any τ exact.
        e.diagonal(dim1=-2, dim2=-1).zero_()
        z = e.sum(dim=-1)
        log_z = z.log()
        ent = log_z - x.mul_(e).sum(dim=-1) / z
        cols[0].append((ent.mean(dim=-1) / scale).clamp(0.0, 1.0))
        cols[1].append(ent.exp().mean(dim=-1))
        cols[2].append(torch.sigmoid(lead[None] * inv[:, :, 0] - log_z).mean(dim=-1))
        if same is not None:
            cols[3].append((e.mul_(same).sum(dim=-1) / z).mean(dim=-1))
    same_share = torch.cat(cols[3]) if same is not None else None
    return torch.cat(cols[0]), torch.cat(cols[1]), torch.cat(cols[2]), same_share


def _uniformity_t2_from_gram(gram: Tensor, u: Tensor) -> Tensor:
    """:func:`uniformity` at ``t = 2`` from ``G = u uᵀ`` (overwritten), two passes over ``G``.

    ``exp(-2‖u_i - u_j‖²) = e^{4 G_ij} w_i w_j`` with ``w_i = e^{-2‖u_i‖²}`` (1 or ``e^{-2}`` for a zero row);
    every term lies in ``[e^{-8}, 1]`` up to rounding, so no log-space shift is needed at ``t = 2``.
    """
    n = u.shape[0]
    w = torch.exp(-2.0 * (u * u).sum(dim=1))
    e = gram.mul_(4.0).exp_()
    total = w @ (e @ w) - (e.diagonal() * w * w).sum()
    return (total / (n * (n - 1))).log()


def _std_of_unit(u: Tensor) -> Tensor:
    """:func:`std_of_l2_normalized` of unit rows; column sums as a matrix product (``std(dim=0)`` is slow)."""
    n = u.shape[0]
    centered = u - u.mean(dim=0)
    ones = torch.ones(1, n, dtype=u.dtype, device=u.device)
    return ((ones @ centered.square()) / (n - 1)).sqrt().mean()


def _scores_pos_hardest(ua: Tensor, ub: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``s = ua ub^T`` (diagonal intact), its diagonal and each row's largest off-diagonal value."""
    s = ua @ ub.T
    pos = s.diagonal().clone()
    s.diagonal().fill_(-math.inf)
    hardest = s.amax(dim=1)
    s.diagonal().copy_(pos)
    return s, pos, hardest


def _fast_histogram(x: Tensor, bins: int | Tensor, edges: Tensor) -> Tensor:
    """Counts as :func:`_histogram`; on CPU with equal bins one ``torch.histogram`` pass (same edges)."""
    if isinstance(bins, int) and x.device.type == "cpu":
        x = x.reshape(-1).clamp(-1.0, 1.0)  # rounding just beyond ±1 counts in the end bins; NaN is skipped
        return torch.histogram(x, bins=bins, range=(-1.0, 1.0)).hist.to(torch.int64)
    return _histogram(x, edges, uniform=not isinstance(bins, Tensor))


def _same_class(labels: Tensor) -> Tensor:
    """Float 0/1 matrix of same-label pairs with a zero diagonal."""
    same = (labels[:, None] == labels[None, :]).float()
    same.diagonal().zero_()
    return same


def _order_stats(s: Tensor, pos: Tensor, hardest: Tensor) -> tuple[Tensor, Tensor]:
    """Per anchor: the positive's rank (ties pessimistic) and its wrongly ordered share (ties count ½).

    ``sign(s_ij - s_ii)`` is +1 for a negative above the positive, -1 below, 0 for a tie (and the diagonal),
    so its row sum is ``above_i - below_i`` and the sum of its absolute value ``above_i + below_i``; the
    ``B - 1 - above_i - below_i`` negatives left tie with the positive. Hence ``rank_i = 1 + #{j != i :
    s_ij >= s_ii} = B - below_i`` and ``v_i = (above_i + ties_i / 2) / (B - 1) = (B - 1 + above_i - below_i)
    / (2 (B - 1))``, every count exact in float32. Float passes, in place: summing comparison masks is
    several times slower on CPU (bool-to-number conversion) and needs a ``B × B`` temporary.
    An anchor whose row of scores holds a NaN (its positive or, through ``amax``, its hardest negative is
    NaN) gets NaN for both. ``s`` is overwritten.
    """
    n = s.shape[0]
    sign = s.sub_(pos[:, None]).sign_()
    above_minus_below = sign.sum(dim=1)
    below = 0.5 * (sign.abs_().sum(dim=1) - above_minus_below)
    undefined = torch.isnan(pos) | torch.isnan(hardest)
    ranks = torch.where(undefined, math.nan, n - below)
    violations = torch.where(undefined, math.nan, 0.5 * (n - 1 + above_minus_below) / (n - 1))
    return ranks, violations


def _rank_summary(r: Tensor) -> RankSummary:
    """:func:`rank_summary` of float32 ranks (NaN ranks make every field NaN)."""
    nan = torch.isnan(r)

    def recall(k: int) -> Tensor:
        return torch.where(nan, math.nan, (r <= k).float()).mean()

    return RankSummary((1.0 / r).mean(), recall(1), recall(5), recall(10))


def _check_fn_temperature(temperature: float | Tensor, n: int, device: torch.device) -> Tensor:
    """τ as a ``(1,)`` or ``(B,)`` float32 tensor (one per anchor), checked without reading tensor values."""
    tau = _check_taus(temperature, device, "temperature")
    if tau.shape[0] not in (1, n):
        raise ValueError(f"temperature must have 1 or B={n} values (one per anchor), got {tau.shape[0]}")
    return tau


# --------------------------------------------------------------------------------------------- public API


@torch.no_grad()
def normalize(z: Tensor) -> Tensor:
    r"""L2-normalize the rows of ``z`` in float32.

    .. math::

        \hat z_i = z_i / \max(\lVert z_i \rVert_2, \epsilon), \quad \epsilon = 10^{-12}

    Every other function in this module applies this itself; it is public so callers can reuse the
    exact same normalization. Zero rows stay zero (as :func:`torch.nn.functional.normalize`), rows
    containing NaN/Inf become NaN. Half-precision input is upcast before the norm is taken, so fp16
    rows whose squared norm would overflow fp16 are handled correctly.

    Range: each row has norm 1 (or 0 for a zero row). Works for any ``N >= 1`` and ``d >= 1``
    (for ``d = 1`` every non-zero row becomes ``±1``).

    Args:
        z: ``(N, d)`` floating-point embeddings.

    Returns:
        ``(N, d)`` float32 tensor of unit rows on ``z``'s device.

    Raises:
        TypeError: ``z`` is not a floating-point tensor.
        ValueError: ``z`` is not 2-D or is empty.

    Example:
        >>> normalize(torch.tensor([[3.0, 4.0], [0.0, 0.0]]))
        tensor([[0.6000, 0.8000],
                [0.0000, 0.0000]])
    """
    return _unit(_check_matrix(z, "z"))


@torch.no_grad()
def alignment(x: Tensor, y: Tensor, alpha: float = 2.0) -> Tensor:
    r"""Alignment of positive pairs (Wang & Isola, ICML 2020): how close paired embeddings are.

    .. math::

        \mathcal{L}_{\text{align}} = \frac{1}{B} \sum_i \lVert \hat x_i - \hat y_i \rVert_2^{\alpha}

    Range: ``[0, 2^alpha]``; for ``alpha = 2``: 0 = every pair identical, 2 = pairs as far apart
    as independent random points, 4 = antipodal. Healthy training drives it well below 2 while
    :func:`uniformity` stays low; alignment near 0 *together with* uniformity near 0 means collapse.
    Rows are L2-normalized first (an unnormalized value such as 184.98 is meaningless).

    Edge cases: ``B = 1`` returns that single pair's distance; ``d = 1`` works (rows are ``±1``).

    Args:
        x: ``(B, d)`` first view / modality.
        y: ``(B, d)`` second view; ``y[i]`` is the positive of ``x[i]``.
        alpha: exponent on the distance, ``> 0``.

    Returns:
        0-d float32 tensor.

    Raises:
        TypeError: non-floating inputs or non-numeric ``alpha``.
        ValueError: shapes are not 2-D, differ, or ``alpha <= 0``.

    Example:
        >>> e = torch.eye(2)
        >>> alignment(e, e), alignment(e, -e)
        (tensor(0.), tensor(4.))
    """
    x, y = _check_pair(x, y, names=("x", "y"))
    alpha = _check_positive(alpha, "alpha")
    dist = torch.linalg.vector_norm(_unit(x) - _unit(y), dim=1)
    return dist.pow(alpha).mean()


@torch.no_grad()
def uniformity(z: Tensor, t: float = 2.0) -> Tensor:
    r"""Uniformity on the hypersphere (Wang & Isola, ICML 2020): how evenly embeddings spread.

    .. math::

        \mathcal{L}_{\text{uniform}}
        = \log \frac{2}{B(B-1)} \sum_{i<j} e^{-t \lVert \hat z_i - \hat z_j \rVert^2}

    computed in log-space (log-sum-exp over distinct pairs minus the log pair count), so it stays finite
    for tiny batches, large ``t`` and fp16 input.

    Range: ``[-4t, 0]``; 0 = all points identical (collapse), ``-4t`` only for an antipodal pair. Lower is
    more uniform. For points uniform on the sphere :math:`S^{d-1}` (large batch) the value is exactly

    .. math::

        -2t + \log\Big[\Gamma\big(\tfrac d2\big)\,\big(\tfrac{2}{\kappa}\big)^{d/2-1}
        I_{d/2-1}(\kappa)\Big], \qquad \kappa = 2t

    (:math:`I_\nu` the modified Bessel function; the bracket is :math:`\mathbb E[e^{\kappa\cos}]`;
    :func:`cldiag.concepts.uniform_sphere_uniformity` evaluates it). For ``t = 2``: −2.0798 (d=3),
    −3.0825 (d=8), −3.7518 (d=32), −3.9375 (d=128). The large-``d`` expansion ``-4 + 8/d`` is within 0.002
    from d=32 on but 0.08 off at d=8 and 0.75 off at d=3 (−1.33).

    Edge cases: ``B = 1`` raises (no pairs); ``B = 2`` is the single pair's value ``-t‖ẑ₁-ẑ₂‖²``;
    ``d = 1`` works (points are ``±1``).

    Args:
        z: ``(B, d)`` embeddings, ``B >= 2``.
        t: scale ``> 0``; ``t = 1/(2τ)`` links it to an InfoNCE temperature ``τ``.

    Returns:
        0-d float32 tensor.

    Raises:
        TypeError: non-floating ``z`` or non-numeric ``t``.
        ValueError: ``z`` is not 2-D, has fewer than 2 rows, or ``t <= 0``.

    Example:
        >>> uniformity(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
        tensor(-8.)
    """
    z = _check_matrix(z, "z")
    _check_rows(z, "z", 2, "uniformity averages over pairs")
    t = _check_positive(t, "t")
    return _offdiag_log_mean_exp(-t * _squared_distances(_unit(z)))


@torch.no_grad()
def tolerance(z: Tensor, labels: Tensor, *, normalized: bool = True) -> Tensor:
    r"""Tolerance to semantically similar samples (Wang & Liu, CVPR 2021).

    Default (``normalized=True``), the class-conditional mean cosine over same-class pairs:

    .. math::

        T = \frac{\sum_{i \ne j} s_{ij}\,\mathbb{1}[y_i = y_j]}{\sum_{i \ne j} \mathbb{1}[y_i = y_j]},
        \qquad s_{ij} = \hat z_i^\top \hat z_j

    ``normalized=False`` gives the paper's literal :math:`\mathbb{E}_{i \ne j}[s_{ij}\,\mathbb{1}[y_i = y_j]]`
    over all ``B(B-1)`` ordered pairs, which equals ``p_same × T`` and therefore also shrinks with the number
    of classes.

    Range: ``[-1, 1]``. Higher means same-class samples sit closer together. Wang & Liu found that
    low temperatures buy uniformity at the cost of tolerance (e.g. ≈0.47 at τ=0.1 vs ≈0.78 at τ=1 on
    digits); a tolerance near 1 *with* uniformity near 0 means collapse rather than good clustering.

    Edge cases: ``B = 1`` raises; a batch without any same-class pair returns NaN (undefined, and
    detecting it would need a device sync) for ``normalized=True`` and 0 for ``normalized=False``;
    ``d = 1`` works.

    Args:
        z: ``(B, d)`` embeddings.
        labels: ``(B,)`` integer class labels.
        normalized: class-conditional mean (default) or the paper's literal expectation.

    Returns:
        0-d float32 tensor.

    Raises:
        TypeError: non-floating ``z`` or non-integer ``labels``.
        ValueError: bad shapes, fewer than 2 rows, or ``labels`` of the wrong length.

    Example:
        >>> z = torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.0, 1.0]])
        >>> tolerance(z, torch.tensor([0, 0, 1, 1]))
        tensor(0.9975)
    """
    z = _check_matrix(z, "z")
    _check_rows(z, "z", 2, "tolerance averages over pairs")
    labels = _check_labels(labels, z.shape[0], z.device)
    n = z.shape[0]
    u = _unit(z)
    eye = torch.eye(n, dtype=torch.bool, device=z.device)
    same = ((labels[:, None] == labels[None, :]) & ~eye).float()
    total = ((u @ u.T) * same).sum()
    if normalized:
        return total / same.sum()
    return total / (n * (n - 1))


@torch.no_grad()
def similarity_matrix(a: Tensor, b: Tensor) -> Tensor:
    r"""Cosine similarity of every row of ``a`` with every row of ``b``.

    .. math::

        S_{ij} = \hat a_i^\top \hat b_j

    Range: ``[-1, 1]``. For paired batches the diagonal holds the positive scores and the rest the
    negatives; a healthy model shows a bright diagonal on a dark background, a collapsed one a flat
    matrix of ones. This is the matrix the InfoNCE/CLIP loss reads (times ``1/τ``).

    Edge cases: ``a`` and ``b`` may have different row counts (``N × M`` result, e.g. against a queue);
    ``B = 1`` and ``d = 1`` work.

    Args:
        a: ``(N, d)`` embeddings.
        b: ``(M, d)`` embeddings.

    Returns:
        ``(N, M)`` float32 tensor.

    Raises:
        TypeError: non-floating inputs.
        ValueError: inputs not 2-D or with different ``d``.

    Example:
        >>> similarity_matrix(torch.eye(2), torch.tensor([[1.0, 1.0]]))
        tensor([[0.7071],
                [0.7071]])
    """
    a, b = _check_pair(a, b, same_batch=False)
    return _unit(a) @ _unit(b).T


@torch.no_grad()
def score_histograms(a: Tensor, b: Tensor, bins: int | Tensor = 50) -> ScoreHistograms:
    r"""Histograms of positive, negative and hardest-negative cosine scores (Zhu et al., ICCV 2021).

    .. math::

        \text{pos} = \{s_{ii}\}_{i},\quad \text{neg} = \{s_{ij}\}_{i \ne j},\quad
        \text{hard} = \{\max_{j \ne i} s_{ij}\}_i,\qquad s_{ij} = \hat a_i^\top \hat b_j

    Counts are over fixed edges (``bins`` equal bins on ``[-1, 1]`` by default), so histograms of
    different steps can be stacked into one picture. Bin ``k`` is ``[e_k, e_{k+1})`` and the last bin is
    closed, so a score of exactly 1.0 lands in it; scores outside the edges (rounding just beyond ±1) land
    in the end bins, so ``pos`` sums to ``B`` and ``neg`` to ``B(B-1)``. NaN scores are not counted.

    Healthy: positives pile up near 1, negatives spread around 0 and well separated from them. Bad: the
    two distributions overlap (nothing learned), or both sit near 1 (collapse). The hardest negatives
    are what the loss at low temperature actually fights.

    Edge cases: ``B = 1`` raises (no negatives); ``B = 2`` has two negatives; ``d = 1`` works (all scores
    are ±1).

    Args:
        a: ``(B, d)`` anchors.
        b: ``(B, d)`` positives, ``b[i]`` paired with ``a[i]``.
        bins: number of equal bins on ``[-1, 1]``, or a 1-D increasing tensor of edges (edges already on
            an accelerator are not checked, as that would sync).

    Returns:
        :class:`ScoreHistograms`.

    Raises:
        TypeError: non-floating inputs or a bad ``bins`` type.
        ValueError: bad shapes, ``B < 2``, ``bins < 1`` or non-increasing CPU edges.

    Example:
        >>> h = score_histograms(torch.eye(3), torch.eye(3), bins=4)
        >>> h.pos, h.neg
        (tensor([0, 0, 0, 3]), tensor([0, 0, 6, 0]))
    """
    a, b = _check_pair(a, b)
    _check_rows(a, "a", 2, "negatives are the other rows of the batch")
    edges = _edges(bins, a.device)
    uniform = not isinstance(bins, Tensor)  # int bins are linspace edges: the fast path applies
    s, pos, hardest = _cosines_and_hardest(a, b)
    pos_hist = _histogram(pos, edges, uniform=uniform)
    # Off-diagonal counts as all counts minus the diagonal's: avoids boolean indexing (a device sync).
    neg_hist = _histogram(s, edges, uniform=uniform) - pos_hist
    hard_hist = _histogram(hardest, edges, uniform=uniform)
    return ScoreHistograms(edges, pos_hist, neg_hist, hard_hist, pos, hardest)


@torch.no_grad()
def negative_similarity(a: Tensor, b: Tensor) -> Tensor:
    r"""Mean cosine of the negative pairs: every ``(a[i], b[j])`` with ``i != j``.

    .. math::

        \bar s_{neg} = \frac{1}{B(B-1)} \sum_{i \ne j} \hat a_i^\top \hat b_j

    Range: ``[-1, 1]``. Healthy training keeps it near 0 (or below) while positives rise; negatives
    drifting towards the positives' level means the encoder stops telling samples apart (collapse).
    Computed in O(B·d) from the column sums: ``(Σ_i â_i)ᵀ(Σ_j b̂_j) − Σ_i â_iᵀb̂_i``.

    Edge cases: ``B = 1`` raises (no negatives).

    Args:
        a: ``(B, d)`` anchors.
        b: ``(B, d)`` candidates; ``b[i]`` is the positive of ``a[i]``.

    Returns:
        0-d float32 tensor.

    Example:
        >>> negative_similarity(torch.eye(3), torch.eye(3))
        tensor(0.)
    """
    a, b = _check_pair(a, b)
    _check_rows(a, "a", 2, "negatives are the other rows of the batch")
    ua, ub = _unit(a), _unit(b)
    n = ua.shape[0]
    total = ua.sum(dim=0) @ ub.sum(dim=0)
    return (total - (ua * ub).sum()) / (n * (n - 1))


@torch.no_grad()
def histogram_overlap(p: Tensor, q: Tensor) -> Tensor:
    r"""Overlap coefficient of two histograms on the same bins: :math:`\sum_k \min(p_k/\sum p, q_k/\sum q)`.

    Range: ``[0, 1]``: 0 when the positive and negative score distributions are disjoint (a threshold
    separates them), 1 when they coincide (scores carry no information). Used on the positive and negative
    score histograms (Zhu et al., ICCV 2021 track their means and variances; the overlap summarizes both).

    Args:
        p: ``(bins,)`` non-negative counts.
        q: ``(bins,)`` non-negative counts on the same bins.

    Returns:
        0-d float32 tensor; an empty histogram (all zeros) counts as overlapping nothing (0).

    Example:
        >>> histogram_overlap(torch.tensor([1, 1, 0]), torch.tensor([0, 1, 1]))
        tensor(0.5000)
    """
    if not isinstance(p, Tensor) or not isinstance(q, Tensor):
        raise TypeError(f"p and q must be tensors, got {type(p).__name__} and {type(q).__name__}")
    if p.ndim != 1 or p.shape != q.shape:
        raise ValueError(
            f"p and q must be 1-D with the same length, got {tuple(p.shape)} and {tuple(q.shape)}"
        )
    p, q = p.float(), q.float()
    return torch.minimum(p / p.sum().clamp_min(1e-30), q / q.sum().clamp_min(1e-30)).sum()


@torch.no_grad()
def retrieval_accuracy(a: Tensor, b: Tensor) -> Tensor:
    r"""In-batch top-1 retrieval accuracy ``a → b``: share of anchors whose positive beats every negative.

    .. math::

        \text{acc} = \frac{1}{B} \sum_i \mathbb{1}\left[s_{ii} > \max_{j \ne i} s_{ij}\right]

    Range: ``[0, 1]``; chance level is ``1/B``. Ties count as failures, so a collapsed model scores 0.
    It saturates at 1 early in healthy training, so read it together with the score histograms.
    Any non-finite entry in ``a`` or ``b`` gives NaN (module policy), not a "miss".

    Edge cases: ``B = 1`` raises (no negatives, accuracy would be trivially 1); ``d = 1`` works.

    Args:
        a: ``(B, d)`` queries.
        b: ``(B, d)`` candidates; ``b[i]`` is the positive of ``a[i]``.

    Returns:
        0-d float32 tensor.

    Raises:
        TypeError: non-floating inputs.
        ValueError: bad shapes or ``B < 2``.

    Example:
        >>> retrieval_accuracy(torch.eye(3), torch.eye(3))
        tensor(1.)
    """
    a, b = _check_pair(a, b)
    _check_rows(a, "a", 2, "negatives are the other rows of the batch")
    _, pos, hardest = _cosines_and_hardest(a, b)
    # amax propagates NaN, so a non-finite entry anywhere makes some pos or hardest NaN.
    defined = torch.isfinite(pos).all() & torch.isfinite(hardest).all()
    return torch.where(defined, (pos > hardest).float().mean(), math.nan)


def _as_tau_tensor(tau: float | Tensor, device: torch.device) -> Tensor:
    if isinstance(tau, Tensor) and tau.numel() != 1:
        raise ValueError(f"tau must be a number or a one-element tensor, got shape {tuple(tau.shape)}")
    return _check_taus(tau, device, "tau")


@torch.no_grad()
def hardness(a: Tensor, b: Tensor, tau: float | Tensor) -> Hardness:
    r"""Where the InfoNCE loss at temperature ``τ`` puts its penalty (Wang & Liu, CVPR 2021; Yeh et al. 2022).

    The relative penalty on negative ``j`` of anchor ``i`` is

    .. math::

        r_{ij} = \frac{e^{s_{ij}/\tau}}{\sum_{k \ne i} e^{s_{ik}/\tau}}, \quad j \ne i, \qquad
        H_i = -\sum_{j \ne i} r_{ij} \log r_{ij}

    and the results are ``entropy`` :math:`= \frac{1}{B}\sum_i H_i / \log(B-1)`, ``effective_negatives``
    :math:`= \frac{1}{B}\sum_i e^{H_i}` and ``pos_prob`` :math:`= \frac{1}{B}\sum_i
    \operatorname{softmax}_j(s_{ij}/\tau)_i` (the softmax over the full row, positive included;
    ``1 - pos_prob`` is the negative–positive coupling factor that DCL removes).

    Range: ``entropy`` in ``[0, 1]`` (0 = all penalty on the hardest negative, τ→0; 1 = spread evenly,
    τ→∞); ``effective_negatives`` in ``[1, B-1]``; ``pos_prob`` in ``[0, 1]``. Very low entropy means the
    loss only sees the hardest negatives (can push apart same-class samples, Wang & Liu); entropy near 1
    means it barely distinguishes hard from easy negatives. A coupling factor near 1 at small batch sizes
    is where DCL helps (measured 0.77 at τ=0.1, 0.91 at τ=0.5, batch 16).

    Edge cases: ``B = 1`` raises (no negatives). ``B = 2`` has one negative: its penalty is 1, ``H = 0``,
    so ``entropy`` is defined as 0.0 and ``effective_negatives`` is 1.0 at every τ. ``d = 1`` works.

    Args:
        a: ``(B, d)`` anchors.
        b: ``(B, d)`` candidates; ``b[i]`` is the positive of ``a[i]``.
        tau: temperature ``> 0``; a number or a one-element tensor (e.g. ``1 / clip.logit_scale.exp()``;
            tensors are not range-checked since that would sync).

    Returns:
        :class:`Hardness` of 0-d float32 tensors.

    Raises:
        TypeError: non-floating inputs or a non-numeric ``tau``.
        ValueError: bad shapes, ``B < 2`` or ``tau <= 0``.

    Example:
        >>> h = hardness(torch.eye(3), torch.eye(3), tau=1.0)
        >>> h.entropy, h.effective_negatives
        (tensor(1.), tensor(2.))
    """
    a, b = _check_pair(a, b)
    _check_rows(a, "a", 2, "the penalty is spread over the other rows of the batch")
    taus = _as_tau_tensor(tau, a.device)
    entropy, effective, pos_prob, _ = _penalty_stats(_unit(a) @ _unit(b).T, taus, None)
    return Hardness(entropy[0], effective[0], pos_prob[0])


@torch.no_grad()
def penalty_weights(neg_scores: Tensor, tau: float) -> Tensor:
    r"""Relative penalty the contrastive loss puts on each negative: ``softmax(neg_scores / τ)``.

    .. math::

        r_j = \frac{e^{s_j/\tau}}{\sum_k e^{s_k/\tau}}

    For teaching: as τ→0 the weights become one-hot on the hardest negative, as τ→∞ uniform
    (Wang & Liu, CVPR 2021). The scores are used as given (they are already cosines), not normalized.

    Edge cases: a single negative gets weight 1.

    Args:
        neg_scores: ``(..., K)`` negative cosine scores; the softmax runs over the last dim.
        tau: temperature ``> 0``.

    Returns:
        float32 tensor of ``neg_scores``' shape, summing to 1 over the last dim.

    Raises:
        TypeError: non-floating ``neg_scores`` or non-numeric ``tau``.
        ValueError: 0-d or empty ``neg_scores``, or ``tau <= 0``.

    Example:
        >>> penalty_weights(torch.tensor([0.5, 0.5]), tau=0.1)
        tensor([0.5000, 0.5000])
    """
    if not isinstance(neg_scores, Tensor):
        raise TypeError(f"neg_scores must be a torch.Tensor, got {type(neg_scores).__name__}")
    if not neg_scores.is_floating_point():
        raise TypeError(f"neg_scores must be a floating-point tensor, got dtype {neg_scores.dtype}")
    if neg_scores.ndim == 0 or neg_scores.shape[-1] == 0:
        raise ValueError(f"neg_scores must have a non-empty last dim, got shape {tuple(neg_scores.shape)}")
    tau = _check_positive(tau, "tau")
    return torch.softmax(neg_scores.float() / tau, dim=-1)


@torch.no_grad()
def temperature_curves(
    a: Tensor,
    b: Tensor,
    taus: Sequence[float] | Tensor,
    labels: Tensor | None = None,
    *,
    max_rows: int | None = ROW_CAP,
    seed: int = 0,
) -> TemperatureCurves:
    r"""Hardness, uniformity and same-class penalty of one snapshot over a grid of temperatures.

    For each τ: ``entropy``, ``effective_negatives`` and ``pos_prob`` exactly as :func:`hardness`;
    ``uniformity`` of ``a`` at ``t = 1/(2τ)``, which for unit vectors equals the log-mean-exp of the
    *within-a* cosines :math:`c_{ij} = \hat a_i^\top \hat a_j` over ``1/τ``, shifted by ``1/τ`` (because
    :math:`\lVert \hat a_i - \hat a_j \rVert^2 = 2 - 2c_{ij}`; it does not hold for the cross cosines
    :math:`s_{ij}` of ``a`` and ``b``):

    .. math::

        \log \operatorname*{mean}_{i \ne j} e^{c_{ij}/\tau} - \frac{1}{\tau}
        = \mathcal{L}_{\text{uniform}}\!\left(t = \tfrac{1}{2\tau}\right), \qquad
        F_{\text{same}}(\tau) = \frac{1}{B}\sum_i \sum_{j \ne i,\ y_j = y_i} r_{ij}(\tau)

    ``same_class_penalty`` :math:`F_\text{same}` (Wang & Liu's temperature–tolerance trade-off) is the
    share of the negative penalty that falls on samples of the anchor's own class, in ``[0, 1]``. A low
    τ concentrates the penalty on the hardest negatives, which are often same-class samples, so
    :math:`F_\text{same}` well above the same-class share of the batch means the loss at that τ is
    pushing apart semantically similar samples. No same-class pairs give 0.

    The taus are processed in vectorized chunks (working set capped near 64 MiB), one exp pass per τ,
    with no device sync. Above ``max_rows`` rows the curves are those of a seeded subsample (as in
    :func:`pairwise_statistics`; the indices come back in ``rows``).

    Edge cases: ``B = 1`` raises; ``B = 2`` as in :func:`hardness`; ``d = 1`` works.

    Args:
        a: ``(B, d)`` anchors (uniformity is measured on these).
        b: ``(B, d)`` candidates; ``b[i]`` is the positive of ``a[i]``.
        taus: positive temperatures, e.g. ``torch.logspace(-2, 0, 20)``.
        labels: optional ``(B,)`` integer labels for ``same_class_penalty``.
        max_rows: row cap (``>= 2``), ``None`` = never subsample.
        seed: seed of the subsample (e.g. the step).

    Returns:
        :class:`TemperatureCurves` of ``(len(taus),)`` float32 tensors.

    Raises:
        TypeError: non-floating inputs or non-integer labels.
        ValueError: bad shapes, ``B < 2``, empty or non-positive ``taus``, wrong label length.

    Example:
        >>> c = temperature_curves(torch.eye(3), torch.eye(3), [0.1, 1.0])
        >>> c.effective_negatives
        tensor([2., 2.])
    """
    a, b = _check_pair(a, b)
    _check_rows(a, "a", 2, "the penalty is spread over the other rows of the batch")
    tau_t = _check_taus(taus, a.device, "taus")
    n = a.shape[0]
    y = _check_labels(labels, n, a.device) if labels is not None else None
    rows = subsample_rows(n, max_rows, seed=seed, device=a.device)
    if rows is not None:
        a, b = a[rows], b[rows]
        y = y[rows] if y is not None else None
    same = _same_class(y) if y is not None else None
    ua = _unit(a)
    s, pos, hardest = _scores_pos_hardest(ua, _unit(b))
    entropy, effective, pos_prob, same_share = _hardness_from_scores(s, pos, hardest, tau_t, same)
    del s
    uniform = _uniformity_from_distances(_squared_distances_masked(ua), 0.5 / tau_t)
    return TemperatureCurves(tau_t, entropy, effective, pos_prob, uniform, same_share, rows)


class PairwiseStatistics(NamedTuple):
    """Every ``O(B²)`` statistic of one step, from one ``a·bᵀ``, one ``a·aᵀ`` and one ``b·bᵀ``.

    Attributes:
        rows: ``None`` when all rows were used, else the sorted int64 indices of the subsample (see
            :func:`subsample_rows`); record it with the step.
        uniformity_a: :func:`uniformity` of ``a`` (``t = 2``).
        uniformity_b: :func:`uniformity` of ``b`` (``t = 2``).
        std_a: :func:`std_of_l2_normalized` of ``a``.
        tolerance: :func:`tolerance` of ``a`` (class-conditional mean); ``None`` without labels.
        histograms: :func:`score_histograms` of ``(a, b)``.
        overlap: :func:`histogram_overlap` of the positive and negative histograms.
        negative_similarity: :func:`negative_similarity`.
        hardest_negative: mean over anchors of the hardest negative's cosine.
        retrieval: :func:`retrieval_accuracy`.
        hardness: :func:`hardness` at ``temperature`` (at its mean for a per-anchor τ); ``None`` without
            a temperature.
        coupling: DCL's negative–positive coupling ``1 - pos_prob``; ``None`` without a temperature.
        ranks: ``(rows,)`` :func:`positive_ranks`.
        rank_summary: :func:`rank_summary` of ``ranks`` (MRR, recall@1/5/10).
        ordering_violations: :func:`ordering_violations` (the mean over anchors).
        false_negatives: :func:`false_negative_share` at ``temperature`` (each anchor's own τ for a
            per-anchor τ); ``None`` without labels or without a temperature.
    """

    rows: Tensor | None
    uniformity_a: Tensor
    uniformity_b: Tensor
    std_a: Tensor
    tolerance: Tensor | None
    histograms: ScoreHistograms
    overlap: Tensor
    negative_similarity: Tensor
    hardest_negative: Tensor
    retrieval: Tensor
    hardness: Hardness | None
    coupling: Tensor | None
    ranks: Tensor
    rank_summary: RankSummary
    ordering_violations: Tensor
    false_negatives: FalseNegativeShare | None

    def scalars(self) -> dict[str, Tensor]:
        """The 0-d results by name (``None`` fields left out), ready to buffer without a host sync."""
        out = {
            "uniformity_a": self.uniformity_a,
            "uniformity_b": self.uniformity_b,
            "std_a": self.std_a,
            "tolerance": self.tolerance,
            "overlap": self.overlap,
            "negative_similarity": self.negative_similarity,
            "hardest_negative": self.hardest_negative,
            "retrieval": self.retrieval,
            "coupling": self.coupling,
            "ordering_violations": self.ordering_violations,
            **self.rank_summary._asdict(),
        }
        if self.hardness is not None:
            out["entropy"] = self.hardness.entropy
            out["effective_negatives"] = self.hardness.effective_negatives
        if self.false_negatives is not None:
            out["false_negative_count_share"] = self.false_negatives.count_share
            out["false_negative_penalty_share"] = self.false_negatives.penalty_share
        return {k: v for k, v in out.items() if v is not None}


def subsample_rows(
    n: int, cap: int | None = ROW_CAP, *, seed: int = 0, device: torch.device | str | None = None
) -> Tensor | None:
    """A seeded, sorted subsample of ``cap`` row indices out of ``n``, or ``None`` when ``n <= cap``.

    The ``O(B²)`` statistics of a batch above the cap are computed on these rows (the same rows of ``a``,
    ``b`` and the labels, so pairs stay pairs). The draw depends only on ``(n, cap, seed)``, so passing
    the step as the seed makes every step reproducible; record the indices (or the seed) with the step.

    Args:
        n: number of rows, ``>= 1``.
        cap: largest number of rows to keep, ``>= 2``; ``None`` = never subsample.
        seed: seed of the CPU generator that draws the rows.
        device: device of the returned indices (the draw itself runs on the CPU).

    Returns:
        ``(cap,)`` sorted int64 indices, or ``None``.

    Raises:
        TypeError: ``n``, ``cap`` or ``seed`` is not an int.
        ValueError: ``n < 1`` or ``cap < 2``.

    Example:
        >>> subsample_rows(10, 4, seed=0)
        tensor([1, 4, 5, 7])
        >>> subsample_rows(3, 4) is None
        True
    """
    n = check_int(n, "n", 1)
    seed = check_int(seed, "seed", -(2**63))
    if cap is None:
        return None
    cap = check_int(cap, "cap", 2)
    if n <= cap:
        return None
    gen = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=gen)[:cap].sort().values.to(device or "cpu")


@torch.no_grad()
def pairwise_statistics(
    a: Tensor,
    b: Tensor,
    *,
    labels: Tensor | None = None,
    temperature: float | Tensor | None = None,
    bins: int | Tensor = 50,
    max_rows: int | None = ROW_CAP,
    seed: int = 0,
) -> PairwiseStatistics:
    r"""All ``O(B²)`` statistics of a step at once: what :func:`uniformity`, :func:`std_of_l2_normalized`,
    :func:`tolerance`, :func:`score_histograms`, :func:`histogram_overlap`, :func:`negative_similarity`,
    :func:`retrieval_accuracy`, :func:`hardness`, :func:`positive_ranks` with :func:`rank_summary`,
    :func:`ordering_violations` and :func:`false_negative_share` give one by one, equal to them up to float
    rounding (ranks, recalls and ordering violations exactly: they share one implementation).

    The cross similarity ``â b̂ᵀ`` is built once and serves the histograms, the hardest negatives,
    retrieval, the ranks and ordering violations (one sign pass, in place) and, at ``temperature``, the
    hardness and the false negatives' penalty share (one exp pass, see :func:`hardness` and
    :func:`false_negative_share` for the definitions); ``â âᵀ`` serves tolerance and the uniformity of
    ``a``, ``b̂ b̂ᵀ`` the uniformity of ``b`` (``t = 2``, Wang & Isola average the two views). No host sync
    on any device.

    A per-anchor ``(B,)`` temperature (iSogCLR) gives the hardness and coupling at its mean over all ``B``
    rows and the false-negative penalty share at each anchor's own τ (one more exp pass), as the Monitor
    logs them.

    Big batches: with more than ``max_rows`` rows, every statistic is computed on a seeded subsample of
    ``max_rows`` pairs (:func:`subsample_rows` with ``seed``; the indices come back in ``rows``), which
    bounds memory at about five ``max_rows²`` float32 matrices (≈ 80 MiB at the default :data:`ROW_CAP`)
    and the time at that of a ``max_rows``-row batch.

    Non-finite input follows the module policy (NaN results, counts skip NaN scores); the Monitor drops
    non-finite rows first.

    Edge cases: ``B = 1`` raises (no negatives); ``B = 2`` as in :func:`hardness`; ``d = 1`` works.

    Args:
        a: ``(B, d)`` anchors / first view or modality.
        b: ``(B, d)`` positives, ``b[i]`` paired with ``a[i]``.
        labels: optional ``(B,)`` integer labels for ``tolerance`` and ``false_negatives``.
        temperature: optional τ for ``hardness``, ``coupling`` and ``false_negatives``: a number, a
            one-element tensor or a ``(B,)`` tensor of per-anchor temperatures (tensors are not
            range-checked since that would sync).
        bins: as in :func:`score_histograms`.
        max_rows: row cap (``>= 2``), ``None`` = never subsample.
        seed: seed of the subsample (e.g. the step).

    Returns:
        :class:`PairwiseStatistics`.

    Raises:
        TypeError: non-floating inputs, non-integer labels, bad ``bins`` or ``temperature`` types.
        ValueError: bad shapes, ``B < 2``, bad label length, non-positive ``temperature`` or one with
            neither 1 nor ``B`` values, ``max_rows < 2``.

    Example:
        >>> st = pairwise_statistics(torch.eye(3), torch.eye(3), temperature=1.0, bins=4)
        >>> st.retrieval, st.histograms.pos, st.hardness.effective_negatives
        (tensor(1.), tensor([0, 0, 0, 3]), tensor(2.))
        >>> st.ranks, st.rank_summary.mrr, st.ordering_violations
        (tensor([1., 1., 1.]), tensor(1.), tensor(0.))
    """  # noqa: D205
    a, b = _check_pair(a, b)
    _check_rows(a, "a", 2, "negatives are the other rows of the batch")
    n = a.shape[0]
    y = _check_labels(labels, n, a.device) if labels is not None else None
    taus = tau_rows = None
    if temperature is not None:
        taus = _check_fn_temperature(temperature, n, a.device)
        if taus.shape[0] == n:
            # per anchor: the hardness at the batch's mean τ, the false negatives at each anchor's own
            tau_rows, taus = taus, taus.mean().reshape(1)
    edges = _edges(bins, a.device)
    rows = subsample_rows(n, max_rows, seed=seed, device=a.device)
    if rows is not None:
        a, b = a[rows], b[rows]
        y = y[rows] if y is not None else None
        tau_rows = tau_rows[rows] if tau_rows is not None else None
        n = a.shape[0]
    ua, ub = _unit(a), _unit(b)
    gram = ua @ ua.T
    tol = same = None
    if y is not None:
        same = _same_class(y)
        tol = torch.vdot(gram.reshape(-1), same.reshape(-1)) / same.sum()
    unif_a = _uniformity_t2_from_gram(gram, ua)
    del gram
    unif_b = _uniformity_t2_from_gram(ub @ ub.T, ub)
    s, pos, hardest = _scores_pos_hardest(ua, ub)
    pos_hist = _fast_histogram(pos, bins, edges)
    neg_hist = _fast_histogram(s, bins, edges) - pos_hist
    hard_hist = _fast_histogram(hardest, bins, edges)
    defined = torch.isfinite(pos).all() & torch.isfinite(hardest).all()
    hard, coupling, false_neg = _at_temperature(s, pos, hardest, taus, tau_rows, same)
    ranks, violations = _order_stats(s, pos, hardest)  # the last use of s: it is overwritten
    del s
    col_sum = ua.sum(dim=0) @ ub.sum(dim=0)
    return PairwiseStatistics(
        rows=rows,
        uniformity_a=unif_a,
        uniformity_b=unif_b,
        std_a=_std_of_unit(ua),
        tolerance=tol,
        histograms=ScoreHistograms(edges, pos_hist, neg_hist, hard_hist, pos, hardest),
        overlap=histogram_overlap(pos_hist, neg_hist),
        negative_similarity=(col_sum - pos.sum()) / (n * (n - 1)),
        hardest_negative=hardest.mean(),
        retrieval=torch.where(defined, (pos > hardest).float().mean(), math.nan),
        hardness=hard,
        coupling=coupling,
        ranks=ranks,
        rank_summary=_rank_summary(ranks),
        ordering_violations=violations.mean(),
        false_negatives=false_neg,
    )


def _at_temperature(
    s: Tensor,
    pos: Tensor,
    hardest: Tensor,
    taus: Tensor | None,
    tau_rows: Tensor | None,
    same: Tensor | None,
) -> tuple[Hardness | None, Tensor | None, FalseNegativeShare | None]:
    """:func:`pairwise_statistics`' terms at the run's τ: hardness, DCL coupling, false negatives' share.

    One exp pass gives the hardness and, with labels, the false negatives' share of the penalty; a
    per-anchor τ (``tau_rows``) adds a second pass (row 1) at each anchor's own τ for the share.
    """
    if taus is None:
        return None, None, None
    n = s.shape[0]
    if tau_rows is not None and same is not None:
        taus = torch.stack([taus.expand(n), tau_rows])
    entropy, effective, pos_prob, same_share = _hardness_from_scores(s, pos, hardest, taus, same)
    false_neg = None
    if same is not None and same_share is not None:
        false_neg = FalseNegativeShare(same.sum() / (n * (n - 1)), same_share[-1])
    return Hardness(entropy[0], effective[0], pos_prob[0]), 1.0 - pos_prob[0], false_neg


def _cone_of_unit(u: Tensor) -> Tensor:
    n = u.shape[0]
    total = u.sum(dim=0)
    return (total.dot(total) - (u * u).sum()) / (n * (n - 1))


@torch.no_grad()
def cone(z: Tensor) -> Tensor:
    r"""Cone effect: mean cosine between distinct embeddings of one modality (Liang et al., NeurIPS 2022).

    .. math::

        C = \frac{1}{B(B-1)} \sum_{i \ne j} \hat z_i^\top \hat z_j
          = \frac{\lVert \sum_i \hat z_i \rVert^2 - \sum_i \lVert \hat z_i \rVert^2}{B(B-1)}

    computed with the right-hand side in ``O(B·d)``.

    Range: ``[-1/(B-1), 1]``. Near 0 = embeddings spread over the sphere; near 1 = packed into a narrow
    cone (collapse, or the cone effect of a freshly initialized tower: Liang et al. measure 0.67–0.72 for
    randomly initialized CLIP towers). The lower bound is reached by a regular simplex.

    Edge cases: ``B = 1`` raises; ``B = 2`` is the single pair's cosine; ``d = 1`` works.

    Args:
        z: ``(B, d)`` embeddings.

    Returns:
        0-d float32 tensor.

    Raises:
        TypeError: non-floating ``z``.
        ValueError: not 2-D or ``B < 2``.

    Example:
        >>> cone(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
        tensor(0.3333)
    """
    z = _check_matrix(z, "z")
    _check_rows(z, "z", 2, "the cone averages over pairs")
    return _cone_of_unit(_unit(z))


@torch.no_grad()
def modality_gap(a: Tensor, b: Tensor) -> ModalityGap:
    r"""Modality gap between two embedding sets (Liang et al., NeurIPS 2022, "Mind the Gap").

    .. math::

        \Delta = \frac{1}{B}\sum_i \hat a_i - \frac{1}{B}\sum_i \hat b_i, \qquad
        \text{gap} = \lVert \Delta \rVert, \qquad
        \text{matched} = \frac{1}{B}\sum_i \lVert \hat a_i - \hat b_i \rVert

    plus the :func:`cone` of each side.

    Range: gap in ``[0, 2]``; 0 = both modalities share one region, √2 = e.g. all ``a = e1`` and all
    ``b = e2``. Pretrained CLIP shows ≈0.82 on MSCOCO; the gap exists from random initialization
    (cone effect) and a lower τ keeps it larger. A gap is not bad in itself, but one that dominates
    ``matched_distance`` means cross-modal neighbours are decided by modality, not content.

    Edge cases: ``B = 1`` raises (cones need pairs); ``d = 1`` works. Both sides must have the same
    batch size because ``matched_distance`` pairs rows.

    Args:
        a: ``(B, d)`` first modality (e.g. image).
        b: ``(B, d)`` second modality (e.g. text), ``b[i]`` matched to ``a[i]``.

    Returns:
        :class:`ModalityGap`.

    Raises:
        TypeError: non-floating inputs.
        ValueError: bad or mismatched shapes, ``B < 2``.

    Example:
        >>> e1, e2 = torch.tensor([[1.0, 0.0]]).repeat(4, 1), torch.tensor([[0.0, 1.0]]).repeat(4, 1)
        >>> modality_gap(e1, e2).gap
        tensor(1.4142)
    """
    a, b = _check_pair(a, b)
    _check_rows(a, "a", 2, "the cones average over pairs")
    ua, ub = _unit(a), _unit(b)
    gap_vector = ua.mean(dim=0) - ub.mean(dim=0)
    return ModalityGap(
        gap=torch.linalg.vector_norm(gap_vector),
        gap_vector=gap_vector,
        cone_a=_cone_of_unit(ua),
        cone_b=_cone_of_unit(ub),
        matched_distance=torch.linalg.vector_norm(ua - ub, dim=1).mean(),
    )


@torch.no_grad()
def spectrum(z: Tensor) -> Tensor:
    r"""Covariance spectrum of unit, centered embeddings (Jing et al., ICLR 2022; directclr spectrum.py).

    .. math::

        C = \frac{1}{N-1} \sum_i (\hat z_i - \bar z)(\hat z_i - \bar z)^\top, \qquad
        \lambda_1 \ge \dots \ge \lambda_d \ge 0

    The eigenvalues are computed in float64 (rounding otherwise hides the collapsed tail), clamped at 0
    and returned in float32, largest first. Plot ``log10(λ)`` against index.

    Healthy: a slowly decaying curve. Dimensional collapse: a cliff where trailing eigenvalues drop to
    the float floor (1e-10 and below), even while the loss looks fine. Their sum (the trace) is exactly
    :math:`\frac{N}{N-1}(1 - \lVert\bar z\rVert^2)` for non-zero rows, so at most ``N/(N-1)`` (2 for the
    example below; → 1 for large ``N``). Any non-finite entry gives ``d`` NaNs (module policy).

    On CUDA the eigen-solver synchronizes with the host (a PyTorch limitation): call at snapshot
    cadence. Edge cases: ``N = 1`` raises (no covariance); ``d = 1`` returns one eigenvalue.

    Args:
        z: ``(N, d)`` embeddings.

    Returns:
        ``(d,)`` float32 eigenvalues, descending.

    Raises:
        TypeError: non-floating ``z``.
        ValueError: not 2-D or ``N < 2``.

    Example:
        >>> spectrum(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
        tensor([2., 0.])
    """
    z = _check_matrix(z, "z")
    _check_rows(z, "z", 2, "a covariance needs two samples")
    finite, z = _finite_or_zero(z)
    u = _unit(z).double()
    centered = u - u.mean(dim=0)
    cov = centered.T @ centered / (z.shape[0] - 1)
    return torch.where(finite, torch.linalg.eigvalsh(cov).flip(0).clamp_min(0.0), math.nan).float()


@torch.no_grad()
def effective_rank(z: Tensor, eps: float = 1e-7) -> Tensor:
    r"""RankMe effective rank (Garrido et al., ICML 2023) of the raw embedding matrix.

    .. math::

        p_k = \frac{\sigma_k}{\lVert \sigma \rVert_1} + \epsilon, \qquad
        \text{RankMe} = \exp\Big(-\sum_k p_k \log p_k\Big)

    over the singular values :math:`\sigma_k` of ``z`` *as given*: not centered and not normalized
    (unlike every other function here), following the paper. Computed in float64.

    Range: ``≈[1, min(N, d)]`` (ε moves the ends by ~1e-6). ``≈ d`` = every dimension used (needs
    ``N ≫ d``: Gaussian N=10000, d=128 gives ≈127.8); a value far below ``d`` means dimensional collapse.
    Garrido et al. found it tracks downstream accuracy without labels. An all-zero matrix gives ≈1.

    The singular values are the square roots of the eigenvalues of the smaller Gram matrix (``zᵀz`` or
    ``z zᵀ``, float64), not an SVD: 7× faster on an H200 at ``4096 × 512`` and 13× at ``4096 × 2048``
    (``benchmarks/README.md``); a singular value below ~1e-8 of the largest reads as ~1e-8 of it, which
    moves the result by less than ε does. On CUDA the eigen-solver synchronizes with the host (a PyTorch
    limitation): call at snapshot cadence. Edge cases: ``N = 1`` or ``d = 1`` give ≈1.

    Args:
        z: ``(N, d)`` embeddings.
        eps: smoothing added to each ``p_k``, ``>= 0``; 1e-7 is the paper's float32 value.

    Returns:
        0-d float32 tensor.

    Raises:
        TypeError: non-floating ``z`` or non-numeric ``eps``.
        ValueError: ``z`` not 2-D, or ``eps < 0``.

    Example:
        >>> effective_rank(torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]]))
        tensor(2.0000)
    """
    z = _check_matrix(z, "z")
    if isinstance(eps, bool) or not isinstance(eps, Real):
        raise TypeError(f"eps must be a real number, got {type(eps).__name__}")
    if not (eps >= 0 and math.isfinite(eps)):
        raise ValueError(f"eps must be >= 0 and finite, got {eps}")
    finite, z = _finite_or_zero(z)
    sigma = _singular_values(z)
    p = sigma / sigma.sum().clamp_min(torch.finfo(torch.float64).tiny) + eps
    return torch.where(finite, torch.exp(-torch.special.xlogy(p, p).sum()), math.nan).float()


def _singular_values(z: Tensor) -> Tensor:
    """Singular values of ``z`` (float64, unordered) from the eigenvalues of its smaller Gram matrix."""
    z = z.double()
    gram = z.T @ z if z.shape[0] >= z.shape[1] else z @ z.T
    return torch.linalg.eigvalsh(gram).clamp_min(0.0).sqrt()


@torch.no_grad()
def std_of_l2_normalized(z: Tensor) -> Tensor:
    r"""Mean per-dimension standard deviation of unit rows (lightly; Chen & He, SimSiam, CVPR 2021).

    .. math::

        \frac{1}{d} \sum_k \operatorname{std}_i\big(\hat z_{ik}\big)

    with the unbiased (``N-1``) standard deviation.

    Range: ``[0, sqrt(N / ((N-1) d))]``. The upper bound follows from Cauchy–Schwarz and the trace of the
    covariance of unit rows, :math:`\sum_k \operatorname{var}_k = \frac{N}{N-1}(1 - \lVert\bar z\rVert^2)`:
    the mean of the ``d`` standard deviations is at most the root of their mean square. It reaches √2
    for ``N = 2, d = 1`` (``[[1], [-1]]``) and is attained by ``±e_k`` sets, so for large ``N`` the isotropic
    value ``≈ 1/√d`` is also (nearly) the maximum: healthy, not merely "small". 0 = complete collapse. It
    misses a collapse onto a rotated low-dimensional subspace, so read it beside :func:`spectrum` or
    :func:`effective_rank`, never alone.

    Edge cases: ``N = 1`` raises (no spread); ``d = 1`` works.

    Args:
        z: ``(N, d)`` embeddings.

    Returns:
        0-d float32 tensor.

    Raises:
        TypeError: non-floating ``z``.
        ValueError: not 2-D or ``N < 2``.

    Example:
        >>> std_of_l2_normalized(torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
        tensor(0.)
    """
    z = _check_matrix(z, "z")
    _check_rows(z, "z", 2, "a standard deviation needs two samples")
    return _unit(z).std(dim=0).mean()


@torch.no_grad()
def step_statistics(a: Tensor, b: Tensor, *, two_modality: bool = False) -> dict[str, Tensor]:
    r"""Cheap ``O(B·d)`` statistics for every training step, robust to non-finite rows, with no host sync.

    Rows ``i`` where ``a[i]`` or ``b[i]`` holds a NaN or Inf are excluded through 0/1 weights (never by
    boolean indexing, which would sync); a row whose squared norm overflows float32 (entries ≳ 1e19)
    counts as non-finite too. On the ``n`` finite rows the values equal the plain functions:

    - ``alignment`` — :func:`alignment` with ``alpha = 2``, in ``[0, 4]``.
    - ``pos_sim`` — mean positive cosine :math:`\frac1n\sum_i \hat a_i^\top \hat b_i`, in ``[-1, 1]``.
    - ``norm_a``, ``norm_b`` — mean raw L2 norm of the rows before normalization (a norm drifting up
      or down steadily is an early sign of instability).
    - ``nonfinite_fraction`` — share of the ``B`` rows excluded, in ``[0, 1]`` (healthy: 0).
    - ``n_finite`` — ``n`` as a float.
    - with ``two_modality=True`` also ``modality_gap``, ``cone_a``, ``cone_b`` and ``matched_distance``
      as in :func:`modality_gap`.

    If every row is non-finite, every value except ``nonfinite_fraction`` and ``n_finite`` is NaN
    (undefined; the Monitor drops NaN values). The cones need two finite rows and are NaN below that;
    with ``B = 1`` the rest is that single pair's value. ``d = 1`` works.

    Args:
        a: ``(B, d)`` first view / modality (any float dtype; half precision is upcast).
        b: ``(B, d)`` second view / modality.
        two_modality: also compute the modality-gap statistics.

    Returns:
        dict of 0-d float32 tensors keyed as above.

    Raises:
        TypeError: non-floating inputs.
        ValueError: bad or mismatched shapes.

    Example:
        >>> stats = step_statistics(torch.eye(2), torch.tensor([[1.0, 0.0], [float("nan"), 0.0]]))
        >>> stats["alignment"], stats["nonfinite_fraction"]
        (tensor(0.), tensor(0.5000))
    """
    a, b = _check_pair(a, b)
    n_rows = a.shape[0]
    if two_modality:
        return _step_statistics_two_modality(a, b, n_rows)
    # Views: only per-row dot products and norms (three passes over the data; no unit vectors are built).
    # Every op here is a kernel launch, which on a GPU costs more host time than the arithmetic at common
    # batch sizes, so the per-row values are stacked and handled together (25 compute ops, 38 before).
    a32, b32 = a.float(), b.float()
    per_row = torch.stack(
        [torch.linalg.vector_norm(a32, dim=1), torch.linalg.vector_norm(b32, dim=1), (a32 * b32).sum(dim=1)]
    )
    norms = per_row[:2]
    # A row is finite iff na + nb + dot is (na, nb < 2e19 when finite, so the sum cannot overflow);
    # x - x == 0 is isfinite in two kernels instead of four.
    total = per_row.sum(dim=0)
    finite = (total - total) == 0
    safe = norms.clamp_min(_EPS)
    cos = per_row[2] / safe[0] / safe[1]  # divided in turn: na * nb may overflow where each norm does not
    # ||â - b̂||² = |â|² + |b̂|² - 2 cos, where |â|² is 1, or below 1 for a row under the normalize floor.
    align = torch.sub((norms / safe).square().sum(dim=0), cos, alpha=2.0).clamp_min(0.0)
    rows = torch.cat([torch.stack([align, cos]), norms])
    n = finite.sum(dtype=torch.float32)
    sums = torch.where(finite, rows, 0.0).sum(dim=1) / n
    out = dict(zip(["alignment", "pos_sim", "norm_a", "norm_b"], sums.unbind(), strict=True))
    out["nonfinite_fraction"] = 1.0 - n / n_rows
    out["n_finite"] = n
    return out


def _step_statistics_two_modality(a: Tensor, b: Tensor, n_rows: int) -> dict[str, Tensor]:
    """:func:`step_statistics` with the modality-gap statistics, which need the unit vectors themselves."""
    x = torch.stack((a.float(), b.float()))  # one (2, B, d) tensor halves the number of kernel launches
    norms = torch.linalg.vector_norm(x, dim=2)
    finite = torch.isfinite(norms).all(dim=0)
    safe_norms = norms.clamp_min(_EPS)
    unit = torch.where(finite[:, None], x / safe_norms[..., None], 0.0)
    ua, ub = unit[0], unit[1]
    diff = torch.linalg.vector_norm(ua - ub, dim=1)
    n = finite.sum(dtype=torch.float32)
    masked_norms = torch.where(finite, norms, 0.0)
    # Excluded rows are exactly zero in every row below, so plain sums divided by n are masked means.
    names = ["alignment", "pos_sim", "norm_a", "norm_b", "matched_distance"]
    rows = [diff * diff, (ua * ub).sum(dim=1), masked_norms[0], masked_norms[1], diff]
    out = dict(zip(names, (torch.stack(rows).sum(dim=1) / n).unbind(), strict=True))
    out["nonfinite_fraction"] = 1.0 - n / n_rows
    out["n_finite"] = n
    sums = unit.sum(dim=1)
    self_sq = torch.where(finite, norms / safe_norms, 0.0).square().sum(dim=1)
    # Rounding makes the numerator +-1e-7 instead of 0 for a single row; say "undefined" as NaN.
    cones = torch.where(n > 1, ((sums * sums).sum(dim=1) - self_sq) / (n * (n - 1.0)), math.nan)
    out["cone_a"], out["cone_b"] = cones.unbind()
    out["modality_gap"] = torch.linalg.vector_norm((sums[0] - sums[1]) / n)
    return out


# -- literature diagnostics (issue 15) --
# N modalities (Liang et al. per pair; Symile), ranks and ordering (GroCo), false negatives (DebCSE;
# Wang & Liu) and per-sample temperatures (iSogCLR).


class ModalityGapMatrix(NamedTuple):
    """Pairwise geometry of ``N >= 2`` modalities with matched rows (Liang et al. 2022, for every pair).

    Attributes:
        names: the ``N`` modality names, in the order of the rows and columns below.
        gap: ``(N, N)`` symmetric ``||mean(z_p_hat) - mean(z_q_hat)||``; the diagonal is 0.
        matched_distance: ``(N, N)`` symmetric mean ``||z_p_hat_i - z_q_hat_i||``; the diagonal is 0.
        cone: ``(N,)`` mean pairwise cosine within each modality, see :func:`cone`.
        retrieval: ``(N, N)`` top-1 accuracy of retrieving row ``i`` of modality ``q`` with row ``i`` of
            modality ``p`` (row = query side, column = candidate side); not symmetric; the diagonal is NaN.
    """

    names: tuple[str, ...]
    gap: Tensor
    matched_distance: Tensor
    cone: Tensor
    retrieval: Tensor


class MultilinearScores(NamedTuple):
    """Symile's multilinear inner product for matched and mismatched tuples (Saporta et al. 2024).

    Attributes:
        pos: ``(B,)`` scores of the matched tuples ``MIP(z1_i, ..., zM_i)``.
        neg: ``(M, B, B - 1)`` scores with modality ``m``'s row ``i`` replaced by each other row ``j != i``
            (in increasing ``j``), every other modality kept at row ``i``.
    """

    pos: Tensor
    neg: Tensor


class MultilinearHistograms(NamedTuple):
    """Fixed-bin histograms of Symile's multilinear inner product, matched against mismatched tuples.

    Attributes:
        edges: ``(bins + 1,)`` float32 bin edges, as in :class:`ScoreHistograms`.
        pos: ``(bins,)`` int64 counts of the ``B`` matched-tuple scores.
        neg: ``(bins,)`` int64 counts of the ``M·B·(B-1)`` mismatched-tuple scores.
        pos_mean: 0-d float32 mean of the matched-tuple scores (NaN if any is).
        neg_mean: 0-d float32 mean of the mismatched-tuple scores (NaN if any is).
    """

    edges: Tensor
    pos: Tensor
    neg: Tensor
    pos_mean: Tensor
    neg_mean: Tensor


class RankSummary(NamedTuple):
    """Retrieval summary of positive ranks (all 0-d float32).

    Attributes:
        mrr: mean reciprocal rank, in ``(0, 1]``.
        recall_at_1: share of anchors whose positive ranks first.
        recall_at_5: share with rank ``<= 5``.
        recall_at_10: share with rank ``<= 10``.
    """

    mrr: Tensor
    recall_at_1: Tensor
    recall_at_5: Tensor
    recall_at_10: Tensor


class FalseNegativeShare(NamedTuple):
    """How many in-batch negatives share the anchor's label, and how much of the penalty they get (0-d).

    Attributes:
        count_share: share of the ``B(B-1)`` negatives whose label equals their anchor's, in ``[0, 1]``.
        penalty_share: mean over anchors of the softmax weight (over negatives, at ``τ``) on those
            same-label negatives, in ``[0, 1]``.
    """

    count_share: Tensor
    penalty_share: Tensor


class TemperatureDistribution(NamedTuple):
    """Distribution of per-sample temperatures (iSogCLR, Qiu et al. 2023).

    Attributes:
        probs: ``(Q,)`` float32 quantile levels in ``[0, 1]``.
        quantiles: ``(Q,)`` float32 quantiles of the temperatures at ``probs`` (linear interpolation).
        mean: 0-d float32 mean temperature.
        edges: ``(bins + 1,)`` float32 histogram edges (log-spaced by default).
        counts: ``(bins,)`` int64 histogram counts; values outside the edges land in the end bins.
    """

    probs: Tensor
    quantiles: Tensor
    mean: Tensor
    edges: Tensor
    counts: Tensor


_DEFAULT_TAU_QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)
_TAU_HIST_RANGE = (1e-2, 1e1)  # log-spaced: covers the usual 0.01-1 and iSogCLR's [0.05, 1.0] with room


def _check_modalities(mapping: object) -> tuple[tuple[str, ...], list[Tensor]]:
    if not isinstance(mapping, Mapping):
        raise TypeError(
            f"modalities must be a mapping of name -> (B, d) tensor, got {type(mapping).__name__}"
        )
    if len(mapping) < 2:
        raise ValueError(f"need at least 2 modalities to compare, got {len(mapping)}: {list(mapping)}")
    names = tuple(mapping)
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"modality names must be str, got {type(name).__name__} {name!r}")
    zs = [_check_matrix(mapping[name], name) for name in names]
    first = zs[0]
    for name, z in zip(names[1:], zs[1:], strict=True):
        _check_pair(first, z, names=(names[0], name))
    return names, zs


def _check_tuple(zs: tuple[object, ...]) -> list[Tensor]:
    if len(zs) < 2:
        raise ValueError(f"need at least 2 modalities (one tensor each), got {len(zs)}")
    checked = [_check_matrix(z, f"zs[{k}]") for k, z in enumerate(zs)]
    for k, z in enumerate(checked[1:], start=1):
        _check_pair(checked[0], z, names=("zs[0]", f"zs[{k}]"))
    return checked


def _offdiag(s: Tensor) -> Tensor:
    """``(B, B) -> (B, B-1)``: row ``i`` without its diagonal entry, order kept, no boolean indexing."""
    n = s.shape[-1]
    return s.flatten(-2)[..., 1:].unflatten(-1, (n - 1, n + 1))[..., :n].flatten(-2).unflatten(-1, (n, n - 1))


def _nan_rows(s: Tensor) -> Tensor:
    return torch.isnan(s).any(dim=1)


@torch.no_grad()
def modality_gap_matrix(modalities: Mapping[str, Tensor]) -> ModalityGapMatrix:
    r"""Modality gap, cones and cross-modal retrieval for every pair of ``N >= 2`` modalities.

    For modalities ``p`` and ``q`` with matched rows (row ``i`` of each belongs to the same sample):

    .. math::

        G_{pq} = \Big\lVert \tfrac1B \textstyle\sum_i (\hat z^{(p)}_i - \hat z^{(q)}_i) \Big\rVert,
        \qquad
        D_{pq} = \tfrac1B \textstyle\sum_i \lVert \hat z^{(p)}_i - \hat z^{(q)}_i \rVert,
        \qquad
        R_{pq} = \tfrac1B \textstyle\sum_i \mathbb{1}\big[s_{ii} > \max_{j \ne i} s_{ij}\big],
        \ s_{ij} = \hat z^{(p)\top}_i \hat z^{(q)}_j

    and the :func:`cone` of each modality. ``G`` and ``D`` are :func:`modality_gap`'s ``gap`` and
    ``matched_distance`` for each pair; ``R[p, q]`` is :func:`retrieval_accuracy` with ``p`` as the queries
    (ties and NaN scores count as failures, as there), ``R[q, p]`` the other direction.

    Diagonal conventions: ``gap`` and ``matched_distance`` are 0 on the diagonal (a modality against
    itself); ``retrieval`` is NaN there (retrieving a modality from itself is not a cross-modal question).

    Range: gap in ``[0, 2]`` (√2 for all ``p = e1``, all ``q = e2``; 0 for identical sets), cones in
    ``[-1/(B-1), 1]``, retrieval in ``[0, 1]`` with chance ``1/B``. Bad: one modality far from all others
    (a row of large gaps) or a pair whose retrieval stays near chance while the others rise — pairwise
    training has aligned that pair poorly. Symile (Saporta et al., NeurIPS 2024) is the setting with more
    than two modalities; the per-pair quantities are Liang et al.'s ("Mind the Gap", NeurIPS 2022).

    Rows are L2-normalized first. Gaps and cones propagate NaN; ``O(N² B² d)`` work, no host sync.
    Edge cases: ``B = 1`` raises (cones and retrieval need two rows); ``d = 1`` works.

    Args:
        modalities: mapping of ``N >= 2`` names to ``(B, d)`` tensors with the same ``B``, ``d`` and device.

    Returns:
        :class:`ModalityGapMatrix`.

    Raises:
        TypeError: not a mapping, a non-str name, or a non-floating tensor.
        ValueError: fewer than 2 modalities, shapes or devices that differ, or ``B < 2``.

    Example:
        >>> e1, e2 = torch.tensor([[1.0, 0.0]]).repeat(4, 1), torch.tensor([[0.0, 1.0]]).repeat(4, 1)
        >>> modality_gap_matrix({"image": e1, "text": e2, "audio": e1}).gap
        tensor([[0.0000, 1.4142, 0.0000],
                [1.4142, 0.0000, 1.4142],
                [0.0000, 1.4142, 0.0000]])
    """
    names, zs = _check_modalities(modalities)
    _check_rows(zs[0], names[0], 2, "cones and retrieval need two rows")
    n_mod, n = len(zs), zs[0].shape[0]
    units = torch.stack([_unit(z) for z in zs])  # (N, B, d)
    means = units.mean(dim=1)
    gap = torch.linalg.vector_norm(means[:, None] - means[None], dim=-1)
    sums = units.sum(dim=1)
    cones = ((sums * sums).sum(dim=1) - (units * units).sum(dim=(1, 2))) / (n * (n - 1))
    matched = torch.zeros(n_mod, n_mod, device=units.device)
    retrieval = torch.full((n_mod, n_mod), math.nan, device=units.device)
    eye = torch.eye(n, dtype=torch.bool, device=units.device)
    for p in range(n_mod):
        for q in range(p + 1, n_mod):
            dist = torch.linalg.vector_norm(units[p] - units[q], dim=1).mean()
            matched[p, q] = dist
            matched[q, p] = dist
            s = units[p] @ units[q].T
            pos = torch.diagonal(s)
            masked = s.masked_fill(eye, -math.inf)
            retrieval[p, q] = (pos > masked.amax(dim=1)).float().mean()
            retrieval[q, p] = (pos > masked.amax(dim=0)).float().mean()
    return ModalityGapMatrix(names, gap, matched, cones, retrieval)


@torch.no_grad()
def multilinear_scores(*zs: Tensor) -> MultilinearScores:
    r"""Symile's multilinear inner product of matched tuples against mismatched ones (Saporta et al. 2024).

    .. math::

        \operatorname{MIP}(x, y, z) = \sum_k x_k\, y_k\, z_k
        \quad(\text{for } M \text{ modalities: } \textstyle\sum_k \prod_m \hat z^{(m)}_k)

    on unit rows. ``pos[i]`` is the MIP of the matched tuple ``i``. Negatives follow Symile's ``O(N)``
    sampling, made deterministic: for each modality ``m`` and anchor ``i``, modality ``m``'s row ``i`` is
    replaced by every other row ``j != i`` while the other modalities stay at row ``i``, so
    ``neg[m, i, j'] = MIP`` with ``z^{(m)}_j`` (``j'`` indexes ``j != i`` in increasing order). These are
    exactly the candidates of Symile's loss when it predicts modality ``m`` from the others; there are
    ``M·B·(B-1)`` of them.

    Range: ``[-1, 1]`` (a product of unit vectors); for independent random unit rows in ``d`` dims the
    scores scatter around 0 with a spread that shrinks with ``d``. Healthy Symile training separates
    ``pos`` from ``neg``; pairwise (CLIP) training of three modalities can leave them overlapping when
    the information sits only in the triple (their XOR-style example). For ``M = 2`` the MIP is the
    cosine: ``pos`` is the diagonal of ``similarity_matrix(z1, z2)``, ``neg[1]`` its rows and ``neg[0]``
    its columns without the diagonal.

    Rows are L2-normalized first; NaN rows propagate. Edge cases: ``B = 1`` raises (no negatives);
    ``B = 2`` gives one negative per anchor and modality; ``d = 1`` works.

    Args:
        *zs: ``M >= 2`` tensors ``(B, d)`` with matched rows, same shape and device.

    Returns:
        :class:`MultilinearScores` with float32 ``pos`` ``(B,)`` and ``neg`` ``(M, B, B-1)``.

    Raises:
        TypeError: non-floating inputs.
        ValueError: fewer than 2 tensors, shapes or devices that differ, or ``B < 2``.

    Example:
        >>> e = torch.eye(2)
        >>> s = multilinear_scores(e, e, e)
        >>> s.pos, s.neg[0]
        (tensor([1., 1.]), tensor([[0.],
                [0.]]))
    """
    checked = _check_tuple(zs)
    _check_rows(checked[0], "zs[0]", 2, "negatives are the other rows of the batch")
    units = torch.stack([_unit(z) for z in checked])  # (M, B, d)
    pos = units.prod(dim=0).sum(dim=1)
    negs = []
    for m in range(units.shape[0]):
        others = torch.cat([units[:m], units[m + 1 :]]).prod(dim=0)
        negs.append(_offdiag(others @ units[m].T))
    return MultilinearScores(pos, torch.stack(negs))


@torch.no_grad()
def multilinear_histograms(*zs: Tensor, bins: int | Tensor = 50) -> MultilinearHistograms:
    r"""Histograms of :func:`multilinear_scores`: matched tuples (``pos``) against mismatched ones (``neg``).

    The same scores as :func:`multilinear_scores` (``pos``: ``B`` matched tuples; ``neg``: for each
    modality ``m`` and anchor ``i``, modality ``m``'s row replaced by every other row, ``M·B·(B-1)``
    scores), counted on fixed edges so that steps and runs stack. The negatives are counted one modality
    at a time, so at most one ``B × B`` score matrix exists at once instead of the ``M·B·(B-1)`` tensor.

    Range and reading: scores lie in ``[-1, 1]``. Symile training moves ``pos`` right of ``neg``; two
    histograms that coincide (overlap coefficient, :func:`histogram_overlap`, near 1) mean the tuple's
    joint information is not captured, which pairwise CLIP training of three modalities can leave
    behind (Saporta et al., "Contrasting with Symile", NeurIPS 2024).

    Counts are of finite scores only (see the module's non-finite policy); rounding just beyond ``±1``
    counts in the end bins.

    Args:
        *zs: ``M >= 2`` tensors ``(B, d)`` with matched rows, same shape and device.
        bins: as in :func:`score_histograms` (equal bins on ``[-1, 1]``, or a tensor of edges).

    Returns:
        :class:`MultilinearHistograms` with counts summing to ``B`` (``pos``) and ``M·B·(B-1)`` (``neg``)
        for finite inputs, and the means of both sets of scores (those of :func:`multilinear_scores`).

    Raises:
        TypeError: non-floating inputs or a bad ``bins``.
        ValueError: fewer than 2 tensors, shapes or devices that differ, ``B < 2`` or a bad ``bins``.

    Example:
        >>> e = torch.eye(2)
        >>> h = multilinear_histograms(e, e, e, bins=4)  # pos 1, neg 0: the bins [0.5, 1] and [0, 0.5)
        >>> h.pos, h.neg
        (tensor([0, 0, 0, 2]), tensor([0, 0, 6, 0]))
    """
    checked = _check_tuple(zs)
    _check_rows(checked[0], "zs[0]", 2, "negatives are the other rows of the batch")
    edges = _edges(bins, checked[0].device)
    units = torch.stack([_unit(z) for z in checked])  # (M, B, d)
    pos = units.prod(dim=0).sum(dim=1)
    pos_hist = _fast_histogram(pos, bins, edges)
    neg_hist = torch.zeros_like(pos_hist)
    neg_sum = torch.zeros((), dtype=torch.float64, device=pos.device)
    n_modalities, n = units.shape[:2]
    for m in range(n_modalities):
        s = torch.cat([units[:m], units[m + 1 :]]).prod(dim=0) @ units[m].T
        # The diagonal is the matched tuple: counting it from the same matrix keeps every bin >= 0.
        diagonal = torch.diagonal(s).contiguous()
        neg_hist += _fast_histogram(s, bins, edges) - _fast_histogram(diagonal, bins, edges)
        neg_sum += s.sum(dtype=torch.float64) - diagonal.sum(dtype=torch.float64)
    neg_mean = (neg_sum / (n_modalities * n * (n - 1))).float()
    return MultilinearHistograms(edges, pos_hist, neg_hist, pos.mean(), neg_mean)


@torch.no_grad()
def positive_ranks(a: Tensor, b: Tensor) -> Tensor:
    r"""Rank of each anchor's positive among all ``B`` candidates (retrieval view of GroCo, 2023).

    .. math::

        \text{rank}_i = 1 + \#\{\, j \ne i : s_{ij} \ge s_{ii} \,\}, \qquad s_{ij} = \hat a_i^\top \hat b_j

    Ties are counted pessimistically: a negative scoring exactly as high as the positive ranks ahead of it,
    so a collapsed model (all scores equal) ranks every positive last (``B``) and ``rank == 1`` agrees with
    :func:`retrieval_accuracy`. An anchor whose row of scores holds a NaN gets rank NaN.

    Range: ``[1, B]``, integers stored as float32; 1 = the positive beats every negative. Chance is
    ``(B + 1) / 2`` on average. GroCo (Shvetsova et al., "Learning by Sorting", 2023) trains on exactly
    this ordering; a histogram that piles up at 1 is healthy, a flat one means the positives are not
    found, one piled up at ``B`` means collapse or a mismatch of rows. Summarize with :func:`rank_summary`.

    Edge cases: ``B = 1`` raises (nothing to rank against); ``d = 1`` works (many ties).

    Args:
        a: ``(B, d)`` anchors.
        b: ``(B, d)`` candidates; ``b[i]`` is the positive of ``a[i]``.

    Returns:
        ``(B,)`` float32 ranks.

    Raises:
        TypeError: non-floating inputs.
        ValueError: bad shapes or ``B < 2``.

    Example:
        >>> positive_ranks(torch.eye(4), torch.eye(4)), positive_ranks(torch.eye(4), -torch.eye(4))
        (tensor([1., 1., 1., 1.]), tensor([4., 4., 4., 4.]))
    """
    a, b = _check_pair(a, b)
    _check_rows(a, "a", 2, "the positive is ranked against the other rows of b")
    ranks, _ = _order_stats(*_scores_pos_hardest(_unit(a), _unit(b)))
    return ranks


@torch.no_grad()
def rank_summary(ranks: Tensor) -> RankSummary:
    r"""Mean reciprocal rank and recall@1/5/10 of positive ranks (from :func:`positive_ranks`).

    .. math::

        \text{MRR} = \frac1B \sum_i \frac{1}{\text{rank}_i}, \qquad
        \text{R@}k = \frac1B \sum_i \mathbb{1}[\text{rank}_i \le k]

    Range: MRR in ``(0, 1]``, recall in ``[0, 1]``; with ``B`` candidates chance is about
    ``H_B / B`` for MRR and ``k / B`` for R@k. R@k is trivially 1 when ``k >= B`` (read it against the
    batch size). Bad: R@1 and MRR flat near chance, or R@10 rising while R@1 stays low (positives come
    close but are not ordered first, what GroCo's loss targets). A NaN rank makes every result NaN.

    Ranks are not range-checked (that would sync); pass what :func:`positive_ranks` returns.

    Args:
        ranks: ``(B,)`` ranks, ``>= 1``, floating or integer.

    Returns:
        :class:`RankSummary` of 0-d float32 tensors.

    Raises:
        TypeError: not a real-valued tensor.
        ValueError: not 1-D or empty.

    Example:
        >>> rank_summary(torch.tensor([1.0, 2.0, 4.0, 8.0])).mrr
        tensor(0.4688)
    """
    if not isinstance(ranks, Tensor):
        raise TypeError(f"ranks must be a torch.Tensor, got {type(ranks).__name__}")
    if not (ranks.is_floating_point() or ranks.dtype in INT_DTYPES):
        raise TypeError(f"ranks must be a real-valued tensor, got dtype {ranks.dtype}")
    if ranks.ndim != 1 or ranks.shape[0] == 0:
        raise ValueError(f"ranks must be a non-empty 1-D tensor, got shape {tuple(ranks.shape)}")
    return _rank_summary(ranks.float())


@torch.no_grad()
def ordering_violations(a: Tensor, b: Tensor, *, per_anchor: bool = False) -> Tensor:
    r"""Share of (positive, negative) pairs ordered wrongly: ``1 - AUROC`` per anchor (GroCo, 2023).

    .. math::

        v_i = \frac{1}{B-1} \sum_{j \ne i} \Big(\mathbb{1}[s_{ij} > s_{ii}]
              + \tfrac12 \mathbb{1}[s_{ij} = s_{ii}]\Big), \qquad v = \frac1B \sum_i v_i

    ``v_i`` is one minus the AUROC of anchor ``i``'s positive score against its ``B - 1`` negative scores,
    with ties counted ½ (the usual AUROC convention), so a collapsed model scores 0.5, like chance. Without
    ties ``v_i = (\text{rank}_i - 1)/(B - 1)`` (see :func:`positive_ranks`). GroCo (Shvetsova et al.,
    "Learning by Sorting", 2023) minimizes a differentiable count of exactly these mis-orderings.

    Range: ``[0, 1]``; 0 = every positive above all its negatives, 0.5 = chance (independent embeddings or
    collapse), 1 = every positive below all its negatives. A value that stops falling while the loss
    still improves means the loss is buying margin on already-ordered pairs. An anchor whose scores hold
    a NaN gets NaN (so the mean is NaN).

    Edge cases: ``B = 1`` raises (no negatives); ``B = 2`` has one pair per anchor; ``d = 1`` works.

    Args:
        a: ``(B, d)`` anchors.
        b: ``(B, d)`` candidates; ``b[i]`` is the positive of ``a[i]``.
        per_anchor: return the ``(B,)`` values ``v_i`` instead of their mean.

    Returns:
        0-d float32 mean, or ``(B,)`` float32 with ``per_anchor=True``.

    Raises:
        TypeError: non-floating inputs.
        ValueError: bad shapes or ``B < 2``.

    Example:
        >>> ordering_violations(torch.eye(4), torch.eye(4)), ordering_violations(torch.eye(4), -torch.eye(4))
        (tensor(0.), tensor(1.))
    """
    a, b = _check_pair(a, b)
    _check_rows(a, "a", 2, "the positive is compared with the other rows of b")
    _, v = _order_stats(*_scores_pos_hardest(_unit(a), _unit(b)))
    return v if per_anchor else v.mean()


@torch.no_grad()
def false_negative_share(
    a: Tensor, b: Tensor, labels: Tensor, temperature: float | Tensor
) -> FalseNegativeShare:
    r"""Share of in-batch negatives that are false (same label) and their share of the InfoNCE penalty.

    With anchors ``a_i``, candidates ``b_j`` (``j != i`` are the negatives) and labels ``y``:

    .. math::

        c = \frac{1}{B(B-1)} \sum_i \sum_{j \ne i} \mathbb{1}[y_j = y_i], \qquad
        p = \frac1B \sum_i \sum_{j \ne i,\ y_j = y_i} r_{ij}, \qquad
        r_{ij} = \frac{e^{s_{ij}/\tau_i}}{\sum_{k \ne i} e^{s_{ik}/\tau_i}}

    ``r_ij`` is the softmax weight of negative ``j`` among the negatives, which is the share of the
    anchor's negative gradient it receives (Wang & Liu, CVPR 2021). ``p`` is Wang & Liu's same-class
    penalty at one τ (see :func:`temperature_curves`); DebCSE (2023) and debiased contrastive learning
    treat such same-label negatives as false negatives.

    Range: both in ``[0, 1]``; all labels equal → 1, all distinct → 0. ``c`` is set by the sampler
    (≈ ``1/C`` for ``C`` balanced classes). Bad: ``p`` well above ``c``, i.e. the loss concentrates its
    penalty on same-class samples and pushes them apart (typical at low τ once classes cluster).

    ``temperature`` may be one value or a ``(B,)`` vector of per-anchor temperatures (iSogCLR); tensors
    are not range-checked (that would sync). A NaN score makes ``penalty_share`` NaN.
    Edge cases: ``B = 1`` raises (no negatives); ``B = 2`` gives ``p = c``; ``d = 1`` works.

    Args:
        a: ``(B, d)`` anchors.
        b: ``(B, d)`` candidates; ``b[i]`` is the positive of ``a[i]``.
        labels: ``(B,)`` integer labels of the pairs.
        temperature: τ ``> 0``: a number, a one-element tensor or a ``(B,)`` tensor.

    Returns:
        :class:`FalseNegativeShare` of 0-d float32 tensors.

    Raises:
        TypeError: non-floating embeddings, non-integer labels or a non-numeric temperature.
        ValueError: bad shapes, ``B < 2``, wrong label length, a temperature of the wrong length or ``<= 0``.

    Example:
        >>> fn = false_negative_share(torch.eye(4), torch.eye(4), torch.tensor([0, 0, 1, 1]), 0.1)
        >>> fn.count_share, fn.penalty_share
        (tensor(0.3333), tensor(0.3333))
    """
    a, b = _check_pair(a, b)
    _check_rows(a, "a", 2, "negatives are the other rows of the batch")
    n = a.shape[0]
    y = _check_labels(labels, n, a.device)
    tau = _check_fn_temperature(temperature, n, a.device)
    same = _same_class(y)
    s, pos, hardest = _scores_pos_hardest(_unit(a), _unit(b))
    *_, penalty = _hardness_from_scores(s, pos, hardest, tau[None], same)
    return FalseNegativeShare(same.sum() / (n * (n - 1)), penalty[0])


@torch.no_grad()
def temperature_distribution(
    tau: Tensor,
    probs: Sequence[float] = _DEFAULT_TAU_QUANTILES,
    bins: int | Tensor = 40,
) -> TemperatureDistribution:
    r"""Quantiles, mean and a fixed-edge histogram of per-sample temperatures (iSogCLR, Qiu et al. 2023).

    Quantiles use linear interpolation between order statistics (NumPy's and :func:`torch.quantile`'s
    default): for level ``q`` and sorted values ``t_(0) <= ... <= t_(n-1)``, position ``q (n - 1)``.
    They are computed by one sort with positions fixed by ``n`` on the host, so no value is read back
    from the device. By default the histogram has ``bins`` log-spaced edges on ``[0.01, 10]``, fixed so
    histograms of different steps stack into one picture; values outside land in the end bins, NaN is
    not counted.

    Range: the temperatures' own. iSogCLR keeps τ in ``[0.05, 1.0]`` and finds a unimodal spread; its
    claim is that samples with frequent semantics get larger τ and rare ones smaller. Bad: the mass
    piling up at a clamp bound (the bound, not the data, sets τ), or a spread that collapses to one value
    (individual temperatures add nothing over a global one). Any NaN makes every quantile and the mean NaN.

    Edge cases: one temperature gives that value for every quantile.

    Args:
        tau: ``(n,)`` temperatures, e.g. a per-sample parameter vector or the τ of one batch's anchors.
        probs: quantile levels in ``[0, 1]``.
        bins: number of log-spaced bins on ``[0.01, 10]``, or a 1-D increasing tensor of edges.

    Returns:
        :class:`TemperatureDistribution`.

    Raises:
        TypeError: ``tau`` not a floating tensor, non-numeric ``probs`` or a bad ``bins`` type.
        ValueError: ``tau`` not 1-D or empty, ``probs`` empty or outside ``[0, 1]``, ``bins < 1``.

    Example:
        >>> d = temperature_distribution(torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5]), probs=[0.0, 0.5, 0.9])
        >>> d.quantiles, d.mean
        (tensor([0.1000, 0.3000, 0.4600]), tensor(0.3000))
    """
    if not isinstance(tau, Tensor):
        raise TypeError(f"tau must be a torch.Tensor, got {type(tau).__name__}")
    if not tau.is_floating_point():
        raise TypeError(f"tau must be a floating-point tensor, got dtype {tau.dtype}")
    if tau.ndim != 1 or tau.shape[0] == 0:
        raise ValueError(f"tau must be a non-empty 1-D tensor, got shape {tuple(tau.shape)}")
    if isinstance(probs, (str, bytes)) or not isinstance(probs, Iterable):
        raise TypeError(f"probs must be a sequence of numbers, got {type(probs).__name__}")
    levels = list(probs)
    if not levels:
        raise ValueError("probs must not be empty")
    for q in levels:
        if isinstance(q, bool) or not isinstance(q, Real):
            raise TypeError(f"probs must hold real numbers, got {type(q).__name__}")
        if not 0.0 <= float(q) <= 1.0:
            raise ValueError(f"probs must lie in [0, 1], got {q}")
    if isinstance(bins, Tensor):
        edges = _edges(bins, tau.device)
    else:
        if isinstance(bins, bool) or not isinstance(bins, int):
            raise TypeError(f"bins must be an int or a 1-D tensor of edges, got {type(bins).__name__}")
        if bins < 1:
            raise ValueError(f"bins must be >= 1, got {bins}")
        lo, hi = (math.log10(v) for v in _TAU_HIST_RANGE)
        edges = torch.logspace(lo, hi, bins + 1, dtype=torch.float32, device=tau.device)
    t = tau.float()
    n = t.shape[0]
    ordered = torch.sort(t).values
    pos = [float(q) * (n - 1) for q in levels]
    lower = [math.floor(p) for p in pos]
    upper = [min(k + 1, n - 1) for k in lower]
    frac = _to_device([p - k for p, k in zip(pos, lower, strict=True)], torch.float32, t.device)
    lo_v = ordered[_to_device(lower, torch.long, t.device)]
    hi_v = ordered[_to_device(upper, torch.long, t.device)]
    quantiles = lo_v + frac * (hi_v - lo_v)
    has_nan = torch.isnan(t).any()
    quantiles = torch.where(has_nan, math.nan, quantiles)
    probs_t = _to_device([float(q) for q in levels], torch.float32, t.device)
    return TemperatureDistribution(probs_t, quantiles, t.mean(), edges, _histogram(t, edges))


# -- examples (issue 16) --
# Which samples: nearest neighbours of a query row, positive ranks and hardest negatives per anchor, for a
# snapshot of any size (row blocks keep the working set at ``chunk × N`` scores).

_EXAMPLE_CHUNK = 4096  # rows per block: 4096 × 100 000 float32 scores = 1.6 GB at the largest snapshot


class Neighbours(NamedTuple):
    """The ``k`` most similar rows per query, most similar first.

    Attributes:
        indices: ``(Q, k)`` int64 row indices into the candidates.
        similarity: ``(Q, k)`` float32 cosines; NaN where a row held NaN/Inf (such rows sort last).
    """

    indices: Tensor
    similarity: Tensor


def _check_k(k: object, available: int, what: str) -> int:
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    if not 1 <= k <= available:
        raise ValueError(f"k must be in [1, {available}] ({what}), got {k}")
    return k


def _check_chunk(chunk: object) -> int:
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a positive int, got {chunk!r}")
    return chunk


def _top_k(s: Tensor, k: int) -> Neighbours:
    """Top ``k`` columns per row of cosines ``s``: NaN below every cosine, masked (-inf) entries last."""
    order = torch.nan_to_num(s, nan=-3.0, posinf=-3.0, neginf=-math.inf)
    idx = torch.topk(order, k, dim=1).indices
    return Neighbours(idx, torch.gather(s, 1, idx))


@torch.no_grad()
def nearest_neighbours(
    z: Tensor, query_idx: int | Sequence[int] | Tensor, k: int, *, chunk: int = _EXAMPLE_CHUNK
) -> Neighbours:
    r"""The ``k`` rows of ``z`` closest in cosine to each query row (the query itself left out).

    .. math::

        \text{nn}_k(q) = \operatorname{top-}k_{\,j \ne q}\; \hat z_q^\top \hat z_j

    Computed in the full embedding dimension, not in a 2-D projection (where neighbours are distorted). On a
    snapshot holding both sides of each pair, a healthy model finds the query's positive (same sample id,
    other side) first and same-label samples next; unrelated samples at the top point to shortcuts.

    Edge cases: a row holding NaN/Inf has similarity NaN and ranks last; ties are ordered arbitrarily.
    Query indices given as a tensor are not range-checked (that would sync); Python ints are.

    Args:
        z: ``(N, d)`` embeddings (rows normalized here).
        query_idx: row index, or ``(Q,)`` row indices, of the queries.
        k: neighbours per query, ``1 <= k <= N - 1``.
        chunk: queries per block (memory ``chunk × N``).

    Returns:
        :class:`Neighbours` with ``(Q, k)`` indices into ``z`` and cosines, most similar first.

    Raises:
        TypeError: non-floating ``z`` or non-integer indices.
        ValueError: bad shapes, ``k`` out of range, or a Python index out of range.

    Example:
        >>> z = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
        >>> nearest_neighbours(z, 0, 2).indices
        tensor([[1, 2]])
    """
    z = _check_matrix(z, "z")
    n = z.shape[0]
    k = _check_k(k, n - 1, "other rows of z")
    chunk = _check_chunk(chunk)
    if isinstance(query_idx, Tensor):
        if query_idx.is_floating_point() or query_idx.is_complex() or query_idx.dtype == torch.bool:
            raise TypeError(f"query_idx must hold integers, got dtype {query_idx.dtype}")
        q = query_idx.reshape(-1).to(device=z.device, dtype=torch.long)
    else:
        items = [query_idx] if isinstance(query_idx, int) else list(query_idx)
        for i in items:
            if isinstance(i, bool) or not isinstance(i, int):
                raise TypeError(f"query_idx must hold ints, got {type(i).__name__}")
            if not -n <= i < n:
                raise ValueError(f"query index {i} is out of range for {n} rows")
        q = torch.tensor([i % n for i in items], dtype=torch.long, device=z.device)
    u = _unit(z)
    parts = []
    for start in range(0, q.shape[0], chunk):
        rows = q[start : start + chunk]
        s = u[rows] @ u.T
        s = s.scatter(1, rows[:, None], -math.inf)  # the query itself is no neighbour
        parts.append(_top_k(s, k))
    if not parts:
        empty = torch.empty(0, k, device=z.device)
        return Neighbours(empty.long(), empty)
    return Neighbours(torch.cat([p.indices for p in parts]), torch.cat([p.similarity for p in parts]))


@torch.no_grad()
def pair_ranks(a: Tensor, b: Tensor, *, chunk: int = _EXAMPLE_CHUNK) -> Tensor:
    r""":func:`positive_ranks` in row blocks, for snapshots too large for one ``B × B`` score matrix.

    .. math::

        \text{rank}_i = 1 + \#\{\, j \ne i : s_{ij} \ge s_{ii} \,\}

    Same definition, range (``[1, B]``, 1 = the positive beats every negative) and tie rule (pessimistic);
    an anchor whose scores hold a NaN gets rank NaN. Memory is ``chunk × B`` instead of ``B × B``.

    Args:
        a: ``(B, d)`` anchors.
        b: ``(B, d)`` candidates; ``b[i]`` is the positive of ``a[i]``.
        chunk: anchors per block.

    Returns:
        ``(B,)`` float32 ranks.

    Raises:
        TypeError: non-floating inputs.
        ValueError: bad shapes or ``B < 2``.

    Example:
        >>> pair_ranks(torch.eye(3), torch.eye(3)[[0, 2, 1]])
        tensor([1., 3., 3.])
    """
    a, b = _check_pair(a, b)
    _check_rows(a, "a", 2, "the positive is ranked against the other rows of b")
    chunk = _check_chunk(chunk)
    ua, ub = _unit(a), _unit(b)
    out = []
    for start in range(0, a.shape[0], chunk):
        s = ua[start : start + chunk] @ ub.T
        rows = torch.arange(s.shape[0], device=s.device)
        pos = s[rows, rows + start]
        ahead = (s >= pos[:, None]).sum(dim=1, dtype=torch.float32) - 1.0  # the positive itself is >= too
        out.append(torch.where(_nan_rows(s), math.nan, 1.0 + ahead))
    return torch.cat(out)


@torch.no_grad()
def hardest_negatives(a: Tensor, b: Tensor, k: int, *, chunk: int = _EXAMPLE_CHUNK) -> Neighbours:
    r"""Each anchor's ``k`` highest-scoring negatives: the rows ``j != i`` of ``b`` closest to ``a[i]``.

    .. math::

        \text{hard}_k(i) = \operatorname{top-}k_{\,j \ne i}\; \hat a_i^\top \hat b_j

    The negatives the InfoNCE gradient weighs most (Robinson et al., ICLR 2021). Read them beside the
    positive's rank (:func:`pair_ranks`): a hardest negative that shares the anchor's label is likely a
    false negative (Chuang et al., NeurIPS 2020), one that does not is a confusion worth looking at.

    Edge cases: rows with NaN/Inf score NaN and rank last; ties are ordered arbitrarily.

    Args:
        a: ``(B, d)`` anchors.
        b: ``(B, d)`` candidates; ``b[i]`` is the positive of ``a[i]`` and never returned for it.
        k: negatives per anchor, ``1 <= k <= B - 1``.
        chunk: anchors per block (memory ``chunk × B``).

    Returns:
        :class:`Neighbours`: ``(B, k)`` row indices into ``b`` and their cosines, hardest first.

    Raises:
        TypeError: non-floating inputs or non-int ``k``.
        ValueError: bad shapes, ``B < 2`` or ``k`` out of range.

    Example:
        >>> a = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]])
        >>> hardest_negatives(a, a, 1).indices.ravel()
        tensor([2, 2, 0])
    """
    a, b = _check_pair(a, b)
    _check_rows(a, "a", 2, "an anchor needs at least one negative")
    k = _check_k(k, a.shape[0] - 1, "negatives per anchor")
    chunk = _check_chunk(chunk)
    ua, ub = _unit(a), _unit(b)
    parts = []
    for start in range(0, a.shape[0], chunk):
        s = ua[start : start + chunk] @ ub.T
        rows = torch.arange(s.shape[0], device=s.device)
        s = s.index_put((rows, rows + start), torch.tensor(-math.inf, device=s.device))
        parts.append(_top_k(s, k))
    return Neighbours(torch.cat([p.indices for p in parts]), torch.cat([p.similarity for p in parts]))


@torch.no_grad()
def positive_similarity(a: Tensor, b: Tensor) -> Tensor:
    r"""Cosine of each positive pair, :math:`s_{ii} = \hat a_i^\top \hat b_i` (the mean is ``pos_sim``).

    Range ``[-1, 1]``; NaN for a row holding NaN/Inf. Shown beside :func:`pair_ranks`: a low rank with a
    high positive cosine means crowded negatives, a low cosine means the pair itself is far apart.

    Args:
        a: ``(B, d)`` anchors.
        b: ``(B, d)`` positives.

    Returns:
        ``(B,)`` float32 cosines.

    Raises:
        TypeError: non-floating inputs.
        ValueError: bad shapes.

    Example:
        >>> a, b = torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([[1.0, 1.0], [0.0, -1.0]])
        >>> positive_similarity(a, b)
        tensor([ 0.7071, -1.0000])
    """
    a, b = _check_pair(a, b)
    return (_unit(a) * _unit(b)).sum(dim=1)
