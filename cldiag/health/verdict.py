"""The outcome of a health rule: :class:`Verdict`, its levels, and JSON-safe values."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np

Level = Literal["ok", "warn", "alarm"]
LEVELS: Final[tuple[Level, ...]] = ("ok", "warn", "alarm")
"""Verdict levels in increasing severity."""


@dataclass(frozen=True)
class Verdict:
    """The outcome of one rule on one run.

    Attributes:
        rule: the rule's id (see :data:`cldiag.health.RULES`), e.g. ``"dimensional_collapse"``.
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
            "evidence": jsonable(self.evidence),
            "threshold": jsonable(self.threshold),
            "source": self.source,
            "action": self.action,
        }


def jsonable(value: Any) -> Any:
    """Plain Python values for JSON: numpy scalars unwrapped, NaN/Inf as None, tuples as lists."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [jsonable(v) for v in value]
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


def severity(level: Level) -> int:
    """Position of ``level`` in :data:`LEVELS` (0 = ok): sort by ``-severity`` for worst first."""
    return LEVELS.index(level)
