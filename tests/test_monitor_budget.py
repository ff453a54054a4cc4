"""The overhead budget: the Monitor's statistics scheduled so its share of wall time stays bounded.

Deterministic: every test drives an injected clock; nothing here measures real time.
"""

from __future__ import annotations

import doctest
import itertools
import math
import statistics

import pytest
import torch

from cldiag import Monitor, read_run
from cldiag import functional as F
from cldiag.monitor import budget as budget_module
from cldiag.monitor.budget import KINDS, STEP, FixedCadence, OverheadBudget, check_budget

EVERY = {"step": 1, "pairwise": 25, "spectrum": 250, "curves": 250}
COSTS = {"step": 0.15e-3, "pairwise": 4.5e-3, "spectrum": 2e-3, "curves": 20e-3}  # s: issue 14's CPU figures
HEAVY = max(COSTS[k] for k in KINDS)


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def run(fraction, train, **kwargs):
    """Steps at which each kind was computed, the budget's state, the Monitor's own time and the wall time.

    Mirrors ``Monitor._log``: the heavy kinds are asked first; the step statistics come when due or when a
    heavy kind is (a heavy step always has them), then the heavy work; ``base`` is the unschedulable rest.
    """
    clock = FakeClock()
    every = kwargs.get("every", EVERY)
    costs = kwargs.get("costs", COSTS)
    base = kwargs.get("base", 1e-4)
    pause = kwargs.get("pause")
    budget = OverheadBudget(fraction, every, clock=clock)
    done = {k: [] for k in (STEP, *KINDS)}
    own = 0.0
    for step in range(kwargs.get("steps", 5000)):
        clock.t += train
        if pause is not None and step == pause[0]:
            clock.t += pause[1]
        budget.begin()
        entered = clock.t
        heavy = [kind for kind in KINDS if budget.due(kind, step)]
        if budget.due(STEP, step) or heavy:
            started = budget.start()
            slow = kwargs.get("slow_every") and len(done[STEP]) % kwargs["slow_every"] == 0
            clock.t += costs[STEP] * (20 if slow else 1)
            budget.done(STEP, step, started)
            done[STEP].append(step)
        for kind in heavy:
            started = budget.start()
            clock.t += costs[kind]
            budget.done(kind, step, started)
            done[kind].append(step)
        clock.t += base
        budget.end()
        own += clock.t - entered
    return done, budget.state, own, clock.t


def gaps(steps):
    return [b - a for a, b in itertools.pairwise(steps)]


def test_slow_step_keeps_the_configured_cadence_and_every_step_statistic():
    done, state, own, wall = run(0.03, 0.3, steps=1000)  # a 300 ms GPU-sized step
    assert done[STEP] == list(range(1000))
    assert done["pairwise"] == list(range(0, 1000, 25))
    assert done["spectrum"] == done["curves"] == list(range(0, 1000, 250))
    assert state.stretch == 1.0 and own / wall < 0.03


def test_fast_step_thins_the_step_statistics_and_bounds_the_total_share():
    # A 6 ms CPU step: the step statistics alone (0.15 ms) are 2.5 %, with the base 4 %; the fixed
    # cadences would cost ≈ 8 % in all.
    steps, train = 5000, 0.006
    done, state, own, wall = run(0.03, train, steps=steps)
    assert 1 < state.stretch < math.inf
    assert len(done[STEP]) < steps / 2  # thinned: every few steps, not every step
    # Regularly spaced: the stretched spacing, not held back by the debt (a heavy step adds one between).
    assert statistics.median(gaps(done[STEP])) == math.ceil(state.stretch)
    # The total (base + step statistics + heavy work), not only the heavy work, is within the budget,
    # give or take one heavy computation over the window.
    assert own / wall <= 0.03 + HEAVY / wall
    assert state.share == pytest.approx(own / (wall - train))  # training time before step 0 not seen
    assert state.share > 0.025  # and it uses the allowance: the statistics are not thinned more than needed


def test_fast_step_makes_heavy_work_rarer_but_never_closer_than_its_minimum_spacing():
    fast, state, *_ = run(0.03, 0.006)
    slow, *_ = run(0.03, 0.3, steps=5000)
    for kind in KINDS:
        assert 1 <= len(fast[kind]) < len(slow[kind])
        assert all(g >= EVERY[kind] for g in gaps(fast[kind])), (kind, gaps(fast[kind]))
    assert len(fast["curves"]) >= 2  # the stretch keeps every kind alive, in the configured proportions
    assert state.stretch > 1


def test_total_share_stays_within_the_budget_over_a_window():
    base, steps = 1e-4, 5000
    for train in (0.006, 0.02, 0.05):
        _, _, own, wall = run(0.03, train, base=base, steps=steps)
        assert own / wall <= 0.03 + HEAVY / wall, train  # at most one heavy computation over: the debt
    _, _, own, wall = run(0.10, 0.002, base=base, steps=steps)
    assert own / wall <= 0.10 + HEAVY / wall


def test_a_base_cost_over_the_budget_leaves_the_statistics_a_quarter_of_the_allowance():
    # 0.1 ms of argument checks and bookkeeping on a 2 ms step is 5 %: nothing the budget can schedule
    # brings that under 3 %, so the statistics keep a quarter of the allowance instead of stopping.
    base, train, steps = 1e-4, 0.002, 20000
    done, state, own, wall = run(0.03, train, base=base, steps=steps)
    assert all(len(done[k]) >= 2 for k in (STEP, *KINDS)), {k: len(v) for k, v in done.items()}
    r = 0.03 / 0.97
    scheduled = own - base * steps
    assert scheduled / wall == pytest.approx(0.25 * r * train * steps / wall, rel=0.1)
    assert state.share > 0.03  # over the budget, and meta.json's share says so


def test_per_step_cost_over_the_budget_does_not_starve_the_heavy_kinds():
    # The step statistics alone are 10 % of a 1 ms step. They are stretched like the heavy kinds, by the
    # same factor, so pairwise work still comes (the first version stopped every heavy kind after step 0
    # here, when the per-step cost ate the allowance).
    costs = dict(COSTS, step=1e-4)
    done, state, own, wall = run(0.03, 0.001, base=1e-5, costs=costs, steps=20000)
    assert all(len(done[k]) >= 2 for k in KINDS), {k: len(v) for k, v in done.items()}
    assert math.isfinite(state.stretch) and state.stretch > 10
    step_gap = statistics.median(gaps(done[STEP]))
    assert step_gap == math.ceil(state.stretch)
    # Pairwise work every 25 × stretch steps (the debt may hold it a little longer).
    pairwise_gap = statistics.median(gaps(done["pairwise"]))
    assert 25 * state.stretch <= pairwise_gap <= 1.2 * 25 * state.stretch
    assert own / wall <= 0.03 + HEAVY / wall


def test_underestimated_step_statistics_yield_to_a_waiting_heavy_kind():
    # One step-statistics call in 8 is 20× slower (preempted): the moving average, which clips a sample
    # at 4× itself, is then 2.6× below the true mean, and the step statistics overspend. They yield to a
    # heavy kind that waits for the debt, so pairwise work keeps its stretched pace.
    steps = 20000
    done, state, own, wall = run(0.03, 0.006, steps=steps, slow_every=8)
    expected = steps / (25 * state.stretch)
    assert len(done["pairwise"]) >= 0.5 * expected, (len(done["pairwise"]), expected)
    # Over by at most one heavy computation and what the step statistics overspent since the last one.
    assert own / wall <= 0.03 + 2 * HEAVY / wall


def test_a_long_pause_is_not_saved_up_for_a_burst():
    paused, *_ = run(0.03, 0.006, steps=3000, pause=(1500, 600.0))  # ten minutes of evaluation mid-run
    steady, *_ = run(0.03, 0.006, steps=3000)

    def window(done):
        return [s for k in KINDS for s in done[k] if 1500 <= s < 1700]

    # At most one more of each kind than the budgeted pace, which then resumes.
    assert len(window(paused)) <= len(window(steady)) + len(KINDS)


def test_off_kinds_stay_off_and_fixed_cadence_is_multiples():
    every = {"step": 1, "pairwise": 3, "spectrum": 0, "curves": 0}
    done, *_ = run(0.5, 0.3, every=every, steps=20)
    assert done["pairwise"] == list(range(0, 20, 3)) and done["spectrum"] == done["curves"] == []
    fixed = FixedCadence({"pairwise": 3, "spectrum": 0, "curves": 5})
    assert [s for s in range(12) if fixed.due("pairwise", s)] == [0, 3, 6, 9]
    assert not any(fixed.due("spectrum", s) for s in range(12))
    assert all(fixed.due(STEP, s) for s in range(12))  # a mapping without "step": every step, as before


def test_fixed_cadence_step_every():
    fixed = FixedCadence({"step": 3, "pairwise": 0, "spectrum": 0, "curves": 0})
    assert [s for s in range(10) if fixed.due(STEP, s)] == [0, 3, 6, 9]
    # Under an ample budget, a minimum spacing of 4 from the last computation, a heavy step's included.
    done, *_ = run(0.03, 0.3, every=dict(EVERY, step=4), steps=60)
    assert done[STEP] == [0, 4, 8, 12, 16, 20, 24, 25, 29, 33, 37, 41, 45, 49, 50, 54, 58]


def test_budget_doctests_pass():
    result = doctest.testmod(budget_module)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.1, float("nan")])
def test_budget_must_be_a_share(bad):
    with pytest.raises(ValueError, match="budget must be in"):
        check_budget(bad)
    with pytest.raises(ValueError, match="budget must be in"):
        Monitor("unused-never-created", budget=bad)


def test_budget_type_is_checked():
    with pytest.raises(TypeError, match="budget must be a number"):
        check_budget("0.03")


def _monitor_run(tmp_path, name, train, steps=600, step_cost=0.0):
    """A Monitor on an injected clock: pairwise work costs 1 ms of it, the step statistics ``step_cost``."""
    clock = FakeClock()
    every = {"pairwise": 5, "spectrum": 0, "curves": 0}
    budget = OverheadBudget(0.03, every, clock=clock)
    g = torch.Generator().manual_seed(0)
    a = torch.randn(16, 8, generator=g)
    b = a + 0.1 * torch.randn(16, 8, generator=g)
    real_pairwise, real_step = F.pairwise_statistics, F.step_statistics

    def costly(*args, **kwargs):
        clock.t += 1e-3
        return real_pairwise(*args, **kwargs)

    def costly_step(*args, **kwargs):
        clock.t += step_cost
        return real_step(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(F, "pairwise_statistics", costly)
        mp.setattr(F, "step_statistics", costly_step)
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
                mon.log(step, a, b, loss=1.0)
    run = read_run(tmp_path / name)
    return run, run.meta


def _steps(run, metric):
    return sorted(run.scalars([metric]).step)


def test_monitor_schedules_by_its_budget_and_records_it(tmp_path):
    slow_run, meta = _monitor_run(tmp_path, "slow", train=0.2)
    fast_run, fast_meta = _monitor_run(tmp_path, "fast", train=0.004)
    slow, fast = _steps(slow_run, "uniformity"), _steps(fast_run, "uniformity")
    assert slow == list(range(0, 600, 5))  # ample budget: the configured cadence
    assert 2 <= len(fast) <= 0.6 * len(slow)  # 1 ms on a 4 ms step: every 9th step at most is 3 %
    assert all(b - a >= 5 for a, b in itertools.pairwise(fast))
    assert meta["overhead"]["budget"] == 0.03 and meta["overhead"]["share"] < 0.03
    assert fast_meta["overhead"]["share"] <= 0.03 + 1e-3 / (600 * 0.004)
    assert fast_meta["overhead"]["stretch"] > 1


def test_monitor_thins_costly_step_statistics_but_logs_the_loss_every_step(tmp_path):
    # 0.2 ms of step statistics on a 4 ms step is 5 % by itself: they must be scheduled too.
    run, meta = _monitor_run(tmp_path, "run", train=0.004, step_cost=2e-4)
    aligned = _steps(run, "alignment")
    assert _steps(run, "loss") == _steps(run, "batch_size") == list(range(600))
    assert 10 <= len(aligned) <= 600 / 3
    assert set(_steps(run, "uniformity")) <= set(aligned)  # a heavy step has its step statistics
    assert meta["overhead"]["share"] <= 0.03 + 1e-3 / (600 * 0.004)
    assert 0 <= meta["overhead"]["base_share"] <= meta["overhead"]["share"]


def test_monitor_step_every_with_fixed_cadences(tmp_path):
    a = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    for name, pairwise_every in (("off", 0), ("five", 5)):
        with Monitor(
            tmp_path / name,
            step_every=3,
            pairwise_every=pairwise_every,
            spectrum_every=0,
            curves_every=0,
            budget=None,
        ) as mon:
            assert mon.cadence.step_every == 3
            for step in range(12):
                mon.log(step, a, a + 0.1, temperature=0.1, loss=float(step))
    off, five = read_run(tmp_path / "off"), read_run(tmp_path / "five")
    assert _steps(off, "alignment") == _steps(off, "nonfinite_fraction") == [0, 3, 6, 9]
    assert _steps(off, "loss") == _steps(off, "temperature") == _steps(off, "batch_size") == list(range(12))
    assert _steps(five, "uniformity") == [0, 5, 10]
    assert _steps(five, "alignment") == [0, 3, 5, 6, 9, 10]  # a pairwise step has its step statistics


def test_a_nan_batch_at_a_skipped_step_is_flagged_by_its_loss(tmp_path):
    a = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    nan = torch.full_like(a, float("nan"))
    with Monitor(tmp_path / "run", step_every=3, pairwise_every=0, spectrum_every=0, budget=None) as mon:
        for step in range(7):
            bad = step in (4, 6)
            z = nan if bad else a
            mon.log(step, z, z + 0.1, loss=float("nan") if bad else 1.0)
    df = read_run(tmp_path / "run").scalars()
    flags = df[df.metric == "nonfinite/loss"]
    assert sorted(flags.step) == [4, 6]  # step 4 has no step statistics: its NaN loss is the flag
    share = df[df.metric == "nonfinite_fraction"].set_index("step").value
    assert share.to_dict() == {0: 0.0, 3: 0.0, 6: 1.0}  # step 6 has them: the batch is seen as well


def test_step_every_must_be_a_positive_int():
    with pytest.raises(ValueError, match="step_every must be an int >= 1"):
        Monitor("unused-never-created", step_every=0)


def test_budget_none_keeps_fixed_cadences(tmp_path):
    with Monitor(tmp_path / "run", pairwise_every=2, spectrum_every=0, curves_every=0, budget=None) as mon:
        for step in range(9):
            mon.log(step, torch.randn(8, 4), torch.randn(8, 4))
    run = read_run(tmp_path / "run")
    assert sorted(run.scalars(["uniformity"]).step) == [0, 2, 4, 6, 8]
    assert _steps(run, "alignment") == list(range(9))  # step_every=1: every step, as before
    assert "overhead" not in run.meta
