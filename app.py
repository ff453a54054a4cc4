"""cldiag dashboard: ``streamlit run app.py [-- RUN_ROOT]`` (or ``cldiag serve RUN_ROOT``).

The router: the sidebar (run root, run picker, step range) is drawn here for every page, then the chosen
page runs. The run root defaults to ``sample_runs/`` next to this file; ``$CLDIAG_RUN_ROOT`` or a command-line
argument after ``--`` overrides it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import streamlit as st
import torch

from cldiag import projection, ui

HERE = Path(__file__).resolve().parent

# The dashboard's tensors are small (Concepts, Lab): a second OpenMP thread only adds synchronization.
# Measured on the 2-core VM: Concepts slider moves 220-740 ms with 2 threads, <= 190 ms with 1.
torch.set_num_threads(int(os.environ.get("CLDIAG_TORCH_THREADS", "1")))

# A served dashboard (not AppTest) compiles UMAP's numba code in the background from its first page on, so
# the first UMAP does not wait for it (tens of seconds). Once per process; CLDIAG_WARM_UMAP=0 turns it off.
if Path(sys.argv[0]).name == "app.py":
    projection.warm_up()

st.set_page_config(page_title="cldiag", page_icon=":material/troubleshoot:", layout="wide")

# (file in pages/, title, icon, url path). Each url path is the one Streamlit derives from the file name
# ("5_modality_gap.py" -> "modality_gap"): with a pages/ folder, a fresh session first resolves the URL
# against the folder, and any other spelling shows "Page not found" before the router runs.
RUN_PAGES = [
    ("1_overview.py", "Overview", ":material/dashboard:", "overview"),
    ("2_scores.py", "Scores", ":material/stacked_bar_chart:", "scores"),
    ("3_geometry.py", "Geometry", ":material/scatter_plot:", "geometry"),
    ("4_temperature.py", "Temperature", ":material/thermostat:", "temperature"),
    ("5_modality_gap.py", "Modality gap", ":material/compare_arrows:", "modality_gap"),
    ("6_spectrum.py", "Spectrum", ":material/equalizer:", "spectrum"),
    ("7_embeddings.py", "Embeddings", ":material/bubble_chart:", "embeddings"),
    ("8_compare.py", "Compare", ":material/difference:", "compare"),
    ("9_pairs.py", "Pairs", ":material/join_inner:", "pairs"),
]
LEARN_PAGES = [
    ("lab.py", "Lab", ":material/science:", "lab"),
    ("concepts.py", "Concepts", ":material/school:", "concepts"),
]

sections = {
    "Runs": [
        st.Page(f"pages/{file}", title=title, icon=icon, url_path=url, default=i == 0)
        for i, (file, title, icon, url) in enumerate(RUN_PAGES)
    ],
}
sections["Learn"] = [
    st.Page(f"pages/{file}", title=title, icon=icon, url_path=url) for file, title, icon, url in LEARN_PAGES
]

page = st.navigation(sections)
# A page URL opened before the router ever ran was handed over to it (ui.selection): open that page now.
deep_link = st.session_state.pop(ui.DEEP_LINK_KEY, None)
titles = {file: title for file, title, _, _ in RUN_PAGES + LEARN_PAGES}
if deep_link in titles and titles[deep_link] != page.title:
    st.switch_page(f"pages/{deep_link}", query_params=st.query_params.to_dict())
# Lab and Concepts are not about one run: no run picker, step range or comparison runs there.
ui.sidebar(HERE / "sample_runs", ui.launch_args(), controls=page.title in {t for _, t, _, _ in RUN_PAGES})
page.run()
