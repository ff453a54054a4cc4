"""Pairs: the anchors whose positive ranks worst in a snapshot, with their hardest negatives and metadata."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from cldiag import ui, views


def worst(view: ui.RunView, step: int, n: int, label: int | None, then: int | None) -> pd.DataFrame | str:
    """The worst pairs at ``step`` (cached per run version and options), or why there are none."""
    table = lambda: views.worst_pairs_table(view, step, n, label, compare_step=then)  # noqa: E731
    return view.cached("worst_pairs", table, step, n, label, then)


def render(view: ui.RunView) -> None:
    steps = view.snapshot_steps()
    if not steps:
        st.info(views.EMPTY["snapshots"])
        return
    c1, c2, c3, c4 = st.columns([3, 2, 2, 2])
    with c1:
        step = ui.step_picker(steps, "Snapshot step", key="pairs_step")
    labels = view.cached("pair_labels", lambda: views.pair_labels(view, step), step)
    choice = c2.selectbox("Anchor label", ["all", *labels], key="pairs_label")
    label = None if choice == "all" else int(choice)
    n = int(c3.number_input("Anchors", min_value=1, max_value=200, value=20, key="pairs_n"))
    earlier = ["none", *(s for s in steps if s < step)]
    pick = c4.selectbox("Compare with step", earlier, index=min(1, len(earlier) - 1), key="pairs_then")
    then = None if pick == "none" else int(pick)
    st.caption("  \n".join(views.PAIRS_CAPTION))
    ui.table(worst(view, step, n, label, then), key="pairs", file_name=f"{view.name}-worst-pairs-step{step}")
    if then is not None:
        st.subheader(f"The worst pairs at step {then}, for comparison")
        ui.table(
            worst(view, then, n, label, None),
            key="pairs_before",
            file_name=f"{view.name}-worst-pairs-step{then}",
        )


ui.run_page(
    "Pairs",
    "Which pairs does the model get wrong: the worst positives, their hardest negatives, what they are.",
    render,
)
