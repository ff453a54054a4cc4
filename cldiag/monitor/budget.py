"""The overhead budget: schedule the heavy statistics so the Monitor's share of wall time stays bounded.

The Monitor's cost per step is small and fixed for the per-step statistics (``O(B·d)``) and large for the
pairwise, spectrum and curves work. With fixed cadences the share of training time it takes depends on
the machine and the step: negligible on a 300 ms GPU step, +14 % on a 6 ms CPU step (issue 14).
:class:`OverheadBudget` measures, with the host clock only (never a device sync),

- the training's own time between two :meth:`~cldiag.Monitor.log` calls (from the end of one call to the
  start of the next),
- the Monitor's time inside each call, split into the base (per-step) part and each heavy kind,
- the writer thread's CPU time (charged when the training thread next enters the Monitor),

and decides at each step which heavy kinds are due:

The budget bounds the work it can schedule: the heavy kinds and the writer thread. The per-step statistics
(the base cost ``c_0``, a fraction of a millisecond at B = 256) cannot be scheduled and come on top; they
are measured and reported in ``share`` but do not eat the heavy kinds' allowance. (A first version let
them: on a small CPU step they alone exceeded 3 %, and a 1,500-step quick-start loop then got one pairwise
point, at step 0.)

1. **Stretched cadences.** The configured ``*_every`` are minimum spacings. With ``c_k`` the measured cost
   of kind ``k`` and ``T`` the training's time per step, the money per step is ``r·T`` with
   ``r = budget / (1 − budget)`` (scheduled ≤ budget × (scheduled + training) ⇔ scheduled ≤ r × training);
   the demand at the configured cadences is ``Σ c_k / every_k``. Every spacing is stretched by one common
   factor ``s = max(1, demand / money)``, so the kinds keep their configured proportions.
2. **A debt bound.** A running account ``debt += scheduled − r·training`` (floored at minus the cost of one
   heavy step, so idle time cannot be saved up for a burst) must be ≤ 0 for any heavy kind to start, so
   over any window the scheduled share exceeds the budget by at most one heavy computation's cost.

The first computation of each kind comes at its first due step (its cost is unknown until then).
``budget=None`` in the Monitor keeps fixed cadences (:class:`FixedCadence`).

On an accelerator the statistics' kernels run asynchronously: the host time measured is their launch time
plus the one host sync of a heavy step (which also waits for the training's queued kernels), so the
measured share is an estimate there; on the CPU it is the real cost.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["KINDS", "FixedCadence", "OverheadBudget", "Schedule"]

KINDS: tuple[str, ...] = ("pairwise", "spectrum", "curves")
"""The heavy kinds a schedule decides on."""

_EMA_STEP = 0.05  # training time and base cost per step: smooth over ~20 steps
_EMA_KIND = 0.3  # a heavy kind's cost: few samples, follow them quickly


def _due_fixed(step: int, every: int) -> bool:
    return every > 0 and step % every == 0


class Schedule:
    """What a Monitor asks at each step: which heavy kinds to compute, and how long its work took."""

    def begin(self) -> None:
        """The training thread entered :meth:`~cldiag.Monitor.log`."""

    def due(self, kind: str, step: int) -> bool:
        """Whether ``kind`` (one of :data:`KINDS`) is computed at ``step``."""
        raise NotImplementedError

    def start(self) -> float:
        """A time stamp before a heavy kind's work (0.0 when nothing is measured)."""
        return 0.0

    def done(self, kind: str, step: int, started: float) -> None:
        """``kind`` was computed at ``step``; its work began at ``started``."""

    def end(self) -> None:
        """The training thread leaves :meth:`~cldiag.Monitor.log`."""

    def charge(self, seconds: float) -> None:
        """Add ``seconds`` of Monitor work done elsewhere (the writer thread's CPU time)."""


class FixedCadence(Schedule):
    """``budget=None``: each kind at the steps that are multiples of its ``*_every`` (0 = off)."""

    def __init__(self, every: Mapping[str, int]) -> None:
        self.every = dict(every)

    def due(self, kind: str, step: int) -> bool:  # noqa: D102 - see Schedule
        return _due_fixed(step, self.every[kind])


@dataclass
class BudgetState:
    """What an :class:`OverheadBudget` has measured so far (seconds).

    Attributes:
        train: the training's time per step outside the Monitor (moving average); None before two calls.
        base: the Monitor's per-step cost outside heavy work (moving average).
        cost: each heavy kind's cost (moving average); a kind never computed is absent.
        debt: scheduled time (heavy work, writer CPU) minus ``r`` × training time, floored at minus one
            heavy cost.
        own_total: the Monitor's total time (calls and writer CPU).
        train_total: the training's total time between calls.
        stretch: the factor the minimum spacings were last stretched by (1 = the configured cadence).
    """

    train: float | None = None
    base: float = 0.0
    cost: dict[str, float] | None = None
    debt: float = 0.0
    own_total: float = 0.0
    train_total: float = 0.0
    stretch: float = 1.0

    @property
    def share(self) -> float:
        """The Monitor's share of wall time so far, ``own / (own + training)`` (0 before any call)."""
        total = self.own_total + self.train_total
        return self.own_total / total if total > 0 else 0.0


class OverheadBudget(Schedule):
    """Schedule pairwise / spectrum / curves work so the Monitor's share of wall time stays ≤ ``fraction``.

    Args:
        fraction: the largest share of wall time (training + Monitor) the Monitor may take, in (0, 1).
        every: each kind's minimum spacing in steps (0 = off), by kind name.
        clock: the host clock of wall time (injected in tests).

    Example:
        >>> t = [0.0]
        >>> budget = OverheadBudget(0.5, {"pairwise": 1, "spectrum": 0, "curves": 0}, clock=lambda: t[0])
        >>> budget.begin(); budget.due("pairwise", 0)
        True
    """

    def __init__(
        self,
        fraction: float,
        every: Mapping[str, int],
        *,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.fraction = check_budget(fraction)
        self.every = dict(every)
        self.clock = clock
        self.state = BudgetState(cost={})
        self._last: dict[str, int] = {}
        self._ratio = self.fraction / (1.0 - self.fraction)
        self._left: float | None = None  # when the last call ended
        self._entered = 0.0
        self._heavy = 0.0  # heavy time inside the current call

    def begin(self) -> None:  # noqa: D102 - see Schedule
        now = self.clock()
        st = self.state
        if self._left is not None:
            train = max(0.0, now - self._left)
            # A pause (evaluation, checkpointing) counts in the totals, but moves the estimate of a step by
            # at most 4×: the cadence must not follow one long gap for the next hundred steps.
            sample = train if st.train is None else min(train, 4.0 * st.train)
            st.train = sample if st.train is None else st.train + _EMA_STEP * (sample - st.train)
            st.train_total += train
            self._pay(-self._ratio * train)
        self._entered, self._heavy = now, 0.0
        st.stretch = self._stretch()

    def due(self, kind: str, step: int) -> bool:  # noqa: D102 - see Schedule
        every = self.every[kind]
        last = self._last.get(kind)
        if every <= 0:
            return False
        if last is None:  # the first one measures the kind's cost, whatever the debt
            return _due_fixed(step, every)
        return self.state.debt <= 0 and step - last >= every * self.state.stretch

    def start(self) -> float:  # noqa: D102 - see Schedule
        return self.clock()

    def done(self, kind: str, step: int, started: float) -> None:  # noqa: D102 - see Schedule
        cost = max(0.0, self.clock() - started)
        costs = self.state.cost
        assert costs is not None
        old = costs.get(kind)
        costs[kind] = cost if old is None else old + _EMA_KIND * (cost - old)
        self._last[kind] = step
        self._heavy += cost

    def end(self) -> None:  # noqa: D102 - see Schedule
        now = self.clock()
        st = self.state
        own = max(0.0, now - self._entered)
        base = max(0.0, own - self._heavy)
        if st.own_total > 0:  # a preempted call moves the typical cost by at most 4× (the debt counts it all)
            base = st.base + _EMA_STEP * (min(base, 4.0 * st.base) - st.base)
        st.base = base
        st.own_total += own
        self._pay(self._heavy)  # the per-step base cost is not schedulable: it does not use the allowance
        self._left = now

    def charge(self, seconds: float) -> None:  # noqa: D102 - see Schedule
        if seconds > 0:
            self.state.own_total += seconds
            self._pay(seconds)

    def _pay(self, amount: float) -> None:
        """Add ``amount`` to the debt, which never goes below minus one heavy computation's cost."""
        st = self.state
        floor = -max(st.cost.values(), default=0.0) if st.cost else 0.0
        st.debt = max(floor, st.debt + amount)

    def _stretch(self) -> float:
        """The common factor the minimum spacings are stretched by (≥ 1; inf when nothing is left)."""
        st = self.state
        assert st.cost is not None
        demand = sum(st.cost[k] / e for k, e in self.every.items() if e > 0 and k in st.cost)
        if st.train is None or demand == 0:
            return 1.0
        money = self._ratio * st.train
        if money <= 0:
            return math.inf
        return max(1.0, demand / money)


def check_budget(fraction: object) -> float:
    """``fraction`` as a float in (0, 1), or a ``ValueError``/``TypeError`` naming it."""
    if isinstance(fraction, bool) or not isinstance(fraction, int | float):
        raise TypeError(
            f"budget must be a number in (0, 1) or None, got {type(fraction).__name__} {fraction!r}"
        )
    if not 0.0 < float(fraction) < 1.0:
        raise ValueError(
            f"budget must be in (0, 1) (a share of wall time, e.g. 0.03) or None, got {fraction!r}"
        )
    return float(fraction)
