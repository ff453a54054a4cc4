"""cldiag in notebooks: run.plot.* returns the dashboard's figures; Run has an escaped HTML summary."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import plotly.graph_objects as go
import pytest
import torch

import cldiag
from cldiag import figures as F
from cldiag import schema, views
from cldiag.plot import RunPlots, compare

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "sample_runs"
SIMCLR = SAMPLES / "simclr-digits-tau0.2"
CLIP = SAMPLES / "clip-pairs-tau0.01"


@pytest.fixture(scope="module")
def simclr() -> cldiag.Run:
    return cldiag.read_run(SIMCLR)


@pytest.fixture(scope="module")
def clip() -> cldiag.Run:
    return cldiag.read_run(CLIP)


def test_the_notebook_path_imports_no_streamlit():
    code = (
        "import sys, cldiag, cldiag.plot\n"
        f"run = cldiag.read_run({str(SIMCLR)!r})\n"
        "run.plot.scores(); run.plot.spectrum(); run._repr_html_()\n"
        "print('streamlit' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "False"


def test_run_plot_is_a_runplots_of_that_run(simclr):
    assert isinstance(simclr.plot, RunPlots)
    assert simclr.plot.data.run is simclr
    assert cldiag.plot.compare is compare
    with pytest.raises(TypeError, match="cldiag Run"):
        RunPlots("sample_runs/x")


def test_scores_is_the_dashboard_figure_at_the_newest_step(simclr):
    steps = sorted(set(simclr.histograms()["step"]))
    fig = simclr.plot.scores()
    assert fig.to_json() == F.fig_score_overlay(simclr.histograms(step=steps[-1])).to_json()
    assert simclr.plot.scores(step=steps[0]).to_json() == (
        F.fig_score_overlay(simclr.histograms(step=steps[0])).to_json()
    )
    with pytest.raises(ValueError, match="no histograms at step -3"):
        simclr.plot.scores(step=-3)


def test_spectrum_and_temperature_default_to_the_newest_step(simclr):
    last = max(simclr.spectra()["step"])
    assert simclr.plot.spectrum().to_json() == F.fig_spectrum(simclr.spectra(step=last)).to_json()
    step = max(simclr.temperature()["step"])
    tau = views.run_tau(views.RunData(simclr), step)
    expected = F.fig_temperature_curves(simclr.temperature(step=step), run_tau=tau)
    assert simclr.plot.temperature().to_json() == expected.to_json()


def test_series_draws_the_asked_metrics_and_names_what_exists(simclr):
    fig = simclr.plot.series([schema.M_ALIGNMENT, schema.M_UNIFORMITY])
    assert [a.text for a in fig.layout.annotations][:2] == ["alignment ↓", "uniformity (t=2) ↓"]
    assert simclr.plot.series(schema.M_LOSS).layout.title.text == "Metrics over training"
    with pytest.raises(ValueError, match="the run has"):
        simclr.plot.series(["not-a-metric"])


@pytest.mark.parametrize(
    "method",
    [
        "key_metrics",
        "score_heatmap",
        "hard_negatives",
        "score_means",
        "overlap",
        "alignment_uniformity",
        "plane",
        "tolerance",
        "std_l2",
        "temperature_trend",
        "waterfall",
        "effective_rank",
        "embeddings",
    ],
)
def test_every_chart_of_a_full_run_is_a_titled_figure(simclr, method):
    fig = getattr(simclr.plot, method)()
    assert isinstance(fig, go.Figure) and fig.layout.title.text and fig.data


def test_modality_gap_charts_need_two_modalities(simclr, clip):
    for method in ("modality_gap", "cones", "gap_view"):
        assert getattr(clip.plot, method)().data
        with pytest.raises(ValueError, match="no modality gap"):
            getattr(simclr.plot, method)()


def test_embeddings_check_their_arguments_and_project_several_snapshots(clip):
    steps = clip.snapshot_steps()
    fig = clip.plot.embeddings(step=steps[-2:], color_by="step")
    assert f"{steps[-2]}, {steps[-1]}" in fig.layout.title.text
    with pytest.raises(ValueError, match="method must be"):
        clip.plot.embeddings(method="lda")
    with pytest.raises(ValueError, match="color_by"):
        clip.plot.embeddings(color_by="size")
    with pytest.raises(ValueError, match="no embedding snapshot at step 7"):
        clip.plot.embeddings(step=7)


def test_compare_overlays_runs_by_name(simclr, clip):
    fig = cldiag.plot.compare([simclr, clip], "uniformity")
    assert {t.name for t in fig.data} >= {simclr.name, clip.name}
    assert fig.layout.title.text == "Runs compared, aligned by step"
    with pytest.raises(ValueError, match="None of the chosen"):
        compare([simclr], ["not-a-metric"])
    with pytest.raises(TypeError, match="cldiag Runs"):
        compare([simclr, str(CLIP)], "uniformity")
    with pytest.raises(ValueError, match="at least one run"):
        compare([], "uniformity")


def test_a_missing_diagnostic_raises_the_dashboard_message(tmp_path):
    off = {"pairwise_every": 0, "spectrum_every": 0, "curves_every": 0, "snapshot_every": 0}
    g = torch.Generator().manual_seed(0)
    with cldiag.Monitor(tmp_path / "tiny", **off) as mon:
        mon.log(1, torch.randn(8, 4, generator=g), torch.randn(8, 4, generator=g), loss=1.0)
    run = cldiag.read_run(tmp_path / "tiny")
    for method, table in (("scores", "histograms"), ("spectrum", "spectra"), ("temperature", "temperature")):
        with pytest.raises(ValueError, match=views.EMPTY[table].split(".")[0]):
            getattr(run.plot, method)()
    with pytest.raises(ValueError, match="No embedding snapshot"):
        run.plot.embeddings()
    assert run.plot.series("loss").data


def test_repr_html_summarizes_and_escapes(tmp_path, simclr):
    page = simclr._repr_html_()
    for text in (simclr.name, "finished", str(simclr.meta["last_step"]), str(simclr.meta["dim"])):
        assert text in page
    assert f"{len(simclr.metrics())}:" in page
    evil = tmp_path / "evil"
    shutil.copytree(SAMPLES / "collapse-toy-weak", evil)
    meta = json.loads((evil / "meta.json").read_text())
    meta["name"] = "<script>alert(1)</script>"
    meta["status"] = "<b>done</b>"
    (evil / "meta.json").write_text(json.dumps(meta))
    page = cldiag.read_run(evil)._repr_html_()
    assert "<script>" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;b&gt;done&lt;/b&gt;" in page


@pytest.fixture(scope="module")
def three(tmp_path_factory) -> cldiag.Run:
    """Three modalities as one mapping, labels and a per-sample τ: every literature chart has data."""
    path = tmp_path_factory.mktemp("plot") / "three"
    g = torch.Generator().manual_seed(0)
    with cldiag.Monitor(path, pairwise_every=2, spectrum_every=0, curves_every=0, snapshot_every=0) as mon:
        for step in range(6):
            z = {m: torch.randn(32, 8, generator=g) for m in ("image", "text", "audio")}
            labels = torch.arange(32) % 4
            tau = 0.1 + 0.02 * labels.float()
            mon.log(step, z, labels=labels, temperature=tau, loss=1.0)
    return cldiag.read_run(path)


@pytest.mark.parametrize(
    ("method", "kwargs"),
    [
        ("ranks", {}),
        ("ordering_violations", {}),
        ("false_negatives", {}),
        ("tau_quantiles", {}),
        ("tau_by_class", {}),
        ("tau_vs_class_frequency", {}),
        ("modality_matrix", {"base": "gap"}),
        ("modality_matrix", {"base": "retrieval", "step": 2}),
        ("pair_evolution", {"base": "retrieval"}),
        ("mip", {}),
    ],
)
def test_literature_charts_are_the_dashboard_figures(three, method, kwargs):
    fig = getattr(three.plot, method)(**kwargs)
    assert isinstance(fig, go.Figure) and fig.layout.title.text and fig.data


def test_literature_charts_say_what_a_run_lacks(simclr, three):
    with pytest.raises(ValueError, match="as one mapping"):
        simclr.plot.modality_matrix()
    with pytest.raises(ValueError, match="no per-pair metrics at step 3"):
        three.plot.modality_matrix(step=3)
    with pytest.raises(ValueError, match=r"per-sample τ quantiles: the run logged nothing"):
        simclr.plot.tau_quantiles()
