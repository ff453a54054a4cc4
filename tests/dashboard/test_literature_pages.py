"""Issue-15 series on the pages: ranks, ordering and false negatives on Scores, τ quantiles on Temperature."""

from __future__ import annotations

import json

import pytest
import torch
from streamlit.testing.v1 import AppTest

from cldiag import Monitor, read_run, schema, ui, views

APP = "../../app.py"
TIMEOUT = 120


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """``pertau``: labels and a per-sample τ; ``plain``: neither labels nor τ (ranks and ordering only)."""
    root = tmp_path_factory.mktemp("literature")
    g = torch.Generator().manual_seed(5)
    for name in ("pertau", "plain"):
        with Monitor(root / name, pairwise_every=2, spectrum_every=0, curves_every=0, budget=None) as mon:
            for step in range(6):
                a = torch.randn(30, 8, generator=g)
                b = a + 0.5 * torch.randn(30, 8, generator=g)
                if name == "pertau":
                    tau = 0.05 + 0.1 * step * torch.rand(30, generator=g)
                    mon.log(step, a, b, labels=torch.arange(30) % 3, temperature=tau)
                else:
                    mon.log(step, a, b)
    return root


def open_page(root, monkeypatch, run: str, page: str) -> AppTest:
    monkeypatch.setenv(ui.ENV_ROOT, str(root))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["run"] = run
    at.run()
    assert not at.exception
    at = at.switch_page(page).run()
    assert not at.exception and not at.error
    return at


def trace_names(at: AppTest) -> set[str]:
    return {t.get("name") for c in at.get("plotly_chart") for t in json.loads(c.proto.spec)["data"]}


def titles(at: AppTest) -> list[str]:
    return [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]


def test_views_draw_the_logged_series(root):
    view = views.RunData(read_run(root / "pertau"))
    ranks = views.rank_metrics(view)
    assert ranks is not None
    frame = ranks.frame()
    assert set(frame["metric"]) == set(views.RANK_METRICS)
    assert sorted(frame.loc[frame.metric == schema.M_MRR, "step"]) == [0, 2, 4]
    fig = ranks.build()
    assert len(fig.data) == 4
    quantiles = views.tau_quantiles(view)
    assert quantiles is not None and set(quantiles.frame()["metric"]) == set(schema.TAU_QUANTILES)
    assert views.false_negatives(view) is not None and views.ordering_violations(view) is not None
    plain = views.RunData(read_run(root / "plain"))
    assert views.false_negatives(plain) is None and views.tau_quantiles(plain) is None
    assert views.rank_metrics(plain) is not None


def test_scores_page_draws_ranks_ordering_and_false_negatives(root, monkeypatch):
    at = open_page(root, monkeypatch, "pertau", "pages/2_scores.py")
    shown = titles(at)
    for title in ("Rank of the positive", "Ordering violations", "False negatives"):
        assert any(t.startswith(title) for t in shown), (title, shown)
    assert {"mean reciprocal rank", "recall@1", "false-negative penalty share"} <= trace_names(at)


def test_scores_page_without_labels_has_no_false_negative_chart(root, monkeypatch):
    at = open_page(root, monkeypatch, "plain", "pages/2_scores.py")
    shown = titles(at)
    assert any(t.startswith("Rank of the positive") for t in shown)
    assert not any(t.startswith("False negatives") for t in shown)


def test_temperature_page_draws_tau_quantiles_only_for_a_per_sample_tau(root, monkeypatch):
    at = open_page(root, monkeypatch, "pertau", "pages/4_temperature.py")
    assert any(t.startswith("Per-sample temperature") for t in titles(at))
    assert {"τ 10 % quantile", "τ 90 % quantile"} <= trace_names(at)
    at = open_page(root, monkeypatch, "plain", "pages/4_temperature.py")
    assert not any(t.startswith("Per-sample temperature") for t in titles(at))
