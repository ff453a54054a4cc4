"""Run summaries (cldiag/summary.py): equal to what the reader computes; old runs; hostile files."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from cldiag import figures as F
from cldiag import schema, summary
from cldiag.reader import list_runs, read_run
from cldiag.store import RunStore, snapshot_dir

EVERY = {schema.M_LOSS: 1, schema.M_ALIGNMENT: 1, schema.M_UNIFORMITY: 5, "user/custom": 3}
METRICS = list(EVERY)


def _scalars(steps: np.ndarray, rng: np.random.Generator, metrics: list[str] = METRICS) -> pa.Table:
    rows = [(int(s), m, float(rng.standard_normal())) for s in steps for m in metrics if s % EVERY[m] == 0]
    step, metric, value = zip(*rows, strict=True)
    return pa.table({"step": step, "metric": metric, "value": value}, schema=schema.SCALARS)


def _hist(steps: np.ndarray) -> pa.Table:
    at = steps[steps % 5 == 0]
    n = at.size
    return pa.table(
        {
            "step": np.repeat(at, 2),
            "kind": ["pos", "neg"] * n,
            "bin_left": np.zeros(2 * n, np.float32),
            "bin_right": np.ones(2 * n, np.float32),
            "count": np.arange(2 * n),
        },
        schema=schema.HISTOGRAMS,
    )


def write_run(path: Path, *, flushes: int = 4, status: str = schema.STATUS_FINISHED, seed: int = 0) -> list:
    """A run written part by part (as a writer flushing every 10 steps); returns each flush's tables."""
    rng = np.random.default_rng(seed)
    store = RunStore(path)
    store.makedirs()
    meta = schema.new_meta(
        name=path.name,
        config={"temperature": 0.2},
        modalities=("view1", "view2"),
        two_modality=False,
        dim=4,
        cldiag_version="test",
        torch_version="none",
    )
    store.write_meta(meta)
    written = []
    for seq in range(flushes):
        steps = np.arange(10 * seq, 10 * seq + 10, dtype=np.int64)
        tables = {"scalars": _scalars(steps, rng), "histograms": _hist(steps)}
        # A metric logged twice at one step: the later row wins, as in the reader's last value.
        tables["scalars"] = pa.concat_tables([tables["scalars"], _scalars(steps[-1:], rng, [schema.M_LOSS])])
        for name, table in tables.items():
            store.write_part(name, table, seq)
        written.append(tables)
    vec = pa.FixedSizeListArray.from_arrays(pa.array(np.ones(8, np.float32)), 4)
    snap = pa.table(
        {
            "step": [30, 30],
            "sample_id": [0, 1],
            "modality": ["view1"] * 2,
            "label": [0, 1],
            "vector": vec,
            "meta": [None, None],
        },
        schema=schema.embeddings_schema(4),
    )
    store.write_part(snapshot_dir(30), snap, 99)
    meta.update(status=status, last_step=10 * flushes - 1)
    store.write_meta(meta)
    return written


def _same(a: dict, b: dict) -> None:
    a, b = dict(a), dict(b)
    a.pop("updated"), b.pop("updated")
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_summary_equals_what_the_reader_computes(tmp_path):
    write_run(tmp_path / "r")
    run = read_run(tmp_path / "r")
    s = summary.summarize_run(run)
    scalars = run.scalars()
    expected = F.last_values(scalars)
    assert set(s["metrics"]) == set(expected)
    for metric, value in expected.items():
        assert s["metrics"][metric]["value"] == value
        assert s["metrics"][metric]["step"] == scalars.loc[scalars["metric"] == metric, "step"].max()
    assert s["last_step"] == run.last_step() == 39
    assert s["tables"]["scalars"]["rows"] == len(scalars)
    assert s["tables"]["histograms"] == {"rows": len(run.histograms()), "first_step": 0, "last_step": 35}
    assert s["tables"]["spectra"] == {"rows": 0, "first_step": None, "last_step": None}
    assert s["tables"]["embeddings"] == {"snapshots": 1, "last_step": 30}
    assert s["meta"] == {"status": "finished", "last_step": 39, "created": run.meta["created"]}
    summary.check_summary(json.loads(json.dumps(s)))


def test_folding_flush_by_flush_equals_the_whole_run(tmp_path):
    flushes = write_run(tmp_path / "r")
    run = read_run(tmp_path / "r")
    folded = summary.summarize(run.meta, flushes[0], [], None)
    for tables in flushes[1:]:
        folded = summary.summarize(run.meta, tables, [30], folded)
    _same(folded, summary.summarize_run(run))


def test_metric_cap_keeps_cldiags_own_first_and_folds_the_same(tmp_path, monkeypatch):
    monkeypatch.setattr(summary, "MAX_SUMMARY_METRICS", 3)
    flushes = write_run(tmp_path / "r")
    run = read_run(tmp_path / "r")
    whole = summary.summarize_run(run)
    assert list(whole["metrics"]) == [schema.M_ALIGNMENT, schema.M_LOSS, schema.M_UNIFORMITY]
    assert whole["metrics_truncated"] is True
    folded = None
    for tables in flushes:
        folded = summary.summarize(run.meta, tables, [30], folded)
    _same(folded, whole)


def test_run_without_summary_is_computed_and_cached_once_finished(tmp_path):
    write_run(tmp_path / "old")
    run = read_run(tmp_path / "old")
    assert summary.stored_summary(run) is None
    computed = summary.run_summary(run)
    cached = tmp_path / "old" / ".cldiag_cache" / "summary.json"
    assert cached.is_file() and (tmp_path / "old" / ".cldiag_cache" / ".cldiag-owned").is_file()
    again = summary.stored_summary(read_run(tmp_path / "old"))
    assert again is not None
    _same(again, computed)
    assert not (tmp_path / "old" / "summary.json").exists()  # the writer's file is the writer's


def test_running_run_is_never_cached_by_readers(tmp_path):
    write_run(tmp_path / "live", status=schema.STATUS_RUNNING)
    summary.run_summary(read_run(tmp_path / "live"))
    assert not (tmp_path / "live" / ".cldiag_cache").exists()


def test_cache_not_written_through_a_link(tmp_path):
    write_run(tmp_path / "r")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, tmp_path / "r" / ".cldiag_cache")
    summary.run_summary(read_run(tmp_path / "r"))
    assert list(elsewhere.iterdir()) == []


def test_out_of_date_summary_is_recomputed(tmp_path):
    write_run(tmp_path / "r")
    store = RunStore(tmp_path / "r")
    summary.after_flush(store, store.read_meta())
    old = summary.load_summary(store)
    meta = store.read_meta()
    store.write_part("scalars", _scalars(np.array([40]), np.random.default_rng(1), [schema.M_LOSS]), 50)
    meta["last_step"] = 40  # a writer that flushed but died before its summary
    store.write_meta(meta)
    run = read_run(tmp_path / "r")
    assert summary.stored_summary(run) is None
    fresh = summary.run_summary(run)
    assert fresh["metrics"][schema.M_LOSS]["step"] == 40 != old["metrics"][schema.M_LOSS]["step"]


def _hostile(kind: str, path: Path, good: dict) -> None:
    target = path / summary.SUMMARY_FILE
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "huge":
        target.write_text(" " * (summary.MAX_SUMMARY_BYTES + 1) + "{}")
    elif kind == "not-json":
        target.write_text("{not json")
    elif kind == "deep":
        target.write_text("[" * 100_000 + "]" * 100_000)
    elif kind == "link-out":
        outside = path.parent / "outside.json"
        outside.write_text(json.dumps(good))
        os.symlink(outside, target)
    else:
        bad = json.loads(json.dumps(good))
        if kind == "nan-step":
            bad["metrics"][schema.M_LOSS]["step"] = float("nan")
        elif kind == "bool-rows":
            bad["tables"]["scalars"]["rows"] = True
        elif kind == "string-value":
            bad["metrics"][schema.M_LOSS]["value"] = "<script>"
        elif kind == "many-metrics":
            bad["metrics"] = {
                f"m{i}": {"step": 1, "value": 1.0} for i in range(summary.MAX_SUMMARY_METRICS + 1)
            }
        elif kind == "other-version":
            bad["summary_version"] = 99
        target.write_text(json.dumps(bad))


HOSTILE = [
    ("fifo", "not a regular file"),
    ("huge", "limit for summary.json"),
    ("not-json", "not valid JSON"),
    ("deep", "nested too deeply"),
    ("link-out", "links outside the run directory"),
    ("nan-step", "no valid step"),
    ("bool-rows", "rows is not a count"),
    ("string-value", "not a number"),
    ("many-metrics", "at most 256"),
    ("other-version", "summary_version is 99"),
]


@pytest.mark.parametrize(("kind", "reason"), HOSTILE)
def test_hostile_summary_is_ignored_with_its_reason(tmp_path, kind, reason):
    write_run(tmp_path / "r")
    good = summary.summarize_run(read_run(tmp_path / "r"))
    _hostile(kind, tmp_path / "r", good)
    run = read_run(tmp_path / "r")
    got = summary.run_summary(run, cache=False)  # a FIFO must not block this call
    _same(got, good)
    assert any("summary.json" in p and reason in p for p in run.problems), run.problems


def test_after_flush_never_raises_and_keeps_the_previous(tmp_path):
    write_run(tmp_path / "r")
    store = RunStore(tmp_path / "r")
    first = summary.after_flush(store, store.read_meta())
    assert first is not None and summary.is_current(first, store.read_meta())
    (tmp_path / "r" / summary.SUMMARY_FILE).unlink()
    (tmp_path / "r" / summary.SUMMARY_FILE).mkdir()  # the write now fails
    assert summary.after_flush(store, store.read_meta(), first) == first


def test_list_runs_reads_no_table(tmp_path, monkeypatch):
    for i in range(3):
        write_run(tmp_path / f"r{i}", flushes=1, seed=i)
    (tmp_path / "not-a-run").mkdir()
    os.symlink(tmp_path / "r0", tmp_path / "r0-link")
    monkeypatch.setattr(RunStore, "read_table", lambda *a, **k: pytest.fail("list_runs read a table"))
    runs = list_runs(tmp_path)
    assert [r.name for r in runs] == ["r0", "r0", "r1", "r2"]


def test_nonfinite_last_values_survive_the_file(tmp_path):
    write_run(tmp_path / "r", flushes=1)
    store = RunStore(tmp_path / "r")
    meta = store.read_meta()
    nan = pa.table({"step": [9], "metric": [schema.M_LOSS], "value": [math.nan]}, schema=schema.SCALARS)
    store.write_part("scalars", nan, 5)
    summary.after_flush(store, meta)
    loaded = summary.load_summary(store)
    assert math.isnan(loaded["metrics"][schema.M_LOSS]["value"])


def _writer(path: Path, flushes: list, compact_after: set[int]) -> dict:
    """Replay flushes as the writer does: parts, meta.json, then the hook; compaction after some."""
    from cldiag.maintenance import compact_run

    store = RunStore(path)
    meta = store.read_meta()
    for table in summary.STEP_TABLES:  # start over: the parts are written again below, flush by flush
        for part in store.part_files(table):
            store.remove(part)
    meta.update(status=schema.STATUS_RUNNING, last_step=None)
    previous = None
    for seq, tables in enumerate(flushes):
        for name, table in tables.items():
            store.write_part(name, table, 100 + seq)
        meta["last_step"] = 10 * seq + 9
        store.write_meta(meta)
        previous = summary.after_flush(store, meta, previous)
        if seq in compact_after:
            compact_run(path)
    meta["status"] = schema.STATUS_FINISHED
    store.write_meta(meta)
    return summary.after_flush(store, meta, previous)


def test_hook_reads_only_new_parts_and_compaction_counts_rows_once(tmp_path, monkeypatch):
    flushes = write_run(tmp_path / "r")
    reads: list[str] = []
    hook = summary.after_flush

    def counted(store, meta, previous=None):
        real = RunStore.read_table
        monkeypatch.setattr(
            RunStore, "read_table", lambda s, p, *a, **k: reads.append(p) or real(s, p, *a, **k)
        )
        try:
            return hook(store, meta, previous)
        finally:
            monkeypatch.setattr(RunStore, "read_table", real)

    monkeypatch.setattr(summary, "after_flush", counted)
    final = _writer(tmp_path / "r", flushes, compact_after={1})
    run = read_run(tmp_path / "r")
    _same(summary.load_summary(run._store), summary.summarize_run(run))
    assert "_parts" not in json.loads((tmp_path / "r" / summary.SUMMARY_FILE).read_text())
    assert final["meta"]["status"] == "finished"
    assert len(reads) == 2 * len(flushes)  # each flush's two parts once; merged parts only by their footer


def _train(path: Path, steps: int, **kwargs) -> None:
    import torch

    from cldiag import Monitor

    g = torch.Generator().manual_seed(0)
    cadence = dict(pairwise_every=3, spectrum_every=7, curves_every=11, snapshot_every=13, snapshot_size=16)
    with Monitor(path, config={"temperature": 0.2}, flush_every=5, **cadence, **kwargs) as mon:
        for step in range(steps):
            a = torch.randn(32, 8, generator=g)
            mon.log(step, a, a + 0.1 * torch.randn(32, 8, generator=g), temperature=0.2, loss=float(step))
            mon.log_scalar(step, "user/lr", 0.1 / (step + 1))
            if step == 9:
                mon.flush(wait=True)  # the writer has written this flush, its meta.json and summary
                run = read_run(path)
                live = summary.load_summary(run._store)
                assert summary.is_current(live, run.meta)
                _same(live, summary.summarize_run(run))


@pytest.mark.parametrize("compact", [True, False])
def test_monitor_writes_the_summary_the_reader_computes(tmp_path, compact):
    _train(tmp_path / "r", 30, compact_on_close=compact)
    run = read_run(tmp_path / "r")
    written = summary.load_summary(run._store)
    assert written["meta"]["status"] == "finished" and summary.is_current(written, run.meta)
    _same(written, summary.summarize_run(run))
    assert written["metrics"]["user/lr"] == {"step": 29, "value": pytest.approx(0.1 / 30)}
