"""The view layer without Streamlit: page logic on synthetic runs and hand-made inputs."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from cldiag import figures as F
from cldiag import schema, views
from cldiag.figures.captions import CAPTIONS, caption
from cldiag.figures.metrics import METRICS
from cldiag.reader import read_run


@pytest.fixture
def simclr(run_root) -> views.RunData:
    return views.RunData(read_run(run_root / "simclr"))


@pytest.fixture
def clip(run_root) -> views.RunData:
    return views.RunData(read_run(run_root / "clip"))


class StubView:
    """Just what run_tau reads: a logged τ by step and the config."""

    def __init__(self, logged: dict[int, float], config: dict) -> None:
        self.logged = logged
        self.run = SimpleNamespace(config=config)

    def value_at(self, metric: str, step: int) -> float | None:
        assert metric == schema.M_TEMPERATURE
        before = [s for s in self.logged if s <= step]
        return self.logged[max(before)] if before else None


def test_views_imports_no_streamlit():
    code = "import sys, cldiag.views; print('streamlit' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- run_tau --------------------------------------------------------------------------------------------
def test_run_tau_prefers_the_logged_value_at_or_before_the_step():
    view = StubView({0: 0.5, 100: 0.07}, {"temperature": 0.2})
    assert views.run_tau(view, 50) == 0.5
    assert views.run_tau(view, 100) == pytest.approx(0.07)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"temperature": 0.2}, 0.2),
        ({"tau": 0.1, "temperature": "learned"}, 0.1),
        ({"temp": 1}, 1.0),
        ({"t": 0.3}, 0.3),
        ({"temperature": 0.0, "tau": -1}, None),
        ({"temperature": True}, None),  # a flag, not a temperature
        ({}, None),
    ],
)
def test_run_tau_falls_back_to_the_configured_value(config, expected):
    assert views.run_tau(StubView({}, config), 10) == expected


def test_run_tau_ignores_a_non_positive_logged_value():
    assert views.run_tau(StubView({0: 0.0}, {"tau": 0.05}), 5) == 0.05


def test_run_tau_on_a_real_run_reads_its_config(simclr):
    # The synthetic SimCLR run logs no τ scalar but records temperature 0.2 in its config.
    step = simclr.steps("temperature")[-1]
    logged = simclr.value_at(schema.M_TEMPERATURE, step)
    assert views.run_tau(simclr, step) == (logged if logged else 0.2)


# -- config_diff ----------------------------------------------------------------------------------------
def test_config_diff_lists_only_differing_keys_with_missing_as_null():
    diff = views.config_diff(
        {"a": {"tau": 0.1, "lr": 1e-3, "opt": {"name": "adam"}}, "b": {"tau": 0.5, "lr": 1e-3, "bs": 64}}
    )
    assert diff["setting"].tolist() == ["bs", "opt", "tau"]  # lr agrees
    assert diff.columns.tolist() == ["setting", "a", "b"]
    row = diff.set_index("setting")
    assert row.loc["bs", "a"] == "null" and row.loc["bs", "b"] == "64"
    assert row.loc["tau", "a"] == "0.1" and row.loc["tau", "b"] == "0.5"
    assert row.loc["opt", "a"] == '{"name": "adam"}' and row.loc["opt", "b"] == "null"


def test_config_diff_of_equal_configs_is_empty():
    assert views.config_diff({"a": {"x": [1, 2]}, "b": {"x": [1, 2]}}).empty
    assert views.config_diff({}).empty


# -- uniformity and the alignment–uniformity plane ------------------------------------------------------
def test_uniformity_metric_prefers_the_joint_series():
    assert views.uniformity_metric(["alignment", "uniformity", "uniformity/image"]) == "uniformity"
    assert views.uniformity_metric(["uniformity/text", "uniformity/image"]) == "uniformity/image"
    assert views.uniformity_metric(["alignment"]) is None


def test_align_uniform_pairs_stack_runs_with_their_names(simclr, clip):
    pairs = views.align_uniform_pairs([simclr, clip], ["A", "B"])
    assert set(pairs["run"]) == {"A", "B"}
    a = pairs.loc[pairs["run"] == "A"].set_index("step")
    full = simclr.series([schema.M_ALIGNMENT, schema.M_UNIFORMITY]).full
    wide = full.pivot(index="step", columns="metric", values="value").dropna()
    assert a.index.tolist() == wide.index.tolist()
    assert np.allclose(a["alignment"], wide[schema.M_ALIGNMENT])
    assert np.allclose(a["uniformity"], wide[schema.M_UNIFORMITY])


def test_plane_without_uniformity_says_so(run_root):
    empty = views.RunData(read_run(run_root / "empty"))
    assert views.align_uniform_plane([empty], ["empty"]) == views.EMPTY["plane"]
    with pytest.raises(ValueError, match="one name per run"):
        views.runs_series([empty], ["loss"], [])


# -- run summaries --------------------------------------------------------------------------------------
def test_run_summary_reads_meta_and_the_last_key_values(simclr, clip):
    row = views.run_summary(simclr, "S")
    meta = simclr.run.meta
    assert (row["name"], row["status"], row["last_step"], row["dim"]) == (
        "S",
        meta["status"],
        meta["last_step"],
        meta["dim"],
    )
    assert row["modalities"] == ["one modality"]
    loss = simclr.run.scalars([schema.M_LOSS])
    assert row["last"][schema.M_LOSS] == pytest.approx(float(loss["value"].iloc[-1]))
    assert views.run_summary(clip, "C", status="stale")["modalities"] == ["image", "text"]
    assert views.run_summary(clip, "C", status="stale")["status"] == "stale"


# -- RunData --------------------------------------------------------------------------------------------
def test_run_data_cuts_to_the_step_range(run_root):
    run = read_run(run_root / "simclr")
    whole, part = views.RunData(run), views.RunData(run, step_range=(20, 60))
    loss = part.series([schema.M_LOSS]).full
    assert loss["step"].between(20, 60).all() and len(loss) < len(whole.series([schema.M_LOSS]).full)
    assert all(20 <= s <= 60 for s in part.steps("histograms"))
    assert part.table("histograms")["step"].between(20, 60).all()
    assert part.value_at(schema.M_LOSS, 60) == pytest.approx(float(loss["value"].iloc[-1]))


def test_run_data_series_keeps_the_order_asked_and_downsamples_for_plotting(run_root):
    run = read_run(run_root / "simclr")
    data = views.RunData(run, max_points=10)
    series = data.series([schema.M_UNIFORMITY, schema.M_LOSS, "not-logged"])
    assert list(dict.fromkeys(series.full["metric"])) == [schema.M_UNIFORMITY, schema.M_LOSS]
    drawn, logged = series.plot.groupby("metric").size(), series.full.groupby("metric").size()
    assert (drawn <= 10 + 2).all() and (drawn < logged).all()  # about max_points, plus first and last
    assert series.plot.groupby("metric")["value"].max().equals(series.full.groupby("metric")["value"].max())
    assert series.downsampled and "points" in series.note
    assert views.RunData(run).series([schema.M_LOSS]).note is None


def test_run_data_cached_builds_once_per_name_and_params(simclr):
    calls = []
    for _ in range(2):
        simclr.cached("x", lambda: calls.append(1) or len(calls), 3)
    simclr.cached("x", lambda: calls.append(1), 4)
    assert len(calls) == 2


# -- panels are the figures the builders make ------------------------------------------------------------
def test_score_overlay_panel_is_the_builders_figure(simclr):
    step = simclr.steps("histograms")[-1]
    panel = views.score_overlay(simclr, step)
    expected = F.fig_score_overlay(simclr.run.histograms(step=step))
    assert panel.build().to_json() == expected.to_json()
    assert panel.caption == CAPTIONS["score_overlay"] and panel.file_name.endswith(f"step{step}")


def test_single_metric_panels_take_their_caption_from_the_metric(clip, simclr):
    assert views.tolerance(simclr).caption == METRICS[schema.M_TOLERANCE].caption
    assert views.std_l2(simclr).caption == METRICS[schema.M_STD_L2].caption
    assert views.overlap(simclr).caption == METRICS[schema.M_OVERLAP].caption
    # The CLIP run logs no labels: the message says how to get tolerance.
    assert views.tolerance(clip) == views.EMPTY["tolerance"]


def test_every_registered_caption_has_two_lines_naming_a_source():
    for name, lines in CAPTIONS.items():
        assert len(lines) == 2 and all(lines), name
        assert any(ch.isdigit() for ch in lines[1]), f"{name}: no year of a source"
    assert caption("embedding", method="UMAP")[0].count("UMAP") == 1
    with pytest.raises(KeyError, match="no caption"):
        caption("nope")


def test_empty_run_gives_messages_not_panels(run_root):
    empty = views.RunData(read_run(run_root / "empty"))
    assert views.score_heatmap(empty) == views.EMPTY["histograms"]
    assert views.key_metrics([empty], ["empty"]) == views.EMPTY["scalars"]
    assert views.hard_negative_quantiles(empty) is None
    assert views.score_means(empty) is None
    assert views.effective_rank(empty) is None
    assert views.spectrum_waterfalls(empty) == []


def test_temperature_panel_marks_the_run_tau_and_notes_the_missing_curve(simclr, clip):
    step = clip.steps("temperature")[-1]
    panel = views.temperature_curves(clip, step)
    has_penalty = (clip.at_step("temperature", step)["curve"] == schema.CURVE_SAME_CLASS_PENALTY).any()
    assert (panel.note is None) == bool(has_penalty)
    tau = views.run_tau(simclr, simclr.steps("temperature")[-1])
    names = [t.name for t in views.temperature_curves(simclr, simclr.steps("temperature")[-1]).build().data]
    assert any(f"{tau:.3g}" in (n or "") for n in names)


def test_compare_panel_one_trace_group_per_run(simclr, clip):
    panel = views.metrics_compared([simclr, clip], ["S", "C"], [schema.M_LOSS])
    assert {t.name for t in panel.build().data} >= {"S", "C"}
    assert set(panel.frame()["run"]) == {"S", "C"}
    assert views.metrics_compared([simclr, clip], ["S", "C"], []) == "Pick at least one metric."
    assert "None of the chosen" in views.metrics_compared([simclr], ["S"], ["not-logged"])
    assert views.available_metrics([simclr, clip]) == sorted(set(simclr.metrics()) | set(clip.metrics()))


def test_waterfalls_one_per_modality(clip):
    spectra = clip.table("spectra")
    panels = views.spectrum_waterfalls(clip)
    assert [m for m, _ in panels] == [str(m) for m in dict.fromkeys(spectra["modality"])]
    assert len({p.key for _, p in panels}) == len(panels)


# -- embeddings -----------------------------------------------------------------------------------------
def test_projection_input_stacks_snapshots_with_strata(clip):
    steps = clip.snapshot_steps()
    assert len(steps) >= 2
    inp = views.projection_input(clip, steps[-2:])
    rows = [clip.embedding_matrix(s)[0].shape[0] for s in steps[-2:]]
    assert inp.x.shape[0] == sum(rows) == len(inp.info) == len(inp.strata)
    assert sorted(set(inp.info["step"])) == steps[-2:]
    expected = inp.info["modality"].astype(str) + "/" + inp.info["label"].astype("string").fillna("none")
    assert list(inp.strata) == expected.tolist()
    assert inp.finite_rows == inp.x.shape[0]
    with pytest.raises(ValueError, match="at least one"):
        views.projection_input(clip, [])


def test_embedding_scatter_titles_the_projection(clip):
    inp = views.projection_input(clip, clip.snapshot_steps()[-1:])
    proj = inp.pca(cap=50)
    panel = views.embedding_scatter(clip, proj, inp.info, "PCA", "modality")
    fig = panel.build()
    assert fig.layout.title.text.startswith(f"PCA of snapshot {inp.steps[0]}")
    assert f"{proj.coords.shape[0]:,} of {len(inp.info):,} points" in fig.layout.title.text
    assert fig.layout.xaxis.title.text.startswith("PC 1")
    assert len(panel.frame()) == proj.coords.shape[0]


def test_modality_gap_view_titles_the_logged_gap(clip):
    step = clip.snapshot_steps()[-1]
    fig = views.modality_gap_view(clip, step).build()
    assert f"{clip.value_at(schema.M_GAP, step):.3f}" in fig.layout.title.text


def test_modality_gap_view_of_one_modality_says_so(clip, monkeypatch):
    step = clip.snapshot_steps()[-1]
    matrix, info = clip.embedding_matrix(step)
    one = info["modality"] == info["modality"].iloc[0]
    monkeypatch.setattr(clip, "embedding_matrix", lambda s: (matrix[one.to_numpy()], info.loc[one]))
    assert "no 2-D gap view" in views.modality_gap_view(clip, step)


def test_a_fixed_tau_gets_no_flat_panel_but_its_value_in_the_title(simclr):
    # A constant τ drawn as a flat line on a 0-1 axis says less than its number.
    series = simclr.series([schema.M_TEMPERATURE]).full
    assert views.fixed_value(series, schema.M_TEMPERATURE) == pytest.approx(0.2)
    fig = views.temperature_trend(simclr).build()
    titles = [a.text for a in fig.layout.annotations]
    assert "temperature τ" not in titles and titles  # the other panels stay
    assert "τ fixed at 0.2" in fig.layout.title.text


def test_fixed_value_is_none_for_a_changing_or_missing_metric():
    import pandas as pd

    frame = pd.DataFrame({"step": [0, 1], "metric": ["temperature", "temperature"], "value": [0.1, 0.2]})
    assert views.fixed_value(frame, "temperature") is None
    assert views.fixed_value(frame, "loss") is None
    assert views.fixed_value(frame.assign(value=[float("nan")] * 2), "temperature") is None


# -- table access helpers (the dashboard's cached loaders are thin wrappers over these) -------------------
def _scalars(rows):
    import pandas as pd

    return pd.DataFrame(rows, columns=["step", "metric", "value"])


def test_split_by_metric_keeps_step_order_and_caps_with_preferred_names_first():
    df = _scalars([(0, "b", 1.0), (0, "a", 2.0), (1, "b", 3.0), (1, "user/x", 4.0), (2, "a", 5.0)])
    parts, total = views.split_by_metric(df)
    assert total == 3 and list(parts) == ["a", "b", "user/x"]
    assert parts["a"]["value"].tolist() == [2.0, 5.0] and parts["b"]["step"].tolist() == [0, 1]
    assert parts["a"].index.tolist() == [0, 1]
    capped, total = views.split_by_metric(df, limit=2, first=lambda m: "/" not in m)
    assert total == 3 and list(capped) == ["a", "b"]
    capped, _ = views.split_by_metric(df, limit=1, first=lambda m: m.startswith("user"))
    assert list(capped) == ["user/x"]
    with pytest.raises(ValueError, match="limit"):
        views.split_by_metric(df, limit=-1)


def test_rows_in_range_at_step_steps_and_value_at_step():
    df = _scalars([(0, "a", 1.0), (5, "a", 2.0), (5, "a", 3.0), (9, "a", 4.0)])
    assert views.rows_in_range(df, 5, None)["value"].tolist() == [2.0, 3.0, 4.0]
    assert views.rows_in_range(df, None, 5)["value"].tolist() == [1.0, 2.0, 3.0]
    assert views.rows_at_step(df, 5)["value"].tolist() == [2.0, 3.0]
    assert views.rows_at_step(df, 6).empty
    assert views.unique_steps(df) == (0, 5, 9)
    assert views.value_at_step(df, 7) == 3.0 and views.value_at_step(df, -1) is None
    assert views.value_at_step(None, 7) is None


def test_series_in_range_orders_cuts_and_downsamples():
    df = _scalars([(s, m, float(s)) for s in range(100) for m in ("a", "b")])
    parts, _ = views.split_by_metric(df)
    series = views.series_in_range(parts, ["b", "zzz", "a"], (10, 59), 20, df)
    assert series.full["metric"].unique().tolist() == ["b", "a"]
    assert series.full["step"].min() == 10 and series.full["step"].max() == 59 and len(series.full) == 100
    assert len(series.plot) <= 2 * 20 and series.downsampled
    empty = views.series_in_range(parts, ["zzz"], (0, None), 20, df)
    assert empty.full.empty and list(empty.full.columns) == ["step", "metric", "value"]


def test_follow_range_keeps_following_the_newest_step():
    assert views.follow_range(None, 100) == (0, 100)
    assert views.follow_range((10, 100, 100), 150) == (10, 150)  # ended at the newest: follows
    assert views.follow_range((10, 50, 100), 150) == (10, 50)  # the user's end stays
    assert views.follow_range((120, 130, 150), 100) == (100, 100)  # clipped to a smaller top


def test_followed_step_moves_only_a_slider_left_on_the_newest_step():
    assert views.followed_step(None, None, [0, 10]) == 10
    assert views.followed_step(10, 10, [0, 10, 20]) == 20
    assert views.followed_step(0, 10, [0, 10, 20]) is None  # the user looked back
    assert views.followed_step(5, 10, [0, 10, 20]) == 20  # no longer offered
    with pytest.raises(ValueError, match="at least one"):
        views.followed_step(None, None, [])
