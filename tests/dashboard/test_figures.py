"""Figure builders, tested without Streamlit: trace counts, the values drawn, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from cldiag import figures as F
from cldiag import schema
from cldiag.figures._common import bucket_reduce

RNG = np.random.default_rng(0)
EDGES = np.linspace(-1, 1, 51)


def hist_frame(steps, kinds=("pos", "neg", "hard_neg"), counts=None, edges=EDGES):
    rows = []
    for s_i, step in enumerate(steps):
        for k_i, kind in enumerate(kinds):
            c = counts[s_i, k_i] if counts is not None else RNG.integers(0, 100, edges.size - 1)
            rows.append(
                pd.DataFrame(
                    {"step": step, "kind": kind, "bin_left": edges[:-1], "bin_right": edges[1:], "count": c},
                ),
            )
    return pd.concat(rows, ignore_index=True)


def scalars_frame(metrics, steps, run=None):
    parts = []
    for i, m in enumerate(metrics):
        parts.append(pd.DataFrame({"step": steps, "metric": m, "value": np.sin(np.asarray(steps) / 10) + i}))
    df = pd.concat(parts, ignore_index=True)
    if run is not None:
        df["run"] = run
    return df


# -- metadata --------------------------------------------------------------------------------------------
def test_metric_info_bounds_direction_and_variants():
    a = F.metric_info(schema.M_ALIGNMENT)
    assert (a.lower, a.upper, a.higher_is_better) == (0.0, 4.0, False)
    assert a.axis_title.endswith("↓")
    cone = F.metric_info("cone/image")
    assert cone.name == "cone/image" and "(image)" in cone.label and cone.upper == 1.0
    assert F.metric_info(schema.M_RANK, dim=64).upper == 64.0
    assert F.metric_info(schema.M_STD_L2, dim=16).upper == pytest.approx(0.25)
    user = F.metric_info("my/custom")
    assert (user.lower, user.upper, user.higher_is_better, user.label) == (None, None, None, "my/custom")


def test_bucket_reduce_sum_and_mean_match_numpy():
    values = RNG.normal(size=(10, 3))
    steps = np.arange(10) * 5
    summed, rows, merged = bucket_reduce(values, steps, 4, "sum")
    assert merged and summed.shape == (4, 3)
    np.testing.assert_allclose(summed.sum(axis=0), values.sum(axis=0))
    bucket = np.arange(10) * 4 // 10
    for b in range(4):
        np.testing.assert_allclose(summed[b], values[bucket == b].sum(axis=0))
        assert rows[b] == steps[bucket == b][-1]
    mean, _, _ = bucket_reduce(values, steps, 4, "mean")
    np.testing.assert_allclose(mean[1], values[bucket == 1].mean(axis=0))
    same, rows2, merged2 = bucket_reduce(values, steps, 10, "sum")
    assert not merged2 and same is values and rows2 is steps
    with pytest.raises(ValueError, match="one row per step"):
        bucket_reduce(values, steps[:3], 4, "sum")


# -- scores ----------------------------------------------------------------------------------------------
def test_histogram_matrix_round_trips_counts():
    counts = RNG.integers(0, 50, size=(4, 2, 50))
    df = hist_frame([0, 10, 20, 30], kinds=("pos", "neg"), counts=counts).sample(frac=1, random_state=1)
    m = F.histogram_matrix(df, "neg")
    np.testing.assert_array_equal(m.steps, [0, 10, 20, 30])
    np.testing.assert_allclose(m.edges, EDGES, atol=1e-12)
    np.testing.assert_array_equal(m.counts, counts[:, 1, :])
    with pytest.raises(ValueError, match="kinds present"):
        F.histogram_matrix(df, "hard_neg")


def test_histogram_quantiles_exact_for_uniform_and_close_to_samples():
    flat = np.full((1, 1, 50), 7)
    m = F.histogram_matrix(hist_frame([0], kinds=("pos",), counts=flat), "pos")
    qs = [0.0, 0.1, 0.25, 0.5, 0.9, 1.0]
    np.testing.assert_allclose(F.histogram_quantiles(m, qs)[0], [-1 + 2 * q for q in qs], atol=1e-9)

    samples = np.clip(RNG.normal(0.3, 0.2, 20000), -1, 1)
    fine = np.linspace(-1, 1, 201)
    c, _ = np.histogram(samples, bins=fine)
    m2 = F.histogram_matrix(
        hist_frame([5], kinds=("hard_neg",), counts=c[None, None, :], edges=fine), "hard_neg"
    )
    got = F.histogram_quantiles(m2, [0.5, 0.9, 0.99])[0]
    np.testing.assert_allclose(got, np.quantile(samples, [0.5, 0.9, 0.99]), atol=fine[1] - fine[0])

    empty = F.histogram_matrix(hist_frame([0], kinds=("pos",), counts=np.zeros((1, 1, 50))), "pos")
    assert np.isnan(F.histogram_quantiles(empty, [0.5])).all()
    with pytest.raises(ValueError, match="quantiles"):
        F.histogram_quantiles(m, [1.5])


def test_overlap_coefficient_identical_disjoint_partial():
    c = np.zeros((1, 2, 50))
    c[0, 0, :25] = 1
    c[0, 1, :25] = 1
    assert F.overlap_coefficient(hist_frame([0], ("pos", "neg"), c)) == pytest.approx(1.0)
    c[0, 1] = 0
    c[0, 1, 25:] = 1
    assert F.overlap_coefficient(hist_frame([0], ("pos", "neg"), c)) == pytest.approx(0.0)
    c[0, 1] = 0
    c[0, 1, 15:40] = 1  # shares 10 of 25 bins
    assert F.overlap_coefficient(hist_frame([0], ("pos", "neg"), c)) == pytest.approx(10 / 25)


def test_score_overlay_densities_integrate_to_one():
    df = hist_frame([100])
    fig = F.fig_score_overlay(df)
    assert [t.name for t in fig.data] == ["positive", "negative", "hardest negative"]
    for t in fig.data:
        assert float(np.sum(np.asarray(t.y) * np.asarray(t.width))) == pytest.approx(1.0)
    assert "step 100" in fig.layout.title.text and "overlap" in fig.layout.title.text
    assert fig.layout.xaxis.title.text == "cosine similarity"
    with pytest.raises(ValueError, match="one step"):
        F.fig_score_overlay(hist_frame([1, 2]))


def test_score_heatmap_merges_rows_by_summing_counts():
    steps = np.arange(1000)
    counts = RNG.integers(0, 20, size=(1000, 2, 50))
    fig = F.fig_score_heatmap(hist_frame(steps, ("pos", "neg"), counts), max_rows=100)
    assert len(fig.data) == 2 and all(isinstance(t, go.Heatmap) for t in fig.data)
    z = np.asarray(fig.data[1].z)
    assert z.shape == (100, 50)
    merged = counts[:10, 1, :].sum(axis=0)
    np.testing.assert_allclose(z[0], merged / merged.sum() / (2 / 50))
    assert "1000 logged steps merged into 100 rows" in fig.layout.title.text
    assert [t.coloraxis for t in fig.data] == ["coloraxis", "coloraxis2"]  # one scale per panel
    small = F.fig_score_heatmap(hist_frame([0, 1], ("pos", "neg")), max_rows=100)
    assert "merged" not in small.layout.title.text


def test_histogram_matrices_split_kinds_once_and_feed_the_charts():
    counts = RNG.integers(0, 50, size=(3, 3, 50))
    df = hist_frame([0, 10, 20], counts=counts)
    matrices = F.histogram_matrices(df)
    assert sorted(matrices) == ["hard_neg", "neg", "pos"]
    np.testing.assert_array_equal(matrices["hard_neg"].counts, counts[:, 2, :])
    from_frame, from_matrices = F.fig_score_heatmap(df), F.fig_score_heatmap(matrices)
    np.testing.assert_allclose(from_frame.data[0].z, from_matrices.data[0].z)
    np.testing.assert_allclose(
        F.fig_hard_negative_quantiles(matrices).data[0].y, F.fig_hard_negative_quantiles(df).data[0].y
    )
    doubled = pd.concat([df, df.iloc[:50]])  # a (step, bin) cell logged twice is summed
    assert F.histogram_matrix(doubled, "pos").counts[0, 0] == 2 * counts[0, 0, 0]


def test_hard_negative_quantiles_trace_values():
    df = hist_frame(np.arange(0, 50, 10))
    fig = F.fig_hard_negative_quantiles(df, quantiles=(0.5, 0.9))
    assert [t.name for t in fig.data] == ["hardest negative q0.5", "hardest negative q0.9", "positive median"]
    expected = F.histogram_quantiles(F.histogram_matrix(df, "hard_neg"), [0.9])[:, 0]
    np.testing.assert_allclose(fig.data[1].y, expected)


# -- series ----------------------------------------------------------------------------------------------
def test_metric_series_one_trace_per_run_and_metric():
    df = pd.concat(
        [
            scalars_frame(["pos_sim", "neg_sim"], range(20), run="a"),
            scalars_frame(["pos_sim"], range(20), run="b"),
        ],
    )
    fig = F.fig_metric_series(df, ["pos_sim", "neg_sim", "absent"], title="t", references=[(0.5, "ref")])
    assert [t.name for t in fig.data] == [
        "a · positive cosine",
        "a · negative cosine",
        "b · positive cosine",
        "ref",
    ]
    np.testing.assert_allclose(fig.data[2].y, np.sin(np.arange(20) / 10))
    assert fig.data[0].line.color == fig.data[1].line.color != fig.data[2].line.color
    assert fig.layout.yaxis.autorangeoptions.clipmin == -1.0  # both cosines share [-1, 1]
    assert fig.layout.yaxis.title.text == "value"  # not one metric's name over several metrics
    assert fig.layout.xaxis.title.text == "training step" and fig.layout.title.text == "t"
    with pytest.raises(ValueError, match="none of the metrics"):
        F.fig_metric_series(df, ["nope"], title="t")
    with pytest.raises(ValueError, match="lacks columns"):
        F.fig_metric_series(df.drop(columns="value"), title="t")
    with pytest.raises(ValueError, match="empty"):
        F.fig_metric_series(df.iloc[0:0], title="t")


def test_metric_series_names_modality_variants_by_modality():
    df = scalars_frame(["cone/image", "cone/text"], range(5))
    fig = F.fig_metric_series(df, title="cones")
    assert [t.name for t in fig.data] == ["image", "text"]
    assert fig.layout.yaxis.title.text == F.metric_info("cone").axis_title
    assert fig.layout.yaxis.autorangeoptions.clipmax == 1.0


def test_metric_grid_panels_and_single_legend_entry_per_run():
    df = pd.concat([scalars_frame(["loss", "alignment", "uniformity"], range(5), run=r) for r in "xy"])
    fig = F.fig_metric_grid(df, ["loss", "alignment", "uniformity", "absent"], title="grid", cols=2)
    assert len(fig.data) == 6
    assert [a.text for a in fig.layout.annotations] == ["loss ↓", "alignment ↓", "uniformity (t=2) ↓"]
    assert sum(bool(t.showlegend) for t in fig.data) == 2
    assert fig.layout.yaxis2.autorangeoptions.clipmax == 4.0


def test_dual_axis_puts_right_metrics_on_secondary_axis():
    df = scalars_frame(["effective_rank", "uniformity"], range(10))
    fig = F.fig_dual_axis(df, ["effective_rank"], ["uniformity"], title="r", dim=32)
    assert [t.yaxis for t in fig.data] == ["y", "y2"]
    assert fig.layout.yaxis.autorangeoptions.clipmax == 32.0
    assert fig.layout.yaxis2.title.text.startswith("uniformity")


# -- geometry --------------------------------------------------------------------------------------------
def test_align_uniform_pairs_joins_on_common_steps():
    df = pd.DataFrame(
        {
            "step": [0, 1, 2, 3, 0, 2, 2],
            "metric": ["alignment"] * 4 + ["uniformity"] * 3,
            "value": [1.0, 2.0, 3.0, 4.0, -1.0, -2.0, -2.5],
        },
    )
    pairs = F.align_uniform_pairs(df)
    assert pairs["step"].tolist() == [0, 2]
    assert pairs["alignment"].tolist() == [1.0, 3.0]
    assert pairs["uniformity"].tolist() == [-1.0, -2.5]  # a repeated step keeps its last value


def test_align_uniform_plane_trajectories_and_bucket_means():
    pairs = pd.DataFrame(
        {
            "run": ["a"] * 10 + ["b"] * 3,
            "step": [*range(10), 0, 1, 2],
            "alignment": np.linspace(1, 0.5, 13),
            "uniformity": np.linspace(-1, -3, 13),
        },
    )
    fig = F.fig_align_uniform_plane(pairs, max_points=5)
    assert len(fig.data) == 4
    line_a = fig.data[0]
    assert len(line_a.x) == 5
    assert line_a.x[0] == pytest.approx(pairs["uniformity"][:2].mean())
    assert fig.data[3].x[-1] == pytest.approx(pairs["uniformity"].iloc[-1])
    assert fig.layout.xaxis.title.text.startswith("uniformity")
    assert fig.layout.yaxis.title.text.startswith("alignment")


# -- temperature -----------------------------------------------------------------------------------------
def test_temperature_curves_panels_and_run_tau_marker():
    taus = np.logspace(-2, 0, 9)
    df = pd.concat(
        [
            pd.DataFrame({"step": 50, "tau": taus, "curve": c, "value": np.linspace(0, 1, 9) + i})
            for i, c in enumerate([schema.CURVE_ENTROPY, schema.CURVE_UNIFORMITY, schema.CURVE_POS_WEIGHT])
        ],
    )
    fig = F.fig_temperature_curves(df, run_tau=0.2)
    assert len(fig.data) == 6
    markers = [t for t in fig.data if t.name == "run τ = 0.2"]
    assert len(markers) == 3 and sum(bool(t.showlegend) for t in markers) == 1
    assert list(markers[0].x) == [0.2, 0.2] and list(markers[0].y) == [0.0, 1.0]
    assert fig.layout.xaxis.type == "log"
    assert "step 50" in fig.layout.title.text
    assert len(F.fig_temperature_curves(df).data) == 3
    with pytest.raises(ValueError, match="run_tau"):
        F.fig_temperature_curves(df, run_tau=-1)


# -- spectrum --------------------------------------------------------------------------------------------
def spectra_frame(steps, modalities=("view1",), d=8):
    parts = []
    for s in steps:
        for m in modalities:
            ev = np.geomspace(1.0, 1e-3, d) * (1 + s / 100)
            parts.append(pd.DataFrame({"step": s, "modality": m, "index": np.arange(d), "eigenvalue": ev}))
    return pd.concat(parts, ignore_index=True)


def test_spectrum_log_values_and_floor():
    df = spectra_frame([10], ("image", "text"))
    df.loc[df.index[-1], "eigenvalue"] = -1e-9  # round-off below zero
    fig = F.fig_spectrum(df)
    assert [t.name for t in fig.data] == ["image", "text"]
    np.testing.assert_allclose(fig.data[0].y, np.log10(np.geomspace(1.0, 1e-3, 8) * 1.1))
    assert fig.data[1].y[-1] == pytest.approx(math.log10(F.EIGEN_FLOOR))


def test_spectrum_waterfall_averages_rows_and_columns():
    df = spectra_frame(range(10), d=8)
    fig = F.fig_spectrum_waterfall(df, "view1", max_rows=5, max_cols=4)
    z = np.asarray(fig.data[0].z)
    assert z.shape == (5, 4)
    full = np.log10(np.stack([np.geomspace(1.0, 1e-3, 8) * (1 + s / 100) for s in range(10)]))
    assert z[0, 0] == pytest.approx(full[:2, :2].mean())
    assert "10 logged steps averaged into 5 rows" in fig.layout.title.text
    with pytest.raises(ValueError, match="modalities present"):
        F.fig_spectrum_waterfall(df, "text")


# -- embeddings ------------------------------------------------------------------------------------------
def points_frame(n, labels=None, modalities=("view1",)):
    rows = []
    for m in modalities:
        rows.append(
            pd.DataFrame(
                {
                    "x": RNG.normal(size=n),
                    "y": RNG.normal(size=n),
                    "step": 7,
                    "sample_id": np.arange(n),
                    "modality": m,
                    "label": pd.array(labels if labels is not None else [pd.NA] * n, dtype="Int64"),
                },
            ),
        )
    return pd.concat(rows, ignore_index=True)


def test_embedding_scatter_traces_per_label_with_unlabeled_group():
    labels = [0, 1, 2, None] * 5
    fig = F.fig_embedding_scatter(points_frame(20, labels), title="emb")
    assert [t.name for t in fig.data] == ["0", "1", "2", "no label"]
    assert [len(t.x) for t in fig.data] == [5, 5, 5, 5]
    assert all(isinstance(t, go.Scatter) for t in fig.data)
    assert "sample" in fig.data[0].hovertemplate and fig.data[0].customdata[0][1] == 0


def test_embedding_scatter_continuous_for_many_labels_and_webgl_for_large():
    labels = list(range(F.MAX_CATEGORIES + 1)) * 300
    fig = F.fig_embedding_scatter(points_frame(len(labels), labels), title="many")
    assert len(fig.data) == 1 and isinstance(fig.data[0], go.Scattergl)
    assert fig.data[0].marker.colorscale is not None
    by_step = F.fig_embedding_scatter(points_frame(10), color_by="step", title="s")
    assert len(by_step.data) == 1
    with pytest.raises(ValueError, match="color_by"):
        F.fig_embedding_scatter(points_frame(3), color_by="size", title="x")


def test_modality_gap_view_centroids_and_pairs():
    pts = points_frame(30, modalities=("image", "text"))
    fig = F.fig_modality_gap_view(pts, gap=0.5, max_pairs=10)
    assert [t.name for t in fig.data] == ["image", "text", "matched pairs (10 shown)", "centroids"]
    cent = fig.data[-1]
    assert cent.x[0] == pytest.approx(pts.loc[pts["modality"] == "image", "x"].mean())
    assert "0.500" in fig.layout.title.text
    with pytest.raises(ValueError, match="exactly two"):
        F.fig_modality_gap_view(points_frame(5))


# -- tables ----------------------------------------------------------------------------------------------
def test_last_values_and_runs_table():
    df = pd.DataFrame({"step": [2, 1, 3, 1], "metric": ["a", "a", "b", "b"], "value": [5.0, 4.0, 9.0, 1.0]})
    assert F.last_values(df) == {"a": 5.0, "b": 9.0}
    assert F.last_values(df, ["b", "zzz"]) == {"b": 9.0}
    table = F.runs_table(
        [
            {
                "name": "r1",
                "status": "running",
                "last_step": 3,
                "modalities": ["image", "text"],
                "config": {"tau": 0.1, "sched": {"warmup": 5}},
                "last": {"a": 5.0},
            },
            {"name": "r2", "config": {"tau": 0.5}},
        ],
        metrics=["a"],
    )
    assert table["run"].tolist() == ["r1", "r2"]
    assert table.loc[0, "modalities"] == "image / text"
    assert math.isnan(table.loc[1, "a"])
    configs = F.configs_table(
        [
            {"name": "r1", "dim": 8, "config": {"tau": 0.1, "sched": {"warmup": 5}}},
            {"name": "r2", "config": {"tau": 0.5}},
        ]
    )
    assert configs.loc[0, "dim"] == 8
    assert configs.loc[0, "sched"] == '{"warmup": 5}'
    assert configs["tau"].tolist() == [0.1, 0.5]
    with pytest.raises(ValueError, match="name"):
        F.runs_table([{"status": "x"}])
    with pytest.raises(ValueError, match="name"):
        F.configs_table([{"config": {}}])


def test_runs_table_has_words_for_headers_and_rounds_values():
    # What a new user saw: snake_case headers and values like 22.0007 and 0.00005123.
    summary = {
        "name": "r",
        "last_step": 9,
        "last": {schema.M_LOSS: 22.0007, schema.M_POS_SIM: 0.00005123, schema.M_STD_L2: 0.12345},
    }
    table = F.runs_table([summary], metrics=[schema.M_LOSS, schema.M_POS_SIM, schema.M_STD_L2, schema.M_RANK])
    assert list(table.columns) == [
        "run",
        "status",
        "last step",
        "modalities",
        "loss ↓",
        "pos. cos ↑",
        "std ↑",
        "rank ↑",
    ]
    assert table.loc[0, "loss ↓"] == 22.0
    assert table.loc[0, "pos. cos ↑"] == 5.12e-05
    assert table.loc[0, "std ↑"] == 0.123
    assert F.column_help([schema.M_STD_L2])["std ↑"] == "std of L2-normalized embeddings ↑"
    assert all("_" not in c for c in table.columns)
    assert F.round_significant(float("nan")) != F.round_significant(float("nan"))  # NaN stays NaN
    assert F.round_significant(-1234.5, 2) == -1200.0
    with pytest.raises(ValueError, match="digits"):
        F.round_significant(1.0, 0)


# -- what a new user tripped on (issue 17) ---------------------------------------------------------------
def _luminance(hex_color: str) -> float:
    r, g, b = (int(hex_color[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_titles_sit_below_the_plot_toolbar():
    # The modebar takes the top ~30 px at the right; a title in the top margin's middle ran under it.
    figs = [
        F.fig_metric_series(scalars_frame(["loss"], range(5)), title="t"),
        F.fig_metric_grid(scalars_frame(["loss", "alignment"], range(5), run="a"), ["loss"], title="t"),
        F.fig_spectrum(spectra_frame([1])),
    ]
    for fig in figs:
        title = fig.layout.title
        from_top = (1 - title.y) * fig.layout.height
        assert title.yref == "container" and title.yanchor == "middle"
        assert from_top >= 40, from_top
        assert fig.layout.margin.t >= from_top + 20  # the plot area starts below the title


def test_grid_of_several_runs_has_one_legend_above_all_panels():
    df = pd.concat([scalars_frame(["loss", "alignment", "uniformity"], range(5), run=r) for r in "ab"])
    fig = F.fig_metric_grid(df, ["loss", "alignment", "uniformity"], title="t")
    assert fig.layout.legend.orientation == "h" and fig.layout.legend.yref == "container"
    assert sorted(t.name for t in fig.data if t.showlegend) == ["a", "b"]
    legend_from_top = (1 - fig.layout.legend.y) * fig.layout.height
    assert (1 - fig.layout.title.y) * fig.layout.height < legend_from_top < fig.layout.margin.t


def test_dual_axis_right_ticks_are_its_own():
    df = scalars_frame([schema.M_RANK, schema.M_UNIFORMITY], range(5))
    fig = F.fig_dual_axis(df, [schema.M_RANK], [schema.M_UNIFORMITY], title="t")
    assert fig.layout.yaxis2.tickmode == "auto" and fig.layout.yaxis2.showgrid is False


def test_waterfall_rows_are_steps_and_small_eigenvalues_look_dark():
    fig = F.fig_spectrum_waterfall(spectra_frame([0, 250]), "view1")
    heatmap = fig.data[0]
    # Two logged steps: two rows named by step, not a numeric axis starting at -125.
    assert list(heatmap.y) == ["0", "250"] and fig.layout.yaxis.type == "category"
    lum = [_luminance(c) for _, c in heatmap.colorscale]
    assert lum == sorted(lum)  # dark (small) to bright (large), no pale band at either end
    assert lum[0] < 0.15


def test_temperature_axes_tick_once_per_decade_and_name_tau():
    taus = np.logspace(-2, 0, 7)
    curves = pd.DataFrame(
        [(5, t, c, float(i) * t) for i, c in enumerate(F.CURVES) for t in taus],
        columns=["step", "tau", "curve", "value"],
    )
    fig = F.fig_temperature_curves(curves, run_tau=0.2)
    axes = [fig.layout[f"xaxis{name[1:]}"] for name in {t.xaxis for t in fig.data}]
    assert len(axes) == len(F.CURVES)
    assert all(ax.type == "log" and ax.dtick == 1 and "τ" in ax.title.text for ax in axes)


def test_plane_labels_start_first_logged_step_and_end_with_their_steps():
    pairs = pd.DataFrame(
        {"step": [0, 10, 20, 30], "alignment": [0.3, 1.1, 1.0, 0.9], "uniformity": [-0.8, -2.9, -3.0, -3.1]}
    )
    fig = F.fig_align_uniform_plane(pairs)
    marks = fig.data[1]
    assert list(marks.text) == ["step 0", "step 10", "step 30"] and list(marks.customdata) == [0, 10, 30]


def test_concepts_hardest_negative_note_follows_the_temperature():
    from cldiag import concepts as C
    from cldiag.figures import concepts as FC

    neg = C.negative_scores(32)
    notes = []
    for tau in (0.05, 0.2, 1.0):
        fig = FC.fig_negative_weights(C.anchor_at_temperature(0.8, neg, tau), tau)
        assert list(fig.layout.yaxis.range) == [0, 1.05]  # fixed, so the bars themselves move
        (note,) = [a for a in fig.layout.annotations if "hardest negative" in a.text]
        notes.append((note.y, note.text))
    heights = [y for y, _ in notes]
    assert heights == sorted(heights, reverse=True) and heights[0] > 2 * heights[-1]
    assert len({text for _, text in notes}) == 3  # the share in the text changes with τ


def test_concepts_plane_star_never_covers_the_ideal_label():
    from cldiag import concepts as C
    from cldiag.figures import concepts as FC

    views = C.clustered_views(dim=2, clusters=4, concentration=20.0, view_noise=0.2)
    point = C.align_uniform(views)
    sweep = C.align_uniform_sweep([0.0, 20.0, float("inf")], dim=2, clusters=4, view_noise=0.2)
    fig = FC.fig_align_uniform_demo(point, sweep, C.uniform_sphere_uniformity(2))
    extremes = next(t for t in fig.data if t.name == "extremes")
    ideal = next(i for i, text in enumerate(extremes.text) if text.startswith("ideal"))
    # The star (alignment >= 0) sits on or above the ideal point at alignment 0: the label goes below.
    assert extremes.textposition[ideal].startswith("bottom") and point.alignment >= 0
