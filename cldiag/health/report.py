"""What ``cldiag report`` prints: a :class:`Report` of a run's verdicts as text, JSON or HTML.

Formatting only — the verdicts come from :func:`cldiag.health.evaluate`. Two kinds of number appear side by
side and are labelled as such: a run's **key figures** are each metric's *last logged value*, while a
verdict's evidence ``value`` is the *median over the rule's window* of steps (shown with the window), so
the two can differ for the same metric.
"""

from __future__ import annotations

import html
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from cldiag import schema
from cldiag.health.rules import RULES, evaluate, fmt, not_checked
from cldiag.health.tables import plausible_steps, round_sig
from cldiag.health.verdict import Level, Verdict, jsonable, severity, worst_level
from cldiag.reader import Run

KEY_FIGURES: Final[tuple[str, ...]] = (
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
"""Metrics whose last logged value the report shows."""

KEY_FIGURES_NOTE: Final[str] = (
    "key figures are each metric's last logged value; a verdict's evidence value is the median over the "
    "rule's window of steps, so the two can differ"
)


@dataclass(frozen=True)
class Report:
    """A run's health report: who the run is, its key figures, and its verdicts.

    Attributes:
        name: the run's name.
        path: where it lives.
        status: ``running`` / ``finished`` / ``failed`` (as meta.json says).
        modalities: the two sides' names.
        two_modality: whether the run has two modalities.
        dim: the embedding dimension from meta.json.
        steps: ``first``, ``last`` and number ``logged`` of the plausible steps (0 … 2^53).
        implausible_steps: rows of the key figures left out for a negative step or one beyond 2^53.
        key_figures: the last logged finite value of each of :data:`KEY_FIGURES` (``None``: not logged).
        key_figure_steps: the step of each of those values.
        verdicts: the verdicts, in rule order.
        problems: the reader's notes on skipped part files.
    """

    name: str
    path: str
    status: str
    modalities: list[str]
    two_modality: bool
    dim: Any
    steps: dict[str, int | None]
    key_figures: dict[str, float | None]
    key_figure_steps: dict[str, int | None]
    implausible_steps: int = 0
    verdicts: tuple[Verdict, ...] = field(default=())
    problems: tuple[str, ...] = ()

    @classmethod
    def from_run(cls, run: Run, verdicts: Sequence[Verdict] | None = None) -> Report:
        """The report of ``run``, evaluating its rules unless ``verdicts`` are given."""
        if not isinstance(run, Run):
            raise TypeError(f"run must be a cldiag Run (from read_run), got {type(run).__name__}")
        verdicts = evaluate(run) if verdicts is None else verdicts
        figures, at, steps, implausible = _key_figures(run)
        return cls(
            name=run.name,
            path=run.path,
            status=run.status,
            modalities=run.modalities,
            two_modality=run.two_modality,
            dim=run.meta.get("dim"),
            steps=steps,
            key_figures=figures,
            key_figure_steps=at,
            implausible_steps=implausible,
            verdicts=tuple(verdicts),
            problems=tuple(run.problems),
        )

    @property
    def level(self) -> Level:
        """The worst verdict level."""
        return worst_level(self.verdicts)

    @property
    def not_checked(self) -> list[dict[str, str]]:
        """Rules without a verdict, with what each needs."""
        return not_checked(self.verdicts)

    def worst_first(self) -> list[Verdict]:
        """The verdicts, alarms first (stable within a level)."""
        return sorted(self.verdicts, key=lambda v: -severity(v.level))

    def to_dict(self) -> dict[str, Any]:
        """Everything ``cldiag report RUN --json`` prints (JSON-serializable; NaN/Inf become null)."""
        return jsonable(
            {
                "name": self.name,
                "path": self.path,
                "status": self.status,
                "modalities": self.modalities,
                "two_modality": self.two_modality,
                "dim": self.dim,
                "steps": self.steps,
                "implausible_steps": self.implausible_steps,
                "key_figures": self.key_figures,
                "key_figure_steps": self.key_figure_steps,
                "key_figures_note": KEY_FIGURES_NOTE,
                "level": self.level,
                "verdicts": [v.to_dict() for v in self.verdicts],
                "not_checked": self.not_checked,
                "problems": list(self.problems),
            },
        )

    def to_text(self, width: int = 100) -> str:
        """A plain-text report for people: the run, its key figures and the verdicts, worst first."""
        lines = [*self._header(width), ""]
        name_w = max([len("RULE"), *(len(v.rule) for v in self.verdicts)])
        lines.append(f"{'LEVEL':<6} {'RULE':<{name_w}}  REASON")
        indent = " " * (6 + 1 + name_w + 2)
        body_w = max(width - len(indent), 30)
        for v in self.worst_first():
            reason = textwrap.wrap(v.reason, body_w) or [""]
            lines.append(f"{v.level.upper():<6} {v.rule:<{name_w}}  {reason[0]}")
            lines += [indent + r for r in reason[1:]]
            for label, text in _details(v):
                lines += [
                    indent + w for w in textwrap.wrap(f"{label}: {text}", body_w, subsequent_indent="  ")
                ]
        for skipped in self.not_checked:
            lines.append(f"{'-':<6} {skipped['rule']:<{name_w}}  not checked: needs {skipped['needs']}")
        lines += ["", *textwrap.wrap(f"Note: {KEY_FIGURES_NOTE}.", width), ""]
        lines.append(f"overall: {self.level.upper()}")
        return "\n".join(lines)

    def _header(self, width: int = 100) -> list[str]:
        steps = self.steps
        span = f"steps {steps['first']}–{steps['last']} ({steps['logged']} logged)"
        if self.implausible_steps:
            span += f"; {self.implausible_steps} rows with implausible steps left out"
        last = steps["last"]
        shown = ", ".join(
            f"{k} {fmt(v)}"
            + ("" if self.key_figure_steps[k] == last else f" (step {self.key_figure_steps[k]})")
            for k, v in self.key_figures.items()
            if v is not None
        )
        return [
            f"cldiag report: {self.name}  ({self.path})",
            *textwrap.wrap(
                f"status {self.status} · {span} · dim {self.dim} · {'/'.join(self.modalities)}",
                width,
                subsequent_indent="  ",
            ),
            *textwrap.wrap(
                f"key figures (last logged value, at step {last} unless noted): "
                + (shown or "none logged yet"),
                width,
                subsequent_indent="  ",
            ),
        ]

    def _repr_html_(self) -> str:
        """An HTML table for Jupyter; every string from the run is escaped."""
        e = html.escape
        rows = "".join(
            f"<tr><td><b>{e(v.level.upper())}</b></td><td><code>{e(v.rule)}</code></td><td>{e(v.reason)}"
            f"<br><small>evidence: {e(_evidence_line(v.evidence))}<br>threshold: {e(str(v.threshold))}"
            + (f"<br>action: {e(v.action)}<br>source: {e(v.source)}" if v.level != "ok" else "")
            + "</small></td></tr>"
            for v in self.worst_first()
        )
        skipped = "".join(
            f"<tr><td>–</td><td><code>{e(s['rule'])}</code></td>"
            f"<td>not checked: needs {e(s['needs'])}</td></tr>"
            for s in self.not_checked
        )
        header = "".join(f"<div>{e(line)}</div>" for line in self._header()[1:])
        return (
            f"<div class='cldiag-report'><h4>cldiag report: {e(self.name)} — {e(self.level.upper())}</h4>"
            f"<div><small>{e(self.path)}</small></div>{header}"
            f"<table><thead><tr><th>level</th><th>rule</th><th>reason</th></tr></thead>"
            f"<tbody>{rows}{skipped}</tbody></table><p><small>{e(KEY_FIGURES_NOTE)}.</small></p></div>"
        )


def _key_figures(
    run: Run,
) -> tuple[dict[str, float | None], dict[str, int | None], dict[str, int | None], int]:
    """Last value (and its step) of each key figure, and the first, last and number of plausible steps.

    Steps are counted from ``batch_size`` (written by every ``Monitor.log`` call) and the key figures, so
    only those metrics are read. Rows with a step no training loop writes (negative, beyond 2^53) are left
    out and counted.
    """
    scalars = run.scalars([*KEY_FIGURES, schema.M_BATCH])
    figures: dict[str, float | None] = dict.fromkeys(KEY_FIGURES)
    at: dict[str, int | None] = dict.fromkeys(KEY_FIGURES)
    steps: dict[str, int | None] = {"first": None, "last": None, "logged": 0}
    if scalars.empty:
        return figures, at, steps, 0
    plausible = plausible_steps(scalars["step"].to_numpy(np.int64))
    scalars = scalars[plausible]
    finite = scalars[np.isfinite(scalars["value"].to_numpy(np.float64))].sort_values("step", kind="stable")
    last = finite.groupby("metric", sort=False).tail(1).set_index("metric")
    for metric in KEY_FIGURES:
        if metric in last.index:
            figures[metric] = round_sig(float(last.at[metric, "value"]), 6)
            at[metric] = int(last.at[metric, "step"])
    unique = np.unique(scalars["step"].to_numpy(np.int64))
    if unique.size:
        steps.update(first=int(unique[0]), last=int(unique[-1]), logged=int(unique.size))
    return figures, at, steps, int((~plausible).sum())


def _details(v: Verdict) -> list[tuple[str, str]]:
    details = [("evidence", _evidence_line(v.evidence)), ("threshold", str(v.threshold))]
    details += [("also", a) for a in v.evidence.get("also", [])]
    if v.level != "ok":
        details += [("action", v.action), ("source", v.source)]
    return details


def _evidence_line(evidence: dict[str, Any]) -> str:
    """``metric = value (median of steps a–b; …)``: a windowed value says it is a median."""
    head = f"{evidence.get('metric')} = {_show(evidence.get('value'))}"
    window = evidence.get("window")
    rest: list[str] = []
    if isinstance(window, list) and len(window) == 2:
        rest.append(f"median of steps {window[0]}–{window[1]}")
    elif evidence.get("step") is not None:
        head += f" at step {evidence['step']}"
    skip = ("metric", "value", "step", "also", "others", "window")
    rest += [f"{k} {_show(v)}" for k, v in evidence.items() if k not in skip]
    line = head + (f" ({'; '.join(rest)})" if rest else "")
    for other in evidence.get("others", []):
        line += f"; {_evidence_line(other)}"
    return line


def _show(value: Any) -> str:
    if isinstance(value, float):
        return fmt(value)
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    return str(value)


def report_dict(run: Run, verdicts: Sequence[Verdict]) -> dict[str, Any]:
    """Everything ``cldiag report RUN --json`` prints: the run, its key figures and the verdicts.

    Args:
        run: the run the verdicts were computed on.
        verdicts: the result of :func:`cldiag.health.evaluate`.

    Returns:
        A JSON-serializable dict with ``name``, ``path``, ``status``, ``modalities``, ``two_modality``,
        ``dim``, ``steps`` (first, last, number logged), ``implausible_steps`` (rows left out),
        ``key_figures`` (the last logged value of loss, alignment, uniformity, effective rank, … ``None``
        when not logged),
        ``key_figure_steps`` (the step of each), ``key_figures_note``, ``level`` (the worst), ``verdicts``
        (each :meth:`Verdict.to_dict`), ``not_checked`` and ``problems``.
    """
    return Report.from_run(run, verdicts).to_dict()


def format_report(run: Run, verdicts: Sequence[Verdict], *, width: int = 100) -> str:
    """A plain-text report for people: the run, its key figures and a table of verdicts, worst first.

    Args:
        run: the run the verdicts were computed on.
        verdicts: the result of :func:`cldiag.health.evaluate`.
        width: line width to wrap at.

    Returns:
        The report text (no trailing newline).
    """
    return Report.from_run(run, verdicts).to_text(width)


def rules_table(columns: Sequence[str] = ("rule", "title", "needs", "threshold", "source")) -> list[str]:
    """Markdown rows (no header) describing :data:`~cldiag.health.RULES`, one per rule.

    ``docs/health.md`` and the README's "Health verdicts" table are these rows; a test checks they agree.

    Args:
        columns: which :class:`~cldiag.health.rules.Rule` attributes to show (``rule`` is the name).
    """
    rows = []
    for rule in RULES:
        cells = [f"`{rule.name}`" if c == "rule" else str(getattr(rule, c)) for c in columns]
        rows.append("| " + " | ".join(cells) + " |")
    return rows
