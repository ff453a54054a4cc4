"""The overhead budget: schedule the Monitor's statistics so its share of wall time stays bounded.

A :meth:`~cldiag.Monitor.log` call does three sorts of work:

- the **base**: argument checks, the loss, τ and batch-size scalars, buffering, bookkeeping and the
  occasional flush; with it, the writer thread's CPU. Every step, it cannot be scheduled. Measured on the
  project's 2-core VM (``benchmarks/README.md``): ≈ 0.03 ms a call back to back, ≈ 0.13 ms right after a
  4.6 ms CPU training step (cold caches), and the writer ≈ 1.4 % of that step's wall time.
- the **step statistics** (kind :data:`STEP`, ``"step"``): :func:`cldiag.functional.step_statistics`,
  ``O(B·d)`` but some 25 kernels (alignment, positive cosine, norms, non-finite share; gap, cones and
  matched distance for two modalities): ≈ 0.2–0.4 ms on that CPU step, ≈ 0.7 ms of launches on a 2.3 ms
  GPU step (issue 14). At ``step_every = 1`` this was most of the Monitor's per-step cost.
- the **heavy kinds** (:data:`KINDS`): pairwise, spectrum and curves, milliseconds each.

With fixed cadences the share of wall time this takes depends on the machine and the step: negligible on a
300 ms GPU step, +14.5 % on a 4.6 ms CPU step. :class:`OverheadBudget` measures, with the host clock only
(never a device sync),

- the training's own time between two calls (from the end of one call to the start of the next),
- the Monitor's time inside each call, split into the base, the step statistics and each heavy kind,
- the writer thread's CPU time (charged when the training thread next enters the Monitor),

and decides at each step which kinds are due, so that the **total** (base, writer, step statistics and
heavy work) stays within the budget:

1. **Stretched cadences.** ``step_every`` and the ``*_every`` are minimum spacings. With ``T`` the
   training's time per step, the allowance per step is ``r·T`` with ``r = budget / (1 − budget)``
   (own ≤ budget × (own + training) ⇔ own ≤ r × training). The unscheduled cost per step ``c_0`` (base
   and writer) is paid first; what is left, ``money = r·T − c_0``, is for the scheduled kinds, whose
   demand at the configured spacings is ``Σ c_k / every_k`` (the step statistics included). Every spacing
   is stretched by one common factor ``s = max(1, demand / money)``, so the kinds keep their configured
   proportions: when the step statistics come every 3 steps, pairwise work comes every 75.
2. **A debt bound on the heavy kinds.** A running account ``debt += own − r·training`` (all of the
   Monitor's time: base, writer, step statistics, heavy work; floored at minus the cost of one heavy step,
   so idle time cannot be saved up for a burst) must be ≤ 0 for a heavy kind to start. Over any window
   the share thus exceeds the budget by at most one heavy computation's cost, plus, where the step
   statistics' cost is underestimated, what they overspent since the last heavy step (see 3).
3. **The step statistics are not gated by the debt**, only spaced: they come ``⌈every·s⌉`` steps apart,
   regularly (gated by the debt they would come in bunches whenever it dips below zero, and a chart of
   them would read as irregular sampling). Their time is paid into the debt, so the heavy kinds wait for
   them. One exception: while a heavy kind is past its stretched spacing and waiting for the debt, the
   step statistics yield to it (they skip their turn until the heavy kind has run). Without that, a
   step-statistics cost that the moving average underestimates (preemptions on a loaded machine: the
   average clips each sample at 4× itself) keeps the debt above zero and starves the heavy kinds (in a
   test with an occasional 20× slower call, one pairwise step in 20,000). When the estimates are right
   the debt is paid off between two heavy steps and the yield rarely happens.
4. **A base over the budget.** When the unscheduled cost alone is more than three quarters of the
   allowance (a very short step, where argument checks, bookkeeping and the writer are near the budget by
   themselves), the scheduled kinds keep a quarter of it (``money ≥ r·T / 4``, and the debt forgives what
   ``c_0`` is over ``¾·r·T``) rather than stopping: the statistics still come, rarely, and the share is
   then over the budget by about ``c_0 − ¾·r·T``; ``meta.json``'s ``overhead.share`` and ``base_share``
   say so. (A first version let an unscheduled per-step cost use up the allowance: on a small CPU step a
   1,500-step loop then got one pairwise point, at step 0.) ``c_0`` is a moving average that is not
   clipped, unlike the others, because the debt forgives from it and must not do so from an estimate
   biased low.

The first computation of each kind comes at its first due step (its cost is unknown until then). A heavy
step always has its step statistics too (the Monitor computes them there, whatever the spacing, and they
are measured as the step kind), so its non-finite share says which rows the heavy statistics left out.
``budget=None`` in the Monitor keeps fixed cadences (:class:`FixedCadence`): the step statistics at
multiples of ``step_every`` (default 1: every step), the heavy kinds at multiples of theirs.

**What a step without step statistics sees.** Its loss, τ (the mean of a per-sample τ) and batch size
are logged all the same. A NaN or Inf loss is written as the flag row ``nonfinite/loss`` = 1 at its step
(:func:`cldiag.host_tables.scalars_table`), which the health rule ``nonfinite`` reports. The embeddings'
non-finite share is not computed there: a batch with NaN/Inf embeddings but a finite loss is seen only at
the next step that has step statistics (if it is still non-finite then).

On an accelerator the statistics' kernels run asynchronously: the host time measured is their launch time
plus the host syncs of a heavy step (3: the non-finite rows and the eigen-solvers, measured on an H200
by ``tests/test_cuda_sync.py``; the first also waits for the training's queued kernels), so the
measured share is an estimate there; on the CPU it is the real cost.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["KINDS", "SCHEDULED", "STEP", "FixedCadence", "OverheadBudget", "Schedule"]

STEP = "step"
"""The per-step statistics' kind (spacing ``step_every``): stretched by the budget, not gated by its debt."""

KINDS: tuple[str, ...] = ("pairwise", "spectrum", "curves")
"""The heavy kinds, in the order the Monitor asks for them and hands them to its heavy step."""

SCHEDULED: tuple[str, ...] = (STEP, *KINDS)
"""Every kind a schedule decides on."""

_EMA_STEP = 0.05  # training time per step: smooth over ~20 steps
_EMA_KIND = 0.3  # a heavy kind's cost: few samples, follow them quickly
_EMA_FREQUENT = 0.05  # the step statistics' cost: measured often, smooth like the base
_EMA_UNSCHEDULED = 0.01  # unscheduled cost per call: slow (the writer's CPU comes in bursts), unclipped
_MIN_MONEY = 0.25  # the share of the allowance the scheduled kinds keep however large the base is


def _due_fixed(step: int, every: int) -> bool:
    return every > 0 and step % every == 0


def _spacings(every: Mapping[str, int]) -> dict[str, int]:
    """``every`` by kind, with the step statistics every step when the mapping does not name them."""
    return {STEP: 1, **every}


class Schedule:
    """What a Monitor asks at each step: which kinds to compute, and how long their work took."""

    def begin(self) -> None:
        """The training thread entered :meth:`~cldiag.Monitor.log`."""

    def due(self, kind: str, step: int) -> bool:
        """Whether ``kind`` (one of :data:`SCHEDULED`) is computed at ``step``."""
        raise NotImplementedError

    def start(self) -> float:
        """A time stamp before a kind's work (0.0 when nothing is measured)."""
        return 0.0

    def done(self, kind: str, step: int, started: float) -> None:
        """``kind`` was computed at ``step``; its work began at ``started``."""

    def end(self) -> None:
        """The training thread leaves :meth:`~cldiag.Monitor.log`."""

    def charge(self, seconds: float) -> None:
        """Add ``seconds`` of Monitor work done elsewhere (the writer thread's CPU time)."""


class FixedCadence(Schedule):
    """``budget=None``: each kind at the steps that are multiples of its ``*_every`` (0 = off).

    ``every`` maps kind names to spacings; without :data:`STEP` the step statistics come every step.
    """

    def __init__(self, every: Mapping[str, int]) -> None:
        self.every = _spacings(every)

    def due(self, kind: str, step: int) -> bool:  # noqa: D102 - see Schedule
        return _due_fixed(step, self.every[kind])


@dataclass
class BudgetState:
    """What an :class:`OverheadBudget` has measured so far (seconds).

    Attributes:
        train: the training's time per step outside the Monitor (moving average); None before two calls.
        base: the unscheduled cost per call: the call's time outside the scheduled kinds plus the writer
            CPU charged at it (moving average).
        cost: each scheduled kind's cost (moving average); a kind never computed is absent.
        debt: the Monitor's time (calls and writer CPU) minus ``r`` × training time, less what the
            unscheduled cost per step is over ``¾·r`` × training time, floored at minus one heavy cost.
        own_total: the Monitor's total time (calls and writer CPU).
        base_total: the unscheduled part of ``own_total``: the calls' base and the writer's CPU.
        train_total: the training's total time between calls.
        stretch: the factor the minimum spacings were last stretched by (1 = the configured cadence).
    """

    train: float | None = None
    base: float = 0.0
    cost: dict[str, float] | None = None
    debt: float = 0.0
    own_total: float = 0.0
    base_total: float = 0.0
    train_total: float = 0.0
    stretch: float = 1.0

    @property
    def share(self) -> float:
        """The Monitor's share of wall time so far, ``own / (own + training)`` (0 before any call)."""
        total = self.own_total + self.train_total
        return self.own_total / total if total > 0 else 0.0

    @property
    def base_share(self) -> float:
        """The unscheduled part of :attr:`share`: the calls' base and the writer (0 before any call)."""
        total = self.own_total + self.train_total
        return self.base_total / total if total > 0 else 0.0


class OverheadBudget(Schedule):
    """Schedule the step statistics and the pairwise / spectrum / curves work within ``fraction``.

    The Monitor's share of wall time stays ≤ ``fraction`` over any window, give or take one heavy
    computation, as long as its unscheduled cost (base and writer) is under three quarters of it (see the
    module).

    Args:
        fraction: the largest share of wall time (training + Monitor) the Monitor may take, in (0, 1).
        every: each kind's minimum spacing in steps (0 = off), by kind name; without :data:`STEP` the step
            statistics' spacing is 1.
        clock: the host clock of wall time (injected in tests).

    Example:
        >>> t = [0.0]
        >>> budget = OverheadBudget(0.5, {"pairwise": 1, "spectrum": 0, "curves": 0}, clock=lambda: t[0])
        >>> budget.begin(); budget.due("step", 0), budget.due("pairwise", 0)
        (True, True)
    """

    def __init__(
        self,
        fraction: float,
        every: Mapping[str, int],
        *,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.fraction = check_budget(fraction)
        self.every = _spacings(every)
        self.clock = clock
        self.state = BudgetState(cost={})
        self._last: dict[str, int] = {}
        self._samples: dict[str, int] = {}
        self._calls = 0
        self._ratio = self.fraction / (1.0 - self.fraction)
        self._left: float | None = None  # when the last call ended
        self._entered = 0.0
        self._train = 0.0  # the training's time before the current call
        self._scheduled = 0.0  # scheduled kinds' time inside the current call
        self._charged = 0.0  # writer CPU charged during the current call

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
            self._train = train
        self._entered, self._scheduled, self._charged = now, 0.0, 0.0
        st.stretch = self._stretch()

    def due(self, kind: str, step: int) -> bool:  # noqa: D102 - see Schedule
        every = self.every[kind]
        last = self._last.get(kind)
        if every <= 0:
            return False
        if last is None:  # the first one measures the kind's cost, whatever the debt
            return _due_fixed(step, every)
        if step - last < every * self.state.stretch:
            return False
        # The step statistics keep their spacing, except while a heavy kind waits for the debt: then they
        # yield to it (otherwise estimates a little low could keep the debt above zero for good).
        return not self._heavy_waiting(step) if kind == STEP else self.state.debt <= 0

    def start(self) -> float:  # noqa: D102 - see Schedule
        return self.clock()

    def done(self, kind: str, step: int, started: float) -> None:  # noqa: D102 - see Schedule
        cost = max(0.0, self.clock() - started)
        costs = self.state.cost
        assert costs is not None
        old = costs.get(kind)
        n = self._samples[kind] = self._samples.get(kind, 0) + 1
        # The step statistics are measured often: a running mean over their first samples (the first call
        # is often slow: lazy initialisation, cold caches), then a slow average that a preemption moves by
        # at most 4× its weight. A heavy kind has few samples and follows them quickly.
        rate = max(1.0 / n, _EMA_FREQUENT) if kind == STEP else _EMA_KIND
        costs[kind] = cost if old is None else old + rate * (min(cost, 4.0 * old) - old)
        self._last[kind] = step
        self._scheduled += cost

    def end(self) -> None:  # noqa: D102 - see Schedule
        now = self.clock()
        st = self.state
        own = max(0.0, now - self._entered)
        base = max(0.0, own - self._scheduled)
        st.base_total += base
        st.own_total += own
        # Everything is paid; what the unscheduled cost per step is over ¾ of the allowance is forgiven, so
        # a base over the budget thins the scheduled kinds instead of stopping them.
        self._pay(self._scheduled + base - self._excess())
        # Not clipped like the step's estimates: the debt forgives from it, so it must not be biased low.
        self._calls += 1
        unscheduled = base + self._charged
        st.base += max(1.0 / self._calls, _EMA_UNSCHEDULED) * (unscheduled - st.base)
        self._left = now

    def charge(self, seconds: float) -> None:  # noqa: D102 - see Schedule
        if seconds > 0:
            st = self.state
            st.own_total += seconds
            st.base_total += seconds
            self._charged += seconds
            self._pay(seconds)

    def _excess(self) -> float:
        """How far the unscheduled cost per step is over ¾ of the allowance (0 when it is not)."""
        allowance = self._ratio * (self.state.train or 0.0)
        return max(0.0, self.state.base - (1.0 - _MIN_MONEY) * allowance)

    def _heavy_waiting(self, step: int) -> bool:
        """Whether a heavy kind is past its stretched spacing and held back by the debt."""
        st = self.state
        if st.debt <= 0:
            return False
        for kind in KINDS:
            every, last = self.every.get(kind, 0), self._last.get(kind)
            if every > 0 and last is not None and step - last >= every * st.stretch:
                return True
        return False

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
        allowance = self._ratio * st.train
        money = max(allowance - st.base, _MIN_MONEY * allowance)
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
