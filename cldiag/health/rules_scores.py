"""Rules on the scores the loss sees: separation, penalty entropy, tolerance and false negatives.

:mod:`cldiag.health.rules` registers each check with its rule's metadata and conditions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cldiag import schema
from cldiag.health import thresholds as T
from cldiag.health.rule import Finding, Outcome, fmt, readings_evidence, tail_evidence
from cldiag.health.tables import Context, Series, round_sig
from cldiag.health.verdict import Level


# ---------------------------------------------------------------------------------------------------------
# score separation
def _cap_short(level: Level, series: Series) -> Level:
    """At most ``warn`` while a series is too short for its recent window to differ from its first."""
    return "warn" if series.short and level == "alarm" else level


def _overlap_trend(overlap: Series, ev: dict[str, Any]) -> list[Finding]:
    tail, head = overlap.tail(), overlap.head()
    if tail.median >= T.OVERLAP_STALL_MIN and head.median - tail.median < T.OVERLAP_STALL_DROP:
        reason = (
            f"The positive/negative overlap is not falling ({head.median:.2f} in {head.steps_text}, "
            f"{tail.median:.2f} now): separation has stalled."
        )
        return [Finding("warn", reason, {**ev, **head.evidence_as("first")})]
    best = overlap.lowest()
    if tail.median - best.median >= T.OVERLAP_RISE_WARN:
        reason = (
            f"The positive/negative overlap rose from {best.median:.2f} ({best.steps_text}) to "
            f"{tail.median:.2f}: positives and negatives are blending again."
        )
        return [Finding("warn", reason, {**ev, **best.evidence_as("best")})]
    return []


def _overlap_findings(overlap: Series, ev: dict[str, Any]) -> list[Finding]:
    median = overlap.tail().median
    if median >= T.OVERLAP_WARN:
        level = _cap_short("alarm" if median >= T.OVERLAP_ALARM else "warn", overlap)
        what = ("Positive and negative scores", "a positive pair from a negative one")
        if overlap.metric == schema.M_MIP_OVERLAP:
            what = ("Matched and mismatched tuples' multilinear scores", "matched from mismatched tuples")
        reason = f"{what[0]} overlap by {median:.0%}: the model cannot tell {what[1]}."
        return [Finding(level, reason, ev)]
    return [] if overlap.short else _overlap_trend(overlap, ev)


def _retrieval_findings(ctx: Context, retrieval: Series, ev: dict[str, Any]) -> list[Finding]:
    batch = ctx.recent(schema.M_BATCH)
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


def check_score_separation(ctx: Context) -> Outcome | None:
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

    A run of three or more modalities logged as one mapping has ``mip_overlap``: the overlap of Symile's
    multilinear inner product of matched and mismatched tuples. It is judged instead of the first pair's
    ``pos_neg_overlap`` and ``retrieval_acc``, with the same cut-offs: a Symile run scores whole tuples, and
    when the information sits only in the tuple its first pair stays at chance by design (Saporta et al.
    2024's XOR set), which is no fault of the run.

    Source: Zhu et al. (ICCV 2021) visualise the two distributions separating during healthy training but
    give no cut-off; the thresholds are a documented heuristic on the overlap's [0, 1] scale and the 1/B
    chance level of in-batch retrieval.
    """
    overlap = ctx.get(schema.M_MIP_OVERLAP)
    retrieval = None
    if overlap is None:
        overlap, retrieval = ctx.get(schema.M_OVERLAP), ctx.get(schema.M_RETRIEVAL)
    if overlap is None and retrieval is None:
        return None
    findings: list[Finding] = []
    readings: list[dict[str, Any]] = []
    if overlap is not None:
        ev = tail_evidence(overlap)
        readings.append(ev)
        findings += _overlap_findings(overlap, ev)
    if retrieval is not None:
        ev = tail_evidence(retrieval)
        findings += _retrieval_findings(ctx, retrieval, ev)
        readings.append(ev)
    shown = ", ".join(f"{r['metric']} {fmt(r['value'])}" for r in readings)
    return Outcome(
        findings, Finding("ok", f"Positives score above negatives: {shown}.", readings_evidence(readings))
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
    ev = tail_evidence(ent)
    for key, metric in (("tau", schema.M_TEMPERATURE), ("effective_negatives", schema.M_EFF_NEG)):
        recent = ctx.recent(metric)
        if recent is not None:
            ev[key] = round_sig(recent)
    band = _tau_band(ctx)
    hint = ""
    if band is not None:
        ev["tau_band"] = [round_sig(band[1]), round_sig(band[2])]
        hint = f" The temperature curve at step {band[0]} puts τ in [{band[1]:.3g}, {band[2]:.3g}] inside it."
    return ev, hint


def check_temperature(ctx: Context) -> Outcome | None:
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


def check_tolerance(ctx: Context) -> Outcome | None:
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
        best = margin.highest()
        if best.median - tail.median >= T.MARGIN_DROP_WARN:
            reason = (
                "Same-class pairs drift apart: their margin over arbitrary pairs fell from "
                f"{best.median:.2f} ({best.steps_text}) to {tail.median:.2f}."
            )
            findings.append(Finding("warn", reason, {**ev, **best.evidence_as("best_margin", "best_window")}))
    reason = (
        f"Same-class pairs are closer than arbitrary ones (tolerance "
        f"{ev['value']:.2f}, margin {tail.median:.2f})."
    )
    return Outcome(findings, Finding("ok", reason, ev))


# ---------------------------------------------------------------------------------------------------------
# false negatives
def check_false_negatives(ctx: Context) -> Outcome | None:
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
    ev = tail_evidence(penalty)
    count_median = ctx.recent(schema.M_FALSE_NEG_SHARE)
    share_text = ""
    if count_median is not None:
        ev["count_share"] = round_sig(count_median)
        if count_median > 0:
            ev["concentration"] = round_sig(median / count_median)
            ratio = median / count_median
            share_text = f" while they are {count_median:.1%} of the negatives ({ratio:.1f}× their share)"
    reading = f"Same-label negatives receive {median:.0%} of the negative penalty{share_text}"
    harm = ": most of the loss's repulsion pushes apart samples the labels call alike."
    findings = [Finding("warn", reading + harm, ev)] if median >= T.FALSE_NEG_PENALTY_WARN else []
    return Outcome(findings, Finding("ok", reading + ".", ev))
