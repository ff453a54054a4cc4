"""Health verdicts: rules that read a run's tables and say, with evidence and a source, what looks wrong.

Each rule turns one family of diagnostics into a :class:`Verdict` — ``ok``, ``warn`` or ``alarm`` — with a
one-sentence reason, the evidence (metric, step, value …), the threshold it applied, where that threshold
comes from (a paper, or "documented heuristic: …" with the reasoning where the literature gives no
number) and what to try. :func:`evaluate` runs every rule over a run; :func:`report_dict` and
:func:`format_report` turn the verdicts into what ``cldiag report RUN [--json]`` prints.

Rules judge **windows, not single points**: the "recent" value of a metric is the median over the last
20 % of its logged points (at least 3), and trends compare that against the medians of earlier windows
of the same size (the peak, the minimum or the first window). One noisy step therefore neither raises nor
silences an alarm.

A rule that cannot apply to a run — the modality gap of a one-modality run, tolerance without labels, a
metric that has not been logged yet — is **omitted** from :func:`evaluate`'s list; :func:`not_checked`
names the omitted rules and what each needs, and both reports show them.

Nothing here imports torch or Streamlit: the dashboard and the CLI call these functions on a
:class:`~cldiag.reader.Run` directly.
"""

from __future__ import annotations

import datetime as _dt
import math
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np
import pandas as pd

from cldiag import schema
from cldiag.reader import Run

__all__ = [
    "LEVELS",
    "RULES",
    "Rule",
    "Verdict",
    "evaluate",
    "format_report",
    "not_checked",
    "report_dict",
    "worst_level",
]

Level = Literal["ok", "warn", "alarm"]
LEVELS: Final[tuple[Level, ...]] = ("ok", "warn", "alarm")
"""Verdict levels in increasing severity."""

WINDOW_FRACTION: Final[float] = 0.2
"""Share of a metric's logged points that forms the "recent" window (and every comparison window)."""
MIN_WINDOW_POINTS: Final[int] = 3
"""Smallest window: a median of fewer points is a single noisy value."""

# Complete collapse (SimSiam / lightly std_of_l2_normalized; Wang & Isola uniformity).
STD_RATIO_ALARM: Final[float] = 0.05
STD_RATIO_WARN: Final[float] = 0.1
UNIFORMITY_ALARM: Final[float] = -0.1
UNIFORMITY_WARN: Final[float] = -0.5
# Dimensional collapse (Jing et al. 2022; RankMe, Garrido et al. 2023).
RANK_FRACTION_ALARM: Final[float] = 0.1
RANK_FRACTION_WARN: Final[float] = 0.25
RANK_DROP_WARN: Final[float] = 0.5
FLOOR_RELATIVE: Final[float] = 1e-10
FLOOR_SHARE_ALARM: Final[float] = 0.5
# Score separation (Zhu et al. 2021 draw the distributions; the cut-offs are heuristics).
OVERLAP_ALARM: Final[float] = 0.7
OVERLAP_WARN: Final[float] = 0.5
OVERLAP_STALL_MIN: Final[float] = 0.2
OVERLAP_STALL_DROP: Final[float] = 0.05
OVERLAP_RISE_WARN: Final[float] = 0.2
RETRIEVAL_CHANCE_FACTOR: Final[float] = 2.0
# Temperature and tolerance (Wang & Liu 2021).
ENTROPY_LOW: Final[float] = 0.2
ENTROPY_HIGH: Final[float] = 0.98
MARGIN_MIN: Final[float] = 0.05
MARGIN_DROP_WARN: Final[float] = 0.2
# Modality gap (Liang et al. 2022).
GAP_WARN: Final[float] = 0.8
GAP_GROWTH_WARN: Final[float] = 0.1
GAP_GROWTH_MIN: Final[float] = 0.3
CONE_WARN: Final[float] = 0.8
# Alignment vs uniformity (Wang & Isola 2020).
ALIGN_RISE_WARN: Final[float] = 0.1
ALIGN_RISE_ALARM: Final[float] = 0.5
UNIFORMITY_GAIN: Final[float] = 0.05
# Liveness.
HEARTBEAT_WARN_S: Final[float] = 300.0
HEARTBEAT_ALARM_S: Final[float] = 1800.0
QUIET_WARN_S: Final[float] = 900.0

_KEY_FIGURES: Final[tuple[str, ...]] = (
    schema.M_LOSS,
    schema.M_ALIGNMENT,
    schema.M_UNIFORMITY,
    schema.M_RANK,
    schema.M_STD_L2,
    schema.M_OVERLAP,
    schema.M_RETRIEVAL,
    schema.M_TEMPERATURE,
    schema.M_ENTROPY,
    schema.M_TOLERANCE,
    schema.M_GAP,
)


# ---------------------------------------------------------------------------------------------------------
# Verdicts
@dataclass(frozen=True)
class Verdict:
    """The outcome of one rule on one run.

    Attributes:
        rule: the rule's id (see :data:`RULES`), e.g. ``"dimensional_collapse"``.
        level: ``"ok"``, ``"warn"`` or ``"alarm"``.
        reason: one sentence a user understands.
        evidence: what the verdict rests on: at least ``metric``, ``step`` and ``value``, plus whatever
            else shows it (the window, the earlier value compared against, a count …). JSON-safe values.
        threshold: the threshold(s) applied, as text or a number.
        source: the paper the threshold or the metric's reading comes from, or
            ``"documented heuristic: …"`` with the reasoning.
        action: what to try.
    """

    rule: str
    level: Level
    reason: str
    evidence: dict[str, Any] = field(hash=False)
    threshold: str | float
    source: str
    action: str

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, got {self.level!r}")

    def to_dict(self) -> dict[str, Any]:
        """The verdict as a JSON-serializable dict (non-finite numbers become ``None``)."""
        return {
            "rule": self.rule,
            "level": self.level,
            "reason": self.reason,
            "evidence": _jsonable(self.evidence),
            "threshold": _jsonable(self.threshold),
            "source": self.source,
            "action": self.action,
        }


def _jsonable(value: Any) -> Any:
    """Plain Python values for JSON: numpy scalars unwrapped, NaN/Inf as None, tuples as lists."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def worst_level(verdicts: Iterable[Verdict]) -> Level:
    """The most severe level among ``verdicts`` (``"ok"`` for none)."""
    worst = 0
    for v in verdicts:
        worst = max(worst, LEVELS.index(v.level))
    return LEVELS[worst]


# ---------------------------------------------------------------------------------------------------------
# Windows over a metric's series
@dataclass(frozen=True)
class _Window:
    """Median of consecutive logged points of one metric."""

    median: float
    first_step: int
    last_step: int

    def evidence(self) -> dict[str, Any]:
        return {"value": _round(self.median), "window": [self.first_step, self.last_step]}


@dataclass(frozen=True)
class _Series:
    """One scalar metric: finite values sorted by step."""

    metric: str
    steps: np.ndarray
    values: np.ndarray

    @property
    def size(self) -> int:
        return len(self.values)

    @property
    def width(self) -> int:
        """Points per window: 20 % of the series, at least 3 (or all of a shorter series)."""
        return min(self.size, max(MIN_WINDOW_POINTS, math.ceil(WINDOW_FRACTION * self.size)))

    @property
    def short(self) -> bool:
        """Too few points for the recent window to be separate from the first one."""
        return self.size < 2 * self.width

    def _window(self, start: int, stop: int) -> _Window:
        return _Window(
            float(np.median(self.values[start:stop])),
            int(self.steps[start]),
            int(self.steps[stop - 1]),
        )

    def tail(self) -> _Window:
        return self._window(self.size - self.width, self.size)

    def head(self) -> _Window:
        return self._window(0, self.width)

    def chunks(self) -> list[_Window]:
        """Consecutive full windows, counted back from the end, in step order (the last is :meth:`tail`)."""
        w = self.width
        return [self._window(stop - w, stop) for stop in range(self.size, w - 1, -w)][::-1]

    def median_between(self, first_step: int, last_step: int) -> float | None:
        inside = (self.steps >= first_step) & (self.steps <= last_step)
        return float(np.median(self.values[inside])) if inside.any() else None

    def at(self, step: int) -> float | None:
        i = int(np.searchsorted(self.steps, step))
        return float(self.values[i]) if i < self.size and self.steps[i] == step else None


def _round(x: float, digits: int = 4) -> float:
    """Round to ``digits`` significant digits so evidence reads well and stays exact through JSON."""
    if x == 0 or not math.isfinite(x):
        return float(x)
    return float(f"{x:.{digits}g}")


def _fmt(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x:.3g}"


# ---------------------------------------------------------------------------------------------------------
# Everything the rules read, loaded once per evaluation
@dataclass
class _Context:
    run: Run
    now: _dt.datetime
    series: dict[str, _Series]
    spectra: pd.DataFrame
    temperature: pd.DataFrame
    dim: int | None

    @classmethod
    def load(cls, run: Run, now: _dt.datetime | None) -> _Context:
        scalars = run.scalars()
        series: dict[str, _Series] = {}
        for metric, group in scalars.groupby("metric", sort=False):
            steps = group["step"].to_numpy(np.int64)
            values = group["value"].to_numpy(np.float64)
            ok = np.isfinite(values)
            if ok.any():
                order = np.argsort(steps[ok], kind="stable")
                series[str(metric)] = _Series(str(metric), steps[ok][order], values[ok][order])
        spectra = run.spectra()
        dim = run.meta.get("dim")
        if not isinstance(dim, int) or dim < 1:
            dim = int(spectra["index"].max()) + 1 if len(spectra) else None
        if now is None:
            now = _dt.datetime.now(_dt.timezone.utc)
        elif now.tzinfo is None:
            now = now.replace(tzinfo=_dt.timezone.utc)
        return cls(run, now, series, spectra, run.temperature(), dim)

    def get(self, metric: str) -> _Series | None:
        return self.series.get(metric)

    def family(self, metric: str) -> list[_Series]:
        """``metric`` and its per-modality variants ``metric/<modality>`` that were logged."""
        names = [metric, *(f"{metric}/{m}" for m in self.run.modalities)]
        return [self.series[n] for n in names if n in self.series]

    def finite_rows(self, step: int) -> float | None:
        """Rows the heavy statistics of ``step`` used: batch size × (1 − non-finite share)."""
        batch = self.get(schema.M_BATCH)
        n = batch.at(step) if batch is not None else None
        if n is None:
            return None
        bad = self.get(schema.M_NONFINITE)
        share = bad.at(step) if bad is not None else None
        return n * (1.0 - (share or 0.0))

    def recent_batch(self) -> float | None:
        batch = self.get(schema.M_BATCH)
        return batch.tail().median if batch is not None else None


def _verdict(
    rule: Rule,
    level: Level,
    reason: str,
    evidence: dict[str, Any],
    action: str,
) -> Verdict:
    return Verdict(rule.name, level, reason, evidence, rule.threshold, rule.source, action)


@dataclass(frozen=True)
class _Finding:
    level: Level
    reason: str
    evidence: dict[str, Any]


def _combine(rule: Rule, findings: Sequence[_Finding], ok: _Finding, actions: Mapping[str, str]) -> Verdict:
    """One verdict from a rule's findings: the most severe one leads, the others are added as ``also``."""
    if not findings:
        return _verdict(rule, "ok", ok.reason, ok.evidence, actions["ok"])
    ranked = sorted(findings, key=lambda f: -LEVELS.index(f.level))
    lead = ranked[0]
    evidence = dict(lead.evidence)
    if len(ranked) > 1:
        evidence["also"] = [f.reason for f in ranked[1:]]
    return _verdict(rule, lead.level, lead.reason, evidence, actions[lead.level])


# ---------------------------------------------------------------------------------------------------------
# Rules
@dataclass(frozen=True)
class Rule:
    """A health rule: its id, what it needs to apply, its threshold and source, and the check itself.

    Attributes:
        name: the id carried by its verdicts.
        title: a short human title.
        needs: what a run must have logged for the rule to apply (shown for omitted rules).
        threshold: the thresholds the rule applies, as text.
        source: the paper or documented heuristic behind them.
        check: the function that returns the verdict, or ``None`` when the rule does not apply.
    """

    name: str
    title: str
    needs: str
    threshold: str
    source: str
    check: Callable[[_Context], Verdict | None] = field(repr=False, compare=False)


def _check_nonfinite(ctx: _Context) -> Verdict | None:
    """Non-finite values: NaN/Inf embedding rows or a loss that stopped being recorded.

    ``nonfinite_fraction`` is the share of a step's rows holding a NaN or Inf (the Monitor drops them from
    every other metric). Any such row in the recent window is an **alarm**, earlier ones only a **warn**
    (the run recovered, e.g. AMP overflow steps). The Monitor writes a flag row ``nonfinite/loss`` = 1 at
    each step whose loss was NaN/Inf; any such row is an **alarm**.

    Source: documented heuristic — a NaN or Inf in an embedding or loss is never healthy (an overflow or a
    division by zero), so the threshold is "any".
    """
    rule = _RULE_BY_NAME["nonfinite"]
    bad = ctx.get(schema.M_NONFINITE)
    loss = ctx.get(schema.M_LOSS)
    if bad is None and loss is None:
        return None
    findings: list[_Finding] = []
    ok_evidence: dict[str, Any] = {"metric": schema.M_LOSS, "step": None, "value": None}
    if bad is not None:
        ok_evidence = {
            "metric": bad.metric,
            "step": int(bad.steps[-1]),
            "value": 0.0,
            "steps_checked": bad.size,
        }
        hit = np.flatnonzero(bad.values > 0)
        if hit.size:
            recent = hit[hit >= bad.size - bad.width]
            worst = int(hit[np.argmax(bad.values[hit])])
            evidence = {
                "metric": bad.metric,
                "step": int(bad.steps[worst]),
                "value": _round(float(bad.values[worst])),
                "first_step": int(bad.steps[hit[0]]),
                "steps_affected": int(hit.size),
            }
            if recent.size:
                last = int(recent[-1])
                evidence.update(step=int(bad.steps[last]), value=_round(float(bad.values[last])))
                findings.append(
                    _Finding(
                        "alarm",
                        f"{bad.values[last]:.0%} of the embedding rows were NaN/Inf at step "
                        f"{bad.steps[last]} ({hit.size} affected steps since step {bad.steps[hit[0]]}).",
                        evidence,
                    ),
                )
            else:
                findings.append(
                    _Finding(
                        "warn",
                        f"NaN/Inf embedding rows appeared at {hit.size} steps (first at step "
                        f"{bad.steps[hit[0]]}) but not in the recent window: the run recovered.",
                        evidence,
                    ),
                )
    bad_loss = ctx.get(f"{schema.NONFINITE_PREFIX}{schema.M_LOSS}")
    if bad_loss is not None:
        findings.append(
            _Finding(
                "alarm",
                f"The loss was NaN/Inf at {bad_loss.size} logged steps, first at step {bad_loss.steps[0]} "
                f"and last at step {bad_loss.steps[-1]}.",
                {
                    "metric": bad_loss.metric,
                    "step": int(bad_loss.steps[-1]),
                    "value": 1.0,
                    "first_step": int(bad_loss.steps[0]),
                    "steps_affected": int(bad_loss.size),
                },
            ),
        )
    if bad is not None:
        checked = f"{bad.size} logged steps"
    else:
        checked = f"{loss.size if loss is not None else 0} loss values"
    ok = _Finding("ok", f"No NaN/Inf embeddings or losses in {checked}.", ok_evidence)
    return _combine(
        rule,
        findings,
        ok,
        {
            "ok": "Nothing to do.",
            "warn": "Look at what happened around the first affected step (learning-rate spike, AMP "
            "overflow, a bad batch); if it recurs, lower the learning rate or clip gradients.",
            "alarm": "Find the first non-finite step: lower the learning rate, clip gradients, check for "
            "log(0) or division by a zero norm (normalize with an eps), run in float32 to rule out fp16 "
            "overflow, and check the inputs for NaN.",
        },
    )


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _check_liveness(ctx: _Context) -> Verdict | None:
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
    rule = _RULE_BY_NAME["liveness"]
    run = ctx.run
    status = run.status
    last_step = run.meta.get("last_step")
    base = {"metric": "status", "step": last_step, "value": status}
    actions: dict[Level, str] = {
        "ok": "Nothing to do.",
        "warn": "Check that the training process is still alive and making progress (logs, GPU "
        "utilisation); a long evaluation phase also pauses logging.",
        "alarm": "Look at the training process's logs for the crash; resume with "
        "Monitor(..., if_exists='resume') once fixed.",
    }
    if status == schema.STATUS_FAILED:
        reason = "The run ended with status 'failed': an exception left the training loop."
        return _verdict(rule, "alarm", reason, base, actions["alarm"])
    if status == schema.STATUS_FINISHED:
        return _verdict(rule, "ok", "The run finished and closed its Monitor cleanly.", base, actions["ok"])
    if status != schema.STATUS_RUNNING:
        reason = f"meta.json records an unknown status {status!r}."
        return _verdict(rule, "warn", reason, base, "Check how the run was written.")
    age = schema.heartbeat_age(run.meta, ctx.now)
    evidence = {**base, "metric": "heartbeat_age_s", "value": None if age is None else round(age, 1)}
    evidence["status"] = status
    if age is None:
        reason = "The run says 'running' but meta.json holds no readable heartbeat time."
        return _verdict(rule, "warn", reason, evidence, actions["warn"])
    if age > HEARTBEAT_WARN_S:
        level: Level = "alarm" if age > HEARTBEAT_ALARM_S else "warn"
        reason = (
            f"The run says 'running' but its last heartbeat was {_duration(age)} ago: the training process "
            "most likely died without closing the Monitor."
        )
        return _verdict(rule, level, reason, evidence, actions[level])
    newest = run.last_write_time()
    if newest is not None:
        quiet = ctx.now.timestamp() - newest
        evidence["last_write_age_s"] = round(quiet, 1)
        if quiet > QUIET_WARN_S:
            reason = (
                f"The process is alive (heartbeat {_duration(max(age, 0.0))} ago) but has written no data "
                f"for {_duration(quiet)}: training may hang."
            )
            return _verdict(rule, "warn", reason, evidence, actions["warn"])
    reason = f"The run is live: heartbeat {_duration(max(age, 0.0))} ago."
    return _verdict(rule, "ok", reason, evidence, actions["ok"])


def _check_complete_collapse(ctx: _Context) -> Verdict | None:
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
    rule = _RULE_BY_NAME["complete_collapse"]
    findings: list[_Finding] = []
    readings: list[dict[str, Any]] = []
    std = ctx.get(schema.M_STD_L2)
    if std is not None and ctx.dim:
        scale = math.sqrt(ctx.dim)
        ratio = _Series(std.metric, std.steps, std.values * scale)
        tail = ratio.tail()
        ev = {
            "metric": std.metric,
            "step": tail.last_step,
            **tail.evidence(),
            "value": _round(tail.median / scale),
            "ratio_to_isotropic": _round(tail.median),
            "isotropic": _round(1 / scale),
        }
        readings.append(ev)
        level = "alarm" if tail.median < STD_RATIO_ALARM else "warn" if tail.median < STD_RATIO_WARN else None
        if level:
            findings.append(
                _Finding(
                    level,
                    f"The unit embeddings barely vary: their per-dimension std is {tail.median:.2g} × the "
                    f"isotropic 1/√d (0 = every embedding identical).",
                    ev,
                ),
            )
    unifs = ctx.family(schema.M_UNIFORMITY)
    uniq = [s for s in unifs if s.metric != schema.M_UNIFORMITY] or unifs
    for unif in uniq:
        tail = unif.tail()
        ev = {"metric": unif.metric, "step": tail.last_step, **tail.evidence()}
        readings.append(ev)
        level = (
            "alarm" if tail.median > UNIFORMITY_ALARM else "warn" if tail.median > UNIFORMITY_WARN else None
        )
        if level:
            findings.append(
                _Finding(
                    level,
                    f"{unif.metric} is {tail.median:.2g}, close to 0, its value when all embeddings are the "
                    "same point.",
                    ev,
                ),
            )
    if not readings:
        return None
    ok = _Finding(
        "ok",
        "The embeddings are spread out: "
        + ", ".join(
            f"{r['metric']} {_fmt(r.get('ratio_to_isotropic', r['value']))}"
            + (" × 1/√d" if "ratio_to_isotropic" in r else "")
            for r in readings
        )
        + ".",
        {**readings[0], "others": readings[1:]} if len(readings) > 1 else readings[0],
    )
    return _combine(
        rule,
        findings,
        ok,
        {
            "ok": "Nothing to do.",
            "warn": "Watch whether it keeps shrinking; check the learning rate and that the loss still has "
            "its negative/repulsive term.",
            "alarm": "The encoder maps everything to one point: check that negatives reach the loss (or, "
            "for SimSiam/BYOL, the stop-gradient and predictor), lower the learning rate, and compare the "
            "loss with its collapsed value (NT-Xent: log(2B−1)).",
        },
    )


def _rank_cap(ctx: _Context, series: _Series, step: int) -> float | None:
    """``min(rows, d)``: the largest effective rank the value at ``step`` could reach."""
    rows = ctx.finite_rows(step)
    if rows is not None and series.metric == schema.M_RANK and ctx.run.two_modality:
        rows *= 2  # the joint rank of a two-modality run stacks both sides' rows
    caps = [c for c in (rows, ctx.dim) if c]
    return min(caps) if caps else None


def _floor_findings(ctx: _Context) -> tuple[list[_Finding], dict[str, Any] | None]:
    """Directions of the latest spectra (recent window) whose eigenvalue sits at the float floor."""
    spectra = ctx.spectra
    if spectra.empty:
        return [], None
    findings: list[_Finding] = []
    summary: dict[str, Any] | None = None
    for modality, per_mod in spectra.groupby("modality", sort=False):
        steps = np.unique(per_mod["step"].to_numpy())
        width = min(len(steps), max(MIN_WINDOW_POINTS, math.ceil(WINDOW_FRACTION * len(steps))))
        recent = per_mod[per_mod["step"].isin(steps[-width:])].sort_values(["step", "index"])
        counts: list[tuple[int, int, int]] = []
        for step, group in recent.groupby("step", sort=True):
            lam = group["eigenvalue"].to_numpy(np.float64)
            rows = ctx.finite_rows(int(step))
            # A covariance of n rows has rank ≤ n − 1: directions beyond that are zero by construction.
            usable = len(lam) if rows is None else min(len(lam), max(round(rows) - 1, 1))
            top = max(float(lam[0]), np.finfo(np.float64).tiny)
            counts.append((int(step), int(np.sum(lam[:usable] <= FLOOR_RELATIVE * top)), usable))
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
            share = floor / usable
            findings.append(
                _Finding(
                    "alarm" if share >= FLOOR_SHARE_ALARM else "warn",
                    f"{floor} of {usable} directions of the {modality} covariance spectrum are at the "
                    f"float floor (eigenvalue ≤ {FLOOR_RELATIVE:g} × the largest): the embedding does not "
                    "use them.",
                    ev,
                ),
            )
    return findings, summary


def _check_dimensional_collapse(ctx: _Context) -> Verdict | None:
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
    rule = _RULE_BY_NAME["dimensional_collapse"]
    findings: list[_Finding] = []
    readings: list[dict[str, Any]] = []
    for rank in ctx.family(schema.M_RANK):
        tail = rank.tail()
        cap = _rank_cap(ctx, rank, tail.last_step)
        ev: dict[str, Any] = {"metric": rank.metric, "step": tail.last_step, **tail.evidence()}
        if ctx.dim:
            ev["dim"] = ctx.dim
        if cap:
            ev["cap"] = _round(cap)
            ev["fraction_of_cap"] = _round(tail.median / cap)
            frac = tail.median / cap
            level = "alarm" if frac < RANK_FRACTION_ALARM else "warn" if frac < RANK_FRACTION_WARN else None
            if level:
                findings.append(
                    _Finding(
                        level,
                        f"{rank.metric} is {tail.median:.3g}, only {frac:.0%} of the {cap:.0f} dimensions it "
                        "could use: the embeddings live in a low-dimensional subspace.",
                        ev,
                    ),
                )
        readings.append(ev)
        if not rank.short:
            peak = max(rank.chunks(), key=lambda w: w.median)
            drop = 1.0 - tail.median / peak.median if peak.median > 0 else 0.0
            if drop >= RANK_DROP_WARN:
                findings.append(
                    _Finding(
                        "warn",
                        f"{rank.metric} fell by {drop:.0%}, from {peak.median:.3g} (steps {peak.first_step}–"
                        f"{peak.last_step}) to {tail.median:.3g}: dimensions are collapsing during training.",
                        {**ev, "peak": _round(peak.median), "peak_window": [peak.first_step, peak.last_step]},
                    ),
                )
    floor_findings, floor_summary = _floor_findings(ctx)
    findings += floor_findings
    if floor_summary is not None:
        readings.append(floor_summary)
    if not readings:
        return None
    parts = [
        f"{r['metric']}: {r['value']} of {r['directions']} directions at the float floor"
        if "directions" in r
        else f"{r['metric']} {_fmt(r['value'])}" + (f" of {_fmt(r['cap'])} possible" if "cap" in r else "")
        for r in readings
    ]
    ok = _Finding(
        "ok",
        "The embeddings use their dimensions: " + ", ".join(parts) + ".",
        {**readings[0], "others": readings[1:]} if len(readings) > 1 else readings[0],
    )
    return _combine(
        rule,
        findings,
        ok,
        {
            "ok": "Nothing to do.",
            "warn": "Watch the spectrum page: if the tail keeps falling, weaken the augmentation that "
            "dominates, add a projector (evaluate the layer before it), or lower the learning rate.",
            "alarm": "Jing et al.: strong augmentation and implicit low-rank regularisation collapse "
            "dimensions — weaken the augmentations, use a projector head and evaluate the representation "
            "before it, or fix part of the embedding (DirectCLR).",
        },
    )


def _check_score_separation(ctx: _Context) -> Verdict | None:
    """Score separation: do positive pairs score higher than negatives?

    - ``pos_neg_overlap`` — overlap coefficient of the positive and negative cosine histograms (1 = the
      two distributions are identical, 0 = disjoint). Recent value ≥ 0.7 → **alarm**, ≥ 0.5 → **warn**.
      Identical distributions read below 1 because the positive histogram holds only B samples: unrelated
      random views give ≈ 0.78 at B = 64 with 50 bins, hence 0.7 rather than a value nearer 1. Also
      **warn** when it is not falling (recent ≥ 0.2 and less than 0.05 below the first window) or has
      risen by ≥ 0.2 from its best window (separation lost).
    - ``retrieval_acc`` — in-batch top-1 retrieval of the positive. At most 2 × chance (chance = 1/B)
      → **alarm**: positives are not ranked above negatives at all (not judged for B ≤ 4).

    While a series is too short for its recent window to be separate from the first one, the rule says
    **warn** at most (a run at its first steps is at chance by nature).

    Source: Zhu et al. (ICCV 2021) visualise the two distributions separating during healthy training but
    give no cut-off; the thresholds are a documented heuristic on the overlap's [0, 1] scale and the 1/B
    chance level of in-batch retrieval.
    """
    rule = _RULE_BY_NAME["score_separation"]
    overlap = ctx.get(schema.M_OVERLAP)
    retrieval = ctx.get(schema.M_RETRIEVAL)
    if overlap is None and retrieval is None:
        return None
    findings: list[_Finding] = []
    readings: list[dict[str, Any]] = []

    def cap(level: Level, series: _Series) -> Level:
        return "warn" if series.short and level == "alarm" else level

    if overlap is not None:
        tail, head = overlap.tail(), overlap.head()
        ev = {"metric": overlap.metric, "step": tail.last_step, **tail.evidence()}
        readings.append(ev)
        if tail.median >= OVERLAP_WARN:
            level = cap("alarm" if tail.median >= OVERLAP_ALARM else "warn", overlap)
            findings.append(
                _Finding(
                    level,
                    f"Positive and negative scores overlap by {tail.median:.0%}: the model cannot tell a "
                    "positive pair from a negative one.",
                    ev,
                ),
            )
        elif not overlap.short:
            best = min(overlap.chunks(), key=lambda w: w.median)
            if tail.median >= OVERLAP_STALL_MIN and head.median - tail.median < OVERLAP_STALL_DROP:
                findings.append(
                    _Finding(
                        "warn",
                        f"The positive/negative overlap is not falling ({head.median:.2f} in steps "
                        f"{head.first_step}–{head.last_step}, {tail.median:.2f} now): separation has "
                        "stalled.",
                        {
                            **ev,
                            "first": _round(head.median),
                            "first_window": [head.first_step, head.last_step],
                        },
                    ),
                )
            elif tail.median - best.median >= OVERLAP_RISE_WARN:
                findings.append(
                    _Finding(
                        "warn",
                        f"The positive/negative overlap rose from {best.median:.2f} (steps "
                        f"{best.first_step}–{best.last_step}) to {tail.median:.2f}: positives and negatives "
                        "are blending again.",
                        {**ev, "best": _round(best.median), "best_window": [best.first_step, best.last_step]},
                    ),
                )
    if retrieval is not None:
        tail = retrieval.tail()
        batch = ctx.recent_batch()
        ev = {"metric": retrieval.metric, "step": tail.last_step, **tail.evidence()}
        if batch:
            chance = 1.0 / batch
            ev["chance"] = _round(chance)
            # With 4 or fewer candidates even 2 × chance is a coin flip: nothing to tell apart.
            if RETRIEVAL_CHANCE_FACTOR * chance < 0.5 and tail.median <= RETRIEVAL_CHANCE_FACTOR * chance:
                findings.append(
                    _Finding(
                        cap("alarm", retrieval),
                        f"In-batch retrieval is {tail.median:.1%}, at chance level (1/B = {chance:.1%}): "
                        "positives do not score above negatives.",
                        ev,
                    ),
                )
        readings.append(ev)
    ok = _Finding(
        "ok",
        "Positives score above negatives: "
        + ", ".join(f"{r['metric']} {_fmt(r['value'])}" for r in readings)
        + ".",
        {**readings[0], "others": readings[1:]} if len(readings) > 1 else readings[0],
    )
    return _combine(
        rule,
        findings,
        ok,
        {
            "ok": "Nothing to do.",
            "warn": "Give it more steps or a higher learning rate; check that a[i] and b[i] really are views "
            "of the same sample (a shuffled loader breaks pairs).",
            "alarm": "Check the pairing of a[i] and b[i] (same order in both views), that the encoder's "
            "gradients flow (frozen or detached encoder), the learning rate, and the augmentations "
            "(too strong ones destroy what the views share).",
        },
    )


def _tau_band(ctx: _Context) -> tuple[int, float, float] | None:
    """From the latest entropy curve: ``(step, lowest τ, highest τ)`` whose entropy is inside the band."""
    curves = ctx.temperature
    if curves.empty:
        return None
    ent = curves[curves["curve"] == schema.CURVE_ENTROPY]
    if ent.empty:
        return None
    step = int(ent["step"].max())
    last = ent[ent["step"] == step]
    inside = last[(last["value"] >= ENTROPY_LOW) & (last["value"] <= ENTROPY_HIGH)]
    if inside.empty:
        return None
    return step, float(inside["tau"].min()), float(inside["tau"].max())


def _check_temperature(ctx: _Context) -> Verdict | None:
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
    rule = _RULE_BY_NAME["temperature"]
    ent = ctx.get(schema.M_ENTROPY)
    if ent is None:
        return None
    tail = ent.tail()
    ev: dict[str, Any] = {"metric": ent.metric, "step": tail.last_step, **tail.evidence()}
    tau = ctx.get(schema.M_TEMPERATURE)
    if tau is not None:
        ev["tau"] = _round(tau.tail().median)
    eff = ctx.get(schema.M_EFF_NEG)
    if eff is not None:
        ev["effective_negatives"] = _round(eff.tail().median)
    band = _tau_band(ctx)
    hint = ""
    if band is not None:
        ev["tau_band"] = [_round(band[1]), _round(band[2])]
        hint = f" The temperature curve at step {band[0]} puts τ in [{band[1]:.3g}, {band[2]:.3g}] inside it."
    tau_text = f" at τ = {ev['tau']:.3g}" if "tau" in ev else ""
    findings: list[_Finding] = []
    if tail.median < ENTROPY_LOW:
        findings.append(
            _Finding(
                "warn",
                f"The penalty entropy{tau_text} is {tail.median:.2f}: the loss only sees the hardest "
                "negatives (τ too low).",
                ev,
            ),
        )
    elif tail.median > ENTROPY_HIGH:
        findings.append(
            _Finding(
                "warn",
                f"The penalty entropy{tau_text} is {tail.median:.3f}: every negative is weighted alike, the "
                "loss ignores which ones are hard (τ too high).",
                ev,
            ),
        )
    ok = _Finding(
        "ok",
        f"The penalty entropy{tau_text} is {tail.median:.2f}: the loss weighs hard negatives more without "
        "ignoring the rest.",
        ev,
    )
    band_text = f"Aim for a penalty entropy in [{ENTROPY_LOW}, {ENTROPY_HIGH}].{hint}"
    return _combine(
        rule,
        findings,
        ok,
        {
            "ok": "Nothing to do.",
            "warn": "Wang & Liu: τ trades uniformity (low τ) against tolerance to similar samples (high τ); "
            f"move τ towards the middle. {band_text}",
        },
    )


def _check_tolerance(ctx: _Context) -> Verdict | None:
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
    rule = _RULE_BY_NAME["tolerance"]
    tol = ctx.get(schema.M_TOLERANCE)
    baseline_metric = f"{schema.M_CONE}/{ctx.run.modalities[0]}" if ctx.run.two_modality else schema.M_NEG_SIM
    base = ctx.get(baseline_metric)
    if tol is None or base is None:
        return None
    common, it, ib = np.intersect1d(tol.steps, base.steps, return_indices=True)
    if common.size == 0:
        return None
    margin = _Series(f"{tol.metric} - {base.metric}", common, tol.values[it] - base.values[ib])
    tail = margin.tail()
    ev: dict[str, Any] = {
        "metric": tol.metric,
        "step": tail.last_step,
        "value": _round(float(np.median(tol.values[it][-margin.width :]))),
        "baseline_metric": base.metric,
        "baseline": _round(float(np.median(base.values[ib][-margin.width :]))),
        "margin": _round(tail.median),
        "window": [tail.first_step, tail.last_step],
    }
    findings: list[_Finding] = []
    if tail.median < MARGIN_MIN:
        findings.append(
            _Finding(
                "warn",
                f"Same-class pairs are no closer than arbitrary pairs (tolerance {ev['value']:.2f} vs "
                f"{base.metric} {ev['baseline']:.2f}): the embedding does not group the labelled classes.",
                ev,
            ),
        )
    elif not margin.short:
        best = max(margin.chunks(), key=lambda w: w.median)
        if best.median - tail.median >= MARGIN_DROP_WARN:
            findings.append(
                _Finding(
                    "warn",
                    f"Same-class pairs drift apart: their margin over arbitrary pairs fell from "
                    f"{best.median:.2f} (steps {best.first_step}–{best.last_step}) to {tail.median:.2f}.",
                    {
                        **ev,
                        "best_margin": _round(best.median),
                        "best_window": [best.first_step, best.last_step],
                    },
                ),
            )
    ok = _Finding(
        "ok",
        f"Same-class pairs are closer than arbitrary ones (tolerance {ev['value']:.2f}, margin "
        f"{tail.median:.2f}).",
        ev,
    )
    return _combine(
        rule,
        findings,
        ok,
        {
            "ok": "Nothing to do.",
            "warn": "Wang & Liu: a higher τ tolerates similar samples; also check the labels passed to "
            "Monitor.log match the batch order, and consider a supervised or debiased loss (SupCon, DCL).",
        },
    )


def _check_modality_gap(ctx: _Context) -> Verdict | None:
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
    rule = _RULE_BY_NAME["modality_gap"]
    gap = ctx.get(schema.M_GAP)
    if gap is None:
        return None
    tail = gap.tail()
    ev: dict[str, Any] = {"metric": gap.metric, "step": tail.last_step, **tail.evidence()}
    cones = [c for c in ctx.family(schema.M_CONE) if c.metric != schema.M_CONE]
    for c in cones:
        ev[c.metric] = _round(c.tail().median)
    findings: list[_Finding] = []
    if tail.median >= GAP_WARN:
        findings.append(
            _Finding(
                "warn",
                f"The modality gap is {tail.median:.2f} (pretrained CLIP: 0.82): the two modalities occupy "
                "separate regions of the sphere.",
                ev,
            ),
        )
    if not gap.short:
        low = min(gap.chunks(), key=lambda w: w.median)
        growth = tail.median - low.median
        if growth >= GAP_GROWTH_WARN and tail.median >= GAP_GROWTH_MIN:
            findings.append(
                _Finding(
                    "warn",
                    f"The modality gap grew from {low.median:.2f} (steps {low.first_step}–{low.last_step}) "
                    f"to {tail.median:.2f}.",
                    {
                        **ev,
                        "smallest": _round(low.median),
                        "smallest_window": [low.first_step, low.last_step],
                    },
                ),
            )
    for c in cones:
        value = ev[c.metric]
        if value >= CONE_WARN:
            findings.append(
                _Finding(
                    "warn",
                    f"{c.metric} is {value:.2f}: that modality's embeddings sit in a narrow cone (Liang "
                    "et al. measure 0.67–0.72 at random initialisation).",
                    {**ev, "metric": c.metric, "value": value},
                ),
            )
    ok = _Finding(
        "ok",
        f"The modality gap is {tail.median:.2f} and not growing"
        + (", " + ", ".join(f"{c.metric} {ev[c.metric]:.2f}" for c in cones) if cones else "")
        + ".",
        ev,
    )
    return _combine(
        rule,
        findings,
        ok,
        {
            "ok": "Nothing to do.",
            "warn": "Liang et al.: the gap starts at initialisation (cone effect) and a low temperature "
            "keeps it; a higher or learnable τ narrows it. If downstream zero-shot tasks suffer, try "
            "shifting embeddings along the gap vector (their 'modality gap' experiment).",
        },
    )


def _check_alignment_uniformity(ctx: _Context) -> Verdict | None:
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
    rule = _RULE_BY_NAME["alignment_uniformity"]
    align = ctx.get(schema.M_ALIGNMENT)
    unif = ctx.get(schema.M_UNIFORMITY)
    if align is None or unif is None:
        return None
    tail = align.tail()
    ev: dict[str, Any] = {"metric": align.metric, "step": tail.last_step, **tail.evidence()}
    ev["uniformity"] = _round(unif.tail().median)
    findings: list[_Finding] = []
    if not align.short:
        best = min(align.chunks(), key=lambda w: w.median)
        rise = tail.median - best.median
        if rise >= ALIGN_RISE_WARN:
            then = unif.median_between(best.first_step, best.last_step)
            gain = None if then is None else then - unif.tail().median
            ev = {**ev, "best": _round(best.median), "best_window": [best.first_step, best.last_step]}
            if then is not None:
                ev["uniformity_then"] = _round(then)
            level: Level = "alarm" if rise >= ALIGN_RISE_ALARM else "warn"
            if gain is not None and gain >= UNIFORMITY_GAIN:
                reason = (
                    f"Alignment worsened from {best.median:.2f} to {tail.median:.2f} while uniformity "
                    f"improved from {then:.2f} to {unif.tail().median:.2f}: the loss spreads embeddings "
                    "apart at the cost of pulling positives together."
                )
            else:
                reason = (
                    f"Alignment worsened from {best.median:.2f} (steps {best.first_step}–{best.last_step}) "
                    f"to {tail.median:.2f}: positive pairs are drifting apart."
                )
            findings.append(_Finding(level, reason, ev))
    ok = _Finding(
        "ok",
        f"Alignment {tail.median:.2f} is at or near its best and uniformity is {ev['uniformity']:.2f}.",
        ev,
    )
    return _combine(
        rule,
        findings,
        ok,
        {
            "ok": "Nothing to do.",
            "warn": "Check whether the augmentations got stronger (schedules) or τ is low; Wang & Isola "
            "weight the two terms explicitly (align + uniform loss) when one dominates.",
            "alarm": "Positives are pushed apart: weaken the augmentations, raise τ, lower the learning "
            "rate, and check that a[i], b[i] are still views of the same sample.",
        },
    )


def _check_storage(ctx: _Context) -> Verdict | None:
    """Storage: part files the reader had to skip (truncated, corrupt, another schema).

    Any skipped part → **warn**: the other verdicts were computed without its data.

    Source: documented heuristic — cldiag writes parts atomically, so a skipped part means a foreign or
    damaged file, which a user should know about but which does not by itself mean the training is sick.
    """
    rule = _RULE_BY_NAME["storage"]
    problems = list(ctx.run.problems)
    ev = {"metric": "unreadable_parts", "step": None, "value": len(problems)}
    if problems:
        reason = f"{len(problems)} part file(s) could not be read and were skipped; the verdicts ignore them."
        return _verdict(
            rule,
            "warn",
            reason,
            {**ev, "problems": problems[:10]},
            "Inspect or delete the listed files (cldiag compact rewrites a run's parts).",
        )
    return _verdict(rule, "ok", "Every part file of the run was readable.", ev, "Nothing to do.")


RULES: Final[tuple[Rule, ...]] = (
    Rule(
        "nonfinite",
        "Non-finite values",
        "nonfinite_fraction or nonfinite/loss (logged by Monitor.log)",
        "alarm: nonfinite_fraction > 0 in the recent window, or any step whose loss was NaN/Inf "
        "(flag row nonfinite/loss); warn: NaN/Inf rows earlier only",
        "documented heuristic: a NaN/Inf embedding or loss is never healthy",
        _check_nonfinite,
    ),
    Rule(
        "liveness",
        "Stalled or crashed run",
        "always applies",
        "alarm: status failed, or running with heartbeat > 30 min old; warn: heartbeat > 5 min old, or no "
        "part written for > 15 min",
        "documented heuristic: the Monitor beats every 30 s and flushes every 30 s while logging",
        _check_liveness,
    ),
    Rule(
        "complete_collapse",
        "Complete collapse",
        "std_l2 or uniformity (pairwise statistics)",
        "alarm: std_l2·√d < 0.05 or uniformity > −0.1; warn: std_l2·√d < 0.1 or uniformity > −0.5",
        "Chen & He 2021 (SimSiam; lightly std_of_l2_normalized ≈ 1/√d healthy, 0 collapsed); Wang & Isola "
        "2020 (uniformity 0 iff all points equal); cut-offs a documented heuristic",
        _check_complete_collapse,
    ),
    Rule(
        "dimensional_collapse",
        "Dimensional collapse",
        "effective_rank or spectra (spectrum cadence)",
        "alarm: effective rank < 0.1 × min(rows, d) or ≥ half the spectrum at the float floor (≤ 1e−10 × "
        "largest); warn: < 0.25 × min(rows, d), fallen ≥ 50 % from its peak, or any direction at the floor",
        "Jing et al. 2022 (spectrum), Garrido et al. 2023 (RankMe); fractions a documented heuristic",
        _check_dimensional_collapse,
    ),
    Rule(
        "score_separation",
        "Positive/negative score separation",
        "pos_neg_overlap or retrieval_acc (pairwise statistics with two views)",
        "alarm: overlap ≥ 0.7 or retrieval ≤ 2/B (B > 4); warn: overlap ≥ 0.5, not falling (≥ 0.2 and "
        "< 0.05 below the first window) or risen ≥ 0.2 from its best window",
        "Zhu et al. 2021 (score distributions); cut-offs a documented heuristic (overlap ∈ [0, 1], "
        "chance 1/B)",
        _check_score_separation,
    ),
    Rule(
        "temperature",
        "Temperature (penalty entropy)",
        "neg_entropy (Monitor.log with temperature=…)",
        "warn: penalty entropy < 0.2 (τ too low) or > 0.98 (τ too high)",
        "Wang & Liu 2021 (hardness-aware penalty); cut-offs a documented heuristic",
        _check_temperature,
    ),
    Rule(
        "tolerance",
        "Tolerance to same-class samples",
        "tolerance (Monitor.log with labels=…)",
        "warn: tolerance − mean cosine of arbitrary pairs < 0.05, or that margin fallen ≥ 0.2 from its best "
        "window",
        "Wang & Liu 2021 (tolerance); margin and cut-offs a documented heuristic",
        _check_tolerance,
    ),
    Rule(
        "modality_gap",
        "Modality gap",
        "modality_gap (two-modality runs)",
        "warn: gap ≥ 0.8, grown ≥ 0.1 over its smallest window (while ≥ 0.3), or a cone ≥ 0.8",
        "Liang et al. 2022 (CLIP gap 0.82 on MSCOCO, random-init cones 0.67–0.72); cut-offs a documented "
        "heuristic",
        _check_modality_gap,
    ),
    Rule(
        "alignment_uniformity",
        "Alignment worsening (vs uniformity)",
        "alignment and uniformity (two views)",
        "alarm: alignment ≥ 0.5 above its best window; warn: ≥ 0.1 above (reason notes uniformity gains "
        "≥ 0.05 over the same stretch)",
        "Wang & Isola 2020 (alignment and uniformity); cut-offs a documented heuristic",
        _check_alignment_uniformity,
    ),
    Rule(
        "storage",
        "Unreadable part files",
        "always applies",
        "warn: ≥ 1 part file skipped by the reader",
        "documented heuristic: parts are written atomically, so a skipped part is foreign or damaged",
        _check_storage,
    ),
)
"""Every rule :func:`evaluate` runs, in report order."""

_RULE_BY_NAME: Final[dict[str, Rule]] = {r.name: r for r in RULES}


# ---------------------------------------------------------------------------------------------------------
# Public entry points
def evaluate(run: Run, *, now: _dt.datetime | None = None) -> list[Verdict]:
    """Run every rule of :data:`RULES` over ``run`` and return their verdicts, ``ok`` ones included.

    Each table is read once and shared between the rules. Rules that cannot apply to the run (see
    :func:`not_checked`) are omitted.

    Args:
        run: the run to judge (from :func:`cldiag.read_run`).
        now: the time to judge liveness against (default: the current UTC time; naive means UTC).

    Returns:
        One :class:`Verdict` per applicable rule, in the order of :data:`RULES`.

    Raises:
        TypeError: ``run`` is not a :class:`~cldiag.reader.Run` or ``now`` not a datetime.
    """
    if not isinstance(run, Run):
        raise TypeError(f"run must be a cldiag Run (from read_run), got {type(run).__name__}")
    if now is not None and not isinstance(now, _dt.datetime):
        raise TypeError(f"now must be a datetime.datetime or None, got {type(now).__name__}")
    ctx = _Context.load(run, now)
    return [v for v in (rule.check(ctx) for rule in RULES) if v is not None]


def not_checked(verdicts: Iterable[Verdict]) -> list[dict[str, str]]:
    """The rules of :data:`RULES` without a verdict in ``verdicts``, each with what it needs to apply."""
    seen = {v.rule for v in verdicts}
    return [{"rule": r.name, "needs": r.needs} for r in RULES if r.name not in seen]


def _key_figures(run: Run) -> tuple[dict[str, float | None], dict[str, int | None]]:
    """Last value of each key figure, and the first, last and number of steps logged.

    Steps are counted from ``batch_size`` (written by every ``Monitor.log`` call) and the key figures, so
    only those metrics are read.
    """
    scalars = run.scalars([*_KEY_FIGURES, schema.M_BATCH])
    figures: dict[str, float | None] = dict.fromkeys(_KEY_FIGURES)
    steps: dict[str, int | None] = {"first": None, "last": None, "logged": 0}
    if scalars.empty:
        return figures, steps
    finite = scalars[np.isfinite(scalars["value"].to_numpy(np.float64))]
    last = finite.groupby("metric", sort=False).tail(1).set_index("metric")["value"]
    for metric in _KEY_FIGURES:
        if metric in last.index:
            figures[metric] = _round(float(last[metric]), 6)
    unique = np.unique(scalars["step"].to_numpy(np.int64))
    steps.update(first=int(unique[0]), last=int(unique[-1]), logged=int(unique.size))
    return figures, steps


def report_dict(run: Run, verdicts: Sequence[Verdict]) -> dict[str, Any]:
    """Everything ``cldiag report RUN --json`` prints: the run, its key figures and the verdicts.

    Args:
        run: the run the verdicts were computed on.
        verdicts: the result of :func:`evaluate`.

    Returns:
        A JSON-serializable dict with ``name``, ``path``, ``status``, ``modalities``, ``two_modality``,
        ``dim``, ``steps`` (first, last, number logged), ``key_figures`` (the last logged value of loss,
        alignment, uniformity, effective rank, … ``None`` when not logged), ``level`` (the worst),
        ``verdicts`` (each :meth:`Verdict.to_dict`), ``not_checked`` and ``problems``.
    """
    figures, steps = _key_figures(run)
    return _jsonable(
        {
            "name": run.name,
            "path": run.path,
            "status": run.status,
            "modalities": run.modalities,
            "two_modality": run.two_modality,
            "dim": run.meta.get("dim"),
            "steps": steps,
            "key_figures": figures,
            "level": worst_level(verdicts),
            "verdicts": [v.to_dict() for v in verdicts],
            "not_checked": not_checked(verdicts),
            "problems": list(run.problems),
        },
    )


def _evidence_line(evidence: dict[str, Any]) -> str:
    head = f"{evidence.get('metric')} = {_show(evidence.get('value'))}"
    if evidence.get("step") is not None:
        head += f" at step {evidence['step']}"
    skip = ("metric", "value", "step", "also", "others")
    rest = [f"{k} {_show(v)}" for k, v in evidence.items() if k not in skip]
    line = head + (f" ({'; '.join(rest)})" if rest else "")
    for other in evidence.get("others", []):
        line += f"; {other.get('metric')} = {_show(other.get('value'))}"
    return line


def _show(value: Any) -> str:
    if isinstance(value, float):
        return _fmt(value)
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    return str(value)


def format_report(run: Run, verdicts: Sequence[Verdict], *, width: int = 100) -> str:
    """A plain-text report for people: the run, its key figures and a table of verdicts, worst first.

    Args:
        run: the run the verdicts were computed on.
        verdicts: the result of :func:`evaluate`.
        width: line width to wrap at.

    Returns:
        The report text (no trailing newline).
    """
    figures, steps = _key_figures(run)
    lines = [
        f"cldiag report: {run.name}  ({run.path})",
        f"status {run.status} · steps {steps['first']}–{steps['last']} ({steps['logged']} logged) · "
        f"dim {run.meta.get('dim')} · {'/'.join(run.modalities)}",
        *textwrap.wrap(
            "key figures: "
            + (", ".join(f"{k} {_fmt(v)}" for k, v in figures.items() if v is not None) or "none logged yet"),
            width,
            subsequent_indent="  ",
        ),
        "",
    ]
    name_w = max([len("RULE"), *(len(v.rule) for v in verdicts)])
    lines.append(f"{'LEVEL':<6} {'RULE':<{name_w}}  REASON")
    indent = " " * (6 + 1 + name_w + 2)
    body_w = max(width - len(indent), 30)
    ordered = sorted(verdicts, key=lambda v: -LEVELS.index(v.level))
    for v in ordered:
        reason = textwrap.wrap(v.reason, body_w) or [""]
        lines.append(f"{v.level.upper():<6} {v.rule:<{name_w}}  {reason[0]}")
        lines += [indent + r for r in reason[1:]]
        details = [("evidence", _evidence_line(v.evidence)), ("threshold", str(v.threshold))]
        details += [("also", a) for a in v.evidence.get("also", [])]
        if v.level != "ok":
            details += [("action", v.action), ("source", v.source)]
        for label, text in details:
            wrapped = textwrap.wrap(f"{label}: {text}", body_w, subsequent_indent="  ")
            lines += [indent + w for w in wrapped]
    for skipped in not_checked(verdicts):
        lines.append(f"{'-':<6} {skipped['rule']:<{name_w}}  not checked: needs {skipped['needs']}")
    lines += ["", f"overall: {worst_level(verdicts).upper()}"]
    return "\n".join(lines)
