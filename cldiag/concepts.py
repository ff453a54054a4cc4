"""Synthetic data and derived numbers for the Concepts page: each diagnostic, tangible without training.

Five small worlds, one per explainer, each a generator plus a function that measures it:

1. **Temperature and hardness** (Wang & Liu 2021): one anchor with a positive and ``K`` negative scores of
   adjustable shape → the weight the loss puts on each negative at ``τ``, the normalized entropy of those
   weights, the effective number of negatives and the pull left on the positive.
2. **Alignment and uniformity** (Wang & Isola 2020): clusters on the circle or the 3-D sphere with a
   von Mises–Fisher concentration, two noisy views per point → their alignment and uniformity.
3. **Modality gap** (Liang et al. 2022): two cones of paired embeddings → gap and cones, and the shift
   experiment: move the modalities by ``δ`` along the gap and watch the gap and the CLIP loss.
4. **Dimensional collapse** (Jing et al. 2022): embeddings whose variance lives in ``k`` of ``d`` dimensions
   → spectrum, effective rank, uniformity and std of the unit rows side by side.
5. **Score distributions** (Zhu et al. 2021): pairs whose positive scores overlap the negatives by an
   adjustable amount → score histograms, in-batch retrieval and the loss.

Every diagnostic is computed by :mod:`cldiag.functional` or :mod:`cldiag.losses`, never re-implemented
here; this module only builds inputs for them (and the closed-form reference values the figures mark).
Everything is deterministic for a given ``seed`` and small enough to recompute on every slider move.
Nothing here imports Streamlit or plotly.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from statistics import NormalDist
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from cldiag import functional as F
from cldiag import schema
from cldiag._checks import check_int, check_range
from cldiag.losses import clip_loss, info_nce
from cldiag.projection import pca_2d

__all__ = [
    "NEGATIVE_SHAPES",
    "AlignUniform",
    "AnchorAtTemperature",
    "ClusteredViews",
    "CollapseStats",
    "GapShift",
    "ScoreStats",
    "align_uniform",
    "align_uniform_sweep",
    "anchor_at_temperature",
    "anchor_batch",
    "anchor_temperature_curves",
    "cluster_centers",
    "clustered_views",
    "collapse_stats",
    "gap_shift",
    "histogram_frame",
    "low_rank_embeddings",
    "modality_points",
    "negative_scores",
    "overlap_to_similarity",
    "principal_coordinates",
    "score_stats",
    "scored_pairs",
    "snapshot_anchor_scores",
    "spectrum_frame",
    "split_snapshot",
    "two_cones",
    "uniform_sphere_uniformity",
]

NegativeShape = Literal["normal", "uniform", "hard tail"]
NEGATIVE_SHAPES: tuple[str, ...] = ("normal", "uniform", "hard tail")
"""Shapes of the synthetic negative-score distribution of explainer 1."""


_check_int = check_int  # the package's shared validators (value first, then its name)
_check_range = check_range


# ------------------------------------------------------------------------------ 1. temperature and hardness


class AnchorAtTemperature(NamedTuple):
    """How the InfoNCE loss at one ``τ`` treats one anchor's negatives (Wang & Liu, CVPR 2021).

    Attributes:
        scores: ``(K,)`` negative cosines, hardest first (as given to :func:`anchor_at_temperature`).
        weights: ``(K,)`` relative penalty on each negative, ``softmax(scores / τ)``; sums to 1.
        entropy: normalized entropy of ``weights`` in ``[0, 1]``: 0 = all on the hardest, 1 = all alike.
        effective_negatives: ``exp`` of the entropy, in ``[1, K]``: how many negatives the loss really sees.
        pos_prob: softmax probability ``p₊`` of the positive among positive and negatives.
        positive_pull: ``1 − p₊``; the gradient on the positive score is ``−(1 − p₊)/τ``, so this is the
            share of the strongest possible pull the positive still receives (DCL's coupling factor).
        loss: the anchor's InfoNCE loss ``−log p₊``.
    """

    scores: Tensor
    weights: Tensor
    entropy: float
    effective_negatives: float
    pos_prob: float
    positive_pull: float
    loss: float


def negative_scores(
    k: int = 32,
    *,
    shape: NegativeShape = "normal",
    mean: float = 0.2,
    spread: float = 0.15,
) -> Tensor:
    """``k`` negative cosine scores with a chosen distribution shape, hardest first.

    The scores are the distribution's quantiles at ``(i + ½)/k`` rather than random draws, so the set is
    smooth and identical on every call: a teaching picture, not a sample.

    Args:
        k: number of negatives, ``>= 1``.
        shape: ``"normal"``; ``"uniform"`` (flat over ``mean ± √3·spread``); ``"hard tail"`` (an
            exponential with mean ``mean``: most negatives easy, a few much harder).
        mean: mean score, in ``[-1, 1]``.
        spread: standard deviation, ``>= 0``.

    Returns:
        ``(k,)`` float32 scores in ``[-1, 1]`` (clipped), descending.

    Raises:
        TypeError: non-integer ``k``.
        ValueError: ``k < 1``, an unknown shape, or ``mean``/``spread`` out of range.
    """
    k = _check_int(k, "k", 1)
    mean = _check_range(mean, "mean", -1.0, 1.0)
    spread = _check_range(spread, "spread", 0.0, 2.0)
    q = (np.arange(k, dtype=np.float64) + 0.5) / k
    if shape == "normal":
        unit = np.array([NormalDist().inv_cdf(v) for v in q])
    elif shape == "uniform":
        unit = math.sqrt(3.0) * (2.0 * q - 1.0)
    elif shape == "hard tail":
        unit = -np.log1p(-q) - 1.0  # unit exponential quantiles, centred: mean 0, std 1, long right tail
    else:
        raise ValueError(f"shape must be one of {NEGATIVE_SHAPES}, got {shape!r}")
    scores = np.clip(mean + spread * unit, -1.0, 1.0)
    return torch.from_numpy(np.sort(scores)[::-1].copy()).float()


def anchor_batch(pos: float, neg: Tensor) -> tuple[Tensor, Tensor, float]:
    """A batch in which every anchor sees exactly one given positive score and the given negative scores.

    The functions of :mod:`cldiag.functional` take embeddings and average over a batch. To evaluate them
    for a single anchor with chosen scores ``c = (pos, neg_1 … neg_K)``, build ``n = K + 1`` anchors
    ``a_i = e_i`` and candidates ``b_j`` whose cosine with ``a_i`` is ``c[(j − i) mod n] / L``: a circulant
    score matrix, so every row holds the same scores (positive on the diagonal) and every batch average
    equals the one anchor's value. ``b_j`` is column ``j`` of that matrix plus one padding coordinate that
    makes it a unit vector, with ``L = max(‖c‖, 1)``.

    The scores are divided by ``L``; call the diagnostics with ``τ / L`` and the logits ``s/τ`` are exactly
    the intended ``c/τ``.

    Args:
        pos: the positive's cosine, in ``[-1, 1]``.
        neg: ``(K,)`` negative cosines in ``[-1, 1]``, ``K >= 1``.

    Returns:
        ``(a, b, L)``: ``(K+1, K+2)`` float32 anchors and candidates, and the scale ``L``.

    Raises:
        TypeError: ``neg`` is not a floating-point tensor.
        ValueError: ``neg`` is not a non-empty 1-D tensor, or a score lies outside ``[-1, 1]``.
    """
    pos = _check_range(pos, "pos", -1.0, 1.0)
    if not isinstance(neg, Tensor) or not neg.is_floating_point():
        raise TypeError(f"neg must be a floating-point tensor, got {type(neg).__name__}")
    if neg.ndim != 1 or neg.numel() == 0:
        raise ValueError(f"neg must be a non-empty 1-D tensor, got shape {tuple(neg.shape)}")
    c = torch.cat([torch.tensor([pos], dtype=torch.float64), neg.double()])
    if bool((c.abs() > 1.0).any()):
        raise ValueError(f"scores must be cosines in [-1, 1], got range [{float(c.min())}, {float(c.max())}]")
    n = c.numel()
    scale = max(float(torch.linalg.vector_norm(c)), 1.0)
    idx = (torch.arange(n)[None, :] - torch.arange(n)[:, None]) % n
    circulant = c[idx]  # circulant[i, j] = c[(j - i) mod n]
    pad = math.sqrt(max(0.0, 1.0 - (float(c @ c) / scale**2)))
    b = torch.cat([circulant.T / scale, torch.full((n, 1), pad, dtype=torch.float64)], dim=1)
    a = torch.cat([torch.eye(n, dtype=torch.float64), torch.zeros(n, 1, dtype=torch.float64)], dim=1)
    return a.float(), b.float(), scale


def anchor_at_temperature(pos: float, neg: Tensor, tau: float) -> AnchorAtTemperature:
    """Weights, hardness, positive pull and loss of one anchor at temperature ``τ``.

    The weights come from :func:`cldiag.functional.penalty_weights`, the hardness numbers from
    :func:`cldiag.functional.hardness` and the loss from :func:`cldiag.losses.info_nce`, the last two on the
    :func:`anchor_batch` that holds exactly this anchor's scores.

    Args:
        pos: positive cosine in ``[-1, 1]``.
        neg: ``(K,)`` negative cosines in ``[-1, 1]``; ``K >= 2`` for a meaningful entropy.
        tau: temperature ``> 0``.

    Returns:
        :class:`AnchorAtTemperature`.

    Raises:
        TypeError: bad input types.
        ValueError: bad shapes, scores outside ``[-1, 1]`` or ``tau <= 0``.
    """
    a, b, scale = anchor_batch(pos, neg)
    tau_batch = float(tau) / scale
    h = F.hardness(a, b, tau_batch)
    pos_prob = float(h.pos_prob)
    return AnchorAtTemperature(
        scores=neg.float(),
        weights=F.penalty_weights(neg.float(), tau),
        entropy=float(h.entropy),
        effective_negatives=float(h.effective_negatives),
        pos_prob=pos_prob,
        positive_pull=1.0 - pos_prob,
        loss=float(info_nce(a, b, tau_batch)),
    )


def anchor_temperature_curves(pos: float, neg: Tensor, taus: Sequence[float]) -> pd.DataFrame:
    """Entropy, effective negatives and positive probability of one anchor over a grid of ``τ``.

    Computed by :func:`cldiag.functional.temperature_curves` on the :func:`anchor_batch`, and returned as a
    ``temperature`` table of one step (``step, tau, curve, value``), the frame the dashboard's temperature
    figure draws. The uniformity curve is left out: it would describe the artificial batch, not the anchor.

    Args:
        pos: positive cosine in ``[-1, 1]``.
        neg: ``(K,)`` negative cosines.
        taus: positive temperatures.

    Returns:
        DataFrame ``step (0), tau, curve, value``; curves ``entropy``, ``effective_negatives``, ``pos_prob``.
    """
    a, b, scale = anchor_batch(pos, neg)
    taus_arr = np.asarray(list(taus), dtype=np.float64)
    if taus_arr.ndim != 1 or taus_arr.size == 0 or not bool(np.all(taus_arr > 0)):
        raise ValueError(f"taus must be a non-empty sequence of positive numbers, got {list(taus)!r}")
    curves = F.temperature_curves(a, b, [float(t) / scale for t in taus_arr])
    parts = []
    for name, values in (
        (schema.CURVE_ENTROPY, curves.entropy),
        (schema.CURVE_EFFECTIVE_NEGATIVES, curves.effective_negatives),
        (schema.CURVE_POS_WEIGHT, curves.pos_prob),
    ):
        parts.append(
            pd.DataFrame({"step": 0, "tau": taus_arr, "curve": name, "value": values.double().numpy()})
        )
    return pd.concat(parts, ignore_index=True)


def snapshot_anchor_scores(
    a: Tensor,
    b: Tensor | None = None,
    *,
    anchor: int = 0,
    max_negatives: int = 64,
    seed: int = 0,
) -> tuple[float | None, Tensor]:
    """One anchor's positive and negative cosines taken from a real embedding snapshot.

    Args:
        a: ``(N, d)`` snapshot of the first modality or view.
        b: ``(N, d)`` matched second modality (row ``i`` pairs with ``a[i]``), or None for a one-modality
            snapshot, which has no positive partner: then the positive is None and the negatives are the
            anchor's cosines to the other rows of ``a``.
        anchor: row index of the anchor.
        max_negatives: draw at most this many negatives (a random subset, like one batch).
        seed: seed of that subset.

    Returns:
        ``(positive cosine or None, negatives descending)``.

    Raises:
        ValueError: too few rows, ``anchor`` out of range or mismatched shapes.
    """
    n = a.shape[0]
    if n < 2:
        raise ValueError(f"a snapshot needs at least 2 rows, got shape {tuple(a.shape)}")
    if not 0 <= anchor < n:
        raise ValueError(f"anchor must index a row of a (0 … {n - 1}), got {anchor}")
    max_negatives = _check_int(max_negatives, "max_negatives", 1)
    other = a if b is None else b
    row = F.similarity_matrix(a[anchor : anchor + 1], other)[0]
    pos = None if b is None else float(row[anchor])
    keep = torch.cat([torch.arange(anchor), torch.arange(anchor + 1, n)])
    if keep.numel() > max_negatives:
        gen = torch.Generator().manual_seed(seed)
        keep = keep[torch.randperm(keep.numel(), generator=gen)[:max_negatives]]
    return pos, row[keep].sort(descending=True).values


def split_snapshot(matrix: np.ndarray, rows: pd.DataFrame) -> tuple[Tensor, Tensor | None]:
    """Turn a snapshot (:meth:`cldiag.reader.Run.embedding_matrix`) into matched modality matrices.

    Args:
        matrix: ``(N, d)`` snapshot vectors.
        rows: the snapshot's other columns, with ``sample_id`` and ``modality`` per row of ``matrix``.

    Returns:
        ``(a, b)``: for two modalities, the rows of the first modality (in first-seen order) and of the
        second, matched by ``sample_id`` (samples missing on either side are dropped); for one modality,
        ``(all rows, None)``.

    Raises:
        ValueError: ``rows`` does not describe ``matrix``, more than two modalities, or no matched pair.
    """
    if matrix.ndim != 2 or len(rows) != matrix.shape[0]:
        raise ValueError(f"rows ({len(rows)}) must describe each row of matrix {matrix.shape}")
    z = torch.from_numpy(np.array(matrix, dtype=np.float32))  # a copy: reader arrays are read-only
    modality = rows["modality"].to_numpy()
    names = list(dict.fromkeys(modality))
    if len(names) == 1:
        return z, None
    if len(names) != 2:
        raise ValueError(f"a snapshot holds one or two modalities, got {names}")
    ids = rows["sample_id"].to_numpy()
    first, second = (np.flatnonzero(modality == name) for name in names)
    where_second = {sid: i for i, sid in zip(second, ids[second], strict=True)}
    pairs = [(i, where_second[ids[i]]) for i in first if ids[i] in where_second]
    if not pairs:
        raise ValueError(f"no sample_id appears in both modalities {names}")
    ia, ib = (torch.tensor(col) for col in zip(*pairs, strict=True))
    return z[ia], z[ib]


# ------------------------------------------------------------------------------ 2. alignment and uniformity


class ClusteredViews(NamedTuple):
    """Two views of points drawn in clusters on the unit circle (``d = 2``) or sphere (``d = 3``).

    Attributes:
        a: ``(N, d)`` first view, unit rows.
        b: ``(N, d)`` second view, unit rows; ``b[i]`` is the positive of ``a[i]``.
        labels: ``(N,)`` int64 cluster of each point.
        centers: ``(clusters, d)`` unit cluster centres.
    """

    a: Tensor
    b: Tensor
    labels: Tensor
    centers: Tensor


class AlignUniform(NamedTuple):
    """Alignment (``α = 2``) and uniformity (``t = 2``) of two views, both from :mod:`cldiag.functional`."""

    alignment: float
    uniformity: float


def cluster_centers(clusters: int, dim: int) -> Tensor:
    """``clusters`` evenly spread unit vectors: equal angles on the circle, a Fibonacci lattice on the sphere.

    Args:
        clusters: number of centres, ``>= 1``.
        dim: 2 (circle) or 3 (sphere).

    Returns:
        ``(clusters, dim)`` float32 unit vectors.

    Raises:
        ValueError: ``clusters < 1`` or ``dim`` not 2 or 3.
    """
    clusters = _check_int(clusters, "clusters", 1)
    if dim == 2:
        angle = 2.0 * np.pi * np.arange(clusters) / clusters + np.pi / 2
        return torch.from_numpy(np.stack([np.cos(angle), np.sin(angle)], axis=1)).float()
    if dim == 3:
        if clusters == 1:
            return torch.tensor([[0.0, 0.0, 1.0]])
        i = np.arange(clusters) + 0.5
        z = 1.0 - 2.0 * i / clusters
        r = np.sqrt(1.0 - z * z)
        phi = np.pi * (1.0 + math.sqrt(5.0)) * i
        return torch.from_numpy(np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)).float()
    raise ValueError(f"dim must be 2 (circle) or 3 (sphere), got {dim}")


def _von_mises_fisher(mu: np.ndarray, kappa: float, rng: np.random.Generator) -> np.ndarray:
    """One vMF draw around each row of ``mu`` (unit, ``d`` = 2 or 3); ``kappa = inf`` returns ``mu``."""
    n, dim = mu.shape
    if math.isinf(kappa):
        return mu.copy()
    if dim == 2:
        angle = np.arctan2(mu[:, 1], mu[:, 0]) + rng.vonmises(0.0, kappa, size=n)
        return np.stack([np.cos(angle), np.sin(angle)], axis=1)
    # Wood (1994) for the 2-sphere has a closed form for the cosine w to the mean direction.
    u = rng.random(n)
    w = 2.0 * u - 1.0 if kappa == 0 else 1.0 + np.log(u + (1.0 - u) * np.exp(-2.0 * kappa)) / kappa
    w = np.clip(w, -1.0, 1.0)
    # A random unit tangent at mu: project a Gaussian off mu and normalize.
    g = rng.standard_normal((n, dim))
    g -= (g * mu).sum(axis=1, keepdims=True) * mu
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    return w[:, None] * mu + np.sqrt(1.0 - w * w)[:, None] * g


def clustered_views(
    n: int = 240,
    *,
    dim: int = 2,
    clusters: int = 4,
    concentration: float = 20.0,
    view_noise: float = 0.1,
    seed: int = 0,
) -> ClusteredViews:
    """Points in von Mises–Fisher clusters on the circle or sphere, each seen through two noisy views.

    Point ``i`` is drawn around centre ``labels[i]`` with concentration ``κ`` (0 = uniform on the whole
    sphere, ``inf`` = exactly on the centre); each view adds isotropic Gaussian noise of std ``view_noise``
    and projects back onto the sphere, as an augmentation would.

    Args:
        n: number of points, ``>= 2``.
        dim: 2 (circle) or 3 (sphere).
        clusters: number of clusters, ``>= 1``; points are split among them evenly.
        concentration: vMF ``κ >= 0`` (``float("inf")`` allowed).
        view_noise: std of the per-view noise, ``>= 0``.
        seed: random seed.

    Returns:
        :class:`ClusteredViews`.

    Raises:
        TypeError: non-integer ``n`` or ``clusters``.
        ValueError: out-of-range arguments.
    """
    n = _check_int(n, "n", 2)
    if not (concentration >= 0):
        raise ValueError(f"concentration must be >= 0 (inf allowed), got {concentration}")
    view_noise = _check_range(view_noise, "view_noise", 0.0, 100.0)
    centers = cluster_centers(clusters, dim)
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % centers.shape[0]
    x = _von_mises_fisher(centers.double().numpy()[labels], float(concentration), rng)
    views = [F.normalize(torch.from_numpy(x + view_noise * rng.standard_normal(x.shape))) for _ in range(2)]
    return ClusteredViews(views[0], views[1], torch.from_numpy(labels).long(), centers)


def align_uniform(views: ClusteredViews) -> AlignUniform:
    """Alignment of the view pairs and uniformity of the first view (Wang & Isola's ``α = t = 2``)."""
    return AlignUniform(float(F.alignment(views.a, views.b)), float(F.uniformity(views.a)))


def align_uniform_sweep(
    concentrations: Sequence[float],
    *,
    n: int = 240,
    dim: int = 2,
    clusters: int = 4,
    view_noise: float = 0.1,
    seed: int = 0,
) -> pd.DataFrame:
    """Where :func:`clustered_views` land on the alignment–uniformity plane as the concentration varies.

    Returns:
        DataFrame ``concentration, alignment, uniformity``, one row per concentration, in the given order.
    """
    rows = []
    for kappa in concentrations:
        au = align_uniform(
            clustered_views(
                n, dim=dim, clusters=clusters, concentration=kappa, view_noise=view_noise, seed=seed
            )
        )
        rows.append({"concentration": float(kappa), "alignment": au.alignment, "uniformity": au.uniformity})
    return pd.DataFrame(rows, columns=["concentration", "alignment", "uniformity"])


def uniform_sphere_uniformity(dim: int, t: float = 2.0) -> float:
    r"""Uniformity of the uniform distribution on the sphere :math:`S^{d-1}` in closed form (a quadrature).

    For independent uniform ``x, y`` the cosine ``u = xᵀy = cos φ`` has density ``∝ sin^{d−2} φ`` and
    ``‖x − y‖² = 2 − 2u``, so

    .. math::

        \log \mathbb{E}\, e^{-t\lVert x-y\rVert^2}
        = \log \frac{\int_0^\pi e^{-2t(1-\cos\varphi)} \sin^{d-2}\varphi \, d\varphi}
                    {\int_0^\pi \sin^{d-2}\varphi \, d\varphi}

    This is the best (lowest) uniformity a large batch can reach in ``d`` dimensions: the reference the
    explainers mark as "uniform". Check values for ``t = 2``: ``d = 2`` → ``−4 + log I₀(4) ≈ −1.575``;
    ``d = 3`` → ``log((1 − e⁻⁸)/8) ≈ −2.079``; ``d = 8`` → −3.0825; ``d = 128`` → −3.9375.

    Args:
        dim: dimension ``d >= 2``.
        t: the uniformity scale, ``> 0``.

    Returns:
        The uniformity value (float, ``<= 0``).

    Raises:
        ValueError: ``dim < 2`` or ``t <= 0``.
    """
    dim = _check_int(dim, "dim", 2)
    if not t > 0:
        raise ValueError(f"t must be > 0, got {t}")
    phi = np.linspace(0.0, np.pi, 20001)
    weight = np.sin(phi) ** (dim - 2)
    integrand = np.exp(-2.0 * t * (1.0 - np.cos(phi))) * weight
    # Trapezoid rule on a uniform grid: the step cancels in the ratio, and both ends of sin^(d-2) vanish
    # for d > 2 (for d = 2 they count half, as the rule says).
    return float(np.log(_trapezoid_sum(integrand) / _trapezoid_sum(weight)))


def _trapezoid_sum(y: np.ndarray) -> float:
    return float(y.sum() - 0.5 * (y[0] + y[-1]))


# ------------------------------------------------------------------------------ 3. modality gap


class GapShift(NamedTuple):
    """The shift experiment of Liang et al. (2022) on one pair of modalities.

    Attributes:
        deltas: ``(S,)`` shifts; 0 = as given, 1 = the gap closed, < 0 = the gap widened.
        gap: ``(S,)`` modality gap ``‖Δ‖`` after each shift.
        loss: ``(S,)`` CLIP loss at the chosen ``τ`` after each shift.
        tau: that temperature.
    """

    deltas: np.ndarray
    gap: np.ndarray
    loss: np.ndarray
    tau: float


def two_cones(
    n: int = 128,
    *,
    dim: int = 16,
    cone_angle: float = 33.0,
    axis_angle: float = 60.0,
    pair_noise: float = 0.8,
    seed: int = 0,
) -> tuple[Tensor, Tensor]:
    """Paired embeddings of two modalities, each inside its own cone on the sphere.

    Modality A lies at angle ``cone_angle`` around the axis ``u_a``, modality B around ``u_b``; the axes
    are ``axis_angle`` apart, in the plane of the first two coordinates. The content of pair ``i`` is a unit
    vector ``c_i`` in the remaining ``d − 2`` coordinates (orthogonal to both axes), shared by both sides
    up to ``pair_noise``:

    ``a_i = cos θ · u_a + sin θ · c_i``,  ``b_i = cos θ · u_b + sin θ · normalize(c_i + σ·g_i)``.

    So the cone (mean cosine within a modality) is ``≈ cos² θ``, the gap is ``2 cos θ · sin(φ/2)``, and
    ``cone_angle = 0, axis_angle = 90`` gives two constant, orthogonal modalities with gap exactly √2.
    The defaults give a gap ≈ 0.84 and cones ≈ 0.70, close to CLIP's (0.82 on MSCOCO; 0.67–0.72 cones).
    ``pair_noise`` plays the part of mismatched pairs in Liang et al.'s simulation.

    Args:
        n: number of pairs, ``>= 2``.
        dim: embedding dimension, ``>= 3``.
        cone_angle: angle θ (degrees, 0–90) between each embedding and its modality's axis.
        axis_angle: angle φ (degrees, 0–180) between the two axes.
        pair_noise: std σ of the noise between a pair's contents, ``>= 0``.
        seed: random seed.

    Returns:
        ``(a, b)``: two ``(n, dim)`` float32 tensors of unit rows.

    Raises:
        TypeError: non-integer ``n`` or ``dim``.
        ValueError: out-of-range arguments.
    """
    n = _check_int(n, "n", 2)
    dim = _check_int(dim, "dim", 3)
    theta = math.radians(_check_range(cone_angle, "cone_angle", 0.0, 90.0))
    phi = math.radians(_check_range(axis_angle, "axis_angle", 0.0, 180.0))
    pair_noise = _check_range(pair_noise, "pair_noise", 0.0, 100.0)
    gen = torch.Generator().manual_seed(seed)
    u_a = torch.zeros(dim, dtype=torch.float64)
    u_a[0], u_a[1] = math.cos(phi / 2), math.sin(phi / 2)
    u_b = u_a.clone()
    u_b[1] = -u_b[1]
    content = torch.zeros(n, dim, dtype=torch.float64)
    content[:, 2:] = torch.randn(n, dim - 2, generator=gen, dtype=torch.float64)
    partner = content.clone()
    partner[:, 2:] += pair_noise * torch.randn(n, dim - 2, generator=gen, dtype=torch.float64)
    content, partner = F.normalize(content).double(), F.normalize(partner).double()
    a = math.cos(theta) * u_a + math.sin(theta) * content
    b = math.cos(theta) * u_b + math.sin(theta) * partner
    return a.float(), b.float()


def gap_shift(a: Tensor, b: Tensor, tau: float, deltas: Sequence[float] | None = None) -> GapShift:
    r"""Move both modalities along the gap vector and record the gap and the CLIP loss (Liang et al. 2022).

    With :math:`\Delta` the gap vector of :func:`cldiag.functional.modality_gap` before the shift,

    .. math::

        a_i(\delta) = \operatorname{normalize}(\hat a_i - \tfrac{\delta}{2}\Delta), \qquad
        b_i(\delta) = \operatorname{normalize}(\hat b_i + \tfrac{\delta}{2}\Delta)

    so ``δ = 0`` is the embedding as given, ``δ = 1`` closes the gap and ``δ < 0`` widens it (beyond 1 the
    modalities swap sides, a mirror image, so the default grid stops there). The loss is
    :func:`cldiag.losses.clip_loss` with logit scale ``1/τ``.

    Args:
        a: ``(N, d)`` first modality.
        b: ``(N, d)`` second modality, ``b[i]`` paired with ``a[i]``.
        tau: temperature ``> 0``.
        deltas: shifts to evaluate (default: 21 values from −1 to 1; the curves are smooth in δ).

    Returns:
        :class:`GapShift`.
    """
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    grid = np.linspace(-1.0, 1.0, 21) if deltas is None else np.asarray(list(deltas), dtype=np.float64)
    n, dim = a.shape
    delta_vec = F.modality_gap(a, b).gap_vector
    half = torch.from_numpy(grid / 2).float()[:, None, None]
    # Every shift in one (S·N, d) normalization; the gap and the loss are then read per shift.
    shifted_a = F.normalize((F.normalize(a)[None] - half * delta_vec).reshape(-1, dim)).reshape(-1, n, dim)
    shifted_b = F.normalize((F.normalize(b)[None] + half * delta_vec).reshape(-1, dim)).reshape(-1, n, dim)
    gaps, losses = [], []
    for sa, sb in zip(shifted_a, shifted_b, strict=True):
        gaps.append(float(F.modality_gap(sa, sb).gap))
        losses.append(float(clip_loss(sa, sb, 1.0 / tau)))
    return GapShift(grid, np.asarray(gaps), np.asarray(losses), float(tau))


def principal_coordinates(*blocks: Tensor) -> list[np.ndarray]:
    """Project several ``(N_k, d)`` blocks onto the top two principal axes of all of them together.

    A view for drawing only (not a diagnostic), computed by the dashboard's own PCA
    (:func:`cldiag.projection.pca_2d`: unit rows, one centring, signs fixed), so a Concepts picture and
    the Embeddings page of a run agree. The blocks share one centring and one basis, so the geometry
    between them, such as a modality gap, is kept; ``d = 1`` gets a zero second axis.

    Args:
        *blocks: matrices with the same number of columns.

    Returns:
        One ``(N_k, 2)`` float64 array per block.

    Raises:
        ValueError: no blocks.
    """
    if not blocks:
        raise ValueError("principal_coordinates needs at least one block")
    coords, _ = pca_2d(torch.cat([blk.double() for blk in blocks]).numpy())
    return list(np.split(coords.astype(np.float64), np.cumsum([blk.shape[0] for blk in blocks])[:-1]))


def modality_points(a: Tensor, b: Tensor, names: tuple[str, str] = ("image", "text")) -> pd.DataFrame:
    """Both modalities in their joint 2-D principal coordinates, as the Modality gap page's points frame.

    Returns:
        DataFrame ``x, y, step (0), sample_id, modality, label (missing)``; pair ``i`` shares sample id ``i``.
    """
    coords = principal_coordinates(a, b)
    parts = [
        pd.DataFrame(
            {
                "x": xy[:, 0],
                "y": xy[:, 1],
                "step": np.int64(0),
                "sample_id": np.arange(xy.shape[0], dtype=np.int64),
                "modality": name,
                "label": pd.array([pd.NA] * xy.shape[0], dtype="Int64"),
            }
        )
        for name, xy in zip(names, coords, strict=True)
    ]
    return pd.concat(parts, ignore_index=True)


# ------------------------------------------------------------------------------ 4. dimensional collapse


class CollapseStats(NamedTuple):
    """Four views of one embedding matrix, each beside its value for healthy isotropic embeddings.

    Attributes:
        eigenvalues: ``(d,)`` covariance spectrum of the unit rows, descending (``functional.spectrum``).
        effective_rank: RankMe (:func:`~cldiag.functional.effective_rank`); healthy ≈ ``d``.
        uniformity: ``t = 2`` (:func:`~cldiag.functional.uniformity`); healthy ≈ the uniform reference.
        std: :func:`~cldiag.functional.std_of_l2_normalized`; healthy ≈ ``1/√d``.
        dim: ``d``.
        uniformity_reference: :func:`uniform_sphere_uniformity` of ``d``.
        std_reference: ``1/√d``.
    """

    eigenvalues: np.ndarray
    effective_rank: float
    uniformity: float
    std: float
    dim: int
    uniformity_reference: float
    std_reference: float


def low_rank_embeddings(
    n: int = 512,
    dim: int = 64,
    active: int = 8,
    *,
    residual: float = 1e-3,
    rotate: bool = True,
    seed: int = 0,
) -> Tensor:
    """Gaussian embeddings whose variance lives in ``active`` of ``dim`` dimensions.

    The first ``active`` coordinates are standard normal, the others have std ``residual`` (0 = exactly
    collapsed). With ``rotate`` the matrix is turned by a random orthogonal matrix, as a network would: the
    collapse is then invisible coordinate by coordinate, which is what fools ``std_of_l2_normalized``.

    Args:
        n: number of rows, ``>= 2``.
        dim: embedding dimension, ``>= 1``.
        active: dimensions that carry variance, ``1 <= active <= dim``.
        residual: std of the other dimensions, ``>= 0``.
        rotate: apply a random rotation.
        seed: random seed.

    Returns:
        ``(n, dim)`` float32 tensor (not normalized; every diagnostic normalizes itself).

    Raises:
        TypeError: non-integer sizes.
        ValueError: out-of-range arguments.
    """
    n = _check_int(n, "n", 2)
    dim = _check_int(dim, "dim", 1)
    active = _check_int(active, "active", 1)
    if active > dim:
        raise ValueError(f"active must be <= dim, got active={active}, dim={dim}")
    residual = _check_range(residual, "residual", 0.0, 1.0)
    gen = torch.Generator().manual_seed(seed)
    scale = torch.full((dim,), residual, dtype=torch.float64)
    scale[:active] = 1.0
    z = torch.randn(n, dim, generator=gen, dtype=torch.float64) * scale
    if rotate:
        z = z @ _rotation(dim, seed)
    return z.float()


@functools.lru_cache(maxsize=16)
def _rotation(dim: int, seed: int) -> Tensor:
    """A Haar-random ``dim × dim`` rotation; cached because a QR dominates the cost of a slider move."""
    gen = torch.Generator().manual_seed(seed + 1)
    q, r = torch.linalg.qr(torch.randn(dim, dim, generator=gen, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))  # the sign fix makes q Haar-distributed


def spectrum_frame(eigenvalues: np.ndarray, modality: str = "synthetic") -> pd.DataFrame:
    """Eigenvalues as the ``spectra`` table of one step (``step, modality, index, eigenvalue``)."""
    values = np.asarray(eigenvalues, dtype=np.float64)
    return pd.DataFrame(
        {"step": np.int64(0), "modality": modality, "index": np.arange(values.size), "eigenvalue": values}
    )


def collapse_stats(z: Tensor) -> CollapseStats:
    """Spectrum, effective rank, uniformity and std of ``z``, with the healthy reference of each."""
    dim = z.shape[1]
    return CollapseStats(
        eigenvalues=F.spectrum(z).double().numpy(),
        effective_rank=float(F.effective_rank(z)),
        uniformity=float(F.uniformity(z)),
        std=float(F.std_of_l2_normalized(z)),
        dim=dim,
        uniformity_reference=uniform_sphere_uniformity(dim) if dim >= 2 else 0.0,
        std_reference=1.0 / math.sqrt(dim),
    )


# ------------------------------------------------------------------------------ 5. score distributions


class ScoreStats(NamedTuple):
    """Score distributions of a batch and what they mean for retrieval and the loss.

    Attributes:
        histograms: ``histograms`` table of one step (``step, kind, bin_left, bin_right, count``), the frame
            the Scores page draws.
        retrieval: in-batch top-1 retrieval accuracy ``a → b``; chance is ``1/B``.
        loss: InfoNCE loss ``a → b`` at ``τ``.
    """

    histograms: pd.DataFrame
    retrieval: float
    loss: float


def overlap_to_similarity(overlap: float, dim: int) -> float:
    r"""Mean positive cosine ``ρ`` at which positives overlap the negatives by ``overlap``.

    Negatives of random unit vectors in ``d`` dimensions have cosines ``≈ N(0, 1/d)``; taking positives as
    ``≈ N(ρ, 1/d)``, the overlap coefficient of the two normals is ``2Φ(−ρ√d/2)``, so

    .. math:: \rho = -\frac{2}{\sqrt d}\,\Phi^{-1}\!\left(\frac{\text{overlap}}{2}\right)

    capped at 0.99. The measured overlap of a finite batch scatters around the requested one.

    Args:
        overlap: requested overlap in ``[0, 1]`` (1 = positives indistinguishable from negatives).
        dim: embedding dimension ``>= 1``.

    Returns:
        ``ρ`` in ``[0, 0.99]``.
    """
    overlap = _check_range(overlap, "overlap", 0.0, 1.0)
    dim = _check_int(dim, "dim", 1)
    if overlap >= 1.0:
        return 0.0
    if overlap <= 0.0:
        return 0.99
    return min(0.99, -2.0 / math.sqrt(dim) * NormalDist().inv_cdf(overlap / 2.0))


def scored_pairs(
    n: int = 128, *, dim: int = 64, overlap: float = 0.2, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Pairs ``(a_i, b_i)`` whose positive cosines overlap the negative cosines by about ``overlap``.

    ``a_i`` are random unit vectors; ``b_i = normalize(ρ a_i + √(1−ρ²) g_i)`` with random unit ``g_i`` and
    ``ρ`` from :func:`overlap_to_similarity`, so positive scores centre near ``ρ`` and negatives near 0.

    Args:
        n: batch size, ``>= 2``.
        dim: embedding dimension, ``>= 1``.
        overlap: requested overlap in ``[0, 1]``.
        seed: random seed.

    Returns:
        ``(a, b)``: two ``(n, dim)`` float32 tensors of unit rows.
    """
    n = _check_int(n, "n", 2)
    rho = overlap_to_similarity(overlap, dim)
    gen = torch.Generator().manual_seed(seed)
    a = F.normalize(torch.randn(n, dim, generator=gen))
    g = F.normalize(torch.randn(n, dim, generator=gen))
    return a, F.normalize(rho * a + math.sqrt(1.0 - rho * rho) * g)


def histogram_frame(h: F.ScoreHistograms, step: int = 0) -> pd.DataFrame:
    """A :class:`cldiag.functional.ScoreHistograms` as rows of the ``histograms`` table (one step)."""
    edges = h.edges.double().numpy()
    parts = [
        pd.DataFrame(
            {
                "step": np.int64(step),
                "kind": kind,
                "bin_left": edges[:-1],
                "bin_right": edges[1:],
                "count": counts.numpy().astype(np.int64),
            }
        )
        for kind, counts in (
            (schema.HIST_POS, h.pos),
            (schema.HIST_NEG, h.neg),
            (schema.HIST_HARD_NEG, h.hard_neg),
        )
    ]
    return pd.concat(parts, ignore_index=True)


def score_stats(a: Tensor, b: Tensor, tau: float, *, bins: int = 50) -> ScoreStats:
    """Score histograms, in-batch retrieval accuracy and InfoNCE loss of a batch (all from cldiag)."""
    return ScoreStats(
        histograms=histogram_frame(F.score_histograms(a, b, bins=bins)),
        retrieval=float(F.retrieval_accuracy(a, b)),
        loss=float(info_nce(a, b, tau)),
    )
