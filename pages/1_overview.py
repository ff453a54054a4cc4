"""Overview: every run under the root, the selected run's health verdicts, and key curves over training."""

from __future__ import annotations

import streamlit as st

from cldiag import figures as F
from cldiag import health, schema, ui

KEY_METRICS = [
    schema.M_LOSS,
    schema.M_ALIGNMENT,
    schema.M_UNIFORMITY,
    schema.M_POS_SIM,
    schema.M_RANK,
    schema.M_RETRIEVAL,
    schema.M_GAP,
    schema.M_STD_L2,
]
LEVEL_ICON = {"alarm": ":red[●] alarm", "warn": ":orange[●] warning", "ok": ":green[●] ok"}


def runs_table(sel: ui.Selection) -> None:
    st.subheader("Runs under the root")
    summaries = []
    for _, path in sel.runs:
        view = ui.view_of(path)
        if view is None:
            continue
        meta = view.run.meta
        summaries.append(
            {
                "name": sel.label(path),
                "status": view.status_text,
                "last_step": meta.get("last_step"),
                "modalities": view.run.modalities if view.run.two_modality else ["one modality"],
                "dim": meta.get("dim"),
                "created": meta.get("created"),
                "config": view.config,
                "last": F.last_values(view.series(KEY_METRICS).full),
            },
        )
    table = F.runs_table(summaries, metrics=KEY_METRICS)
    st.dataframe(table, hide_index=True, width="stretch")
    st.caption(
        "One row per run: status (a running run without a recent heartbeat is marked stale), the last logged "
        "step, and the last value of key metrics. Arrows on the charts below say which direction is better.",
    )


def name(v: health.Verdict) -> str:
    return v.rule.replace("_", " ")


def verdict(v: health.Verdict, *, expanded: bool) -> None:
    with st.expander(f"{LEVEL_ICON[v.level]} — **{name(v)}**: {v.reason}", expanded=expanded):
        st.markdown(f"**What to try:** {v.action}")
        st.markdown(f"**Threshold:** {v.threshold}  \n**Source:** {v.source}")
        st.json(v.to_dict()["evidence"], expanded=False)


def verdicts(view: ui.RunView) -> None:
    st.subheader(f"Health of {ui.escape_markdown(view.name)}")
    verdicts = ui.finished_verdicts(view, st.info)
    if verdicts is None:
        return
    found = sorted(verdicts, key=lambda v: -health.LEVELS.index(v.level))
    if not found:
        st.info("No health rule applies yet: the run has too few logged steps.")
    problems = [v for v in found if v.level != "ok"]
    fine = [v for v in found if v.level == "ok"]
    for v in problems:
        verdict(v, expanded=v.level == "alarm")
    if fine:
        with st.expander(f"{LEVEL_ICON['ok']} — {len(fine)} checks pass: {', '.join(name(v) for v in fine)}"):
            for v in fine:
                st.markdown(f"**{name(v)}**: {v.reason}  \n:gray[{v.source}]")
    skipped = health.not_checked(found)
    if skipped:
        st.caption(
            "Not checked: "
            + "; ".join(f"{s['rule'].replace('_', ' ')} (needs {s['needs']})" for s in skipped)
        )


def key_curves(sel: ui.Selection, views: list[ui.RunView]) -> None:
    series = ui.runs_series(views, KEY_METRICS, sel.label)
    if series.full.empty:
        st.info("No scalar metrics logged yet.")
        return
    key = ("overview", tuple((v.path, v.token) for v in views), sel.step_range)
    fig = ui.cached(
        key,
        lambda: F.fig_metric_grid(
            series.plot, KEY_METRICS, title="Key metrics over training", dim=views[0].dim
        ),
    )
    ui.chart(
        fig,
        series.full,
        key="key_metrics",
        file_name=f"{views[0].name}-key-metrics",
        note=series.note,
        caption=(
            "One panel per metric, one colour per run; the arrow in each title says which way is better.",
            "Alignment and uniformity should both fall (Wang & Isola 2020); a falling effective rank means "
            "dimensional collapse (RankMe, Garrido et al. 2023); the gap exists only with two modalities.",
        ),
    )


def render(sel: ui.Selection, views: list[ui.RunView]) -> None:
    runs_table(sel)
    verdicts(views[0])
    key_curves(sel, views)


ui.run_multi_page(
    "Overview",
    "Every run under the root, what the health rules say about the selected run, and its key curves.",
    render,
)
