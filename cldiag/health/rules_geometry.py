"""Rules on where the embeddings sit: complete and dimensional collapse, the modality gap, alignment.

:mod:`cldiag.health.rules` registers each check with its rule's metadata and conditions.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cldiag import schema
from cldiag.health import thresholds as T
from cldiag.health.rule import Finding, Outcome, fmt, readings_evidence, tail_evidence
from cldiag.health.tables import Context, Series, round_sig, window_width
from cldiag.health.verdict import Level


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


def check_complete_collapse(ctx: Context) -> Outcome | None:
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
        ev = tail_evidence(unif)
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
    ok = Finding("ok", f"The embeddings are spread out: {shown}.", readings_evidence(readings))
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
    ev = tail_evidence(rank)
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
        peak = rank.highest()
        drop = 1.0 - tail.median / peak.median if peak.median > 0 else 0.0
        if drop >= T.RANK_DROP_WARN:
            reason = (
                f"{rank.metric} fell by {drop:.0%}, from {peak.median:.3g} ({peak.steps_text}) to "
                f"{tail.median:.3g}: dimensions are collapsing during training."
            )
            findings.append(Finding("warn", reason, {**ev, **peak.evidence_as("peak")}))
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


def check_dimensional_collapse(ctx: Context) -> Outcome | None:
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
    return Outcome(findings, Finding("ok", reason, readings_evidence(readings)))


# ---------------------------------------------------------------------------------------------------------
# modality gap
def _gap_growth(gap: Series, ev: dict[str, Any]) -> list[Finding]:
    if gap.short:
        return []
    tail = gap.tail()
    low = gap.lowest()
    if tail.median - low.median < T.GAP_GROWTH_WARN or tail.median < T.GAP_GROWTH_MIN:
        return []
    reason = f"The modality gap grew from {low.median:.2f} ({low.steps_text}) to {tail.median:.2f}."
    return [Finding("warn", reason, {**ev, **low.evidence_as("smallest")})]


def check_modality_gap(ctx: Context) -> Outcome | None:
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
    ev = tail_evidence(gap)
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
# alignment vs uniformity
def _alignment_rise(align: Series, unif: Series, ev: dict[str, Any]) -> list[Finding]:
    tail = align.tail()
    best = align.lowest()
    rise = tail.median - best.median
    if rise < T.ALIGN_RISE_WARN:
        return []
    now = unif.tail().median
    then = unif.median_between(best.first_step, best.last_step)
    ev = {**ev, **best.evidence_as("best")}
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
            f"Alignment worsened from {best.median:.2f} ({best.steps_text}) to {tail.median:.2f}: positive "
            "pairs are drifting apart."
        )
    return [Finding("alarm" if rise >= T.ALIGN_RISE_ALARM else "warn", reason, ev)]


def check_alignment_uniformity(ctx: Context) -> Outcome | None:
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
    ev = {**tail_evidence(align), "uniformity": round_sig(unif.tail().median)}
    findings = [] if align.short else _alignment_rise(align, unif, ev)
    reason = (
        f"Alignment {align.tail().median:.2f} is at or near its best and "
        f"uniformity is {ev['uniformity']:.2f}."
    )
    return Outcome(findings, Finding("ok", reason, ev))
