"""Every number the health rules compare against, written once, and the text that shows it.

The rules (:mod:`cldiag.health.rules`) read these constants; each rule's threshold text is a list of
:class:`Condition` built from the same constants, so the text in reports, ``docs/health.md`` and the README
cannot drift from what the code applies. The reasoning behind each number is in the docstring of the rule
that uses it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

WINDOW_FRACTION: Final[float] = 0.2
"""Share of a metric's logged points that forms the "recent" window (and every comparison window)."""
MIN_WINDOW_POINTS: Final[int] = 3
"""Smallest window: a median of fewer points is a single noisy value."""
MAX_PLAUSIBLE_STEP: Final[int] = 2**53
"""Largest step the rules accept: beyond it a float64 (JSON, JavaScript) no longer holds every integer."""

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
RETRIEVAL_MIN_BATCH: Final[int] = 4
"""Retrieval is not judged for batches of this size or less: 2 × chance is then a coin flip or more."""
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
# False negatives (Wang & Liu 2021 same-class penalty; DebCSE 2023): a documented heuristic.
FALSE_NEG_PENALTY_WARN: Final[float] = 0.8
"""Share of the negative penalty on same-label negatives from which most of the repulsion is misspent.

0.5 at first; a well-clustered healthy synthetic run (labels = its clusters, tests/test_health.py) reaches
0.76 and iSogCLR's lab run peaks at 0.65, so 0.5 warned on healthy labelled runs."""
# Alignment vs uniformity (Wang & Isola 2020).
ALIGN_RISE_WARN: Final[float] = 0.1
ALIGN_RISE_ALARM: Final[float] = 0.5
UNIFORMITY_GAIN: Final[float] = 0.05
# Liveness.
HEARTBEAT_WARN_S: Final[float] = 300.0
HEARTBEAT_ALARM_S: Final[float] = 1800.0
QUIET_WARN_S: Final[float] = 900.0


def number(x: float) -> str:
    """A threshold as prose: shortest exact form, with a typographic minus (``-0.1`` → ``−0.1``)."""
    return f"{x:g}".replace("-", "−")


def percent(x: float) -> str:
    """A fraction as a percentage (``0.5`` → ``50 %``)."""
    return f"{100 * x:g} %"


def minutes(seconds: float) -> str:
    """A duration in seconds as minutes (``1800`` → ``30 min``)."""
    return f"{seconds / 60:g} min"


def power_of_two(x: float) -> str:
    """An exact power of two as ``2^k`` (``2**53`` → ``2^53``)."""
    k = int(x).bit_length() - 1
    if 2**k != x:
        raise ValueError(f"expected a power of two, got {x!r}")
    return f"2^{k}"


@dataclass(frozen=True)
class Condition:
    """One condition of a rule's threshold: prose with ``{}`` slots filled from constants.

    Attributes:
        text: the condition, e.g. ``"overlap ≥ {}"``; one ``{}`` per value.
        values: the constants shown in the slots, in order.
        fmt: how a value is written (:func:`number`, :func:`percent`, :func:`minutes` …).
    """

    text: str
    values: tuple[float, ...] = ()
    fmt: Callable[[float], str] = number

    def __post_init__(self) -> None:
        if self.text.count("{}") != len(self.values):
            raise ValueError(f"{self.text!r} has {self.text.count('{}')} slots for {len(self.values)} values")

    def render(self) -> str:
        """The condition with its values written in."""
        return self.text.format(*(self.fmt(v) for v in self.values))


def either(conditions: Sequence[Condition]) -> str:
    """``"a, b or c"``: the conditions of one level, any of which triggers it."""
    parts = [c.render() for c in conditions]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " or " + parts[-1]


def threshold_text(alarm: Sequence[Condition], warn: Sequence[Condition]) -> str:
    """A rule's threshold text: ``"alarm: …; warn: …"`` (levels without conditions are left out)."""
    levels = [(name, conds) for name, conds in (("alarm", alarm), ("warn", warn)) if conds]
    if not levels:
        raise ValueError("a rule needs at least one alarm or warn condition")
    return "; ".join(f"{name}: {either(conds)}" for name, conds in levels)
