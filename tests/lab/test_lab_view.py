"""What the Lab page shows, without Streamlit: panel titles, axes, the raw-input bar, a true caption."""

from __future__ import annotations

import ast
from pathlib import Path

import pandas as pd
import pytest

from cldiag import schema
from cldiag.lab import view

LAB = Path(__file__).resolve().parents[2] / "cldiag" / "lab"


def frame(steps: int = 600) -> pd.DataFrame:
    rows = []
    for step in range(0, steps, 50):
        rows += [(step, schema.M_LOSS, 5.0 - step / 1000), (step, schema.M_ALIGNMENT, 0.5)]
        rows += [(step, schema.M_UNIFORMITY, -3.0)]
    rows += [(s, view.KNN, 0.4 + s / 1200) for s in (0, 100, 200, 300)]
    rows += [(s, schema.M_RANK, v) for s, v in ((0, 34.0), (250, 29.5), (500, 31.0))]
    rows += [(0, view.KNN_RAW, 0.778)]
    return pd.DataFrame(rows, columns=["step", "metric", "value"])


def axes(fig, prefix):
    layout = fig.to_plotly_json()["layout"]
    return {k: v for k, v in layout.items() if k.startswith(prefix)}


def test_live_figure_titles_are_words_not_metric_names():
    metrics = view.live_metrics({"data": "cluttered-digits"})
    fig = view.fig_lab_live(frame(), metrics, steps=600, dim=64, raw_knn=0.778, title="t")
    notes = ("raw inputs", "cap: d")
    titles = [a.text for a in fig.layout.annotations if not any(n in a.text for n in notes)]
    assert titles == [
        "loss ↓",
        "held-out 5-NN accuracy ↑",
        "alignment ↓",
        "uniformity (t=2) ↓",
        "effective rank (RankMe) ↑ of 64",
    ]
    assert not any("_" in t for t in titles)


def test_every_panel_spans_the_whole_run_and_zooms_together():
    fig = view.fig_lab_live(frame(), view.live_metrics({}), steps=600, dim=64, raw_knn=0.778, title="t")
    xs = axes(fig, "xaxis")
    assert len(xs) >= 5
    assert all(tuple(a["range"]) == (0, 600) for a in xs.values())
    assert all(a.get("matches") == "x" for name, a in xs.items() if name != "xaxis")


def test_rank_axis_starts_at_zero_and_shows_its_cap():
    fig = view.fig_lab_live(frame(), [schema.M_RANK], steps=600, dim=64, title="t")
    (y,) = axes(fig, "yaxis").values()
    low, high = y["range"]
    assert low == 0 and high >= 64  # three points between 29.5 and 34 do not fill the axis
    caps = [s for s in fig.layout.shapes if s.y0 == 64 and s.y1 == 64]
    assert len(caps) == 1
    assert any("cap: d = 64" in a.text for a in fig.layout.annotations)


def test_accuracy_panel_draws_the_raw_input_bar():
    fig = view.fig_lab_live(frame(), [view.KNN], steps=600, raw_knn=0.778, title="t")
    bars = [s for s in fig.layout.shapes if s.y0 == pytest.approx(0.778) and s.y1 == pytest.approx(0.778)]
    assert len(bars) == 1 and bars[0].line.dash == "dash"
    assert any("raw inputs 0.778" in a.text for a in fig.layout.annotations)
    (y,) = axes(fig, "yaxis").values()
    assert y["range"][0] == 0 and y["range"][1] >= 1
    # Without a bar (no labels) nothing is drawn.
    assert not view.fig_lab_live(frame(), [view.KNN], steps=600, title="t").layout.shapes


def test_live_panels_follow_the_run():
    assert schema.M_GAP in view.live_metrics({"data": "pairs"})
    assert schema.M_GAP not in view.live_metrics({"data": "digits"})
    assert schema.M_TEMPERATURE in view.live_metrics({"learnable_temperature": True})
    assert schema.M_TEMPERATURE not in view.live_metrics({"learnable_temperature": False})


def test_live_figure_rejects_bad_input():
    with pytest.raises(ValueError, match="lacks columns"):
        view.fig_lab_live(pd.DataFrame({"step": [0]}), [view.KNN], steps=10, title="t")
    with pytest.raises(ValueError, match="has data"):
        view.fig_lab_live(frame(), ["nope"], steps=10, title="t")
    with pytest.raises(ValueError, match="steps and cols"):
        view.fig_lab_live(frame(), [view.KNN], steps=0, title="t")


def test_caption_says_where_this_run_ends_against_the_raw_bar():
    _, above = view.live_caption({view.KNN: 0.962, view.KNN_RAW: 0.778})
    assert "(0.962) is above the raw-input bar (0.778)" in above
    _, below = view.live_caption({view.KNN: 0.972, view.KNN_RAW: 0.995})
    assert "(0.972) is not above the raw-input bar (0.995)" in below
    _, unknown = view.live_caption({"loss": 1.0})
    assert "raw-input bar" not in unknown


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):  # function-local imports included
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return {n for n in names if n.startswith("cldiag.lab.")}


def test_lab_modules_import_each_other_without_a_cycle():
    modules = {f"cldiag.lab.{p.stem}": p for p in LAB.glob("*.py") if p.stem != "__init__"}
    graph = {name: (_imports(path) & set(modules)) - {name} for name, path in modules.items()}

    def reaches(start: str, target: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == target or (nxt not in seen and reaches(nxt, target, seen | {nxt})):
                return True
        return False

    cycles = [m for m in graph if reaches(m, m, {m})]
    assert not cycles, graph


def test_preset_verdict_of_the_real_model_preset_counts_its_one_run():
    from cldiag.lab import sentence_preset as sp
    from cldiag.lab.presets import PRESETS, PresetResult

    preset = PRESETS[sp.NAME]
    m = sp.HeldOutMeasures(0.08, 0.09, 0.13, -3.5, 1.0, 250.0, 0.85, 0.6, (0.05, 0.15, 0.05))

    def result(steps: int, status: str) -> PresetResult:
        config = sp.SentenceConfig(steps=steps)
        run = sp.SentenceRunResult("/r/sentence-embeddings-minilm", config, status, steps, 1.0, {}, "", m, m)
        return PresetResult(sp.NAME, (run,), True, "the check's sentence", 3.0)

    line, notes = view.preset_verdict(preset, result(4, "finished"))
    assert line == "**Our runs** (3 s): :green[reproduced]. the check's sentence"
    assert notes[0].startswith("Shortened runs") and "`sentence-embeddings-minilm`" in notes[1]
    _, notes = view.preset_verdict(preset, result(sp.SentenceConfig().steps, "finished"))
    assert not notes[0].startswith("Shortened")
    _, notes = view.preset_verdict(preset, result(4, "stopped"))
    assert notes[0].startswith("Only 0 of 1 runs finished")
