"""The overhead budget: heavy statistics scheduled so the Monitor's share of wall time stays bounded.

Deterministic: every test drives an injected clock; nothing here measures real time.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from cldiag import Monitor, read_run
from cldiag import functional as F
from cldiag.monitor.budget import KINDS, FixedCadence, OverheadBudget, check_budget

EVERY = {"pairwise": 25, "spectrum": 250, "curves": 250}
COSTS = {"pairwise": 4.5e-3, "spectrum": 2e-3, "curves": 20e-3}  # seconds: issue 14's CPU figures


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def run(fraction, train, **kwargs):
    """Steps at which each kind was computed, and the budget's state."""
    clock = FakeClock()
    every = kwargs.get("every", EVERY)
    costs = kwargs.get("costs", COSTS)
    base = kwargs.get("base", 1e-4)
    pause = kwargs.get("pause")
    budget = OverheadBudget(fraction, every, clock=clock)
    done = {k: [] for k in KINDS}
    own = 0.0
    for step in range(kwargs.get("steps", 5000)):
        clock.t += train
        if pause is not None and step == pause[0]:
            clock.t += pause[1]
        budget.begin()
        entered = clock.t
        for kind in KINDS:
            if budget.due(kind, step):
                started = budget.start()
                clock.t += costs[kind]
                budget.done(kind, step, started)
                done[kind].append(step)
        clock.t += base
        budget.end()
        own += clock.t - entered
    return done, budget.state, own, clock.t


def test_slow_step_keeps_the_configured_cadence():
    done, state, own, wall = run(0.03, 0.3, steps=1000)  # a 300 ms GPU-sized step
    assert done["pairwise"] == list(range(0, 1000, 25))
    assert done["spectrum"] == done["curves"] == list(range(0, 1000, 250))
    assert state.stretch == 1.0 and own / wall < 0.03


def test_fast_step_makes_heavy_work_rarer_but_never_closer_than_its_minimum_spacing():
    fast, state, *_ = run(0.03, 0.006)  # a 6 ms CPU step: the fixed cadences would cost ≈ 5 %
    slow, *_ = run(0.03, 0.3, steps=5000)
    for kind in KINDS:
        assert 1 <= len(fast[kind]) < len(slow[kind])
        gaps = [b - a for a, b in zip(fast[kind], fast[kind][1:], strict=False)]
        assert all(g >= EVERY[kind] for g in gaps), (kind, gaps)
    assert len(fast["curves"]) >= 2  # the stretch keeps every kind alive, in the configured proportions
    assert state.stretch > 1


def test_scheduled_share_stays_within_the_budget_over_a_window():
    base, steps = 1e-4, 5000
    for train in (0.002, 0.006, 0.02, 0.05):
        _, state, own, wall = run(0.03, train, base=base, steps=steps)
        scheduled = own - base * steps  # the per-step base cost comes on top of the budget
        # At most one heavy computation over the budget: the debt bound.
        assert scheduled / wall <= 0.03 + max(COSTS.values()) / wall, train
        assert state.share == pytest.approx(own / (wall - train))  # training time before step 0 not seen
    _, state, own, wall = run(0.10, 0.006, base=base, steps=steps)
    assert (own - base * steps) / wall <= 0.10 + max(COSTS.values()) / wall


def test_a_long_pause_is_not_saved_up_for_a_burst():
    paused, *_ = run(0.03, 0.006, steps=3000, pause=(1500, 600.0))  # ten minutes of evaluation mid-run
    steady, *_ = run(0.03, 0.006, steps=3000)

    def window(done):
        return [s for k in KINDS for s in done[k] if 1500 <= s < 1700]

    # At most one more of each kind than the budgeted pace, which then resumes.
    assert len(window(paused)) <= len(window(steady)) + len(KINDS)


def test_per_step_cost_over_the_budget_does_not_starve_the_heavy_kinds():
    # Per-step work alone is 10 % of a 1 ms step: it cannot be scheduled, so it must not use up the
    # allowance (the first version stopped every heavy kind after step 0 here).
    done, state, own, wall = run(0.03, 0.001, base=1e-4, steps=20000)
    assert all(len(done[k]) >= 2 for k in KINDS), {k: len(v) for k, v in done.items()}
    assert math.isfinite(state.stretch) and state.stretch > 1
    assert (own - 1e-4 * 20000) / wall <= 0.03 + max(COSTS.values()) / wall


def test_off_kinds_stay_off_and_fixed_cadence_is_multiples():
    done, *_ = run(0.5, 0.3, every={"pairwise": 3, "spectrum": 0, "curves": 0}, steps=20)
    assert done["pairwise"] == list(range(0, 20, 3)) and done["spectrum"] == done["curves"] == []
    fixed = FixedCadence({"pairwise": 3, "spectrum": 0, "curves": 5})
    assert [s for s in range(12) if fixed.due("pairwise", s)] == [0, 3, 6, 9]
    assert not any(fixed.due("spectrum", s) for s in range(12))


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.1, float("nan")])
def test_budget_must_be_a_share(bad):
    with pytest.raises(ValueError, match="budget must be in"):
        check_budget(bad)
    with pytest.raises(ValueError, match="budget must be in"):
        Monitor("unused-never-created", budget=bad)


def test_budget_type_is_checked():
    with pytest.raises(TypeError, match="budget must be a number"):
        check_budget("0.03")


def _monitor_run(tmp_path, name, train, steps=600):
    """A Monitor on an injected clock; the pairwise work costs 1 ms of that clock."""
    clock = FakeClock()
    every = {"pairwise": 5, "spectrum": 0, "curves": 0}
    budget = OverheadBudget(0.03, every, clock=clock)
    g = torch.Generator().manual_seed(0)
    a = torch.randn(16, 8, generator=g)
    b = a + 0.1 * torch.randn(16, 8, generator=g)
    real = F.pairwise_statistics

    def costly(*args, **kwargs):
        clock.t += 1e-3
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(F, "pairwise_statistics", costly)
        with Monitor(
            tmp_path / name,
            pairwise_every=5,
            spectrum_every=0,
            curves_every=0,
            snapshot_every=0,
            flush_every=10_000,
            flush_secs=1e9,
            budget=budget,
        ) as mon:
            for step in range(steps):
                clock.t += train
                mon.log(step, a, b)
    run = read_run(tmp_path / name)
    return sorted(run.scalars(["uniformity"]).step), run.meta


def test_monitor_schedules_by_its_budget_and_records_it(tmp_path):
    slow, meta = _monitor_run(tmp_path, "slow", train=0.2)
    fast, fast_meta = _monitor_run(tmp_path, "fast", train=0.004)
    assert slow == list(range(0, 600, 5))  # ample budget: the configured cadence
    assert 2 <= len(fast) <= 0.6 * len(slow)  # 1 ms on a 4 ms step: every 9th step at most is 3 %
    assert all(b - a >= 5 for a, b in itertools.pairwise(fast))
    assert meta["overhead"]["budget"] == 0.03 and meta["overhead"]["share"] < 0.03
    assert fast_meta["overhead"]["share"] <= 0.03 + 1e-3 / (600 * 0.004)
    assert fast_meta["overhead"]["stretch"] > 1


def test_budget_none_keeps_fixed_cadences(tmp_path):
    with Monitor(tmp_path / "run", pairwise_every=2, spectrum_every=0, curves_every=0, budget=None) as mon:
        for step in range(9):
            mon.log(step, torch.randn(8, 4), torch.randn(8, 4))
    run = read_run(tmp_path / "run")
    assert sorted(run.scalars(["uniformity"]).step) == [0, 2, 4, 6, 8]
    assert "overhead" not in run.meta
