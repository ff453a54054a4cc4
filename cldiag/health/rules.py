"""The health rules: each reads a :class:`~cldiag.health.tables.Context` and says what it finds.

A rule is registered in :data:`RULES` with its metadata — id, title, what it needs, its alarm and warn
conditions (built from :mod:`cldiag.health.thresholds`, so the threshold text is generated from the numbers
the code applies), its source and the action for each level. Its check function only returns
:class:`Finding` s (or ``None`` when the rule cannot apply); :meth:`Rule.apply` turns them into one
:class:`~cldiag.health.verdict.Verdict`: the most severe finding leads, the others are listed as ``also``.

Rules judge **windows, not single points**: the "recent" value of a metric is the median over the last
20 % of its logged points (at least 3), and trends compare that against the medians of earlier windows of
the same size (the peak, the minimum or the first window). One noisy step therefore neither raises nor
silences an alarm.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from cldiag import schema
from cldiag.health import thresholds as T
from cldiag.health.tables import Context, RunTables, Series, round_sig, window_width
from cldiag.health.thresholds import Condition
from cldiag.health.verdict import Level, Verdict, severity
from cldiag.reader import Run

NOTHING_TO_DO: Final[str] = "Nothing to do."


@dataclass(frozen=True)
class Finding:
    """One thing a rule found: a level, a reason, its evidence and, rarely, an action of its own."""

    level: Level
    reason: str
    evidence: dict[str, Any]
    action: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What a check returns: its findings (empty when all is well) and the reading to show when ok."""

    findings: list[Finding]
    ok: Finding


Check = Callable[[Context], "Outcome | None"]


@dataclass(frozen=True)
class Rule:
    """A registered health rule: metadata, level conditions as data, and the check itself.

    Attributes:
        name: the id carried by its verdicts.
        title: a short human title.
        needs: what a run must have logged for the rule to apply (shown for omitted rules).
        alarm: the conditions that raise an alarm (any of them).
        warn: the conditions that raise a warning (any of them).
        source: the paper or documented heuristic behind them.
        cite: the source in a few words (the README's table).
        actions: what to try, per level the rule can reach (``ok`` included).
        check: the function that returns the findings, or ``None`` when the rule does not apply.
    """

    name: str
    title: str
    needs: str
    alarm: tuple[Condition, ...]
    warn: tuple[Condition, ...]
    source: str
    cite: str
    actions: Mapping[str, str] = field(repr=False, compare=False)
    check: Check = field(repr=False, compare=False)

    @property
    def threshold(self) -> str:
        """The thresholds the rule applies, as text generated from its conditions."""
        return T.threshold_text(self.alarm, self.warn)

    @property
    def levels(self) -> tuple[Level, ...]:
        """The levels this rule can give (``ok`` and those with conditions)."""
        return ("ok", *(("warn",) if self.warn else ()), *(("alarm",) if self.alarm else ()))

    def apply(self, ctx: Context) -> Verdict | None:
        """The rule's verdict on ``ctx`` (``None`` when it cannot apply)."""
        outcome = self.check(ctx)
        if outcome is None:
            return None
        if not outcome.findings:
            return self._verdict(outcome.ok)
        ranked = sorted(outcome.findings, key=lambda f: -severity(f.level))
        lead = ranked[0]
        evidence = dict(lead.evidence)
        if len(ranked) > 1:
            evidence["also"] = [f.reason for f in ranked[1:]]
        return self._verdict(Finding(lead.level, lead.reason, evidence, lead.action))

    def _verdict(self, f: Finding) -> Verdict:
        action = f.action if f.action is not None else self.actions[f.level]
        return Verdict(self.name, f.level, f.reason, f.evidence, self.threshold, self.source, action)


def fmt(x: float | None) -> str:
    """A number for prose: 3 significant digits (``–`` for none)."""
    return "–" if x is None else f"{x:.3g}"


def _readings_evidence(readings: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Evidence of several readings: the first leads, the rest go under ``others``."""
    return {**readings[0], "others": list(readings[1:])} if len(readings) > 1 else dict(readings[0])


def _tail_evidence(series: Series) -> dict[str, Any]:
    tail = series.tail()
    return {"metric": series.metric, "step": tail.last_step, **tail.evidence()}


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


def _check_nonfinite(ctx: Context) -> Outcome | None:
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


def _check_liveness(ctx: Context) -> Outcome:
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
# complete collapse
def _level_below(value: float, alarm: float, warn: float) -> Level | None:
    return "alarm" if value < alarm else "warn" if value < warn else None


def _level_above(value: float, alarm: float, warn: float) -> Level | None:
    return "alarm" if value > alarm else "warn" if value > warn else None


def _std_reading(ctx: Context) -> tuple[dict[str, Any], list[Finding]] | None:
    std = ctx.get(schema.M_STD_L2)
    if std is None or not ctx.dim:
        return None
    scale = math.sqrt(ctx.dim)
    tail = std.scaled(scale).tail()
    ev = {
        "metric": std.metric,
        "step": tail.last_step,
        **tail.evidence(),
        "value": round_sig(tail.median / scale),
        "ratio_to_isotropic": round_sig(tail.median),
        "isotropic": round_sig(1 / scale),
    }
    level = _level_below(tail.median, T.STD_RATIO_ALARM, T.STD_RATIO_WARN)
    reason = (
        f"The unit embeddings barely vary: their per-dimension std is {tail.median:.2g} × the isotropic "
        "1/√d (0 = every embedding identical)."
    )
    return ev, [Finding(level, reason, ev)] if level else []


def _check_complete_collapse(ctx: Context) -> Outcome | None:
    """Complete collapse: every embedding (nearly) the same point.

    Two readings of the recent window (median of the last 20 % of points):

    - ``std_l2 · √d`` — the mean per-dimension std of the unit rows, relative to its isotropic value
      ``1/√d`` (Chen & He, SimSiam, CVPR 2021; lightly's ``std_of_l2_normalized``): ≈1 healthy, 0 when
      every row is equal. **alarm** below 0.05, **warn** below 0.1. For rows spread evenly over ``k`` of
      ``d`` axes it equals ``√(k/d)``, so 0.1 is "≤ 1 % of the axes", leaving axis-aligned collapse onto a
      few dimensions to the dimensional-collapse rule.
    - ``uniformity`` (t = 2) — ``log mean exp(−2‖ẑᵢ − ẑⱼ‖²)``, 0 exactly when all points are equal
      (Wang & Isola, ICML 2020; −3.9 for uniform points in 128 d). **alarm** above −0.1 (mean squared
      distance ≲ 0.05, every cosine ≳ 0.97), **warn** above −0.5 (a narrow cap, cosines ≳ 0.87). Checked
      per modality when per-modality values exist, since one tower can collapse alone.

    Source: the scales are from the papers above; the cut-offs are a documented heuristic placed well
    inside the collapsed end of each scale.
    """
    findings: list[Finding] = []
    readings: list[dict[str, Any]] = []
    std = _std_reading(ctx)
    if std is not None:
        readings.append(std[0])
        findings += std[1]
    unifs = ctx.family(schema.M_UNIFORMITY)
    for unif in [s for s in unifs if s.metric != schema.M_UNIFORMITY] or unifs:
        ev = _tail_evidence(unif)
        readings.append(ev)
        median = unif.tail().median
        level = _level_above(median, T.UNIFORMITY_ALARM, T.UNIFORMITY_WARN)
        if level:
            reason = (
                f"{unif.metric} is {median:.2g}, close to 0, its value when all "
                f"embeddings are the same point."
            )
            findings.append(Finding(level, reason, ev))
    if not readings:
        return None
    shown = ", ".join(
        f"{r['metric']} {fmt(r.get('ratio_to_isotropic', r['value']))}"
        + (" × 1/√d" if "ratio_to_isotropic" in r else "")
        for r in readings
    )
    ok = Finding("ok", f"The embeddings are spread out: {shown}.", _readings_evidence(readings))
    return Outcome(findings, ok)


# ---------------------------------------------------------------------------------------------------------
# dimensional collapse
def _rank_cap(ctx: Context, series: Series, step: int) -> float | None:
    """``min(rows, d)``: the largest effective rank the value at ``step`` could reach."""
    rows = ctx.finite_rows(step)
    if rows is not None and series.metric == schema.M_RANK and ctx.tables.two_modality:
        rows *= 2  # the joint rank of a two-modality run stacks both sides' rows
    caps = [c for c in (rows, ctx.dim) if c]
    return min(caps) if caps else None


def _rank_findings(ctx: Context, rank: Series) -> tuple[dict[str, Any], list[Finding]]:
    tail = rank.tail()
    cap = _rank_cap(ctx, rank, tail.last_step)
    ev = _tail_evidence(rank)
    if ctx.dim:
        ev["dim"] = ctx.dim
    findings: list[Finding] = []
    if cap:
        frac = tail.median / cap
        ev.update(cap=round_sig(cap), fraction_of_cap=round_sig(frac))
        level = _level_below(frac, T.RANK_FRACTION_ALARM, T.RANK_FRACTION_WARN)
        if level:
            reason = (
                f"{rank.metric} is {tail.median:.3g}, only {frac:.0%} of the {cap:.0f} dimensions it could "
                "use: the embeddings live in a low-dimensional subspace."
            )
            findings.append(Finding(level, reason, ev))
    if not rank.short:
        peak = max(rank.chunks(), key=lambda w: w.median)
        drop = 1.0 - tail.median / peak.median if peak.median > 0 else 0.0
        if drop >= T.RANK_DROP_WARN:
            reason = (
                f"{rank.metric} fell by {drop:.0%}, from {peak.median:.3g} (steps {peak.first_step}–"
                f"{peak.last_step}) to {tail.median:.3g}: dimensions are collapsing during training."
            )
            peak_ev = {"peak": round_sig(peak.median), "peak_window": [peak.first_step, peak.last_step]}
            findings.append(Finding("warn", reason, {**ev, **peak_ev}))
    return ev, findings


def _floor_counts(ctx: Context, per_mod: Any) -> list[tuple[int, int, int]]:
    """``(step, directions at the floor, usable directions)`` for the recent spectra of one modality."""
    steps = np.unique(per_mod["step"].to_numpy())
    recent = per_mod[per_mod["step"].isin(steps[-window_width(len(steps)) :])].sort_values(["step", "index"])
    counts: list[tuple[int, int, int]] = []
    for step, group in recent.groupby("step", sort=True):
        lam = group["eigenvalue"].to_numpy(np.float64)
        rows = ctx.finite_rows(int(step))
        # A covariance of n rows has rank ≤ n − 1: directions beyond that are zero by construction.
        usable = len(lam) if rows is None else min(len(lam), max(round(rows) - 1, 1))
        top = max(float(lam[0]), np.finfo(np.float64).tiny)
        counts.append((int(step), int(np.sum(lam[:usable] <= T.FLOOR_RELATIVE * top)), usable))
    return counts


def _floor_findings(ctx: Context) -> tuple[list[Finding], dict[str, Any] | None]:
    """Directions of the latest spectra (recent window) whose eigenvalue sits at the float floor."""
    findings: list[Finding] = []
    summary: dict[str, Any] | None = None
    for modality, per_mod in ctx.spectra.groupby("modality", sort=False):
        counts = _floor_counts(ctx, per_mod)
        floor = int(np.median([c for _, c, _ in counts]))
        step, _, usable = counts[-1]
        ev = {
            "metric": f"spectrum/{modality}",
            "step": step,
            "value": floor,
            "directions": usable,
            "steps_checked": [c[0] for c in counts],
        }
        if summary is None or floor > summary["value"]:
            summary = ev
        if floor:
            reason = (
                f"{floor} of {usable} directions of the {modality} covariance spectrum "
                f"are at the float floor "
                f"(eigenvalue ≤ {T.FLOOR_RELATIVE:g} × the largest): the embedding does not use them."
            )
            findings.append(Finding("alarm" if floor / usable >= T.FLOOR_SHARE_ALARM else "warn", reason, ev))
    return findings, summary


def _dimensional_reading(r: dict[str, Any]) -> str:
    if "directions" in r:
        return f"{r['metric']}: {r['value']} of {r['directions']} directions at the float floor"
    return f"{r['metric']} {fmt(r['value'])}" + (f" of {fmt(r['cap'])} possible" if "cap" in r else "")


def _check_dimensional_collapse(ctx: Context) -> Outcome | None:
    """Dimensional collapse: embeddings confined to a subspace of fewer dimensions than they have.

    Read from the effective rank (RankMe, Garrido et al., ICML 2023; logged per modality too) and the
    covariance spectrum of the unit, centered embeddings (Jing et al., ICLR 2022). The rank can at most
    reach ``min(rows, d)`` (``d`` = ``meta["dim"]``, rows = the batch's finite rows), so it is judged as a
    fraction of that cap:

    - recent effective rank < 0.1 × cap → **alarm**, < 0.25 × cap → **warn** (a Gaussian batch of
      ``N = d`` rows already reaches ≈ 0.8 × d);
    - effective rank fallen by ≥ 50 % from its peak window → **warn** (Jing et al.: collapsed directions
      keep shrinking over training while the loss looks fine). Healthy runs lose some rank as classes
      form clusters — a SimCLR MLP on digits (batch 256, τ = 0.2, 1500 steps) went 36.6 → 23.1 (−37 %), a
      CLIP pair of MLPs on digits/captions −22 % — so only losing half is flagged;
    - any direction of the recent spectra at the float floor (eigenvalue ≤ 1e−10 × the largest, i.e. a
      spread < 1e−5 of the leading direction's, still 100× above float32 rounding) → **warn**, half or more
      of the usable directions → **alarm**. Only the first ``rows − 1`` directions count: beyond that a
      batch's covariance is zero by construction.

    Source: metrics from Jing et al. 2022 and Garrido et al. 2023, who give no numeric cut-off; the
    fractions are a documented heuristic.
    """
    findings: list[Finding] = []
    readings: list[dict[str, Any]] = []
    for rank in ctx.family(schema.M_RANK):
        ev, found = _rank_findings(ctx, rank)
        readings.append(ev)
        findings += found
    floor_findings, floor_summary = _floor_findings(ctx)
    findings += floor_findings
    if floor_summary is not None:
        readings.append(floor_summary)
    if not readings:
        return None
    reason = "The embeddings use their dimensions: " + ", ".join(map(_dimensional_reading, readings)) + "."
    return Outcome(findings, Finding("ok", reason, _readings_evidence(readings)))


# ---------------------------------------------------------------------------------------------------------
# score separation
def _cap_short(level: Level, series: Series) -> Level:
    """At most ``warn`` while a series is too short for its recent window to differ from its first."""
    return "warn" if series.short and level == "alarm" else level


def _overlap_trend(overlap: Series, ev: dict[str, Any]) -> list[Finding]:
    tail, head = overlap.tail(), overlap.head()
    if tail.median >= T.OVERLAP_STALL_MIN and head.median - tail.median < T.OVERLAP_STALL_DROP:
        reason = (
            f"The positive/negative overlap is not falling ({head.median:.2f} in steps {head.first_step}–"
            f"{head.last_step}, {tail.median:.2f} now): separation has stalled."
        )
        first = {"first": round_sig(head.median), "first_window": [head.first_step, head.last_step]}
        return [Finding("warn", reason, {**ev, **first})]
    best = min(overlap.chunks(), key=lambda w: w.median)
    if tail.median - best.median >= T.OVERLAP_RISE_WARN:
        reason = (
            f"The positive/negative overlap rose from {best.median:.2f} (steps {best.first_step}–"
            f"{best.last_step}) to {tail.median:.2f}: positives and negatives are blending again."
        )
        return [
            Finding(
                "warn",
                reason,
                {**ev, "best": round_sig(best.median), "best_window": [best.first_step, best.last_step]},
            )
        ]
    return []


def _overlap_findings(overlap: Series, ev: dict[str, Any]) -> list[Finding]:
    median = overlap.tail().median
    if median >= T.OVERLAP_WARN:
        level = _cap_short("alarm" if median >= T.OVERLAP_ALARM else "warn", overlap)
        reason = (
            f"Positive and negative scores overlap by {median:.0%}: the model cannot tell a positive pair "
            "from a negative one."
        )
        return [Finding(level, reason, ev)]
    return [] if overlap.short else _overlap_trend(overlap, ev)


def _retrieval_findings(ctx: Context, retrieval: Series, ev: dict[str, Any]) -> list[Finding]:
    batch = ctx.recent_batch()
    if not batch:
        return []
    chance = 1.0 / batch
    ev["chance"] = round_sig(chance)
    median = retrieval.tail().median
    if batch <= T.RETRIEVAL_MIN_BATCH or median > T.RETRIEVAL_CHANCE_FACTOR * chance:
        return []
    reason = (
        f"In-batch retrieval is {median:.1%}, at chance level (1/B = {chance:.1%}): positives do not score "
        "above negatives."
    )
    return [Finding(_cap_short("alarm", retrieval), reason, ev)]


def _check_score_separation(ctx: Context) -> Outcome | None:
    """Score separation: do positive pairs score higher than negatives?

    - ``pos_neg_overlap`` — overlap coefficient of the positive and negative cosine histograms (1 = the
      two distributions are identical, 0 = disjoint). Recent value ≥ 0.7 → **alarm**, ≥ 0.5 → **warn**.
      Identical distributions read below 1 because the positive histogram holds only B samples: unrelated
      random views give ≈ 0.78 at B = 64 with 50 bins, hence 0.7 rather than a value nearer 1. Also
      **warn** when it is not falling (recent ≥ 0.2 and less than 0.05 below the first window) or has
      risen by ≥ 0.2 from its best window (separation lost).
    - ``retrieval_acc`` — in-batch top-1 retrieval of the positive. At most 2 × chance (chance = 1/B)
      → **alarm**: positives are not ranked above negatives at all (not judged for B ≤ 4, where 2 ×
      chance is already a coin flip).

    While a series is too short for its recent window to be separate from the first one, the rule says
    **warn** at most (a run at its first steps is at chance by nature).

    Source: Zhu et al. (ICCV 2021) visualise the two distributions separating during healthy training but
    give no cut-off; the thresholds are a documented heuristic on the overlap's [0, 1] scale and the 1/B
    chance level of in-batch retrieval.
    """
    overlap = ctx.get(schema.M_OVERLAP)
    retrieval = ctx.get(schema.M_RETRIEVAL)
    if overlap is None and retrieval is None:
        return None
    findings: list[Finding] = []
    readings: list[dict[str, Any]] = []
    if overlap is not None:
        ev = _tail_evidence(overlap)
        readings.append(ev)
        findings += _overlap_findings(overlap, ev)
    if retrieval is not None:
        ev = _tail_evidence(retrieval)
        findings += _retrieval_findings(ctx, retrieval, ev)
        readings.append(ev)
    shown = ", ".join(f"{r['metric']} {fmt(r['value'])}" for r in readings)
    return Outcome(
        findings, Finding("ok", f"Positives score above negatives: {shown}.", _readings_evidence(readings))
    )


# ---------------------------------------------------------------------------------------------------------
# temperature
def _tau_band(ctx: Context) -> tuple[int, float, float] | None:
    """From the latest entropy curve: ``(step, lowest τ, highest τ)`` whose entropy is inside the band."""
    curves = ctx.temperature
    ent = curves[curves["curve"] == schema.CURVE_ENTROPY]
    if ent.empty:
        return None
    step = int(ent["step"].max())
    last = ent[ent["step"] == step]
    inside = last[(last["value"] >= T.ENTROPY_LOW) & (last["value"] <= T.ENTROPY_HIGH)]
    if inside.empty:
        return None
    return step, float(inside["tau"].min()), float(inside["tau"].max())


def _temperature_evidence(ctx: Context, ent: Series) -> tuple[dict[str, Any], str]:
    """The entropy's evidence (with τ, effective negatives, the τ band) and the action's hint."""
    ev = _tail_evidence(ent)
    tau = ctx.get(schema.M_TEMPERATURE)
    if tau is not None:
        ev["tau"] = round_sig(tau.tail().median)
    eff = ctx.get(schema.M_EFF_NEG)
    if eff is not None:
        ev["effective_negatives"] = round_sig(eff.tail().median)
    band = _tau_band(ctx)
    hint = ""
    if band is not None:
        ev["tau_band"] = [round_sig(band[1]), round_sig(band[2])]
        hint = f" The temperature curve at step {band[0]} puts τ in [{band[1]:.3g}, {band[2]:.3g}] inside it."
    return ev, hint


def _check_temperature(ctx: Context) -> Outcome | None:
    """Temperature: how the loss at the run's τ spreads its penalty over the negatives.

    ``neg_entropy`` is the normalized entropy (in [0, 1]) of the relative penalty ``softmax(s_ij/τ)`` over
    each anchor's negatives (Wang & Liu, CVPR 2021). Near 0 only the hardest negative counts (τ too low:
    uniform but intolerant embeddings that push apart same-class samples); near 1 every negative weighs
    the same (τ too high: the loss stops telling hard from easy negatives, embeddings less uniform).
    Recent value < 0.2 or > 0.98 → **warn**. Never an alarm: both regimes still train.

    Source: the penalty and how to read it are Wang & Liu's; the cut-offs are a documented heuristic. On
    the test suite's healthy run (batch 64, d = 32, 8 well-separated clusters) the entropy is 0.10 at
    τ = 0.01, 0.48 at τ = 0.1, 0.74 at τ = 0.2 and 0.99 at τ = 1, so 0.2 and 0.98 flag only the two ends of
    the range Wang & Liu study (0.07 … 1), where their accuracy dropped. The action names the τ range whose
    entropy falls inside the band on the run's latest temperature curve.
    """
    ent = ctx.get(schema.M_ENTROPY)
    if ent is None:
        return None
    ev, hint = _temperature_evidence(ctx, ent)
    median = ent.tail().median
    tau_text = f" at τ = {ev['tau']:.3g}" if "tau" in ev else ""
    action = (
        "Wang & Liu: τ trades uniformity (low τ) against tolerance to similar samples (high τ); move τ "
        f"towards the middle. Aim for a penalty entropy in [{T.ENTROPY_LOW}, {T.ENTROPY_HIGH}].{hint}"
    )
    findings: list[Finding] = []
    if median < T.ENTROPY_LOW:
        reason = (
            f"The penalty entropy{tau_text} is {median:.2f}: the loss only sees the "
            f"hardest negatives (τ too low)."
        )
        findings.append(Finding("warn", reason, ev, action))
    elif median > T.ENTROPY_HIGH:
        reason = (
            f"The penalty entropy{tau_text} is {median:.3f}: every negative is weighted alike, the loss "
            "ignores which ones are hard (τ too high)."
        )
        findings.append(Finding("warn", reason, ev, action))
    reason = (
        f"The penalty entropy{tau_text} is {median:.2f}: the loss weighs hard "
        f"negatives more without ignoring "
        "the rest."
    )
    return Outcome(findings, Finding("ok", reason, ev))


# ---------------------------------------------------------------------------------------------------------
# tolerance
def _margin(ctx: Context) -> tuple[Series, Series, Series, np.ndarray, np.ndarray] | None:
    """Tolerance, its baseline, and their difference on the steps both were logged."""
    tol = ctx.get(schema.M_TOLERANCE)
    tables = ctx.tables
    baseline = f"{schema.M_CONE}/{tables.modalities[0]}" if tables.two_modality else schema.M_NEG_SIM
    base = ctx.get(baseline)
    if tol is None or base is None:
        return None
    common, it, ib = np.intersect1d(tol.steps, base.steps, return_indices=True)
    if common.size == 0:
        return None
    margin = Series(f"{tol.metric} - {base.metric}", common, tol.values[it] - base.values[ib])
    return tol, base, margin, it, ib


def _check_tolerance(ctx: Context) -> Outcome | None:
    """Tolerance: are same-class samples closer than arbitrary pairs, and do they stay so?

    Needs labels. ``tolerance`` is the mean cosine of same-class pairs of the first view/modality (Wang &
    Liu, CVPR 2021). Its margin over the mean cosine of *any* two samples says whether the embedding groups
    the classes. That baseline is ``neg_sim`` (mean cosine of non-matching pairs across the two views) in
    one-modality runs and ``cone/<first modality>`` (mean cosine within that modality) in two-modality
    runs, where cross-modal cosines are shifted by the modality gap and would inflate the margin.

    - recent margin < 0.05 → **warn**: same-class pairs are no closer than random ones;
    - margin fallen by ≥ 0.2 from its best window → **warn**: class structure is being lost. Wang & Liu
      show a too-low τ lowers tolerance — uniformity bought by pushing similar samples apart.

    Source: tolerance from Wang & Liu 2021; comparing it with the mean cosine of arbitrary pairs
    (tolerance itself drops whenever the embedding spreads out) and the cut-offs are a documented
    heuristic.
    """
    found = _margin(ctx)
    if found is None:
        return None
    tol, base, margin, it, ib = found
    tail = margin.tail()
    ev: dict[str, Any] = {
        "metric": tol.metric,
        "step": tail.last_step,
        "value": round_sig(float(np.median(tol.values[it][-margin.width :]))),
        "baseline_metric": base.metric,
        "baseline": round_sig(float(np.median(base.values[ib][-margin.width :]))),
        "margin": round_sig(tail.median),
        "window": [tail.first_step, tail.last_step],
    }
    findings: list[Finding] = []
    if tail.median < T.MARGIN_MIN:
        reason = (
            f"Same-class pairs are no closer than arbitrary pairs (tolerance "
            f"{ev['value']:.2f} vs {base.metric} "
            f"{ev['baseline']:.2f}): the embedding does not group the labelled classes."
        )
        findings.append(Finding("warn", reason, ev))
    elif not margin.short:
        best = max(margin.chunks(), key=lambda w: w.median)
        if best.median - tail.median >= T.MARGIN_DROP_WARN:
            reason = (
                f"Same-class pairs drift apart: their margin over arbitrary pairs fell "
                f"from {best.median:.2f} "
                f"(steps {best.first_step}–{best.last_step}) to {tail.median:.2f}."
            )
            best_ev = {
                "best_margin": round_sig(best.median),
                "best_window": [best.first_step, best.last_step],
            }
            findings.append(Finding("warn", reason, {**ev, **best_ev}))
    reason = (
        f"Same-class pairs are closer than arbitrary ones (tolerance "
        f"{ev['value']:.2f}, margin {tail.median:.2f})."
    )
    return Outcome(findings, Finding("ok", reason, ev))


# ---------------------------------------------------------------------------------------------------------
# modality gap
def _gap_growth(gap: Series, ev: dict[str, Any]) -> list[Finding]:
    if gap.short:
        return []
    tail = gap.tail()
    low = min(gap.chunks(), key=lambda w: w.median)
    if tail.median - low.median < T.GAP_GROWTH_WARN or tail.median < T.GAP_GROWTH_MIN:
        return []
    reason = (
        f"The modality gap grew from {low.median:.2f} (steps {low.first_step}–{low.last_step}) to "
        f"{tail.median:.2f}."
    )
    low_ev = {"smallest": round_sig(low.median), "smallest_window": [low.first_step, low.last_step]}
    return [Finding("warn", reason, {**ev, **low_ev})]


def _check_modality_gap(ctx: Context) -> Outcome | None:
    """Modality gap: two-modality runs whose modalities live in separate regions of the sphere.

    ``modality_gap`` is ``‖mean(â) − mean(b̂)‖`` on unit embeddings (0 … 2); ``cone/<modality>`` the mean
    cosine within one modality (Liang et al., NeurIPS 2022). **warn** when the recent gap is ≥ 0.8 (as
    large as pretrained CLIP's 0.82 on MSCOCO, the case Liang et al. study), when it grew by ≥ 0.1 over its
    smallest window while ≥ 0.3, or when a cone is ≥ 0.8 (narrower than the 0.67–0.72 they measure at
    random initialisation — training should widen cones, not narrow them). Never an alarm: Liang et al.
    show a gap is a property of contrastive multimodal training, not a failure by itself (closing it helps
    some tasks and hurts others).

    Source: values from Liang et al. 2022; the cut-offs are a documented heuristic anchored on them.
    """
    gap = ctx.get(schema.M_GAP)
    if gap is None:
        return None
    median = gap.tail().median
    ev = _tail_evidence(gap)
    cones = [c for c in ctx.family(schema.M_CONE) if c.metric != schema.M_CONE]
    for c in cones:
        ev[c.metric] = round_sig(c.tail().median)
    findings: list[Finding] = []
    if median >= T.GAP_WARN:
        reason = (
            f"The modality gap is {median:.2f} (pretrained CLIP: 0.82): the two modalities occupy separate "
            "regions of the sphere."
        )
        findings.append(Finding("warn", reason, ev))
    findings += _gap_growth(gap, ev)
    for c in cones:
        if ev[c.metric] >= T.CONE_WARN:
            reason = (
                f"{c.metric} is {ev[c.metric]:.2f}: that modality's embeddings sit in a "
                f"narrow cone (Liang et al. "
                "measure 0.67–0.72 at random initialisation)."
            )
            findings.append(Finding("warn", reason, {**ev, "metric": c.metric, "value": ev[c.metric]}))
    shown = "".join(f", {c.metric} {ev[c.metric]:.2f}" for c in cones)
    return Outcome(findings, Finding("ok", f"The modality gap is {median:.2f} and not growing{shown}.", ev))


# ---------------------------------------------------------------------------------------------------------
# false negatives
def _check_false_negatives(ctx: Context) -> Outcome | None:
    """False negatives: how much of the loss's repulsion lands on negatives that share the anchor's label.

    Needs labels. ``false_neg_penalty_share`` is the mean over anchors of the softmax weight, at the run's
    τ, on in-batch negatives with the anchor's label: their share of the negative gradient (Wang & Liu's
    same-class penalty, CVPR 2021; DebCSE 2023 and debiased contrastive learning call such negatives
    false). ``false_neg_share`` is their share of the *count* of negatives, set by the sampler (≈ 1/C for
    C balanced classes). Recent penalty share ≥ 0.5 → **warn**: most of the repulsion pushes apart samples
    the labels call alike, which costs tolerance (Wang & Liu). The reason gives the concentration
    ``penalty share / count share``: far above 1, same-label negatives are the hardest ones. Never an
    alarm: with self-supervised objectives some same-label repulsion is expected and can still train well.

    Source: the quantity from Wang & Liu 2021 and DebCSE 2023; the cut-off (half of the penalty, where
    same-label negatives outweigh all others together) is a documented heuristic, not a published number.
    """
    penalty = ctx.get(schema.M_FALSE_NEG_PENALTY_SHARE)
    if penalty is None:
        return None
    median = penalty.tail().median
    ev = _tail_evidence(penalty)
    count = ctx.get(schema.M_FALSE_NEG_SHARE)
    share_text = ""
    if count is not None:
        count_median = count.tail().median
        ev["count_share"] = round_sig(count_median)
        if count_median > 0:
            ev["concentration"] = round_sig(median / count_median)
            ratio = median / count_median
            share_text = f" while they are {count_median:.1%} of the negatives ({ratio:.1f}× their share)"
    findings: list[Finding] = []
    if median >= T.FALSE_NEG_PENALTY_WARN:
        reason = (
            f"Same-label negatives receive {median:.0%} of the negative penalty{share_text}: most of the "
            "loss's repulsion pushes apart samples the labels call alike."
        )
        findings.append(Finding("warn", reason, ev))
    reason = f"Same-label negatives receive {median:.0%} of the negative penalty{share_text}."
    return Outcome(findings, Finding("ok", reason, ev))


# ---------------------------------------------------------------------------------------------------------
# alignment vs uniformity
def _alignment_rise(align: Series, unif: Series, ev: dict[str, Any]) -> list[Finding]:
    tail = align.tail()
    best = min(align.chunks(), key=lambda w: w.median)
    rise = tail.median - best.median
    if rise < T.ALIGN_RISE_WARN:
        return []
    now = unif.tail().median
    then = unif.median_between(best.first_step, best.last_step)
    ev = {**ev, "best": round_sig(best.median), "best_window": [best.first_step, best.last_step]}
    if then is not None:
        ev["uniformity_then"] = round_sig(then)
    if then is not None and then - now >= T.UNIFORMITY_GAIN:
        reason = (
            f"Alignment worsened from {best.median:.2f} to {tail.median:.2f} while uniformity improved from "
            f"{then:.2f} to {now:.2f}: the loss spreads embeddings apart at the cost of pulling positives "
            "together."
        )
    else:
        reason = (
            f"Alignment worsened from {best.median:.2f} (steps {best.first_step}–{best.last_step}) to "
            f"{tail.median:.2f}: positive pairs are drifting apart."
        )
    return [Finding("alarm" if rise >= T.ALIGN_RISE_ALARM else "warn", reason, ev)]


def _check_alignment_uniformity(ctx: Context) -> Outcome | None:
    """Alignment worsening while uniformity improves: the loss trades positives for spread.

    Wang & Isola (ICML 2020) show that good contrastive representations have both low alignment
    (``mean ‖âᵢ − b̂ᵢ‖²``, 0 … 4; 2 for unrelated pairs) and low uniformity. The rule compares the recent
    alignment with its best (lowest) window: a rise of ≥ 0.1 → **warn**, ≥ 0.5 (a quarter of the way to
    unrelated pairs) → **alarm**. The reason says whether uniformity improved (fell by ≥ 0.05) over the
    same stretch — the telltale of a loss that spreads embeddings at the cost of pulling positives
    together.

    Source: the two properties from Wang & Isola 2020; the cut-offs are a documented heuristic on the
    alignment scale.
    """
    align = ctx.get(schema.M_ALIGNMENT)
    unif = ctx.get(schema.M_UNIFORMITY)
    if align is None or unif is None:
        return None
    ev = {**_tail_evidence(align), "uniformity": round_sig(unif.tail().median)}
    findings = [] if align.short else _alignment_rise(align, unif, ev)
    reason = (
        f"Alignment {align.tail().median:.2f} is at or near its best and "
        f"uniformity is {ev['uniformity']:.2f}."
    )
    return Outcome(findings, Finding("ok", reason, ev))


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


def _check_storage(ctx: Context) -> Outcome:
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


# ---------------------------------------------------------------------------------------------------------
# The registry
_HEURISTIC = "documented heuristic"

RULES: Final[tuple[Rule, ...]] = (
    Rule(
        name="nonfinite",
        title="Non-finite values",
        needs="nonfinite_fraction or nonfinite/loss (logged by Monitor.log), or a NaN/Inf stored value",
        alarm=(
            Condition("nonfinite_fraction > 0 in the recent window"),
            Condition("any step whose loss was NaN/Inf (flag row nonfinite/loss)"),
            Condition("any NaN/Inf number stored in a table"),
        ),
        warn=(Condition("NaN/Inf rows earlier only"),),
        source="documented heuristic: a NaN/Inf embedding or loss is never healthy, and the Monitor never "
        "stores a NaN/Inf number",
        cite=_HEURISTIC,
        actions={
            "ok": NOTHING_TO_DO,
            "warn": "Look at what happened around the first affected step (learning-rate spike, AMP "
            "overflow, a bad batch); if it recurs, lower the learning rate or clip gradients.",
            "alarm": "Find the first non-finite step: lower the learning rate, clip gradients, check for "
            "log(0) or division by a zero norm (normalize with an eps), run in float32 to rule out fp16 "
            "overflow, and check the inputs for NaN.",
        },
        check=_check_nonfinite,
    ),
    Rule(
        name="liveness",
        title="Stalled or crashed run",
        needs="always applies",
        alarm=(
            Condition("status failed"),
            Condition("running with heartbeat > {} old", (T.HEARTBEAT_ALARM_S,), T.minutes),
        ),
        warn=(
            Condition("heartbeat > {} old or unreadable", (T.HEARTBEAT_WARN_S,), T.minutes),
            Condition("no part written for > {}", (T.QUIET_WARN_S,), T.minutes),
            Condition("an unknown status"),
        ),
        source="documented heuristic: the Monitor beats every 30 s and flushes every 30 s while logging",
        cite=_HEURISTIC,
        actions={
            "ok": NOTHING_TO_DO,
            "warn": "Check that the training process is still alive and making progress (logs, GPU "
            "utilisation); a long evaluation phase also pauses logging.",
            "alarm": "Look at the training process's logs for the crash; resume with "
            "Monitor(..., if_exists='resume') once fixed.",
        },
        check=_check_liveness,
    ),
    Rule(
        name="complete_collapse",
        title="Complete collapse",
        needs="std_l2 or uniformity (pairwise statistics)",
        alarm=(
            Condition("std_l2·√d < {}", (T.STD_RATIO_ALARM,)),
            Condition("uniformity > {}", (T.UNIFORMITY_ALARM,)),
        ),
        warn=(
            Condition("std_l2·√d < {}", (T.STD_RATIO_WARN,)),
            Condition("uniformity > {}", (T.UNIFORMITY_WARN,)),
        ),
        source="Chen & He 2021 (SimSiam; lightly std_of_l2_normalized ≈ 1/√d healthy, 0 collapsed); Wang & "
        "Isola 2020 (uniformity 0 iff all points equal); cut-offs a documented heuristic",
        cite="Chen & He 2021; Wang & Isola 2020",
        actions={
            "ok": NOTHING_TO_DO,
            "warn": "Watch whether it keeps shrinking; check the learning rate and that the loss still has "
            "its negative/repulsive term.",
            "alarm": "The encoder maps everything to one point: check that negatives reach the loss (or, "
            "for SimSiam/BYOL, the stop-gradient and predictor), lower the learning rate, and compare the "
            "loss with its collapsed value (NT-Xent: log(2B−1)).",
        },
        check=_check_complete_collapse,
    ),
    Rule(
        name="dimensional_collapse",
        title="Dimensional collapse",
        needs="effective_rank or spectra (spectrum cadence)",
        alarm=(
            Condition("effective rank < {} × min(rows, d)", (T.RANK_FRACTION_ALARM,)),
            Condition("≥ {} of the spectrum at the float floor", (T.FLOOR_SHARE_ALARM,), T.percent),
        ),
        warn=(
            Condition("effective rank < {} × min(rows, d)", (T.RANK_FRACTION_WARN,)),
            Condition("fallen ≥ {} from its peak", (T.RANK_DROP_WARN,), T.percent),
            Condition(
                "any direction at the float floor (eigenvalue ≤ {} × the largest)", (T.FLOOR_RELATIVE,)
            ),
        ),
        source="Jing et al. 2022 (spectrum), Garrido et al. 2023 (RankMe); fractions a documented heuristic",
        cite="Jing et al. 2022; Garrido et al. 2023",
        actions={
            "ok": NOTHING_TO_DO,
            "warn": "Watch the spectrum page: if the tail keeps falling, weaken the augmentation that "
            "dominates, add a projector (evaluate the layer before it), or lower the learning rate.",
            "alarm": "Jing et al.: strong augmentation and implicit low-rank regularisation collapse "
            "dimensions — weaken the augmentations, use a projector head and evaluate the representation "
            "before it, or fix part of the embedding (DirectCLR).",
        },
        check=_check_dimensional_collapse,
    ),
    Rule(
        name="score_separation",
        title="Positive/negative score separation",
        needs="pos_neg_overlap or retrieval_acc (pairwise statistics with two views)",
        alarm=(
            Condition("overlap ≥ {}", (T.OVERLAP_ALARM,)),
            Condition("retrieval ≤ {}/B (B > {})", (T.RETRIEVAL_CHANCE_FACTOR, T.RETRIEVAL_MIN_BATCH)),
        ),
        warn=(
            Condition("overlap ≥ {}", (T.OVERLAP_WARN,)),
            Condition(
                "not falling (≥ {} and < {} below the first window)",
                (T.OVERLAP_STALL_MIN, T.OVERLAP_STALL_DROP),
            ),
            Condition("risen ≥ {} from its best window", (T.OVERLAP_RISE_WARN,)),
        ),
        source="Zhu et al. 2021 (score distributions); cut-offs a documented heuristic (overlap ∈ [0, 1], "
        "chance 1/B)",
        cite="Zhu et al. 2021",
        actions={
            "ok": NOTHING_TO_DO,
            "warn": "Give it more steps or a higher learning rate; check that a[i] and b[i] really are views "
            "of the same sample (a shuffled loader breaks pairs).",
            "alarm": "Check the pairing of a[i] and b[i] (same order in both views), that the encoder's "
            "gradients flow (frozen or detached encoder), the learning rate, and the augmentations "
            "(too strong ones destroy what the views share).",
        },
        check=_check_score_separation,
    ),
    Rule(
        name="temperature",
        title="Temperature (penalty entropy)",
        needs="neg_entropy (Monitor.log with temperature=…)",
        alarm=(),
        warn=(
            Condition("penalty entropy < {} (τ too low)", (T.ENTROPY_LOW,)),
            Condition("> {} (τ too high)", (T.ENTROPY_HIGH,)),
        ),
        source="Wang & Liu 2021 (hardness-aware penalty); cut-offs a documented heuristic",
        cite="Wang & Liu 2021",
        actions={
            "ok": NOTHING_TO_DO,
            "warn": "Wang & Liu: τ trades uniformity (low τ) against tolerance to similar samples (high τ); "
            "move τ towards the middle.",
        },
        check=_check_temperature,
    ),
    Rule(
        name="tolerance",
        title="Tolerance to same-class samples",
        needs="tolerance (Monitor.log with labels=…)",
        alarm=(),
        warn=(
            Condition("tolerance − mean cosine of arbitrary pairs < {}", (T.MARGIN_MIN,)),
            Condition("that margin fallen ≥ {} from its best window", (T.MARGIN_DROP_WARN,)),
        ),
        source="Wang & Liu 2021 (tolerance); margin and cut-offs a documented heuristic",
        cite="Wang & Liu 2021",
        actions={
            "ok": NOTHING_TO_DO,
            "warn": "Wang & Liu: a higher τ tolerates similar samples; also check the labels passed to "
            "Monitor.log match the batch order, and consider a supervised or debiased loss (SupCon, DCL).",
        },
        check=_check_tolerance,
    ),
    Rule(
        name="modality_gap",
        title="Modality gap",
        needs="modality_gap (two-modality runs)",
        alarm=(),
        warn=(
            Condition("gap ≥ {}", (T.GAP_WARN,)),
            Condition(
                "grown ≥ {} over its smallest window (while ≥ {})", (T.GAP_GROWTH_WARN, T.GAP_GROWTH_MIN)
            ),
            Condition("a cone ≥ {}", (T.CONE_WARN,)),
        ),
        source="Liang et al. 2022 (CLIP gap 0.82 on MSCOCO, random-init cones 0.67–0.72); cut-offs a "
        "documented heuristic",
        cite="Liang et al. 2022",
        actions={
            "ok": NOTHING_TO_DO,
            "warn": "Liang et al.: the gap starts at initialisation (cone effect) and a low temperature "
            "keeps it; a higher or learnable τ narrows it. If downstream zero-shot tasks suffer, try "
            "shifting embeddings along the gap vector (their 'modality gap' experiment).",
        },
        check=_check_modality_gap,
    ),
    Rule(
        name="false_negatives",
        title="False negatives in the penalty",
        needs="false_neg_penalty_share (Monitor.log with labels=… and temperature=…)",
        alarm=(),
        warn=(
            Condition(
                "same-label negatives get ≥ {} of the negative penalty",
                (T.FALSE_NEG_PENALTY_WARN,),
                T.percent,
            ),
        ),
        source="Wang & Liu 2021 (same-class penalty), DebCSE 2023 (false negatives); the cut-off is a "
        "documented heuristic (same-label negatives carrying four times the penalty of all others together)",
        cite="Wang & Liu 2021; DebCSE 2023; cut-off a heuristic",
        actions={
            "ok": NOTHING_TO_DO,
            "warn": "Raise τ (Wang & Liu: a higher τ tolerates similar samples), use a debiased or "
            "false-negative-aware loss (DCL, DebCSE-style reweighting), a supervised loss where labels are "
            "known (SupCon), or sample batches with fewer same-class pairs.",
        },
        check=_check_false_negatives,
    ),
    Rule(
        name="alignment_uniformity",
        title="Alignment worsening (vs uniformity)",
        needs="alignment and uniformity (two views)",
        alarm=(Condition("alignment ≥ {} above its best window", (T.ALIGN_RISE_ALARM,)),),
        warn=(
            Condition(
                "≥ {} above (reason notes uniformity gains ≥ {} over the same stretch)",
                (T.ALIGN_RISE_WARN, T.UNIFORMITY_GAIN),
            ),
        ),
        source="Wang & Isola 2020 (alignment and uniformity); cut-offs a documented heuristic",
        cite="Wang & Isola 2020",
        actions={
            "ok": NOTHING_TO_DO,
            "warn": "Check whether the augmentations got stronger (schedules) or τ is low; Wang & Isola "
            "weight the two terms explicitly (align + uniform loss) when one dominates.",
            "alarm": "Positives are pushed apart: weaken the augmentations, raise τ, lower the learning "
            "rate, and check that a[i], b[i] are still views of the same sample.",
        },
        check=_check_alignment_uniformity,
    ),
    Rule(
        name="storage",
        title="Unreadable parts or implausible steps",
        needs="always applies",
        alarm=(),
        warn=(
            Condition("≥ 1 part file skipped by the reader"),
            Condition("a row whose step is < 0 or > {}", (T.MAX_PLAUSIBLE_STEP,), T.power_of_two),
        ),
        source="documented heuristic: parts are written atomically with the Monitor's steps, so a skipped "
        "part or an impossible step is foreign or damaged",
        cite=_HEURISTIC,
        actions={
            "ok": NOTHING_TO_DO,
            "warn": "Inspect or delete the listed files (cldiag compact rewrites a run's parts).",
        },
        check=_check_storage,
    ),
)
"""Every rule :func:`evaluate` runs, in report order."""

RULE_BY_NAME: Final[dict[str, Rule]] = {r.name: r for r in RULES}


def evaluate_tables(tables: RunTables, *, now: _dt.datetime | None = None) -> list[Verdict]:
    """Run every rule of :data:`RULES` over ``tables`` (DataFrames, no files needed).

    Args:
        tables: the run's tables and meta (see :class:`~cldiag.health.tables.RunTables`).
        now: the time to judge liveness against (default: the current UTC time; naive means UTC).

    Returns:
        One :class:`Verdict` per applicable rule, in the order of :data:`RULES`.
    """
    ctx = Context.load(tables, now)
    return [v for v in (rule.apply(ctx) for rule in RULES) if v is not None]


def evaluate(run: Run | RunTables, *, now: _dt.datetime | None = None) -> list[Verdict]:
    """Run every rule of :data:`RULES` over ``run`` and return their verdicts, ``ok`` ones included.

    Each table is read once and shared between the rules. Rules that cannot apply to the run (see
    :func:`not_checked`) are omitted.

    Args:
        run: the run to judge (from :func:`cldiag.read_run`), or its tables as a
            :class:`~cldiag.health.tables.RunTables`.
        now: the time to judge liveness against (default: the current UTC time; naive means UTC).

    Returns:
        One :class:`Verdict` per applicable rule, in the order of :data:`RULES`.

    Raises:
        TypeError: ``run`` is not a :class:`~cldiag.reader.Run` (or RunTables) or ``now`` not a datetime.
    """
    if not isinstance(run, Run | RunTables):
        raise TypeError(f"run must be a cldiag Run (from read_run) or RunTables, got {type(run).__name__}")
    if now is not None and not isinstance(now, _dt.datetime):
        raise TypeError(f"now must be a datetime.datetime or None, got {type(now).__name__}")
    tables = run if isinstance(run, RunTables) else RunTables.from_run(run)
    return evaluate_tables(tables, now=now)


def not_checked(verdicts: Iterable[Verdict]) -> list[dict[str, str]]:
    """The rules of :data:`RULES` without a verdict in ``verdicts``, each with what it needs to apply."""
    seen = {v.rule for v in verdicts}
    return [{"rule": r.name, "needs": r.needs} for r in RULES if r.name not in seen]
