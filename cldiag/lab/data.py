"""Offline data sets for the lab: small enough to train on a laptop CPU in seconds, nothing downloaded.

Six sets, each a plain object that hands out batches of two views (or two modalities) as tensors:

- :class:`DigitsViews` -- scikit-learn's 8×8 digits (bundled with scikit-learn), two augmented views of each
  image: ±1 px shift, Gaussian noise, a random erased square. One strength knob in [0, 1] scales all three.
- :class:`ClutteredDigitsViews` -- the same digits placed beside a loud "clutter" vector that changes between
  views and between samples. Raw-input kNN is poor here (the clutter dominates cosine similarity), so
  a learned encoder has something to win: on plain digits raw-pixel kNN (≈0.98) beats every small trained
  encoder, which would teach that contrastive training hurts.
- :class:`PairedDigitsCaptions` -- two modalities: a digit image and a noisy 16-d "caption" vector that
  describes the digit (one-hot digit + six attributes such as parity or "has a closed loop").
- :class:`HiddenPrototypes` -- 50 fine-grained classes whose signal lives in 8 dims under 56 dims of loud
  nuisance that changes between views. Raw kNN is near chance; with 50 classes a small batch rarely holds two
  samples of one class, so positives become easy, which is the regime where DCL's decoupling matters.
- :class:`ImbalancedPrototypes` -- :class:`HiddenPrototypes` with a long tail: a few frequent classes hold
  most samples, many rare classes a few each (for iSogCLR's per-sample temperatures).
- :class:`XorTriples` -- three modalities ``a``, ``b``, ``c = a XOR b`` (Symile's synthetic set): every
  pair is independent, so only the whole triple carries information.
- :class:`GaussianToy` -- the 16-d toy of Jing et al. (ICLR 2022): x ~ N(0, I₁₆); each view adds Gaussian
  noise with one std on dims 0–7 and another on dims 8–15. Strong noise on 8–15 collapses those
  dimensions of a linear encoder trained with InfoNCE.

Every set draws randomness from a ``torch.Generator`` it owns, so a seed fixes the whole run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "CAPTION_ATTRIBUTES",
    "ClutteredDigitsViews",
    "DigitsViews",
    "GaussianToy",
    "HiddenPrototypes",
    "ImbalancedPrototypes",
    "PairedDigitsCaptions",
    "ViewBatch",
    "XorTriples",
    "augment_digits",
    "digit_captions",
    "load_digits_split",
]

HELD_OUT = 397
"""Held-out images of the 1797 digits (≈22 %): enough for a stable 5-NN accuracy, leaves 1400 to train."""


@dataclass(frozen=True)
class ViewBatch:
    """One training batch: two views (or modalities) of the same samples, row i of ``a`` pairs row i of ``b``.

    Attributes:
        a: First view / modality, shape (B, ...).
        b: Second view / modality, shape (B, ...).
        labels: Class labels (B,) int64, or None where the data set has none.
        c: Third modality (B, ...) for three-modality data (:class:`XorTriples`), else None.
        index: Training-set ids (B,) int64 of the rows, for losses with per-sample state (iSogCLR's τ_i);
            None where the data set does not hand them out.
    """

    a: Tensor
    b: Tensor
    labels: Tensor | None
    c: Tensor | None = None
    index: Tensor | None = None


def _check_strength(strength: float) -> None:
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"augmentation strength must lie in [0, 1], got {strength}")


def load_digits_split(seed: int = 0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Load scikit-learn's digits as float images in [0, 1] and split off a fixed held-out set.

    Args:
        seed: Seed of the split permutation.

    Returns:
        ``(x_train, y_train, x_test, y_test)``; images (N, 1, 8, 8) float32, labels (N,) int64;
        1400 training and 397 held-out images.
    """
    from sklearn.datasets import load_digits  # local: scikit-learn import is slow and only the lab needs it

    digits = load_digits()
    x = torch.from_numpy(digits.images.astype(np.float32) / 16.0).unsqueeze(1)
    y = torch.from_numpy(digits.target.astype(np.int64))
    order = torch.from_numpy(np.random.default_rng(seed).permutation(len(y)))
    test, train = order[:HELD_OUT], order[HELD_OUT:]
    return x[train], y[train], x[test], y[test]


def augment_digits(x: Tensor, strength: float, generator: torch.Generator) -> Tensor:
    """Augment a batch of 8×8 digit images: random ±1 px shift, Gaussian noise, one erased square.

    At ``strength`` s: each image is shifted with probability s (by −1, 0 or +1 px per axis, zero fill),
    gets noise of std 0.3·s, and a random square covering about 30·s % of the image is set to 0.
    s = 0.5 is the reference setting of the lab (noise 0.15, a 3×3 erase ≈ 14 %).

    Args:
        x: Images (B, 1, 8, 8), values in [0, 1].
        strength: In [0, 1]; 0 returns a copy of ``x``.
        generator: Source of randomness.

    Returns:
        Augmented images, same shape as ``x``.

    Raises:
        ValueError: If ``x`` is not (B, 1, 8, 8) or ``strength`` is outside [0, 1].
    """
    if x.ndim != 4 or tuple(x.shape[1:]) != (1, 8, 8):
        raise ValueError(f"expected digit images (B, 1, 8, 8), got shape {tuple(x.shape)}")
    _check_strength(strength)
    if strength == 0:
        return x.clone()
    b = x.shape[0]
    # Shift: pad by one pixel, then read an 8×8 window whose corner moves by the offset.
    shifted = torch.rand(b, generator=generator) < strength
    offset = torch.randint(-1, 2, (b, 2), generator=generator) * shifted[:, None]
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    rows = (torch.arange(8)[None, :] + 1 + offset[:, :1])[:, :, None]
    cols = (torch.arange(8)[None, :] + 1 + offset[:, 1:])[:, None, :]
    out = padded[torch.arange(b)[:, None, None], 0, rows, cols].unsqueeze(1)
    out = out + 0.3 * strength * torch.randn(out.shape, generator=generator)
    side = round(float(np.sqrt(0.3 * strength * 64)))
    if side > 0:
        top = torch.randint(0, 9 - side, (b, 1, 1), generator=generator)
        left = torch.randint(0, 9 - side, (b, 1, 1), generator=generator)
        grid = torch.arange(8)
        inside = ((grid[None, :, None] >= top) & (grid[None, :, None] < top + side)) & (
            (grid[None, None, :] >= left) & (grid[None, None, :] < left + side)
        )
        out = out.masked_fill(inside.unsqueeze(1), 0.0)
    return out


class DigitsViews:
    """Two augmented views of scikit-learn digits, with a fixed held-out split for kNN evaluation.

    Example:
        >>> data = DigitsViews(strength=0.5, seed=0)
        >>> batch = data.sample(32)
        >>> tuple(batch.a.shape), tuple(batch.labels.shape)
        ((32, 1, 8, 8), (32,))
    """

    input_shape: tuple[int, ...] = (1, 8, 8)
    two_modality: bool = False

    def __init__(self, strength: float = 0.5, seed: int = 0) -> None:
        """Load the digits and prepare the generator.

        Args:
            strength: Augmentation strength in [0, 1], see :func:`augment_digits`.
            seed: Seed of the batch sampling and the augmentations (the split itself is fixed).

        Raises:
            ValueError: If ``strength`` is outside [0, 1].
        """
        _check_strength(strength)
        self.strength = strength
        self.generator = torch.Generator().manual_seed(seed)
        self.x_train, self.y_train, self.x_test, self.y_test = load_digits_split()

    def sample(self, batch_size: int) -> ViewBatch:
        """Draw ``batch_size`` training images (without replacement) and return two augmented views."""
        idx = torch.randperm(len(self.y_train), generator=self.generator)[:batch_size]
        x = self.x_train[idx]
        return ViewBatch(
            augment_digits(x, self.strength, self.generator),
            augment_digits(x, self.strength, self.generator),
            self.y_train[idx],
        )

    def eval_sets(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Un-augmented ``(x_train, y_train, x_test, y_test)`` for the kNN probe and snapshots."""
        return self.x_train, self.y_train, self.x_test, self.y_test


class ClutteredDigitsViews(DigitsViews):
    """Digits beside a loud clutter vector that is redrawn for every view: the class hides under nuisance.

    Each input is the 64 digit pixels concatenated with ``clutter_dims`` values drawn from N(0, σ²) with
    σ = ``clutter_std``, redrawn independently for every view and every held-out image. Cosine similarity of
    raw inputs is then dominated by the clutter and raw 5-NN accuracy is poor; a contrastive encoder can
    learn to ignore the clutter because it differs between the two views of one image (it is the
    augmentation). The digit half is augmented as in :class:`DigitsViews`.

    The held-out and training probe sets carry one fixed clutter draw each, so kNN numbers are repeatable.
    """

    def __init__(
        self, strength: float = 0.5, seed: int = 0, *, clutter_dims: int = 64, clutter_std: float = 0.5
    ) -> None:
        """Load the digits and draw the fixed clutter of the probe sets.

        Args:
            strength: Augmentation strength of the digit half, in [0, 1].
            seed: Seed of sampling, augmentation and clutter.
            clutter_dims: Number of clutter inputs appended to the 64 pixels (≥ 1).
            clutter_std: Standard deviation of the clutter (> 0); the digit pixels have std ≈ 0.4.

        Raises:
            ValueError: On out-of-range arguments.
        """
        if clutter_dims < 1:
            raise ValueError(f"clutter_dims must be >= 1, got {clutter_dims}")
        if not clutter_std > 0:
            raise ValueError(f"clutter_std must be > 0, got {clutter_std}")
        super().__init__(strength, seed)
        self.clutter_dims = clutter_dims
        self.clutter_std = clutter_std
        self.input_shape = (64 + clutter_dims,)
        probe = torch.Generator().manual_seed(10_000 + seed)
        self._probe_train = self._with_clutter(self.x_train, probe)
        self._probe_test = self._with_clutter(self.x_test, probe)

    def _with_clutter(self, x: Tensor, generator: torch.Generator) -> Tensor:
        clutter = self.clutter_std * torch.randn(x.shape[0], self.clutter_dims, generator=generator)
        return torch.cat([x.flatten(1), clutter], dim=1)

    def sample(self, batch_size: int) -> ViewBatch:
        """Draw ``batch_size`` images; each view is an augmented digit plus fresh clutter."""
        idx = torch.randperm(len(self.y_train), generator=self.generator)[:batch_size]
        x = self.x_train[idx]
        return ViewBatch(
            self._with_clutter(augment_digits(x, self.strength, self.generator), self.generator),
            self._with_clutter(augment_digits(x, self.strength, self.generator), self.generator),
            self.y_train[idx],
        )

    def eval_sets(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Un-augmented digits with one fixed clutter draw: ``(x_train, y_train, x_test, y_test)``."""
        return self._probe_train, self.y_train, self._probe_test, self.y_test


CAPTION_ATTRIBUTES: tuple[tuple[str, frozenset[int]], ...] = (
    ("even", frozenset({0, 2, 4, 6, 8})),
    ("greater than 4", frozenset({5, 6, 7, 8, 9})),
    ("prime", frozenset({2, 3, 5, 7})),
    ("has a closed loop", frozenset({0, 6, 8, 9})),
    ("perfect square", frozenset({0, 1, 4, 9})),
    ("multiple of 3", frozenset({0, 3, 6, 9})),
)
"""The six words of a caption after the one-hot digit; together 16 dims."""


def digit_captions(labels: Tensor, noise: float, generator: torch.Generator) -> Tensor:
    """Noisy 16-d "captions" of digits: one-hot digit (10) + six attributes (:data:`CAPTION_ATTRIBUTES`).

    Args:
        labels: Digit labels (B,) int64 in 0..9.
        noise: Standard deviation of the Gaussian noise added to every entry (≥ 0).
        generator: Source of randomness.

    Returns:
        Captions (B, 16) float32.

    Raises:
        ValueError: If a label is outside 0..9 or ``noise`` is negative.
    """
    if labels.ndim != 1 or (labels.numel() and (int(labels.min()) < 0 or int(labels.max()) > 9)):
        raise ValueError(f"labels must be a 1-D tensor of digits 0..9, got shape {tuple(labels.shape)}")
    if noise < 0:
        raise ValueError(f"caption noise must be >= 0, got {noise}")
    table = torch.zeros(10, 16)
    table[:, :10] = torch.eye(10)
    for k, (_, members) in enumerate(CAPTION_ATTRIBUTES):
        table[sorted(members), 10 + k] = 1.0
    captions = table[labels]
    return captions + noise * torch.randn(captions.shape, generator=generator)


class PairedDigitsCaptions(DigitsViews):
    """Two modalities: an augmented digit image (``a``, "image") and its noisy caption (``b``, "text").

    The caption noise (std 0.3 by default) is redrawn each time, which is the text side's augmentation.
    Each side gets its own encoder in the lab, as in CLIP.
    """

    two_modality = True
    caption_dim = 16

    def __init__(self, strength: float = 0.5, seed: int = 0, *, caption_noise: float = 0.3) -> None:
        """Load the digits and prepare the generator.

        Args:
            strength: Augmentation strength of the image side, in [0, 1].
            seed: Seed of sampling, augmentation and caption noise.
            caption_noise: Std of the caption noise (≥ 0).

        Raises:
            ValueError: On out-of-range arguments.
        """
        if caption_noise < 0:
            raise ValueError(f"caption_noise must be >= 0, got {caption_noise}")
        super().__init__(strength, seed)
        self.caption_noise = caption_noise
        probe = torch.Generator().manual_seed(20_000 + seed)
        self._captions_train = digit_captions(self.y_train, caption_noise, probe)
        self._captions_test = digit_captions(self.y_test, caption_noise, probe)

    def sample(self, batch_size: int) -> ViewBatch:
        """Draw ``batch_size`` pairs: augmented images and freshly noised captions."""
        idx = torch.randperm(len(self.y_train), generator=self.generator)[:batch_size]
        y = self.y_train[idx]
        return ViewBatch(
            augment_digits(self.x_train[idx], self.strength, self.generator),
            digit_captions(y, self.caption_noise, self.generator),
            y,
        )

    def eval_captions(self) -> tuple[Tensor, Tensor]:
        """Fixed noisy captions of the training and held-out images (one draw each)."""
        return self._captions_train, self._captions_test


class HiddenPrototypes:
    """Fine-grained synthetic classes: a class signal in a few dims, hidden under loud per-view nuisance.

    Class ``c`` has a centre ``μ_c`` on a sphere of radius 2 in ``signal_dims`` dims; a sample is
    ``s = μ_c + ε`` (ε ~ N(0, 0.3²) per dim, fixed per sample). A view of a sample is
    ``[s + N(0, 0.1²), n]`` with nuisance ``n ~ N(0, I)`` in ``nuisance_dims`` dims, redrawn for every view,
    so the nuisance is exactly what contrastive training must learn to ignore. Raw-input 5-NN accuracy is
    near chance (≈0.1 of 50 classes) while the signal dims alone give ≈0.94.

    Why this set exists: on digits raw-pixel kNN beats small trained encoders, and with 10 classes a small
    batch always holds same-class negatives that keep every positive hard. Here, with 50 classes, a batch of
    16 rarely does; the positive's softmax probability approaches 1 as training aligns the views, and
    NT-Xent's gradient, scaled by ``1 − p_pos`` (Yeh et al. 2022), fades while DCL's does not.
    """

    two_modality: bool = False

    def __init__(
        self,
        seed: int = 0,
        *,
        classes: int = 50,
        signal_dims: int = 8,
        nuisance_dims: int = 56,
        train_size: int = 2000,
        test_size: int = 500,
    ) -> None:
        """Draw the class centres, the fixed samples and the probe sets.

        The centres and samples depend only on the sizes (a fixed data seed), so every training seed sees
        the same data set; ``seed`` drives batch sampling and the per-view noise.

        Args:
            seed: Seed of batch sampling and view noise.
            classes: Number of classes (≥ 2).
            signal_dims: Dims that carry the class (≥ 1).
            nuisance_dims: Dims of per-view nuisance (≥ 0).
            train_size: Training samples (≥ classes).
            test_size: Held-out samples (≥ 1).

        Raises:
            ValueError: On out-of-range arguments.
        """
        if classes < 2 or signal_dims < 1 or nuisance_dims < 0 or train_size < classes or test_size < 1:
            raise ValueError(
                f"need classes >= 2, signal_dims >= 1, nuisance_dims >= 0, train_size >= classes and "
                f"test_size >= 1; got {classes}, {signal_dims}, {nuisance_dims}, {train_size}, {test_size}"
            )
        self.signal_dims, self.nuisance_dims = signal_dims, nuisance_dims
        self.input_shape: tuple[int, ...] = (signal_dims + nuisance_dims,)
        fixed = torch.Generator().manual_seed(1234)
        centres = 2.0 * torch.nn.functional.normalize(
            torch.randn(classes, signal_dims, generator=fixed), dim=1
        )
        self.y_train = torch.randint(classes, (train_size,), generator=fixed)
        self.y_test = torch.randint(classes, (test_size,), generator=fixed)
        self.s_train = centres[self.y_train] + 0.3 * torch.randn(train_size, signal_dims, generator=fixed)
        self.s_test = centres[self.y_test] + 0.3 * torch.randn(test_size, signal_dims, generator=fixed)
        self._probe_train = self._view(self.s_train, fixed)
        self._probe_test = self._view(self.s_test, fixed)
        self.generator = torch.Generator().manual_seed(seed)

    def _view(self, s: Tensor, generator: torch.Generator) -> Tensor:
        signal = s + 0.1 * torch.randn(s.shape, generator=generator)
        return torch.cat([signal, torch.randn(s.shape[0], self.nuisance_dims, generator=generator)], dim=1)

    def sample(self, batch_size: int) -> ViewBatch:
        """Draw ``batch_size`` samples (without replacement) and two views with fresh nuisance."""
        idx = torch.randperm(len(self.y_train), generator=self.generator)[:batch_size]
        s = self.s_train[idx]
        return ViewBatch(self._view(s, self.generator), self._view(s, self.generator), self.y_train[idx])

    def eval_sets(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Probe inputs with one fixed nuisance draw: ``(x_train, y_train, x_test, y_test)``."""
        return self._probe_train, self.y_train, self._probe_test, self.y_test


class GaussianToy:
    """The 16-d toy of Jing et al. (ICLR 2022): x ~ N(0, I₁₆), views add per-dimension-group noise.

    Each view is ``x + ε`` with ε ~ N(0, diag(σ²)), σ = ``noise_low`` on dims 0–7 and ``noise_high`` on dims
    8–15. With a linear encoder and InfoNCE, strong noise on 8–15 (e.g. 1.5) makes the loss discard those
    directions: the embedding spectrum collapses there. Weak noise (0.1) keeps the full spectrum.
    There are no labels.
    """

    input_shape: tuple[int, ...] = (16,)
    two_modality: bool = False

    def __init__(
        self, noise_high: float = 0.1, seed: int = 0, *, noise_low: float = 0.5, probe_size: int = 512
    ) -> None:
        """Prepare the generator and a fixed probe set for spectra and snapshots.

        Args:
            noise_high: Noise std on dims 8–15 (≥ 0).
            seed: Seed of all sampling.
            noise_low: Noise std on dims 0–7 (≥ 0).
            probe_size: Rows of the fixed probe set (≥ 17, more than the dimension).

        Raises:
            ValueError: On out-of-range arguments.
        """
        if noise_high < 0 or noise_low < 0:
            raise ValueError(f"noise stds must be >= 0, got noise_low={noise_low}, noise_high={noise_high}")
        if probe_size < 17:
            raise ValueError(f"probe_size must exceed the 16 dimensions, got {probe_size}")
        self.generator = torch.Generator().manual_seed(seed)
        self.std = torch.tensor([noise_low] * 8 + [noise_high] * 8)
        self.probe = torch.randn(probe_size, 16, generator=torch.Generator().manual_seed(30_000 + seed))

    def sample(self, batch_size: int) -> ViewBatch:
        """Draw ``batch_size`` points and two noisy views of each."""
        x = torch.randn(batch_size, 16, generator=self.generator)
        return ViewBatch(
            x + self.std * torch.randn(batch_size, 16, generator=self.generator),
            x + self.std * torch.randn(batch_size, 16, generator=self.generator),
            None,
        )


class ImbalancedPrototypes(HiddenPrototypes):
    """:class:`HiddenPrototypes` with a long-tailed class distribution: frequent and rare semantics.

    The first ``frequent`` classes share ``frequent_share`` of the samples (training and held-out alike);
    the other ``classes - frequent`` classes share the rest evenly. With the defaults (20 classes, 4
    frequent holding 80 %) a frequent class has 20 % of the data and a rare one 1.25 %: in a batch of 128
    an anchor of a frequent class meets ≈ 25 negatives of its own class, a rare one ≈ 1.

    :meth:`sample` also returns the rows' training ids (``index``), which iSogCLR needs to keep one τ per
    sample, and :meth:`is_frequent` says which classes are the frequent ones.
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        classes: int = 20,
        frequent: int = 4,
        frequent_share: float = 0.8,
        signal_dims: int = 8,
        nuisance_dims: int = 56,
        train_size: int = 2000,
        test_size: int = 500,
    ) -> None:
        """Draw the class centres, the long-tailed labels, the samples and the probe sets.

        Args:
            seed: Seed of batch sampling and view noise (the data itself is fixed, as in the parent).
            classes: Number of classes (> ``frequent``).
            frequent: Number of frequent classes (≥ 1).
            frequent_share: Share of the samples in the frequent classes, in (0, 1).
            signal_dims: Dims that carry the class (≥ 1).
            nuisance_dims: Dims of per-view nuisance (≥ 0).
            train_size: Training samples (≥ classes).
            test_size: Held-out samples (≥ 1).

        Raises:
            ValueError: On out-of-range arguments.
        """
        if not 1 <= frequent < classes:
            raise ValueError(f"need 1 <= frequent < classes, got frequent={frequent}, classes={classes}")
        if not 0.0 < frequent_share < 1.0:
            raise ValueError(f"frequent_share must lie in (0, 1), got {frequent_share}")
        super().__init__(
            seed,
            classes=classes,
            signal_dims=signal_dims,
            nuisance_dims=nuisance_dims,
            train_size=train_size,
            test_size=test_size,
        )
        self.frequent = frequent
        weights = torch.full((classes,), (1 - frequent_share) / (classes - frequent))
        weights[:frequent] = frequent_share / frequent
        self.class_weights = weights
        fixed = torch.Generator().manual_seed(4321)
        # Re-draw the labels with the long tail and move each sample to its new class's centre.
        centres = 2.0 * torch.nn.functional.normalize(
            torch.randn(classes, signal_dims, generator=torch.Generator().manual_seed(1234)), dim=1
        )
        self.y_train = torch.multinomial(weights, train_size, replacement=True, generator=fixed)
        self.y_test = torch.multinomial(weights, test_size, replacement=True, generator=fixed)
        self.s_train = centres[self.y_train] + 0.3 * torch.randn(train_size, signal_dims, generator=fixed)
        self.s_test = centres[self.y_test] + 0.3 * torch.randn(test_size, signal_dims, generator=fixed)
        self._probe_train = self._view(self.s_train, fixed)
        self._probe_test = self._view(self.s_test, fixed)

    def is_frequent(self, labels: Tensor) -> Tensor:
        """Boolean mask: which of ``labels`` belong to a frequent class."""
        return labels < self.frequent

    def sample(self, batch_size: int) -> ViewBatch:
        """Draw ``batch_size`` samples (without replacement), two views, and their training ids."""
        idx = torch.randperm(len(self.y_train), generator=self.generator)[:batch_size]
        s = self.s_train[idx]
        return ViewBatch(
            self._view(s, self.generator), self._view(s, self.generator), self.y_train[idx], index=idx
        )


class XorTriples:
    """Three modalities whose information sits only in the triple: ``c = a XOR b`` (Symile's XOR set).

    ``a`` and ``b`` are ``bits`` independent fair bits, written as ±1; ``c`` is their bitwise XOR, which
    in ±1 notation is the product ``c = a·b``. Each modality's input is its ±1 vector plus Gaussian noise
    of std ``noise`` redrawn per draw (the augmentation). Any two of ``a``, ``b``, ``c`` are independent
    (knowing ``a`` says nothing about ``c`` when ``b`` is a fair coin), so a loss that aligns pairs has
    nothing to learn, while the triple determines ``c`` exactly: Saporta et al. (NeurIPS 2024) use this
    construction to show that pairwise CLIP misses what Symile's multilinear inner product captures.

    The label of a triple is the integer code of ``c`` (``2^bits`` classes): it depends on ``a`` and ``b``
    jointly. Held-out triples are one fixed noisy draw.
    """

    two_modality: bool = True
    default_bits: int = 4  # 16 patterns of c: zero-shot chance 1/16, learnable in seconds

    def __init__(
        self, seed: int = 0, *, bits: int = default_bits, noise: float = 0.3, test_size: int = 512
    ) -> None:
        """Prepare the generator and the held-out triples.

        Args:
            seed: Seed of batch sampling and noise (the held-out draw depends on it too).
            bits: Bits per modality (1 … 8); zero-shot chance is ``1 / 2^bits``.
            noise: Std of the per-draw input noise (≥ 0).
            test_size: Held-out triples (≥ 16).

        Raises:
            ValueError: On out-of-range arguments.
        """
        if not 1 <= bits <= 8:
            raise ValueError(f"bits must lie in [1, 8], got {bits}")
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        if test_size < 16:
            raise ValueError(f"test_size must be >= 16, got {test_size}")
        self.bits, self.noise = bits, noise
        self.input_shape: tuple[int, ...] = (bits,)
        self.generator = torch.Generator().manual_seed(seed)
        probe = torch.Generator().manual_seed(40_000 + seed)
        self.test = self._draw(test_size, probe)
        codes = torch.arange(2**bits)
        self.codes = 1.0 - 2.0 * ((codes[:, None] >> torch.arange(bits)) & 1).float()
        """Every noiseless ``c`` pattern (2^bits, bits), row k = the pattern of label k."""

    def _draw(self, n: int, generator: torch.Generator) -> ViewBatch:
        a = 1.0 - 2.0 * torch.randint(2, (n, self.bits), generator=generator).float()
        b = 1.0 - 2.0 * torch.randint(2, (n, self.bits), generator=generator).float()
        c = a * b
        labels = ((c < 0).long() << torch.arange(self.bits)).sum(dim=1)

        def noisy(x: Tensor) -> Tensor:
            return x + self.noise * torch.randn(x.shape, generator=generator)

        return ViewBatch(noisy(a), noisy(b), labels, c=noisy(c))

    def sample(self, batch_size: int) -> ViewBatch:
        """Draw ``batch_size`` fresh noisy triples ``a``, ``b``, ``c = a XOR b``; label: code of ``c``."""
        return self._draw(batch_size, self.generator)
