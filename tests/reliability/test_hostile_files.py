"""Hostile run files: the reader skips what it cannot trust, says why (Run.problems / list_runs problems),
keeps every good row, and never crashes."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rel_helpers import canonical, make_run

from cldiag import list_runs, read_run
from cldiag.schema import SchemaVersionError


@pytest.fixture
def run_path(tmp_path):
    path = tmp_path / "root" / "good"
    make_run(path, steps=6)
    return path


def _parts(path, table):
    return sorted(p for p in (path / table).iterdir() if p.name.startswith("part-"))


def _expect_skipped(path, bad_name, reason, table="scalars"):
    """Reading ``table`` gives the rows of every other part and one message naming the bad part."""
    good = [pq.read_table(p) for p in _parts(path, table) if p.name != bad_name]
    run = read_run(path)
    df = getattr(run, table)()
    assert len(df) == sum(t.num_rows for t in good)
    assert len(run.problems) == 1 and bad_name in run.problems[0] and reason in run.problems[0], run.problems
    return run


def test_truncated_part(run_path):
    victim = _parts(run_path, "scalars")[2]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])  # e.g. copied while a non-atomic writer was busy
    _expect_skipped(run_path, victim.name, "unreadable")


@pytest.mark.parametrize("content", [b"", b"PAR1" + os.urandom(300) + b"PAR1", os.urandom(64)])
def test_corrupt_or_empty_part(run_path, content):
    victim = _parts(run_path, "histograms")[0]
    victim.write_bytes(content)
    _expect_skipped(run_path, victim.name, "unreadable", table="histograms")


def test_part_with_a_missing_column(run_path):
    name = "part-000000900-feedface.parquet"
    pq.write_table(pa.table({"step": [100], "metric": ["alignment"]}), run_path / "scalars" / name)
    _expect_skipped(run_path, name, "missing columns ['value']")


@pytest.mark.parametrize(
    "column",
    [pa.array(["not a number"]), pa.array([[1.0, 2.0]], pa.list_(pa.float64())), pa.array([{"x": 1}])],
    ids=["string", "list", "struct"],
)
def test_part_with_a_column_of_another_type(run_path, column):
    name = "part-000000901-feedface.parquet"
    pq.write_table(
        pa.table({"step": [100], "metric": ["alignment"], "value": column}), run_path / "scalars" / name
    )
    _expect_skipped(run_path, name, "do not match the schema")


def test_unknown_extra_columns_are_dropped(run_path):
    before = canonical(read_run(run_path).scalars())
    name = "part-000000902-feedface.parquet"
    extra = pa.table({"step": [100], "metric": ["knn_acc"], "value": [0.5], "written_by": ["a newer cldiag"]})
    pq.write_table(extra, run_path / "scalars" / name)
    run = read_run(run_path)
    df = run.scalars()
    assert list(df.columns) == ["step", "metric", "value"] and run.problems == []
    assert len(df) == len(before) + 1 and df[df.step == 100].value.item() == 0.5


def test_snapshot_part_of_another_dim(run_path):
    step = read_run(run_path).snapshot_steps()[0]
    snap = run_path / "embeddings" / f"step={step}"
    good = pq.read_table(next(snap.iterdir()))
    wide = good.set_column(
        4, "vector", pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(good.num_rows * 3, np.float32)), 3)
    )
    pq.write_table(wide, snap / "part-000000903-feedface.parquet")
    run = read_run(run_path)
    matrix, info = run.embedding_matrix(step)
    # 24 pairs, both views; the run's dim is 8, so the foreign part is skipped
    assert matrix.shape == (48, 8) and len(info) == 48
    assert len(run.embeddings(step)) == 48
    assert any("part-000000903" in p for p in run.problems), run.problems


def test_leftover_temp_files_and_strangers_are_ignored(run_path):
    before = canonical(read_run(run_path).scalars())
    (run_path / "scalars" / ".part-000000904-0000.parquet.1234abcd.tmp").write_bytes(b"PAR1 half a file")
    (run_path / "scalars" / "README.txt").write_text("not a part")
    (run_path / "embeddings" / "step=abc").mkdir()
    (run_path / "embeddings" / "misc").mkdir()
    run = read_run(run_path)
    pd_equal = canonical(run.scalars()).equals(before)
    assert pd_equal and run.problems == [] and run.snapshot_steps() == [0]


def test_meta_json_problems(tmp_path):
    root = tmp_path / "root"
    for name in ("ok", "future", "no_meta", "bad_json", "not_object"):
        make_run(root / name, steps=2, snapshot_every=0)
    meta = json.loads((root / "future" / "meta.json").read_text())
    (root / "future" / "meta.json").write_text(json.dumps({**meta, "schema_version": 99}))
    (root / "no_meta" / "meta.json").unlink()
    (root / "bad_json" / "meta.json").write_text('{"schema_version": 1, ')
    (root / "not_object" / "meta.json").write_text("[1, 2]")

    problems: list[str] = []
    runs = list_runs(root, problems=problems)
    assert [r.name for r in runs] == ["ok"]
    text = "\n".join(problems)
    assert "future" in text and "version 99" in text
    assert "bad_json" in text and "not valid JSON" in text
    assert "not_object" in text and "JSON object" in text
    assert "no_meta" in text and "no meta.json" in text  # it holds run tables: worth a message
    with pytest.raises(SchemaVersionError, match="version 99"):
        read_run(root / "future")
    with pytest.raises(FileNotFoundError, match=r"no meta\.json"):
        read_run(root / "no_meta")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_run(root / "bad_json")


def test_symlinks_out_of_the_root(tmp_path):
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    make_run(root / "inside", steps=2, snapshot_every=0)
    make_run(elsewhere / "secret", steps=2, snapshot_every=0)
    (root / "escape").symlink_to(elsewhere / "secret", target_is_directory=True)
    (root / "alias").symlink_to(root / "inside", target_is_directory=True)  # stays inside: allowed
    problems: list[str] = []
    assert [r.name for r in list_runs(root, problems=problems)] == ["inside", "inside"]
    assert len(problems) == 1 and "escape" in problems[0] and "outside" in problems[0]

    # Inside a run: a part file or a whole table directory linked to data elsewhere is not read either.
    secret_part = next((elsewhere / "secret" / "scalars").iterdir())
    (root / "inside" / "scalars" / "part-000000905-link.parquet").symlink_to(secret_part)
    os.rename(root / "inside" / "histograms", tmp_path / "moved")
    (root / "inside" / "histograms").symlink_to(elsewhere / "secret" / "histograms", target_is_directory=True)
    run = read_run(root / "inside")
    assert len(run.scalars()) == sum(
        pq.read_table(p).num_rows for p in _parts(root / "inside", "scalars")[:-1]
    )
    assert run.histograms().empty
    assert sum("outside" in p for p in run.problems) == 2, run.problems
