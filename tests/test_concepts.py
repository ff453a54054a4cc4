"""The Concepts page: demo computations against limits and independent NumPy, its figures, the page."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import torch
from streamlit.testing.v1 import AppTest

from cldiag import Monitor, read_run, schema
from cldiag import concepts as C
from cldiag import functional as F
from cldiag.figures import concepts as FC
from cldiag.figures.scores import overlap_coefficient
from cldiag.losses import clip_loss, info_nce

TAB_LABELS = (
    "Temperature & hardness",
    "Alignment & uniformity",
    "Modality gap",
    "Dimensional collapse",
    "Score distributions",
)
PAGE = str(Path(__file__).parent / ".." / "pages" / "concepts.py")
APP = str(Path(__file__).parent / ".." / "app.py")


def np_softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


# ------------------------------------------------------------------------------ 1. temperature and hardness


@pytest.mark.parametrize("shape", C.NEGATIVE_SHAPES)
def test_negative_scores_are_sorted_cosines_with_the_requested_mean(shape):
    s = C.negative_scores(64, shape=shape, mean=0.1, spread=0.1).numpy()
    assert s.shape == (64,)
    assert np.all(np.diff(s) <= 0)
    assert s.min() >= -1 and s.max() <= 1
    assert s.mean() == pytest.approx(0.1, abs=0.01)


def test_negative_scores_reject_unknown_shape_and_bad_sizes():
    with pytest.raises(ValueError, match="shape"):
        C.negative_scores(8, shape="bimodal")
    with pytest.raises(ValueError, match="k must be >= 1"):
        C.negative_scores(0)
    with pytest.raises(TypeError):
        C.negative_scores(8.0)


def test_anchor_batch_holds_the_same_scores_in_every_row():
    pos, neg = 0.7, torch.tensor([0.5, 0.1, -0.3, -0.9])
    a, b, scale = C.anchor_batch(pos, neg)
    c = np.r_[pos, neg.numpy()]
    n = c.size
    assert scale == pytest.approx(max(np.linalg.norm(c), 1.0))
    np.testing.assert_allclose(np.linalg.norm(b.numpy(), axis=1), 1.0, atol=1e-6)
    s = a.numpy() @ b.numpy().T * scale
    for i in range(n):
        np.testing.assert_allclose([s[i, (i + m) % n] for m in range(n)], c, atol=1e-6)


def test_anchor_batch_rejects_non_cosines():
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        C.anchor_batch(0.5, torch.tensor([1.5, 0.0]))
    with pytest.raises(ValueError, match="1-D"):
        C.anchor_batch(0.5, torch.zeros(2, 2))


@pytest.mark.parametrize("tau", [0.05, 0.3, 2.0])
def test_anchor_at_temperature_matches_numpy(tau):
    pos = 0.6
    neg = C.negative_scores(16, shape="hard tail", mean=0.1, spread=0.2)
    r = C.anchor_at_temperature(pos, neg, tau)
    s = neg.double().numpy()
    w = np_softmax(s / tau)
    np.testing.assert_allclose(r.weights.numpy(), w, rtol=1e-4, atol=1e-7)
    assert r.entropy == pytest.approx(-(w * np.log(w)).sum() / np.log(16), abs=1e-4)
    assert r.effective_negatives == pytest.approx(np.exp(-(w * np.log(w)).sum()), rel=1e-4)
    p = np_softmax(np.r_[pos, s] / tau)[0]
    assert r.pos_prob == pytest.approx(p, rel=1e-4, abs=1e-7)
    assert r.positive_pull == pytest.approx(1 - p, abs=1e-6)
    assert r.loss == pytest.approx(-np.log(p), rel=1e-4)


def test_temperature_limits_hardest_only_and_all_alike():
    neg = C.negative_scores(32, mean=0.2, spread=0.2)
    cold = C.anchor_at_temperature(0.8, neg, 1e-3)
    hot = C.anchor_at_temperature(0.8, neg, 1e3)
    assert cold.entropy < 1e-3
    assert cold.effective_negatives == pytest.approx(1.0, abs=1e-3)
    assert float(cold.weights[0]) == pytest.approx(1.0, abs=1e-4)  # all on the hardest
    assert hot.entropy > 0.999
    assert hot.effective_negatives == pytest.approx(32.0, rel=1e-3)
    np.testing.assert_allclose(hot.weights.numpy(), 1 / 32, rtol=1e-2)


def test_anchor_temperature_curves_rise_with_tau_and_agree_with_single_tau():
    neg = C.negative_scores(24)
    taus = np.logspace(-2, 1, 13)
    curves = C.anchor_temperature_curves(0.7, neg, taus.tolist())
    assert set(curves["curve"]) == {
        schema.CURVE_ENTROPY,
        schema.CURVE_EFFECTIVE_NEGATIVES,
        schema.CURVE_POS_WEIGHT,
    }
    entropy = curves.loc[curves["curve"] == schema.CURVE_ENTROPY].sort_values("tau")["value"].to_numpy()
    assert np.all(np.diff(entropy) >= -1e-6)
    assert entropy[0] < 0.05 and entropy[-1] > 0.99
    single = C.anchor_at_temperature(0.7, neg, float(taus[6]))
    assert entropy[6] == pytest.approx(single.entropy, abs=1e-4)


def test_snapshot_anchor_scores_with_and_without_partner():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(10, 4, generator=g), torch.randn(10, 4, generator=g)
    pos, neg = C.snapshot_anchor_scores(a, b, anchor=2, max_negatives=100)
    sim = F.similarity_matrix(a, b).numpy()
    assert pos == pytest.approx(sim[2, 2], abs=1e-6)
    np.testing.assert_allclose(neg.numpy(), np.sort(np.delete(sim[2], 2))[::-1], atol=1e-6)
    pos1, neg1 = C.snapshot_anchor_scores(a, None, anchor=0, max_negatives=3)
    assert pos1 is None and neg1.shape == (3,)
    assert np.all(np.isin(neg1.numpy().round(5), F.similarity_matrix(a, a).numpy()[0, 1:].round(5)))
    with pytest.raises(ValueError, match="anchor"):
        C.snapshot_anchor_scores(a, b, anchor=10)


def test_split_snapshot_matches_pairs_by_sample_id(tmp_path):
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(32, 8, generator=g), torch.randn(32, 8, generator=g)
    with Monitor(tmp_path / "run", modalities=("image", "text"), snapshot_every=1, snapshot_size=32) as mon:
        mon.log(0, a, b)
    matrix, rows = read_run(tmp_path / "run").embedding_matrix()
    order = np.random.default_rng(0).permutation(len(rows))  # matching must not rely on row order
    sa, sb = C.split_snapshot(matrix[order], rows.iloc[order].reset_index(drop=True))
    assert sa.shape == sb.shape == (32, 8)
    # Each matched row pair is one of the logged pairs (a[i], b[i]).
    logged = {tuple(np.round(x, 4)) for x in torch.cat([a, b], 1).numpy()}
    assert {tuple(np.round(x, 4)) for x in torch.cat([sa, sb], 1).numpy()} == logged
    one, none = C.split_snapshot(matrix[:5], rows.iloc[:5].assign(modality="image"))
    assert none is None and one.shape == (5, 8)


# ------------------------------------------------------------------------------ 2. alignment and uniformity


def test_cluster_centers_are_even():
    c = C.cluster_centers(5, 2).numpy()
    np.testing.assert_allclose(np.linalg.norm(c, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(c[0] @ c[1], math.cos(2 * math.pi / 5), atol=1e-6)
    s = C.cluster_centers(12, 3).numpy()
    np.testing.assert_allclose(np.linalg.norm(s, axis=1), 1.0, atol=1e-6)
    assert np.abs(s.mean(axis=0)).max() < 0.1
    with pytest.raises(ValueError, match="dim"):
        C.cluster_centers(3, 4)


@pytest.mark.parametrize("dim", [2, 3])
def test_one_cluster_of_zero_spread_is_collapsed(dim):
    v = C.clustered_views(50, dim=dim, clusters=1, concentration=float("inf"), view_noise=0.0)
    au = C.align_uniform(v)
    assert au.uniformity == pytest.approx(0.0, abs=1e-6)
    assert au.alignment == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("dim", [2, 3])
def test_uniform_points_reach_the_closed_form_uniformity(dim):
    v = C.clustered_views(3000, dim=dim, clusters=1, concentration=0.0, view_noise=0.0)
    assert C.align_uniform(v).uniformity == pytest.approx(C.uniform_sphere_uniformity(dim), abs=0.02)


def test_uniform_sphere_uniformity_check_values():
    i0_4 = sum((2.0**k / math.factorial(k)) ** 2 for k in range(40))  # I0(4) by its series
    assert C.uniform_sphere_uniformity(2) == pytest.approx(-4 + math.log(i0_4), abs=1e-6)
    assert C.uniform_sphere_uniformity(3) == pytest.approx(math.log((1 - math.exp(-8)) / 8), abs=1e-6)
    assert C.uniform_sphere_uniformity(8) == pytest.approx(-3.0825, abs=1e-4)
    assert C.uniform_sphere_uniformity(32) == pytest.approx(-3.7518, abs=1e-4)
    assert C.uniform_sphere_uniformity(128) == pytest.approx(-3.9375, abs=1e-4)


def test_sweep_ends_at_the_cluster_centres_exactly():
    sweep = C.align_uniform_sweep([0.0, 5.0, float("inf")], n=40, dim=2, clusters=4, view_noise=0.0)
    assert list(sweep.columns) == ["concentration", "alignment", "uniformity"]
    assert np.all(np.diff(sweep["uniformity"]) > 0)  # tighter clusters, less uniform
    # kappa = inf: 10 copies of each of 4 centres at 90 degrees; uniformity by hand over distinct pairs.
    x = np.repeat(C.cluster_centers(4, 2).double().numpy(), 10, axis=0)
    d2 = ((x[:, None] - x[None]) ** 2).sum(-1)[np.triu_indices(40, 1)]
    assert sweep["uniformity"].iloc[-1] == pytest.approx(np.log(np.exp(-2 * d2).mean()), abs=1e-5)
    np.testing.assert_allclose(sweep["alignment"], 0.0, atol=1e-6)


def test_view_noise_raises_alignment():
    quiet = C.align_uniform(C.clustered_views(200, view_noise=0.05))
    loud = C.align_uniform(C.clustered_views(200, view_noise=0.5))
    assert loud.alignment > 5 * quiet.alignment


# ------------------------------------------------------------------------------ 3. modality gap


def test_orthogonal_constant_modalities_have_gap_sqrt2():
    a, b = C.two_cones(16, cone_angle=0.0, axis_angle=90.0, pair_noise=0.5)
    mg = F.modality_gap(a, b)
    assert float(mg.gap) == pytest.approx(math.sqrt(2), abs=1e-6)
    assert float(mg.cone_a) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize(("theta", "phi"), [(33.0, 60.0), (60.0, 120.0)])
def test_two_cones_geometry_follows_the_angles(theta, phi):
    a, b = C.two_cones(400, cone_angle=theta, axis_angle=phi, pair_noise=0.3)
    np.testing.assert_allclose(np.linalg.norm(a.numpy(), axis=1), 1.0, atol=1e-5)
    mg = F.modality_gap(a, b)
    t, p = math.radians(theta), math.radians(phi)
    assert float(mg.gap) == pytest.approx(2 * math.cos(t) * math.sin(p / 2), abs=0.03)
    assert float(mg.cone_a) == pytest.approx(math.cos(t) ** 2, abs=0.03)


def test_gap_shift_endpoints_and_loss_agree_with_direct_calls():
    a, b = C.two_cones()
    shift = C.gap_shift(a, b, 0.05, deltas=[0.0, 1.0])
    assert shift.gap[0] == pytest.approx(float(F.modality_gap(a, b).gap), abs=1e-5)
    assert shift.gap[1] < 0.02
    assert shift.loss[0] == pytest.approx(float(clip_loss(a, b, 1 / 0.05)), rel=1e-5)


def test_low_tau_loss_minimum_keeps_a_gap_high_tau_closes_it():
    a, b = C.two_cones()
    cold, hot = C.gap_shift(a, b, 0.01), C.gap_shift(a, b, 1.0)
    assert cold.gap[np.argmin(cold.loss)] > 0.5  # the loss prefers the modalities apart
    assert hot.gap[np.argmin(hot.loss)] < 0.05  # the loss prefers the gap closed


def test_modality_points_frame_matches_the_gap_view_schema():
    a, b = C.two_cones(20)
    pts = C.modality_points(a, b)
    assert list(pts.columns) == ["x", "y", "step", "sample_id", "modality", "label"]
    assert len(pts) == 40 and set(pts["modality"]) == {"image", "text"}
    # The first principal axis separates the modalities (their gap dominates the variance).
    means = pts.groupby("modality")["x"].mean()
    assert abs(means["image"] - means["text"]) > 0.5


# ------------------------------------------------------------------------------ 4. dimensional collapse


@pytest.mark.parametrize("k", [1, 4, 16])
def test_effective_rank_is_k_for_k_active_dimensions(k):
    stats = C.collapse_stats(C.low_rank_embeddings(4096, 32, k, residual=0.0))
    assert stats.effective_rank == pytest.approx(k, rel=0.03)
    assert np.all(stats.eigenvalues[k:] < 1e-10)
    assert np.all(stats.eigenvalues[:k] > 1e-3)


def test_unrotated_collapse_leaves_exact_zero_columns():
    z = C.low_rank_embeddings(64, 16, 5, residual=0.0, rotate=False).numpy()
    assert np.all(z[:, 5:] == 0) and np.all(z[:, :5].std(axis=0) > 0.5)


def test_uniformity_and_std_look_healthy_while_rank_collapses():
    stats = C.collapse_stats(C.low_rank_embeddings(2048, 64, 8, residual=0.0, rotate=True))
    assert stats.effective_rank / stats.dim < 0.15
    assert stats.std / stats.std_reference > 0.9
    assert stats.uniformity == pytest.approx(C.uniform_sphere_uniformity(8), abs=0.05)
    assert stats.uniformity / stats.uniformity_reference > 0.75


def test_low_rank_embeddings_validates():
    with pytest.raises(ValueError, match="active must be <= dim"):
        C.low_rank_embeddings(10, 4, 5)
    with pytest.raises(ValueError, match="residual"):
        C.low_rank_embeddings(10, 4, 2, residual=-1.0)


def test_spectrum_frame_schema():
    frame = C.spectrum_frame(np.array([3.0, 2.0, 0.0]))
    assert list(frame.columns) == ["step", "modality", "index", "eigenvalue"]
    assert frame["index"].tolist() == [0, 1, 2]


# ------------------------------------------------------------------------------ 5. score distributions


def test_overlap_to_similarity_inverts_the_normal_overlap():
    d = 64
    for o in (0.05, 0.3, 0.7):
        rho = C.overlap_to_similarity(o, d)
        assert 2 * 0.5 * math.erfc(rho * math.sqrt(d) / 2 / math.sqrt(2)) == pytest.approx(o, abs=1e-9)
    assert C.overlap_to_similarity(1.0, d) == 0.0
    assert C.overlap_to_similarity(0.0, d) == 0.99


def test_score_stats_counts_retrieval_and_loss():
    a, b = C.scored_pairs(64, overlap=0.3)
    stats = C.score_stats(a, b, 0.1)
    h = stats.histograms
    assert list(h.columns) == schema.HISTOGRAMS.names
    counts = h.groupby("kind")["count"].sum()
    assert counts["pos"] == 64 and counts["neg"] == 64 * 63 and counts["hard_neg"] == 64
    s = a.numpy() @ b.numpy().T
    hardest = np.where(np.eye(64, dtype=bool), -np.inf, s).max(axis=1)
    assert stats.retrieval == pytest.approx(float((np.diag(s) > hardest).mean()))
    assert stats.loss == pytest.approx(float(info_nce(a, b, 0.1)), rel=1e-6)


def test_more_overlap_means_worse_retrieval_and_higher_loss():
    results = [C.score_stats(*C.scored_pairs(256, overlap=o), 0.1) for o in (0.0, 0.2, 0.6, 1.0)]
    retrieval = [r.retrieval for r in results]
    loss = [r.loss for r in results]
    assert retrieval[0] == 1.0 and retrieval[-1] < 0.05
    assert retrieval == sorted(retrieval, reverse=True)
    assert loss == sorted(loss)
    measured = [overlap_coefficient(r.histograms.loc[r.histograms["kind"] != "hard_neg"]) for r in results]
    assert measured[0] < 0.05 and measured[-1] > 0.8


# ------------------------------------------------------------------------------ figures


def test_figures_draw_the_numbers_they_are_given():
    neg = C.negative_scores(8)
    r = C.anchor_at_temperature(0.8, neg, 0.2)
    fig = FC.fig_negative_weights(r, 0.2)
    np.testing.assert_allclose(fig.data[0].y, r.weights.numpy(), rtol=1e-6)
    np.testing.assert_allclose(fig.data[1].y, neg.numpy(), rtol=1e-6)

    curves = C.anchor_temperature_curves(0.8, neg, [0.01, 0.1, 1.0])
    assert isinstance(FC.fig_anchor_temperature_curves(curves, 0.1), go.Figure)

    a, b = C.two_cones(32)
    shift = C.gap_shift(a, b, 0.01)
    fig = FC.fig_gap_shift(shift)
    best = int(np.argmin(shift.loss))
    stars = [t for t in fig.data if t.marker.symbol == "star"]
    assert [t.y[0] for t in stars] == pytest.approx([shift.gap[best], shift.loss[best]])

    stats = C.collapse_stats(C.low_rank_embeddings(256, 16, 4))
    card = FC.fig_collapse_scorecard(stats)
    assert card.data[0].x[0] == pytest.approx(stats.effective_rank / 16)
    spec = FC.fig_collapse_spectrum(stats, C.spectrum_frame(stats.eigenvalues), 4)
    assert len(spec.data[0].y) == 16

    for dim in (2, 3):
        v = C.clustered_views(40, dim=dim)
        assert len(FC.fig_points_on_sphere(v).data) >= 3
    with pytest.raises(ValueError, match="d = 2 or 3"):
        FC.fig_points_on_sphere(
            C.ClusteredViews(torch.ones(2, 4), torch.ones(2, 4), torch.zeros(2).long(), None)
        )
    plane = FC.fig_align_uniform_demo(
        C.AlignUniform(0.5, -1.0),
        pd.DataFrame({"concentration": [1.0], "alignment": [0.5], "uniformity": [-1.0]}),
        -1.5,
    )
    assert plane.data[-1].x[0] == -1.0 and plane.data[-1].y[0] == 0.5


# ------------------------------------------------------------------------------ the page


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


@pytest.fixture
def page() -> AppTest:
    # A fresh page per test: tests move sliders and switch tabs, so a shared page made them order-dependent.
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    return at


def test_page_renders_a_plotly_chart_at_first_load(page):
    assert len(page.get("plotly_chart")) >= 1
    assert [t.label for t in page.tabs] == list(TAB_LABELS)
    assert "normalized entropy" in metrics(page)


def test_tau_slider_changes_the_hardness_numbers(page):
    before = metrics(page)
    page.select_slider(key="t_tau").set_value(0.01).run()
    assert not page.exception
    after = metrics(page)
    assert float(after["normalized entropy"]) < float(before["normalized entropy"])
    assert after["effective negatives"] != before["effective negatives"]


@pytest.mark.parametrize(
    ("tab", "widget", "key", "value", "metric"),
    [
        ("Alignment & uniformity", "select_slider", "a_kappa", 1000.0, "uniformity"),
        ("Alignment & uniformity", "slider", "a_noise", 0.8, "alignment"),
        ("Modality gap", "select_slider", "g_tau", 1.0, "loss minimum at gap"),
        ("Modality gap", "slider", "g_axis", 120, "modality gap ‖Δ‖"),
        ("Dimensional collapse", "slider", "c_active", 32, "effective rank (RankMe)"),
        ("Score distributions", "slider", "s_overlap", 0.8, "in-batch retrieval"),
    ],
)
def test_each_tab_renders_and_reacts_to_its_sliders(page, tab, widget, key, value, metric):
    page.session_state["concept"] = tab
    page.run()
    assert not page.exception
    assert len(page.get("plotly_chart")) >= 1
    before = metrics(page)[metric]
    getattr(page, widget)(key=key).set_value(value).run()
    assert not page.exception
    assert metrics(page)[metric] != before


def test_sphere_view_renders(page):
    page.session_state["concept"] = "Alignment & uniformity"
    page.run()
    page.radio(key="a_space").set_value("sphere (3-D)").run()
    assert not page.exception
    assert float(metrics(page)["uniformity"]) < 0


def test_page_links_to_the_dashboard_page_inside_the_router():
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("pages/concepts.py").run()
    assert not at.exception
    links = at.get("page_link")
    assert links and links[0].proto.page_script_hash
    assert "Temperature" in links[0].proto.label


def test_shrinking_the_dimension_below_k_does_not_break_the_page(page):
    page.session_state["concept"] = "Dimensional collapse"
    page.run()
    page.slider(key="c_active").set_value(48).run()
    page.select_slider(key="c_dim").set_value(16).run()
    assert not page.exception
    assert metrics(page)["effective rank (RankMe)"].endswith("of 16")


@pytest.fixture(scope="module")
def sample_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("samples")
    g = torch.Generator().manual_seed(3)
    a = torch.randn(48, 8, generator=g)
    b = a + 0.2 * torch.randn(48, 8, generator=g)
    with Monitor(root / "views", snapshot_every=1, snapshot_size=48) as mon:
        mon.log(0, a, b)
    with Monitor(root / "pairs", modalities=("image", "text"), snapshot_every=1, snapshot_size=48) as mon:
        mon.log(0, a, b)
    return root


def test_snapshot_negatives_and_links_use_the_run_root(sample_root, monkeypatch):
    monkeypatch.setenv("CLDIAG_RUN_ROOT", str(sample_root))
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("pages/concepts.py").run()
    assert not at.exception
    assert at.get("page_link")[0].proto.query_string == "run=views"
    at.selectbox(key="t_source").set_value("pairs").run()
    assert not at.exception
    # The positive now comes from the snapshot: the cosine of the first matched image/text pair.
    sa, sb = C.split_snapshot(*read_run(sample_root / "pairs").embedding_matrix())
    pos = float(F.similarity_matrix(sa[:1], sb[:1])[0, 0])
    assert any(f"{pos:.3f}" in c.value for c in at.caption)
    assert metrics(at)["effective negatives"].endswith("of 47")
    at.session_state["concept"] = "Modality gap"
    at.run()
    assert at.get("page_link")[0].proto.query_string == "run=pairs"
