"""Rules on the run itself: non-finite values, liveness and unreadable storage.

These judge the run and its files rather than the embedding — a NaN, a dead or hung process, a damaged part
file. :mod:`cldiag.health.rules` registers each check with its rule's metadata and conditions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cldiag import schema
from cldiag.health import thresholds as T
from cldiag.health.rule import Finding, Outcome
from cldiag.health.tables import Context, Series, round_sig


# ---------------------------------------------------------------------------------------------------------
# nonfinite
def _nonfinite_rows(bad: Series) -> list[Finding]:
    hit = np.flatnonzero(bad.values > 0)
    if not hit.size:
        return []
    first = int(bad.steps[hit[0]])
    worst = int(hit[np.argmax(bad.values[hit])])
    evidence = {
        "metric": bad.metric,
        "step": int(bad.steps[worst]),
        "value": round_sig(float(bad.values[worst])),
        "first_step": first,
        "steps_affected": int(hit.size),
    }
    recent = hit[hit >= bad.size - bad.width]
    if not recent.size:
        reason = (
            f"NaN/Inf embedding rows appeared at {hit.size} steps (first at step {first}) but not in the "
            "recent window: the run recovered."
        )
        return [Finding("warn", reason, evidence)]
    last = int(recent[-1])
    evidence.update(step=int(bad.steps[last]), value=round_sig(float(bad.values[last])))
    reason = (
        f"{bad.values[last]:.0%} of the embedding rows were NaN/Inf at step {bad.steps[last]} "
        f"({hit.size} affected steps since step {first})."
    )
    return [Finding("alarm", reason, evidence)]


def _nonfinite_loss(ctx: Context) -> list[Finding]:
    bad_loss = ctx.get(f"{schema.NONFINITE_PREFIX}{schema.M_LOSS}")
    if bad_loss is None:
        return []
    reason = (
        f"The loss was NaN/Inf at {bad_loss.size} logged steps, first at step {bad_loss.steps[0]} and last "
        f"at step {bad_loss.steps[-1]}."
    )
    evidence = {
        "metric": bad_loss.metric,
        "step": int(bad_loss.steps[-1]),
        "value": 1.0,
        "first_step": int(bad_loss.steps[0]),
        "steps_affected": int(bad_loss.size),
    }
    return [Finding("alarm", reason, evidence)]


def _nonfinite_stored(ctx: Context) -> list[Finding]:
    """NaN/Inf numbers stored in a table: the Monitor never writes them (it writes flag rows instead)."""
    found = [a for a in ctx.anomalies if a.nonfinite]
    if not found:
        return []
    total = sum(a.nonfinite for a in found)
    where = "; ".join(f"{a.table}: {', '.join(a.nonfinite_metrics)}" for a in found)
    reason = (
        f"{total} stored value(s) are NaN/Inf ({where}): the Monitor never writes those, so a part file "
        "was written by other code or is damaged."
    )
    evidence = {
        "metric": "nonfinite_values",
        "step": min(a.nonfinite_first_step for a in found if a.nonfinite_first_step is not None),
        "value": total,
        "tables": {a.table: a.nonfinite for a in found},
        "where": {a.table: list(a.nonfinite_metrics) for a in found},
    }
    action = "Find which code wrote these parts (cldiag writes NaN as flag rows nonfinite/<metric>)."
    return [Finding("alarm", reason, evidence, action)]


def check_nonfinite(ctx: Context) -> Outcome | None:
    """Non-finite values: NaN/Inf embedding rows, a loss that stopped being finite, NaN/Inf stored values.

    ``nonfinite_fraction`` is the share of a step's rows holding a NaN or Inf (the Monitor drops them from
    every other metric). Any such row in the recent window is an **alarm**, earlier ones only a **warn**
    (the run recovered, e.g. AMP overflow steps). The Monitor writes a flag row ``nonfinite/loss`` = 1 at
    each step whose loss was NaN/Inf; any such row is an **alarm**. A NaN/Inf *number* in any table is an
    **alarm** too: the Monitor never stores one, so it comes from a foreign or damaged part file — and the
    other rules have not seen it (they read finite values only).

    Source: documented heuristic — a NaN or Inf in an embedding or loss is never healthy (an overflow or a
    division by zero), so the threshold is "any".
    """
    bad = ctx.get(schema.M_NONFINITE)
    loss = ctx.get(schema.M_LOSS)
    stored = _nonfinite_stored(ctx)
    if bad is None and loss is None and not stored:
        return None
    findings = [*(_nonfinite_rows(bad) if bad is not None else []), *_nonfinite_loss(ctx), *stored]
    if bad is not None:
        ok_ev = {"metric": bad.metric, "step": int(bad.steps[-1]), "value": 0.0, "steps_checked": bad.size}
        checked = f"{bad.size} logged steps"
    else:
        ok_ev = {"metric": schema.M_LOSS, "step": None, "value": None}
        checked = f"{loss.size if loss is not None else 0} loss values"
    return Outcome(findings, Finding("ok", f"No NaN/Inf embeddings or losses in {checked}.", ok_ev))


# ---------------------------------------------------------------------------------------------------------
# liveness
def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _liveness_of_running(ctx: Context, base: dict[str, Any]) -> Finding:
    age = schema.heartbeat_age(ctx.tables.meta, ctx.now)
    evidence = {**base, "metric": "heartbeat_age_s", "value": None if age is None else round(age, 1)}
    evidence["status"] = base["value"]
    if age is None:
        return Finding(
            "warn", "The run says 'running' but meta.json holds no readable heartbeat time.", evidence
        )
    if age > T.HEARTBEAT_WARN_S:
        reason = (
            f"The run says 'running' but its last heartbeat was {_duration(age)} ago: the training process "
            "most likely died without closing the Monitor."
        )
        return Finding("alarm" if age > T.HEARTBEAT_ALARM_S else "warn", reason, evidence)
    newest = ctx.tables.last_write
    if newest is not None:
        quiet = ctx.now.timestamp() - newest
        evidence["last_write_age_s"] = round(quiet, 1)
        if quiet > T.QUIET_WARN_S:
            reason = (
                f"The process is alive (heartbeat {_duration(max(age, 0.0))} ago) but has written no data "
                f"for {_duration(quiet)}: training may hang."
            )
            return Finding("warn", reason, evidence)
    return Finding("ok", f"The run is live: heartbeat {_duration(max(age, 0.0))} ago.", evidence)


def check_liveness(ctx: Context) -> Outcome:
    """Liveness: a run that crashed, was killed, or hangs.

    The Monitor refreshes ``meta.json``'s heartbeat every 30 s while its process lives and sets the status
    to ``finished`` (or ``failed`` when an exception leaves its ``with`` block) on close. So:

    - status ``failed`` → **alarm**;
    - status ``running`` and heartbeat older than 300 s (10 missed beats; the default of
      :meth:`Run.is_stale`) → **warn**, older than 30 min → **alarm** (the process died without closing);
    - status ``running``, heartbeat fresh, but no part file written for 15 min → **warn**: the process is
      alive yet logs nothing (a hung data loader, a deadlock — or a long evaluation phase). The Monitor
      flushes every 30 s while steps are logged, so 15 min is 30 missed flushes.

    Source: documented heuristic built on the Monitor's 30 s heartbeat and flush interval.
    """
    status = ctx.tables.status
    base = {"metric": "status", "step": ctx.tables.meta.get("last_step"), "value": status}
    if status == schema.STATUS_FAILED:
        reason = "The run ended with status 'failed': an exception left the training loop."
        return Outcome([Finding("alarm", reason, base)], Finding("ok", "", base))
    if status == schema.STATUS_FINISHED:
        return Outcome([], Finding("ok", "The run finished and closed its Monitor cleanly.", base))
    if status != schema.STATUS_RUNNING:
        reason = f"meta.json records an unknown status {status!r}."
        finding = Finding("warn", reason, base, "Check how the run was written.")
        return Outcome([finding], Finding("ok", "", base))
    found = _liveness_of_running(ctx, base)
    return Outcome([] if found.level == "ok" else [found], found)


# ---------------------------------------------------------------------------------------------------------
# storage
def _bad_step_finding(ctx: Context) -> list[Finding]:
    bad = [a for a in ctx.anomalies if a.bad_steps]
    if not bad:
        return []
    total = sum(a.bad_steps for a in bad)
    examples = sorted({s for a in bad for s in a.bad_step_examples})[:3]
    reason = (
        f"{total} row(s) carry a step no training loop writes (e.g. {', '.join(map(str, examples))}; "
        f"plausible: 0 … {T.power_of_two(T.MAX_PLAUSIBLE_STEP)}): the verdicts "
        f"and the step range ignore them."
    )
    evidence = {
        "metric": "implausible_steps",
        "step": None,
        "value": total,
        "examples": examples,
        "tables": {a.table: a.bad_steps for a in bad},
    }
    return [Finding("warn", reason, evidence, "Find which code wrote these parts (Monitor steps are ≥ 0).")]


def check_storage(ctx: Context) -> Outcome:
    """Storage: part files the reader had to skip, and rows whose step no training loop writes.

    Any skipped part → **warn**: the other verdicts were computed without its data. Any row with a negative
    step or one beyond 2^53 (where a float64 — JSON, JavaScript — no longer holds every integer) → **warn**:
    those rows are left out of every other rule and of the report's step range.

    Source: documented heuristic — cldiag writes parts atomically with the steps it was given, so a skipped
    part or an impossible step means a foreign or damaged file, which a user should know about but which
    does not by itself mean the training is sick.
    """
    problems = list(ctx.tables.problems)
    ev = {"metric": "unreadable_parts", "step": None, "value": len(problems)}
    findings = _bad_step_finding(ctx)
    if problems:
        reason = f"{len(problems)} part file(s) could not be read and were skipped; the verdicts ignore them."
        findings.insert(0, Finding("warn", reason, {**ev, "problems": problems[:10]}))
    return Outcome(findings, Finding("ok", "Every part file of the run was readable.", ev))
