"""Run store and reader: atomic parts, live reads, corrupt parts, downsampling."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch

from cldiag import Monitor, list_runs, read_run, schema
from cldiag.reader import downsample
from cldiag.store import RunStore, RunStoreError


def _meta(name: str = "r") -> dict:
    return schema.new_meta(
        name=name,
        config={"tau": 0.1},
        modalities=("view1", "view2"),
        two_modality=False,
        dim=4,
        cldiag_version="test",
        torch_version="test",
    )


def _scalars(steps, metric="m"):
    steps = list(steps)
    return pa.table(
        {"step": steps, "metric": [metric] * len(steps), "value": [float(s) for s in steps]},
        schema=schema.SCALARS,
    )


def test_part_write_is_atomic_and_leaves_no_temp(tmp_path):
    store = RunStore(tmp_path / "r")
    store.makedirs()
    store.write_meta(_meta())
    path = store.write_part("scalars", _scalars(range(3)), 1)
    assert os.path.basename(path).startswith("part-000000001-")
    assert os.listdir(tmp_path / "r" / "scalars") == [os.path.basename(path)]
    # a temporary file of an interrupted write is never listed as a part
    (tmp_path / "r" / "scalars" / ".part-000000002-x.parquet.1234.tmp").write_bytes(b"half")
    assert store.part_files("scalars") == [path]


def test_corrupt_and_foreign_parts_are_skipped_and_reported(tmp_path):
    store = RunStore(tmp_path / "r")
    store.makedirs()
    store.write_meta(_meta())
    store.write_part("scalars", _scalars(range(3)), 1)
    good = store.write_part("scalars", _scalars(range(3, 6)), 2)
    with open(good, "rb") as fh:
        data = fh.read()
    (tmp_path / "r" / "scalars" / "part-000000003-trunc.parquet").write_bytes(data[: len(data) // 2])
    extra = pa.table({"step": [9], "metric": ["m"], "value": [9.0], "surprise": ["x"]})
    store.write_part("scalars", extra, 4)
    store.write_part("scalars", pa.table({"step": [10], "value": [1.0]}), 5)  # no metric column
    run = read_run(tmp_path / "r")
    df = run.scalars()
    assert list(df.step) == [0, 1, 2, 3, 4, 5, 9]  # extra column dropped, row kept
    assert len(run.problems) == 2
    assert any("part-000000003-trunc" in p for p in run.problems)
    assert any("missing columns ['metric']" in p for p in run.problems)


def test_empty_run_gives_typed_empty_frames(tmp_path):
    store = RunStore(tmp_path / "e")
    store.makedirs()
    store.write_meta(_meta("e"))
    run = read_run(tmp_path / "e")
    assert list(run.scalars().columns) == ["step", "metric", "value"]
    assert list(run.histograms().columns) == ["step", "kind", "bin_left", "bin_right", "count"]
    assert run.spectra().empty and run.temperature().empty and run.embeddings().empty
    assert run.snapshot_steps() == [] and run.metrics() == [] and run.last_step() is None
    matrix, info = run.embedding_matrix()
    assert matrix.shape == (0, 0) and info.empty


def test_read_run_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no meta\.json"):
        read_run(tmp_path)
    (tmp_path / "meta.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_run(tmp_path)
    with pytest.raises(KeyError, match="no embedding snapshot at step 5"):
        store = RunStore(tmp_path / "x")
        store.makedirs()
        store.write_meta(_meta())
        read_run(tmp_path / "x").embeddings(5)


def test_list_runs_skips_non_runs_bad_runs_and_escaping_links(tmp_path):
    root = tmp_path / "root"
    for name in ("b", "a"):
        s = RunStore(root / name)
        s.makedirs()
        s.write_meta(_meta(name))
    (root / "not-a-run").mkdir()
    (root / "broken").mkdir()
    (root / "broken" / "meta.json").write_text("[]")
    outside = RunStore(tmp_path / "outside")
    outside.makedirs()
    outside.write_meta(_meta("outside"))
    os.symlink(tmp_path / "outside", root / "link")
    problems: list[str] = []
    runs = list_runs(root, problems=problems)
    assert [r.name for r in runs] == ["a", "b"]
    assert any("links outside" in p for p in problems)
    assert any("broken" in p for p in problems)
    assert [r.name for r in list_runs(root / "a")] == ["a"]  # a run directory is its own root
    assert list_runs(tmp_path / "missing") == []


def test_version_token_changes_on_new_part(tmp_path):
    store = RunStore(tmp_path / "r")
    store.makedirs()
    store.write_meta(_meta())
    run = read_run(tmp_path / "r")
    before = run.version_token()
    assert run.version_token() == before
    store.write_part("scalars", _scalars([1]), 1)
    assert run.version_token() != before


def test_overwrite_refuses_a_directory_that_is_not_a_run(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(RunStoreError, match="not a cldiag run"):
        RunStore(tmp_path).clear()
    assert (tmp_path / "precious.txt").exists()


def test_reader_polling_while_monitor_flushes(tmp_path):
    """A reader polling a live run never errors, never sees a row twice, and ends with every row."""
    path = tmp_path / "live"
    steps = 300
    errors: list[BaseException] = []
    done = threading.Event()
    seen_max = []

    def poll() -> None:
        run = None
        while not done.is_set() or run is None:
            try:
                if run is None:
                    if not (path / "meta.json").exists():
                        continue
                    run = read_run(path)
                df = run.scalars(["alignment"])
                assert not df.step.duplicated().any(), "duplicate step seen"
                assert list(df.step) == list(range(len(df))), "gap in steps"
                assert not run.problems, run.problems
                seen_max.append(len(df))
            except BaseException as exc:
                errors.append(exc)
                return
            time.sleep(0.005)

    reader = threading.Thread(target=poll)
    reader.start()
    with Monitor(path, flush_every=7, pairwise_every=5, snapshot_every=50, snapshot_size=64) as mon:
        for step in range(steps):
            a = torch.randn(32, 8)
            mon.log(step, a, a + 0.1 * torch.randn(32, 8))
            if step % 20 == 0:
                time.sleep(0.01)  # let the reader interleave with flushes
    done.set()
    reader.join(timeout=30)
    assert not errors, errors
    assert len(seen_max) > 10
    assert sorted(read_run(path).scalars(["alignment"]).step) == list(range(steps))


def test_downsample_keeps_extremes_and_bounds_points():
    rng = np.random.default_rng(0)
    n = 100_000
    values = rng.normal(size=n)
    values[54_321] = 50.0  # one spike
    values[77_777] = -40.0
    df = pd.DataFrame({"step": np.arange(n), "metric": "x", "value": values})
    short = pd.DataFrame({"step": np.arange(10), "metric": "y", "value": np.arange(10.0)})
    out = downsample(pd.concat([df, short]), max_points=2000)
    x = out[out.metric == "x"]
    assert len(x) <= 2002
    assert x.value.max() == 50.0 and x.value.min() == -40.0
    assert x.step.iloc[0] == 0 and x.step.iloc[-1] == n - 1
    assert x.step.is_monotonic_increasing
    pd.testing.assert_frame_equal(out[out.metric == "y"].reset_index(drop=True), short)
    with pytest.raises(ValueError, match="max_points"):
        downsample(df, max_points=2)


def test_heartbeat_age_reads_naive_times_as_utc_and_says_none_when_unparsable():
    import datetime as dt

    now = dt.datetime(2026, 1, 1, 12, 0, 30, tzinfo=dt.timezone.utc)
    assert schema.heartbeat_age({"heartbeat": "2026-01-01T12:00:00+00:00"}, now) == 30.0
    assert schema.heartbeat_age({"heartbeat": "2026-01-01T12:00:00"}, now) == 30.0  # naive = UTC
    assert schema.heartbeat_age({"created": "2026-01-01T11:59:30+00:00"}, now) == 60.0  # no beat yet
    assert schema.heartbeat_age({"heartbeat": "yesterday"}, now) is None


def test_embedding_matrix_samples_rows_across_parts_without_a_whole_read(tmp_path):
    store = RunStore(tmp_path / "s")
    store.makedirs()
    store.write_meta({**_meta("s"), "dim": 3})
    rng = np.random.default_rng(1)
    for seq, (lo, n) in enumerate([(0, 700), (700, 500)]):
        ids = np.arange(lo, lo + n)
        vectors = np.column_stack([ids, ids * 2, ids * 3]).astype(np.float32) + rng.random((n, 1), np.float32)
        store.write_part(
            "embeddings/step=4",
            pa.table(
                {
                    "step": pa.array(np.full(n, 4), pa.int64()),
                    "sample_id": pa.array(ids, pa.int64()),
                    "modality": ["view1"] * n,
                    "label": pa.array(ids % 5, pa.int64()),
                    "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), 3),
                    "meta": pa.nulls(n, pa.string()),
                },
                schema=schema.embeddings_schema(3),
            ),
            seq,
        )
    run = read_run(tmp_path / "s")
    full, full_info = run.embedding_matrix(4)
    assert run.snapshot_rows(4) == 1200 == len(full_info)
    sample, info = run.embedding_matrix(4, max_rows=300, seed=7)
    assert sample.shape == (300, 3) and len(info) == 300
    ids = info["sample_id"].to_numpy()
    assert (np.diff(ids) > 0).all() and ids.min() < 700 <= ids.max()  # both parts, file order, no repeat
    np.testing.assert_array_equal(sample, full[ids])  # each sampled row is the row of that sample id
    assert np.array_equal(run.embedding_matrix(4, max_rows=5000)[0], full)  # small enough: every row
    with pytest.raises(ValueError, match="max_rows"):
        run.embedding_matrix(4, max_rows=0)
