"""Per-sample τ by class on the Temperature page (issue 15, iSogCLR): views over real runs, and the page."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from streamlit.testing.v1 import AppTest

from cldiag import Monitor, read_run, schema, ui, views
from cldiag.figures import temperature as FT

APP = "../../app.py"
TIMEOUT = 120
STEPS = 12


def _log(path, classes: int, labelled: bool = True) -> None:
    """Imbalanced classes (class c has weight 1/(c+1)); a class's τ grows with its frequency and the step."""
    g = torch.Generator().manual_seed(classes)
    weights = 1.0 / torch.arange(1, classes + 1)
    with Monitor(
        path, pairwise_every=2, spectrum_every=0, curves_every=0, snapshot_every=0, budget=None
    ) as mon:
        for step in range(STEPS):
            a = torch.randn(60, 8, generator=g)
            b = a + 0.5 * torch.randn(60, 8, generator=g)
            y = torch.multinomial(weights, 60, replacement=True, generator=g)
            tau = 0.1 + 0.02 * step * weights[y] + 0.01 * torch.rand(60, generator=g)
            mon.log(step, a, b, labels=y if labelled else None, temperature=tau)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """``few``: 4 classes; ``many``: 20 classes; ``nolabels``: a per-sample τ without labels."""
    root = tmp_path_factory.mktemp("tau_by_class")
    _log(root / "few", 4)
    _log(root / "many", 20)
    _log(root / "nolabels", 4, labelled=False)
    return root


def _logged(path) -> pd.DataFrame:
    df = read_run(path).scalars()
    mean = df.loc[df.metric.str.startswith(schema.TAU_CLASS_PREFIX)]
    count = df.loc[df.metric.str.startswith(schema.TAU_CLASS_COUNT_PREFIX)]
    return pd.DataFrame(
        {
            "step": mean.step.to_numpy(),
            "label": mean.metric.str.split("/").str[1].astype(int).to_numpy(),
            "tau": mean.value.to_numpy(),
        }
    ).merge(
        pd.DataFrame(
            {
                "step": count.step.to_numpy(),
                "label": count.metric.str.split("/").str[1].astype(int).to_numpy(),
                "count": count.value.to_numpy(),
            }
        ),
        on=["step", "label"],
    )


def test_frame_holds_the_logged_per_class_scalars(root):
    view = views.RunData(read_run(root / "many"))
    frame = views.tau_class_frame(view)
    want = _logged(root / "many").sort_values(["step", "label"]).reset_index(drop=True)
    assert list(frame.columns) == list(FT.TAU_CLASS_COLUMNS)
    assert sorted(frame.step.unique()) == list(range(0, STEPS, 2))
    pd.testing.assert_frame_equal(frame, want, check_dtype=False)
    assert frame.groupby("step")["count"].sum().eq(60).all()
    cut = views.tau_class_frame(views.RunData(read_run(root / "many"), step_range=(4, 8)))
    assert sorted(cut.step.unique()) == [4, 6, 8]


def test_few_classes_get_a_line_each_most_frequent_first_with_its_share(root):
    view = views.RunData(read_run(root / "few"))
    panel = views.tau_by_class(view)
    assert panel is not None
    fig = panel.build()
    frame = panel.frame()
    shares = frame.groupby("label")["count"].sum() / frame["count"].sum()
    order = shares.sort_values(ascending=False, kind="stable").index.tolist()
    assert [t.type for t in fig.data] == ["scatter"] * 4
    assert [t.name for t in fig.data] == [f"class {c} · {shares[c]:.1%} of rows" for c in order]
    first = frame.loc[frame.label == order[0]].sort_values("step")
    np.testing.assert_allclose(fig.data[0].y, first.tau)
    np.testing.assert_array_equal(fig.data[0].customdata, first["count"])


def test_many_classes_get_a_heatmap_whose_merged_cells_are_row_weighted_means(root):
    frame = views.tau_class_frame(views.RunData(read_run(root / "many")))
    fig = FT.fig_tau_by_class(frame, max_lines=8, max_columns=2)  # 6 logged steps into 2 columns
    (heat,) = fig.data
    assert heat.type == "heatmap" and "6 logged steps merged into 2 columns" in fig.layout.title.text
    shares = FT.class_shares(frame)
    assert len(heat.y) == frame.label.nunique() and heat.y[0].startswith(f"class {shares.label[0]} ·")
    z = np.asarray(heat.z, dtype=float)
    for row, label in enumerate(shares.label):
        for col, steps in enumerate(([0, 2, 4], [6, 8, 10])):
            part = frame.loc[(frame.label == label) & frame.step.isin(steps)]
            if part.empty:
                assert np.isnan(z[row, col])
            else:
                want = (part.tau * part["count"]).sum() / part["count"].sum()
                assert z[row, col] == pytest.approx(want, rel=1e-9)


def test_tau_against_class_frequency_uses_the_latest_quarter_and_rises_with_frequency(root):
    view = views.RunData(read_run(root / "many"))
    panel = views.tau_vs_class_frequency(view)
    assert panel is not None and panel.params == (10,)  # 6 logged steps: the latest quarter is step 10
    points = panel.frame()
    frame = views.tau_class_frame(view)
    late = frame.loc[frame.step >= 10]
    want = (late.tau * late["count"]).groupby(late.label).sum() / late.groupby("label")["count"].sum()
    np.testing.assert_allclose(points.set_index("label").tau.sort_index(), want.sort_index())
    total = frame.groupby("label")["count"].sum()
    np.testing.assert_allclose(
        points.set_index("label").share.sort_index(), (total / total.sum()).loc[want.index]
    )
    rho = points.tau.rank().corr(points.share.rank())
    assert rho > 0.5  # built so that frequent classes have larger τ
    assert f"Spearman ρ = {rho:.2f}" in panel.build().layout.title.text


def test_nothing_drawn_without_labels(root):
    view = views.RunData(read_run(root / "nolabels"))
    assert views.tau_quantiles(view) is not None  # the per-sample τ is there
    assert views.tau_by_class(view) is None and views.tau_vs_class_frequency(view) is None


def _open(root, monkeypatch, run: str) -> AppTest:
    monkeypatch.setenv(ui.ENV_ROOT, str(root))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["run"] = run
    at.run()
    assert not at.exception
    at = at.switch_page("pages/4_temperature.py").run()
    assert not at.exception and not at.error
    return at


def _titles(at: AppTest) -> list[str]:
    return [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]


def test_temperature_page_draws_tau_by_class_and_against_frequency(root, monkeypatch):
    at = _open(root, monkeypatch, "many")
    shown = _titles(at)
    assert any(t.startswith("Per-sample temperature by class") for t in shown), shown
    assert any(t.startswith("Mean τ per class against class frequency") for t in shown), shown
    at = _open(root, monkeypatch, "nolabels")
    shown = _titles(at)
    assert any(t.startswith("Per-sample temperature: quantiles") for t in shown), shown
    assert not any("by class" in t or "class frequency" in t for t in shown), shown
