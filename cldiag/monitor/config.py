"""The Monitor's cadence: how often each kind of statistic is computed and when buffers are flushed.

:class:`Cadence` is a frozen, validated value: everything :class:`~cldiag.Monitor` needs to decide *when*
to compute and write, apart from *what* and *how*. Invalid settings raise when it is built, naming the
argument, so a mistyped cadence fails before a training run starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from cldiag.monitor.budget import STEP, check_budget

__all__ = ["DEFAULT_TAUS", "MAX_BINS", "MAX_SNAPSHOT", "Cadence"]

DEFAULT_TAUS: tuple[float, ...] = tuple(float(t) for t in np.logspace(-2, 0, 13))
"""τ grid of the temperature curves: 0.01 … 1, log-spaced (Wang & Liu 2021 study 0.07 … 1)."""

MAX_BINS = 1000
MAX_SNAPSHOT = 100_000


@dataclass(frozen=True)
class Cadence:
    """When the Monitor computes each kind of statistic and when it writes.

    Attributes:
        step_every: steps between the per-step statistics (alignment, positive cosine, norms, non-finite
            share; gap, cones and matched distance for two modalities), ≥ 1. Loss, τ and batch size are
            logged at every step whatever it is, and a step with heavy work always has them.
        pairwise_every: steps between O(B²) statistics (uniformity, histograms, tolerance, hardness). 0 = off.
        spectrum_every: steps between covariance spectra and effective rank. 0 = off.
        curves_every: steps between temperature curves over ``taus``. 0 = off.
        snapshot_every: steps between embedding snapshots. 0 = off.
        snapshot_size: rows per snapshot (collected over consecutive batches; at most 100 000).
        bins: number of score-histogram bins on [−1, 1] (2 … 1000).
        taus: τ grid of the temperature curves (default: 13 values log-spaced over 0.01 … 1).
        flush_every: logged steps between flushes to disk.
        flush_secs: seconds between flushes, whichever comes first (keeps live dashboards current).
        heartbeat_secs: how often ``meta.json``'s heartbeat is refreshed while the process lives.
        compact_parts: a table holding more than this many part files is compacted in the background
            after the flush that passed it (0 = only at close, when ``compact_on_close``).
        budget: the largest share of wall time the Monitor may take (default 0.03); the step, pairwise,
            spectrum and curves cadences above are then minimum spacings, stretched by one common factor
            as needed (see :mod:`cldiag.monitor.budget`). ``None`` = fixed cadences.

    Example:
        >>> Cadence(pairwise_every=10).pairwise_every
        10
        >>> Cadence(bins=1)
        Traceback (most recent call last):
        ...
        ValueError: bins must be an int in [2, 1000], got 1
    """

    step_every: int = 1
    pairwise_every: int = 25
    spectrum_every: int = 250
    curves_every: int = 250
    snapshot_every: int = 1000
    snapshot_size: int = 1024
    bins: int = 50
    taus: tuple[float, ...] = field(default=DEFAULT_TAUS)
    flush_every: int = 500
    flush_secs: float = 30.0
    heartbeat_secs: float = 30.0
    compact_parts: int = 64
    budget: float | None = 0.03

    def __post_init__(self) -> None:
        for arg in ("pairwise_every", "spectrum_every", "curves_every", "snapshot_every"):
            value = getattr(self, arg)
            if not _is_int(value) or value < 0:
                raise ValueError(f"{arg} must be an int >= 0 (0 turns it off), got {value!r}")
        for arg in ("step_every", "flush_every"):
            value = getattr(self, arg)
            if not _is_int(value) or value < 1:
                raise ValueError(f"{arg} must be an int >= 1, got {value!r}")
        if not _is_int(self.compact_parts) or self.compact_parts < 0:
            raise ValueError(
                f"compact_parts must be an int >= 0 (0: only at close), got {self.compact_parts!r}"
            )
        if not _is_int(self.bins) or not 2 <= self.bins <= MAX_BINS:
            raise ValueError(f"bins must be an int in [2, {MAX_BINS}], got {self.bins!r}")
        if not _is_int(self.snapshot_size) or not 1 <= self.snapshot_size <= MAX_SNAPSHOT:
            message = f"snapshot_size must be an int in [1, {MAX_SNAPSHOT}], got {self.snapshot_size!r}"
            raise ValueError(message)
        object.__setattr__(self, "taus", _check_taus(self.taus))
        object.__setattr__(self, "flush_secs", float(self.flush_secs))
        object.__setattr__(self, "heartbeat_secs", float(self.heartbeat_secs))
        if self.budget is not None:
            object.__setattr__(self, "budget", check_budget(self.budget))

    def every(self) -> dict[str, int]:
        """The minimum spacing (or fixed cadence) of each scheduled kind, by kind name (0 = off).

        The keys are :data:`cldiag.monitor.budget.SCHEDULED`: the step statistics and the heavy kinds.
        """
        return {
            STEP: self.step_every,
            "pairwise": self.pairwise_every,
            "spectrum": self.spectrum_every,
            "curves": self.curves_every,
        }

    def taus_tensor(self) -> torch.Tensor:
        """The τ grid as a float32 tensor (on the CPU)."""
        return torch.tensor(self.taus, dtype=torch.float32)


def _is_int(value: object) -> bool:
    return isinstance(value, int)


def _check_taus(taus: Sequence[float] | None) -> tuple[float, ...]:
    """``taus`` as a tuple of floats: a non-empty 1-D sequence of positive numbers."""
    values = list(taus if taus is not None else DEFAULT_TAUS)
    taus_t = torch.tensor(values, dtype=torch.float32)
    if taus_t.ndim != 1 or taus_t.numel() == 0 or not bool(torch.all(taus_t > 0)):
        raise ValueError(f"taus must be a non-empty sequence of positive numbers, got {taus!r}")
    return tuple(float(t) for t in values)
