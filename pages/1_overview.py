"""Overview: every run under the root, the selected run's health verdicts, and key curves over training."""

from __future__ import annotations

import streamlit as st

from cldiag import figures as F
from cldiag import health, ui, views

LEVEL_ICON = {"alarm": ":red[●] alarm", "warn": ":orange[●] warning", "ok": ":green[●] ok"}
RUNS_CAPTION = (
    "One row per run: status (stale: running, but no recent heartbeat), last step and the last value of key "
    "metrics (3 significant digits; ↑/↓: higher/lower is better; hover a header for its full name)."
)


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
    listed = [(p, v) for p, v in ((p, ui.view_of(p)) for _, p in sel.runs) if v is not None]
    summaries = [views.run_summary(v, sel.label(p), v.status_text) for p, v in listed]
    helps = {h: st.column_config.NumberColumn(h, help=t) for h, t in F.column_help(views.KEY_METRICS).items()}
    st.dataframe(F.runs_table(summaries, views.KEY_METRICS), column_config=helps, hide_index=True)
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
