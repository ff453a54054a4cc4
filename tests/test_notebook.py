"""The example notebook docs/notebook.ipynb runs top to bottom on the bundled sample runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("ipykernel")

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "docs" / "notebook.ipynb"


def test_the_example_notebook_executes_and_shows_figures(monkeypatch):
    # The kernel imports this checkout's cldiag, whatever an editable install points at.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}
    ).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    # The first cell shows the run's HTML summary, the chart cells plotly figures.
    first = code[0].outputs[0]["data"]
    assert "text/html" in first and "simclr-digits-tau0.2" in first["text/html"]
    mime = "application/vnd.plotly.v1+json"
    plotly = [c for c in code if any(mime in o.get("data", {}) for o in c.outputs)]
    assert len(plotly) == len(code) - 1
    # The comparison cell prints each run's last uniformity, read from the runs themselves.
    printed = "".join(o.get("text", "") for o in code[-1].outputs if o.output_type == "stream")
    assert "simclr-digits-tau0.1" in printed and "simclr-digits-tau1" in printed
