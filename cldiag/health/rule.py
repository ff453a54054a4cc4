"""What a health rule is: :class:`Rule`, the :class:`Finding` s its check returns, shared evidence helpers.

A rule carries its metadata — id, title, what it needs, its alarm and warn conditions (built from
:mod:`cldiag.health.thresholds`, so the threshold text is generated from the numbers the code applies), its
source and the action for each level. Its check function only returns :class:`Finding` s (or ``None`` when
the rule cannot apply); :meth:`Rule.apply` turns them into one :class:`~cldiag.health.verdict.Verdict`: the
most severe finding leads, the others are listed as ``also``.

The checks live by topic in :mod:`~cldiag.health.rules_run`, :mod:`~cldiag.health.rules_geometry` and
:mod:`~cldiag.health.rules_scores`; :mod:`cldiag.health.rules` declares every rule in its registry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from cldiag.health import thresholds as T
from cldiag.health.tables import Context, Series
from cldiag.health.thresholds import Condition
from cldiag.health.verdict import Level, Verdict, severity

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


def readings_evidence(readings: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Evidence of several readings: the first leads, the rest go under ``others``."""
    return {**readings[0], "others": list(readings[1:])} if len(readings) > 1 else dict(readings[0])


def tail_evidence(series: Series) -> dict[str, Any]:
    """Evidence of a series' recent window: its ``metric``, last ``step``, median ``value`` and ``window``."""
    tail = series.tail()
    return {"metric": series.metric, "step": tail.last_step, **tail.evidence()}
