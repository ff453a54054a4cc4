"""Per-row metadata in snapshots (issue 16): stored as plain capped text, both sides of a pair kept."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
import torch

from cldiag import Monitor, read_run, schema
from cldiag.maintenance import compact_run

TRICKY = [
    "a cat on a mat",
    "",
    "日本語のキャプション 🐈 — ünïcødé",
    "**bold** _x_ [link](http://example.com) # heading",
    "<script>alert(1)</script><b>html</b>",
    "x" * 2000,
    None,
    "line one\nline two\ttab",
]


def _batch(n: int, d: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)


def _capped(text: str | None) -> str | None:
    if text is None or len(text) <= schema.META_MAX_CHARS:
        return text
    return text[: schema.META_MAX_CHARS - 1] + "…"


def test_meta_round_trips_verbatim_and_capped(tmp_path):
    a, b = _batch(len(TRICKY))
    with Monitor(tmp_path / "r", snapshot_every=1, snapshot_size=64, pairwise_every=0, strict=True) as mon:
        mon.log(0, a, b, ids=torch.arange(100, 100 + len(TRICKY)), meta=TRICKY)
    emb = read_run(tmp_path / "r").embeddings(0)
    for side in ("view1", "view2"):
        rows = emb[emb.modality == side]
        assert rows.sample_id.tolist() == list(range(100, 108))
        assert rows.meta.tolist() == [_capped(t) for t in TRICKY]
    long = emb.meta.iloc[5]
    assert len(long) == schema.META_MAX_CHARS and long.endswith("…")
    assert emb.meta.iloc[6] is None  # a missing row reads as None, not NaN


def test_meta_mapping_is_stored_as_json_and_numbers_as_text(tmp_path):
    z = torch.randn(3, 4)
    meta = {"caption": ["a dog", None, "<i>x</i>"], "index": [7, 8, None]}
    with Monitor(tmp_path / "m", snapshot_every=0, strict=True) as mon:
        mon.log_embeddings(5, z, meta=meta)
    texts = read_run(tmp_path / "m").embeddings(5).meta.tolist()
    assert [json.loads(t) for t in texts] == [
        {"caption": "a dog", "index": "7"},
        {"index": "8"},
        {"caption": "<i>x</i>"},
    ]


def test_probe_meta_follows_the_rows_kept(tmp_path):
    z = torch.randn(500, 4)
    texts = [f"sample {i}" for i in range(500)]
    with Monitor(tmp_path / "p", snapshot_every=0, snapshot_size=64, strict=True) as mon:
        mon.log_embeddings(3, z, ids=torch.arange(500), meta=texts)
    emb = read_run(tmp_path / "p").embeddings(3)
    assert len(emb) == 64
    assert emb.meta.tolist() == [f"sample {i}" for i in emb.sample_id]


def test_two_modality_snapshot_keeps_both_sides_with_one_id_and_meta(tmp_path):
    a, b = _batch(6)
    with Monitor(
        tmp_path / "c", modalities=("image", "text"), snapshot_every=1, snapshot_size=4, strict=True
    ) as mon:
        mon.log(0, a, b, meta=[f"caption {i}" for i in range(6)])
    matrix, info = read_run(tmp_path / "c").embedding_matrix(0)
    for side, z in (("image", a), ("text", b)):
        rows = (info.modality == side).to_numpy()
        assert info[rows].meta.tolist() == [f"caption {i}" for i in range(4)]
        torch.testing.assert_close(torch.from_numpy(matrix[rows]), z[:4])
    ids = {side: info[info.modality == side].sample_id.tolist() for side in ("image", "text")}
    assert ids["image"] == ids["text"]


def test_meta_is_read_only_at_snapshot_steps(tmp_path, monkeypatch):
    calls = []
    real = schema.encode_meta
    monkeypatch.setattr(schema, "encode_meta", lambda meta, rows: calls.append(len(rows)) or real(meta, rows))
    with Monitor(tmp_path / "s", snapshot_every=10, snapshot_size=8, pairwise_every=0, strict=True) as mon:
        for step in range(12):
            a, b = _batch(4, seed=step)
            mon.log(step, a, b, meta=[f"s{step}-{i}" for i in range(4)])
    assert calls == [4, 4, 4, 4]  # steps 0, 1 and 10, 11 (8 rows each); none for steps 2 to 9
    emb = read_run(tmp_path / "s").embeddings(0)
    assert emb[emb.modality == "view1"].meta.tolist() == [f"s{s}-{i}" for s in (0, 1) for i in range(4)]


@pytest.mark.parametrize(
    ("meta", "error", "match"),
    [
        ("one string", TypeError, "sequence with one entry per row"),
        (["a", "b"], ValueError, "must have 3 entries"),
        ([b"a", b"b", b"c"], TypeError, "decode bytes"),
        ([{"x": 1}, "b", "c"], TypeError, "got dict"),
        ({"caption": ["a", "b"]}, ValueError, r"meta\['caption'\] must have 3"),
        ({1: ["a", "b", "c"]}, TypeError, "keys must be non-empty strings"),
        ({f"c{i}": ["a"] * 3 for i in range(17)}, ValueError, "at most 16 columns"),
    ],
)
def test_bad_meta_is_refused_with_a_clear_error(tmp_path, meta, error, match):
    a, b = _batch(3)
    with Monitor(tmp_path / "e", snapshot_every=1, strict=True) as mon, pytest.raises(error, match=match):
        mon.log(0, a, b, meta=meta)
        mon.log_embeddings(0, a, meta=meta)


def test_a_version_1_run_reads_with_meta_none_and_resumes_as_version_2(tmp_path):
    path = tmp_path / "old"
    a, b = _batch(4)
    with Monitor(path, snapshot_every=1, snapshot_size=4, pairwise_every=0) as mon:
        mon.log(0, a, b)
    # Rewrite the run as cldiag schema version 1 wrote it: no meta column, version 1 in meta.json.
    for part in (path / "embeddings").rglob("*.parquet"):
        table = pq.read_table(part)
        pq.write_table(table.drop_columns(["meta"]), part)
    meta = json.loads((path / "meta.json").read_text())
    (path / "meta.json").write_text(json.dumps({**meta, "schema_version": 1}))

    run = read_run(path)
    assert not run.problems
    emb = run.embeddings(0)
    assert len(emb) == 8 and emb.meta.tolist() == [None] * 8
    assert run.embedding_matrix(0)[1].meta.tolist() == [None] * 8
    sampled, info = run.embedding_matrix(0, max_rows=5)  # the streamed sample fills the column too
    assert sampled.shape == (5, 8) and info.meta.tolist() == [None] * 5
    assert compact_run(path).problems == ()

    with Monitor(path, if_exists="resume", snapshot_every=1, snapshot_size=4, pairwise_every=0) as mon:
        mon.log(1, a, b, meta=list("abcd"))
    run = read_run(path)
    assert run.meta["schema_version"] == schema.SCHEMA_VERSION == 2
    assert run.embeddings(0).meta.tolist() == [None] * 8
    assert run.embeddings(1).meta.tolist() == list("abcd") * 2


def test_encode_meta_caps_every_cell():
    long = "é" * (schema.META_MAX_CHARS + 1)
    (text,) = schema.encode_meta({"a": [long], "b": ["short"]}, [0])
    cells = json.loads(text)
    assert len(cells["a"]) == schema.META_MAX_CHARS and cells["b"] == "short"
    assert schema.encode_meta(["x" * schema.META_MAX_CHARS], [0]) == ["x" * schema.META_MAX_CHARS]


def test_pandas_and_numpy_metadata_is_read_by_position():
    import numpy as np
    import pandas as pd

    series = pd.Series(["c", "a", "b"], index=[2, 0, 1])  # index labels that differ from positions
    assert schema.encode_meta(series, [0, 1, 2]) == ["c", "a", "b"]
    frame = pd.DataFrame({"file": ["x.png", "y.png"], "n": [np.int64(4), np.nan]}, index=[7, 3])
    assert schema.encode_meta({c: frame[c] for c in frame}, [0, 1]) == [
        '{"file": "x.png", "n": "4.0"}',
        '{"file": "y.png"}',
    ]
    assert schema.encode_meta(np.array(["p", "q"]), [1]) == ["q"]


def test_the_final_snapshot_at_close_keeps_the_last_batchs_metadata(tmp_path):
    with Monitor(tmp_path / "f", snapshot_every=100, snapshot_size=8, pairwise_every=0, strict=True) as mon:
        for step in range(3):
            a, b = _batch(4, seed=step)
            mon.log(step, a, b, meta=[f"s{step}-{i}" for i in range(4)])
    run = read_run(tmp_path / "f")
    assert run.snapshot_steps() == [0, 2]  # the cadence's step 0 and the final one at close
    emb = run.embeddings(2)
    assert emb.meta.tolist() == [f"s2-{i}" for i in range(4)] * 2  # both views of the last batch
