"""Compare: key curves of several runs overlaid by step, and how their configurations differ."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from cldiag import figures as F
from cldiag import schema, ui

DEFAULT_METRICS = [
    schema.M_LOSS,
    schema.M_ALIGNMENT,
    schema.M_UNIFORMITY,
    schema.M_POS_SIM,
    schema.M_RANK,
    schema.M_RETRIEVAL,
    schema.M_TOLERANCE,
    schema.M_GAP,
]


def config_diff(sel: ui.Selection, views: list[ui.RunView]) -> pd.DataFrame:
    """Configuration keys whose values differ between the runs (one column per run)."""
    configs = {sel.label(v.path): v.config for v in views}
    keys = sorted({k for c in configs.values() for k in c})
    rows = []
    for key in keys:
        values = {run: json.dumps(c.get(key), sort_keys=True, default=str) for run, c in configs.items()}
        if len(set(values.values())) > 1:
            rows.append({"setting": key, **values})
    return pd.DataFrame(rows)


def render(sel: ui.Selection, views: list[ui.RunView]) -> None:
    if len(views) < 2:
        st.info("Pick one or more runs under “Compare with” in the sidebar to overlay them here.")
        if len(sel.runs) < 2:
            st.caption(f"There is only one run under `{sel.root}`.")
        return
    available = sorted({m for v in views for m in v.metrics()})
    default = [m for m in DEFAULT_METRICS if m in available]
    metrics = st.multiselect("Metrics", available, default=default, key="compare_metrics")
    if not metrics:
        st.info("Pick at least one metric.")
        return
    series = ui.runs_series(views, metrics, sel.label)
    if series.full.empty:
        st.info("None of the chosen metrics are logged in the selected steps.")
        return
    key = ("compare", tuple((v.path, v.token) for v in views), sel.step_range, tuple(metrics))
    fig = ui.cached(
        key,
        lambda: F.fig_metric_grid(
            series.plot, metrics, title="Runs compared, aligned by step", dim=views[0].dim
        ),
    )
    ui.chart(
        fig,
        series.full,
        key="compare",
        file_name="compare-" + "-".join(v.name for v in views),
        note=series.note,
        caption=(
            "One panel per metric, one colour per run, steps aligned; click a run in the legend to hide it.",
            "Compare runs that differ in one setting (table below) — e.g. τ: lower τ gives lower uniformity "
            "and lower tolerance (Wang & Liu, CVPR 2021).",
        ),
    )
    diff = config_diff(sel, views)
    st.subheader("Settings that differ")
    if diff.empty:
        st.caption("The runs' configurations are identical (or none were recorded).")
    else:
        st.dataframe(diff, hide_index=True, width="stretch")


ui.run_multi_page(
    "Compare",
    "Several runs on the same axes: which setting made the difference?",
    render,
)
