"""views: neighbours and worst pairs of a snapshot (issue 16), Run.neighbours/worst_pairs and the CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from cldiag import Monitor, read_run, views
from cldiag.cli import main

N, D, CLASSES = 40, 12, 4
TEXTS = [f"<b>caption {i}</b> **{i}** ünï" for i in range(N)]


def _cos(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64) / np.linalg.norm(x, axis=1, keepdims=True)
    y = y.astype(np.float64) / np.linalg.norm(y, axis=1, keepdims=True)
    return x @ y.T


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    """A two-modality probe set logged at steps 10 and 20 with fixed ids, labels and captions."""
    path = tmp_path_factory.mktemp("ex") / "probe"
    g = torch.Generator().manual_seed(1)
    labels = torch.arange(N) % CLASSES
    centers = torch.randn(CLASSES, D, generator=g)
    sides = {}
    with Monitor(path, modalities=("image", "text"), snapshot_every=0, strict=True) as mon:
        for step, noise in ((10, 2.0), (20, 0.7)):
            img = centers[labels] + noise * torch.randn(N, D, generator=g)
            txt = img + noise * torch.randn(N, D, generator=g)
            ids = torch.arange(100, 100 + N)
            mon.log_embeddings(
                step, img, labels=labels, modality="image", ids=ids, meta=[f"img{i}.png" for i in range(N)]
            )
            mon.log_embeddings(step, txt, labels=labels, modality="text", ids=ids, meta=TEXTS)
            sides[step] = (img.numpy(), txt.numpy())
    return read_run(path), sides, labels.numpy()


def _brute_ranks(img: np.ndarray, txt: np.ndarray) -> np.ndarray:
    s = _cos(img, txt)
    return np.array([1 + sum(s[i, j] >= s[i, i] for j in range(N) if j != i) for i in range(N)], float)


def test_worst_pairs_match_brute_force(probe):
    run, sides, labels = probe
    img, txt = sides[20]
    ranks, s = _brute_ranks(img, txt), _cos(img, txt)
    table = views.worst_pairs_table(run, 20, n=5, k=2, compare_step=10)
    assert list(table.columns) == [*views.PAIR_COLUMNS, "rank_then"]
    anchors = table.drop_duplicates("anchor_id")
    idx = anchors.anchor_id.to_numpy() - 100
    np.testing.assert_array_equal(anchors["rank"].to_numpy(), ranks[idx])
    assert anchors["rank"].tolist() == sorted(ranks, reverse=True)[:5]  # the worst, worst first
    np.testing.assert_array_equal(anchors.rank_then.to_numpy(), _brute_ranks(*sides[10])[idx])
    for i, rows in table.groupby("anchor_id"):
        i -= 100
        assert rows.role.tolist() == ["positive", "negative 1", "negative 2"]
        assert rows.anchor_meta.iloc[0] == f"img{i}.png" and rows.meta.iloc[0] == TEXTS[i]
        negs = [j for j in np.argsort(-s[i], kind="stable") if j != i][:2]
        assert (rows.sample_id.iloc[1:] - 100).tolist() == negs
        np.testing.assert_allclose(rows.similarity, [s[i, i], *s[i, negs]], rtol=1e-5, atol=1e-6)
        assert rows.meta.iloc[1:].tolist() == [TEXTS[j] for j in negs]
        flags = rows.likely_false_negative.iloc[1:].tolist()
        assert flags == [bool(labels[j] == labels[i]) for j in negs]
        assert pd.isna(rows.likely_false_negative.iloc[0])


def test_worst_pairs_label_filter_and_messages(probe, tmp_path):
    run, _, labels = probe
    table = views.worst_pairs_table(run, 20, n=50, label=2, k=1)
    assert set(table.anchor_label) == {2} and table.anchor_id.nunique() == (labels == 2).sum()
    assert "No anchor has label 9" in views.worst_pairs_table(run, 20, label=9)
    assert views.pair_labels(run, 20) == list(range(CLASSES))
    with Monitor(tmp_path / "one", snapshot_every=0) as mon:
        mon.log_embeddings(0, torch.randn(8, 4))
    one = read_run(tmp_path / "one")
    assert "holds one side only" in views.worst_pairs_table(one, 0)
    with pytest.raises(ValueError, match="one side only"):
        one.worst_pairs()
    with pytest.raises(ValueError, match="n must be a positive int"):
        views.worst_pairs_table(run, 20, n=0)


def test_neighbours_match_brute_force_in_the_full_snapshot(probe):
    run, sides, labels = probe
    img, txt = sides[20]
    z = np.concatenate([img, txt])  # the snapshot's row order: image rows, then text rows
    s = _cos(z, z)
    table = views.neighbours_table(run, 20, 103, k=6, modality="text")
    q = N + 3
    order = [j for j in np.argsort(-s[q], kind="stable") if j != q][:6]
    assert list(table.columns) == views.NEIGHBOUR_COLUMNS
    assert table["rank"].tolist() == list(range(1, 7))
    assert (table.sample_id - 100).tolist() == [j % N for j in order]
    assert table.modality.tolist() == ["image" if j < N else "text" for j in order]
    np.testing.assert_allclose(table.similarity, s[q, order], rtol=1e-5, atol=1e-6)
    assert table.positive.tolist() == [j == 3 for j in order]  # the image of sample 103
    assert table.same_label.tolist() == [bool(labels[j % N] == labels[3]) for j in order]
    assert table.meta.tolist() == [f"img{j}.png" if j < N else TEXTS[j - N] for j in order]
    pd.testing.assert_frame_equal(run.neighbours(20, 103, 6, modality="text"), table)
    assert run.neighbours(None, 103, 2).modality.notna().all()  # latest snapshot; query = first side
    with pytest.raises(KeyError, match="sample 999"):
        views.neighbours_table(run, 20, 999)


def test_cli_report_prints_the_worst_pairs_as_plain_text(probe, capsys):
    run, _, _ = probe
    main(["report", run.path, "--examples", "2"])
    out = capsys.readouterr().out
    assert "Worst pairs at step 20" in out
    worst = run.worst_pairs(20, 2, k=3)
    for anchor_id, rank in worst.drop_duplicates("anchor_id")[["anchor_id", "rank"]].itertuples(index=False):
        assert f"sample {anchor_id}, label" in out and f"positive ranks {rank:.0f} (was" in out
    assert TEXTS[int(worst.anchor_id.iloc[0]) - 100] in out  # the caption verbatim, markup not rendered
    many = run.worst_pairs(20, 10, k=3)
    flagged = int(many.likely_false_negative.sum())
    assert 0 < flagged < len(many) - 10  # some hardest negatives share the anchor's label, not all
    assert views.format_worst_pairs(many).count("[likely false negative]") == flagged
