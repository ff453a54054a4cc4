"""The health rules' registry, :data:`RULES`, and :func:`evaluate`, which runs them over a run.

Each rule (a :class:`~cldiag.health.rule.Rule`: metadata, level conditions as data and a check) is defined
beside its check, by topic:

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
from cldiag.health.rule import NOTHING_TO_DO, Finding, Outcome, Rule, fmt
from cldiag.health.tables import Context, RunTables
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

RULES: Final[tuple[Rule, ...]] = (
    run_rules.NONFINITE,
    run_rules.LIVENESS,
    geometry.COMPLETE_COLLAPSE,
    geometry.DIMENSIONAL_COLLAPSE,
    scores.SCORE_SEPARATION,
    scores.TEMPERATURE,
    scores.TOLERANCE,
    geometry.MODALITY_GAP,
    scores.FALSE_NEGATIVES,
    geometry.ALIGNMENT_UNIFORMITY,
    run_rules.STORAGE,
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
