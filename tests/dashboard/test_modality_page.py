"""N modalities on the Modality gap page: pair matrices, their evolution and Symile's MIP distribution."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from cldiag import Monitor, read_run, schema, ui, views
from cldiag import functional as F

APP = "../../app.py"
TIMEOUT = 120
NAMES = ("image", "text", "audio")  # mapping order differs from name order on purpose
STEPS = range(5)


def _batch(step: int, names=NAMES, n: int = 20, d: int = 6) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(100 + step)
    z = torch.randn(n, d, generator=g)
    # audio is noisier than image and text, so its row and column of the matrices differ from the others
    return {m: z + (1.5 if m == "audio" else 0.4) * torch.randn(n, d, generator=g) for m in names}


def _monitor(path, **kw) -> Monitor:
    return Monitor(path, pairwise_every=2, spectrum_every=0, curves_every=0, budget=None, bins=20, **kw)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """``three``: a mapping of 3 modalities; ``pair``: a mapping of 2; ``clip``: two tensors with names;
    ``views``: two views of one modality; ``lab``: 3 modalities' pair metrics from ``log_scalar`` only."""
    root = tmp_path_factory.mktemp("modalities")
    with _monitor(root / "three") as mon:
        for step in STEPS:
            mon.log(step, _batch(step))
    with _monitor(root / "pair") as mon:
        for step in STEPS:
            mon.log(step, _batch(step, names=("image", "text")))
    with _monitor(root / "clip", modalities=("image", "text")) as mon:
        for step in STEPS:
            z = _batch(step)
            mon.log(step, z["image"], z["text"])
    with _monitor(root / "views") as mon:
        for step in STEPS:
            z = _batch(step)
            mon.log(step, z["image"], z["text"])
    with _monitor(root / "lab", modalities=("a", "b"), final_snapshot=False) as mon:
        for step in STEPS:
            z = _batch(step)
            mon.log(step, z["image"], z["text"])
            if step == STEPS[-1]:  # the Lab's probe snapshot: all three modalities under shared ids
                for name, rows in zip("abc", z.values(), strict=True):
                    mon.log_embeddings(step, rows, modality=name, ids=list(range(len(rows))))
            gm = F.modality_gap_matrix(dict(zip("abc", z.values(), strict=True)))
            for p, first in enumerate(gm.names):
                for q, second in enumerate(gm.names):
                    if p < q:
                        mon.log_scalar(
                            step, schema.pair_metric(schema.M_PAIR_GAP, first, second), gm.gap[p, q]
                        )
                    if p != q:
                        name = schema.pair_metric(schema.M_PAIR_RETRIEVAL, first, second)
                        mon.log_scalar(step, name, gm.retrieval[p, q])
    return root


def _view(root, name: str) -> views.RunData:
    return views.RunData(read_run(root / name))


# --- views ----------------------------------------------------------------------------------------------


def test_modalities_come_from_the_pair_metrics_in_mapping_order(root):
    assert views.pair_modalities(_view(root, "three")) == list(NAMES)
    assert read_run(root / "three").meta["modalities"] == ["image", "text"]  # meta names a and b only
    assert views.pair_modalities(_view(root, "pair")) == ["image", "text"]
    assert views.pair_modalities(_view(root, "lab")) == ["a", "b", "c"]
    assert views.pair_modalities(_view(root, "clip")) == views.pair_modalities(_view(root, "views")) == []
    assert views.pair_steps(_view(root, "three")) == [0, 2, 4]


def test_matrices_hold_the_logged_pair_values(root):
    view = _view(root, "three")
    gm = F.modality_gap_matrix(_batch(2))
    gap = views.modality_matrix(view, 2, schema.M_PAIR_GAP)
    retrieval = views.modality_matrix(view, 2, schema.M_PAIR_RETRIEVAL)
    assert isinstance(gap, views.Panel) and isinstance(retrieval, views.Panel)
    frame = retrieval.frame()
    assert list(frame.columns) == ["step", "metric", "query", "candidate", "value"]
    assert len(frame) == 6 and len(gap.frame()) == 3 and set(frame["step"]) == {2}
    z_gap = np.array(gap.build().data[0].z, dtype=np.float64)
    z_ret = np.array(retrieval.build().data[0].z, dtype=np.float64)
    assert np.isnan(np.diag(z_gap)).all() and np.isnan(np.diag(z_ret)).all()
    off = ~np.eye(3, dtype=bool)
    np.testing.assert_allclose(z_gap[off], gm.gap.double().numpy()[off], atol=1e-6)
    np.testing.assert_allclose(z_ret[off], gm.retrieval.double().numpy()[off], atol=1e-6)
    np.testing.assert_array_equal(z_gap, z_gap.T)  # logged once per unordered pair, drawn both ways
    assert (gm.retrieval - gm.retrieval.T).nan_to_num().abs().max() > 0  # so the orientation is checked
    text = gap.build().data[0].text
    assert text[0][0] == "" and text[0][2] == f"{gm.gap[0, 2]:.3f}"  # values written in the cells
    assert list(gap.build().data[0].y) == list(NAMES)


def test_evolution_draws_one_line_per_pair(root):
    view = _view(root, "three")
    gap = views.pair_evolution(view, schema.M_PAIR_GAP)
    retrieval = views.pair_evolution(view, schema.M_PAIR_RETRIEVAL)
    assert gap is not None and retrieval is not None
    assert len(gap.build().data) == 3 and len(retrieval.build().data) == 6
    assert set(gap.frame()["step"]) == {0, 2, 4}
    assert views.pair_evolution(_view(root, "clip"), schema.M_PAIR_GAP) is None


def test_mip_distribution_for_three_modalities_only(root):
    view = _view(root, "three")
    panel = views.mip_distribution(view, 4)
    assert isinstance(panel, views.Panel)
    frame = panel.frame()
    counts = frame.groupby("kind")["count"].sum()
    assert counts[schema.HIST_MIP_POS] == 20 and counts[schema.HIST_MIP_NEG] == 3 * 20 * 19
    fig = panel.build()
    assert [t.name for t in fig.data] == ["matched tuples", "mismatched tuples"]
    assert "overlap" in fig.layout.title.text
    overlap = view.value_at(schema.M_MIP_OVERLAP, 4)
    assert overlap is not None and f"{overlap:.2f}" in fig.layout.title.text
    series = views.mip_series(view)
    assert series is not None and set(series.frame()["metric"]) == {schema.M_MIP_OVERLAP}
    for name in ("pair", "clip", "views"):
        assert views.mip_distribution(_view(root, name), 4) is None
        assert views.mip_series(_view(root, name)) is None
    # three modalities without the Monitor's histograms (pair metrics from log_scalar): say why
    message = views.mip_distribution(_view(root, "lab"), 4)
    assert isinstance(message, str) and "mapping" in message


def test_runs_without_pairs_get_no_matrix(root):
    for name in ("clip", "views"):
        assert views.modality_matrix(_view(root, name), 2, schema.M_PAIR_GAP) is None
    message = views.modality_matrix(_view(root, "three"), 1, schema.M_PAIR_GAP)
    assert isinstance(message, str) and "step 1" in message
    with pytest.raises(ValueError, match="base must be one of"):
        views.modality_matrix(_view(root, "three"), 2, "gap_matrix")


def test_gap_view_of_a_three_modality_snapshot_draws_the_runs_two(root):
    panel = views.modality_gap_view(_view(root, "lab"), 4)
    assert isinstance(panel, views.Panel)
    assert set(panel.frame()["modality"]) == {"a", "b"} and len(panel.frame()) == 40
    assert panel.note is not None and "a, b, c" in panel.note
    assert {t.name for t in panel.build().data} >= {"a", "b"}


# --- the page -------------------------------------------------------------------------------------------


def open_page(root, monkeypatch, run: str) -> AppTest:
    monkeypatch.setenv(ui.ENV_ROOT, str(root))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["run"] = run
    at.run()
    assert not at.exception
    at = at.switch_page("pages/5_modality_gap.py").run()
    assert not at.exception and not at.error
    return at


def titles(at: AppTest) -> list[str]:
    return [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]


def test_page_of_a_three_modality_run(root, monkeypatch):
    at = open_page(root, monkeypatch, "three")
    shown = titles(at)
    for title in (
        "Modality gap and matched distance",
        "Modality gap between each pair at step 4",
        "Top-1 retrieval, query → candidate at step 4",
        "Multilinear inner product at step 4",
        "Gap of each pair over training",
        "Top-1 retrieval of each pair over training",
        "Matched/mismatched MIP overlap over training",
    ):
        assert any(t.startswith(title) for t in shown), (title, shown)
    assert any("3 modalities: image, text, audio" in h.value for h in at.subheader)
    assert len(at.get("download_button")) == len(shown)  # every chart has its CSV
    at.select_slider(key="pairs_step").set_value(2).run()
    assert not at.exception and not at.error
    shown = titles(at)
    for title in ("Modality gap between each pair at step 2", "Multilinear inner product at step 2"):
        assert any(t.startswith(title) for t in shown), (title, shown)


def test_page_of_a_two_view_run_says_why_there_is_nothing(root, monkeypatch):
    at = open_page(root, monkeypatch, "views")
    assert not titles(at)
    assert any(views.EMPTY["one_modality"] in i.value for i in at.info)


def test_page_of_a_plain_two_tower_run_is_unchanged(root, monkeypatch):
    at = open_page(root, monkeypatch, "clip")
    shown = titles(at)
    assert any(t.startswith("Modality gap and matched distance") for t in shown)
    assert not any("each pair" in t or "Multilinear" in t for t in shown)
    assert not at.subheader
