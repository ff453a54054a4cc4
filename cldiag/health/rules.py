"""The health rules' registry, :data:`RULES`, and :func:`evaluate`, which runs them over a run.

Each entry is a :class:`~cldiag.health.rule.Rule`: id, title, what it needs, its alarm and warn conditions
(built from :mod:`cldiag.health.thresholds`, so the threshold text is generated from the numbers the code
applies), its source, the action for each level, and its check. The checks live by topic:

- :mod:`~cldiag.health.rules_run` — the run itself: ``nonfinite``, ``liveness``, ``storage``;
- :mod:`~cldiag.health.rules_geometry` — where the embeddings sit: ``complete_collapse``,
  ``dimensional_collapse``, ``modality_gap``, ``alignment_uniformity``;
- :mod:`~cldiag.health.rules_scores` — what the loss sees: ``score_separation``, ``temperature``,
  ``tolerance``, ``false_negatives``.

Rules judge **windows, not single points**: the "recent" value of a metric is the median over the last
20 % of its logged points (at least 3), and trends compare that against the medians of earlier windows of
the same size (the peak, the minimum or the first window). One noisy step therefore neither raises nor
silences an alarm.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable
from typing import Final

from cldiag.health import rules_geometry as geometry
from cldiag.health import rules_run as run_rules
from cldiag.health import rules_scores as scores
from cldiag.health import thresholds as T
from cldiag.health.rule import NOTHING_TO_DO, Finding, Outcome, Rule, fmt
from cldiag.health.tables import Context, RunTables
from cldiag.health.thresholds import Condition
from cldiag.health.verdict import Verdict
from cldiag.reader import Run

__all__ = [
    "NOTHING_TO_DO",
    "RULES",
    "RULE_BY_NAME",
    "Finding",
    "Outcome",
    "Rule",
    "evaluate",
    "evaluate_tables",
    "fmt",
    "not_checked",
]

_HEURISTIC: Final[str] = "documented heuristic"

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
        check=run_rules.check_nonfinite,
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
        check=run_rules.check_liveness,
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
        check=geometry.check_complete_collapse,
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
        check=geometry.check_dimensional_collapse,
    ),
    Rule(
        name="score_separation",
        title="Positive/negative score separation",
        needs="pos_neg_overlap or retrieval_acc (pairwise statistics with two views); mip_overlap instead "
        "for three or more modalities logged as one mapping",
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
        check=scores.check_score_separation,
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
        check=scores.check_temperature,
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
        check=scores.check_tolerance,
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
        check=geometry.check_modality_gap,
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
        check=scores.check_false_negatives,
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
        check=geometry.check_alignment_uniformity,
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
        check=run_rules.check_storage,
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
