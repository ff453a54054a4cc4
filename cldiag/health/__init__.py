"""Health verdicts: rules that read a run's tables and say, with evidence and a source, what looks wrong.

Each rule turns one family of diagnostics into a :class:`Verdict` — ``ok``, ``warn`` or ``alarm`` — with a
one-sentence reason, the evidence (metric, step, value …), the threshold it applied, where that threshold
comes from (a paper, or "documented heuristic: …" with the reasoning where the literature gives no
number) and what to try. :func:`evaluate` runs every rule over a run; :class:`Report` (and
:func:`report_dict` / :func:`format_report`) turns the verdicts into what ``cldiag report RUN [--json]``
prints, and shows itself as a table in Jupyter.

The package is split along its seams:

- :mod:`~cldiag.health.thresholds` — every number the rules compare against, written once, and the
  :class:`~cldiag.health.thresholds.Condition` s that generate each rule's threshold text from them;
- :mod:`~cldiag.health.tables` — :class:`RunTables` (a run's tables as DataFrames, so rules are tested
  without files) and the cleaned :class:`~cldiag.health.tables.Context` the rules read (non-finite values
  and implausible steps taken out and counted);
- :mod:`~cldiag.health.rule` — what a rule is (:class:`Rule`, its findings, shared evidence helpers);
- :mod:`~cldiag.health.rules_run`, :mod:`~cldiag.health.rules_geometry`, :mod:`~cldiag.health.rules_scores` —
  the checks by topic (the run itself; where the embeddings sit; what the loss's scores show);
- :mod:`~cldiag.health.rules` — the registry :data:`RULES` (each rule's metadata and conditions, and its
  check) and :func:`evaluate`;
- :mod:`~cldiag.health.report` — text, JSON and HTML;
- :mod:`~cldiag.health.verdict` — :class:`Verdict` and its levels.

A rule that cannot apply to a run — the modality gap of a one-modality run, tolerance without labels, a
metric that has not been logged yet — is **omitted** from :func:`evaluate`'s list; :func:`not_checked`
names the omitted rules and what each needs, and both reports show them.

Nothing here imports torch or Streamlit: the dashboard and the CLI call these functions on a
:class:`~cldiag.reader.Run` directly.
"""

from __future__ import annotations

from cldiag.health.report import KEY_FIGURES, Report, format_report, report_dict, rules_table
from cldiag.health.rules import RULE_BY_NAME, RULES, Rule, evaluate, evaluate_tables, not_checked
from cldiag.health.tables import RunTables
from cldiag.health.thresholds import Condition
from cldiag.health.verdict import LEVELS, Level, Verdict, worst_level

__all__ = [
    "KEY_FIGURES",
    "LEVELS",
    "RULES",
    "RULE_BY_NAME",
    "Condition",
    "Level",
    "Report",
    "Rule",
    "RunTables",
    "Verdict",
    "evaluate",
    "evaluate_tables",
    "format_report",
    "not_checked",
    "report_dict",
    "rules_table",
    "worst_level",
]
