"""Overview: every run under the root, the selected run's health verdicts, and key curves over training."""

from __future__ import annotations

import streamlit as st

from cldiag import figures as F
from cldiag import health, summary, ui, views
from cldiag.reader import Run, read_run

LEVEL_ICON = {"alarm": ":red[●] alarm", "warn": ":orange[●] warning", "ok": ":green[●] ok"}
RUNS_CAPTION = (
    "One row per run: status (stale: running, but no recent heartbeat), last step and the last value of key "
    "metrics (3 significant digits; ↑/↓: higher/lower is better; hover a header for its full name). Select "
    "rows to overlay those runs (Compare, and the charts below)."
)
MAX_COMPARED = 10  # runs picked in the table that are overlaid at most (each one's scalars are loaded)


@st.cache_resource(ttl=5, max_entries=4, show_spinner=False)
def sweep(paths: tuple[str, ...], _known: dict[str, Run]) -> list[tuple[Run, dict | None]]:
    """Each run with its stored summary (None: none yet): one small file per run, no table is read."""
    out = []
    for path in paths:
        try:
            run = _known.get(path) or read_run(path)
        except (OSError, ValueError):
            continue  # the sidebar lists why
        out.append((run, summary.stored_summary(run)))
    return out


def run_rows(sel: ui.Selection) -> tuple[list[str], list[dict]]:
    """The runs table's rows; runs without a stored summary get theirs computed in the background."""
    listed = sweep(tuple(p for _, p in sel.runs), ui.discovered(sel.root))
    missing = [run for run, found in listed if found is None]
    done: dict[str, dict] = {}
    if missing:
        key = ("summaries", tuple((r.path, r.meta.get("last_step"), r.status) for r in missing))
        job = ui.background_jobs("summaries").submit(key, lambda: [summary.run_summary(r) for r in missing])
        if job.done() and job.exception() is None:
            done = {r.path: s for r, s in zip(missing, job.result(), strict=True)}
        else:
            st.caption(
                f"Summarizing {len(missing):,} runs written before summaries existed in the background …"
            )
            ui.rerun_when_done(job)
    labels = sel.labels()
    rows = [
        summary.table_row(
            run,
            found or done.get(run.path),
            name=labels[run.path],
            status=status_text(run),
            config=views.shown_config(run.config),
        )
        for run, found in listed
    ]
    return [run.path for run, _ in listed], rows


def status_text(run: Run) -> str:
    if run.is_stale(ui.STALE_SECS):
        return f"stale (running, but no heartbeat for over {ui.STALE_SECS / 60:.0f} min)"
    return run.status


def pick(paths: list[str], focus: str | None) -> None:
    """Rows selected in the runs table become the runs compared (the sidebar's "Compare with")."""
    rows = st.session_state["overview_runs"].selection.rows
    st.session_state["_cldiag_compare"] = [paths[i] for i in rows if paths[i] != focus][:MAX_COMPARED]


def name(v: health.Verdict) -> str:
    return v.rule.replace("_", " ")


def verdicts(view: ui.RunView) -> None:
    st.subheader(f"Health of {ui.escape_markdown(view.name)}")
    found = ui.finished_verdicts(view, st.info)
    if found is None:
        return
    found = sorted(found, key=lambda v: -health.LEVELS.index(v.level))
    if not found:
        st.info("No health rule applies yet: the run has too few logged steps.")
    for v in (v for v in found if v.level != "ok"):
        with st.expander(f"{LEVEL_ICON[v.level]} — **{name(v)}**: {v.reason}", expanded=v.level == "alarm"):
            st.markdown(f"**What to try:** {v.action}")
            st.markdown(f"**Threshold:** {v.threshold}  \n**Source:** {v.source}")
            st.json(v.to_dict()["evidence"], expanded=False)
    if fine := [v for v in found if v.level == "ok"]:
        with st.expander(f"{LEVEL_ICON['ok']} — {len(fine)} checks pass: {', '.join(name(v) for v in fine)}"):
            for v in fine:
                st.markdown(f"**{name(v)}**: {v.reason}  \n:gray[{v.source}]")
    if skipped := health.not_checked(found):
        needs = (f"{s['rule'].replace('_', ' ')} (needs {s['needs']})" for s in skipped)
        st.caption("Not checked: " + "; ".join(needs))


def render(sel: ui.Selection, runs: list[ui.RunView]) -> None:
    st.subheader("Runs under the root")
    paths, summaries = run_rows(sel)
    helps = {h: st.column_config.NumberColumn(h, help=t) for h, t in F.column_help(views.KEY_METRICS).items()}
    st.dataframe(
        F.runs_table(summaries, views.KEY_METRICS),
        column_config=helps,
        hide_index=True,
        key="overview_runs",
        on_select=lambda: pick(paths, sel.focus),
        selection_mode="multi-row",
    )
    st.caption(RUNS_CAPTION)
    with st.expander("Configurations"):
        st.dataframe(F.configs_table(summaries), hide_index=True, width="stretch")
    verdicts(runs[0])
    ui.show(views.key_metrics(runs, [sel.label(v.path) for v in runs]), *runs)


ui.run_multi_page(
    "Overview",
    "Every run under the root, what the health rules say about the selected run, and its key curves.",
    render,
)
