"""Compare: key curves of several runs overlaid by step, and how their configurations differ."""

from __future__ import annotations

import streamlit as st

from cldiag import ui, views


def render(sel: ui.Selection, runs: list[ui.RunView]) -> None:
    if len(runs) < 2:
        st.info("Pick one or more runs under “Compare with” in the sidebar to overlay them here.")
        if len(sel.runs) < 2:
            st.caption(f"There is only one run under {ui.escape_markdown(sel.root)}.")
        return
    available = views.available_metrics(runs)
    default = [m for m in views.COMPARE_METRICS if m in available]
    metrics = st.multiselect("Metrics", available, default=default, key="compare_metrics")
    names = [sel.label(v.path) for v in runs]
    panel = views.metrics_compared(runs, names, metrics)
    ui.show(panel, *runs)
    if isinstance(panel, str):
        return
    diff = views.config_diff({n: v.config for n, v in zip(names, runs, strict=True)})
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
