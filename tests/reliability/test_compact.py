"""compact_run merges parts atomically: no row lost or doubled, also mid-compaction and under readers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rel_helpers import PYTHON, assert_same_tables, batch, canonical, make_run, part_counts, read_all

from cldiag import Monitor, read_run
from cldiag.maintenance import LOCK_FILE, compact_run
from cldiag.schema import SchemaVersionError
from cldiag.store import RunStore, RunStoreError


def test_compact_keeps_every_row_once(tmp_path):
    path = tmp_path / "run"
    make_run(path)
    before, counts = read_all(path), part_counts(path)
    assert counts["scalars"] == 12 and counts["embeddings/step=0"] == 2  # the run really has many parts
    result = compact_run(path)
    assert_same_tables(before, read_all(path))
    assert part_counts(path) == dict.fromkeys(counts, 1)
    assert result.parts_before == sum(counts.values())
    assert result.parts_after == len(counts)
    assert result.rows == sum(len(df) for df in before.values())
    assert result.problems == ()
    again = compact_run(path)  # idempotent: nothing left to merge
    assert (again.parts_before, again.parts_after, again.rows) == (len(counts), len(counts), 0)
    assert_same_tables(before, read_all(path))


def test_compacted_run_can_be_resumed_and_compacted_again(tmp_path):
    path = tmp_path / "run"
    make_run(path)
    compact_run(path)
    with (
        pytest.warns(RuntimeWarning, match="resumed"),
        Monitor(path, if_exists="resume", flush_every=1, compact_on_close=False) as mon,
    ):
        for step in range(10, 16):  # 10 and 11 exist already: skipped
            mon.log(step, *batch(step)[:2])
    before = read_all(path)
    assert sorted(before["scalars"].query("metric == 'alignment'").step) == list(range(16))
    compact_run(path)
    assert_same_tables(before, read_all(path))


def test_interrupted_compaction_leaves_a_consistent_run(tmp_path, monkeypatch):
    """Killed after writing the merged part, before deleting all originals: readers still count once."""
    path = tmp_path / "run"
    make_run(path)
    before = read_all(path)
    removed = []
    real_remove = RunStore.remove

    def flaky_remove(self, p):
        if len(removed) >= 3:
            raise OSError("simulated crash while deleting originals")
        removed.append(p)
        real_remove(self, p)

    monkeypatch.setattr(RunStore, "remove", flaky_remove)
    with pytest.raises(OSError, match="simulated crash"):
        compact_run(path)
    monkeypatch.undo()
    assert part_counts(path)["scalars"] == 12 - 3 + 1  # originals and the merged part side by side
    assert_same_tables(before, read_all(path))
    assert not (path / LOCK_FILE).exists()
    compact_run(path)  # finishes the job: leftovers deleted, the rest merged
    assert set(part_counts(path).values()) == {1}
    assert_same_tables(before, read_all(path))


def test_reader_whose_listing_went_stale_lists_again(tmp_path, monkeypatch):
    """A reader that listed the originals just before they were compacted away reads the merged part."""
    path = tmp_path / "run"
    make_run(path)
    before = read_all(path)
    run = read_run(path)
    stale = {rel: run._store.part_files(rel) for rel in ("scalars", "histograms")}
    compact_run(path)
    real = RunStore.part_files
    served = set()

    def first_listing_is_stale(self, rel):
        if rel in stale and rel not in served:
            served.add(rel)
            return stale[rel]
        return real(self, rel)

    monkeypatch.setattr(RunStore, "part_files", first_listing_is_stale)
    assert_same_tables({"s": before["scalars"]}, {"s": canonical(run.scalars())})
    assert_same_tables({"h": before["histograms"]}, {"h": canonical(run.histograms())})
    assert served == {"scalars", "histograms"}


def test_compact_while_monitor_writes_and_reader_polls(tmp_path):
    path = tmp_path / "live"
    steps = 240
    failures: list[BaseException] = []
    done = threading.Event()
    polls = [0]

    def poll() -> None:
        run = read_run(path)
        while not done.is_set():
            try:
                for r in (run, read_run(path)):  # a long-lived Run (cached parts) and a fresh one
                    df = r.scalars()
                    assert not df.duplicated(["step", "metric"]).any(), "a row counted twice"
                    assert not r.problems, r.problems
                    hist = r.histograms()
                    assert not hist.duplicated(["step", "kind", "bin_left"]).any(), "a histogram row twice"
                polls[0] += 1
            except BaseException as exc:
                failures.append(exc)
                return
            time.sleep(0.05)

    mon = Monitor(
        path,
        flush_every=3,
        pairwise_every=4,
        spectrum_every=0,
        curves_every=0,
        snapshot_every=0,
        compact_on_close=False,
    )
    reader = threading.Thread(target=poll)
    reader.start()
    compactions = 0
    try:
        for step in range(steps):
            mon.log(step, *batch(step)[:2])
            if step % 40 == 39:
                mon.flush(wait=True)
                compact_run(path)
                compactions += 1
    finally:
        mon.close()
        done.set()
        reader.join(timeout=60)
    assert not failures, failures
    assert polls[0] >= 2 and compactions == steps // 40
    df = read_run(path).scalars(["alignment"])
    assert sorted(df.step) == list(range(steps))
    hist = read_run(path).histograms()
    assert sorted(hist.step.unique()) == list(range(0, steps, 4))


def test_parts_it_cannot_merge_are_left_alone_and_reported(tmp_path):
    path = tmp_path / "run"
    make_run(path, steps=4)
    before = read_all(path)
    corrupt = path / "scalars" / "part-000000999-deadbeef.parquet"
    corrupt.write_bytes(b"PAR1 not really parquet")
    extra = path / "spectra" / "part-000000998-cafebabe.parquet"
    pq.write_table(
        pa.table(
            {
                "step": [99],
                "modality": ["view1"],
                "index": pa.array([0], pa.int32()),
                "eigenvalue": [1.0],
                "note": ["from another tool"],
            }
        ),
        extra,
    )
    result = compact_run(path)
    assert corrupt.exists() and extra.exists()
    assert any("unreadable" in p and corrupt.name in p for p in result.problems)
    assert any(extra.name in p and "note" in p for p in result.problems)
    after = read_run(path)
    assert_same_tables({"s": before["scalars"]}, {"s": canonical(after.scalars())})
    assert any(corrupt.name in p for p in after.problems)  # the reader still skips it and says so


def test_one_compaction_at_a_time(tmp_path):
    path = tmp_path / "run"
    make_run(path, steps=3)
    lock = path / LOCK_FILE
    lock.write_text(f"{socket.gethostname()} {os.getpid()}")  # held by a live process: this one
    with pytest.raises(RunStoreError, match="another compaction"):
        compact_run(path)
    assert part_counts(path)["scalars"] == 3
    dead = subprocess.run([PYTHON, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock.write_text(f"{socket.gethostname()} {int(dead.stdout)}")  # left by a process that has exited
    compact_run(path)
    assert part_counts(path)["scalars"] == 1 and not lock.exists()


def test_not_a_run(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no meta\.json"):
        compact_run(tmp_path)


def test_linked_parts_and_tables_are_left_alone(tmp_path):
    path, elsewhere = tmp_path / "run", tmp_path / "elsewhere"
    make_run(path, steps=3, snapshot_every=0)
    make_run(elsewhere, steps=3, snapshot_every=0)
    outside_part = next((elsewhere / "scalars").iterdir())
    link = path / "scalars" / "part-000000905-link.parquet"
    link.symlink_to(outside_part)
    os.rename(path / "spectra", tmp_path / "moved")
    (path / "spectra").symlink_to(elsewhere / "spectra", target_is_directory=True)
    before = part_counts(elsewhere)
    result = compact_run(path)
    assert link.is_symlink() and outside_part.exists() and part_counts(elsewhere) == before
    assert any("linked part" in p for p in result.problems) and any("spectra" in p for p in result.problems)
    assert part_counts(path)["scalars"] == 2  # the merged part and the link, which the reader skips


def test_other_schema_version_is_refused(tmp_path):
    path = tmp_path / "run"
    make_run(path, steps=3, snapshot_every=0)
    meta = json.loads((path / "meta.json").read_text())
    (path / "meta.json").write_text(json.dumps({**meta, "schema_version": 99}))
    with pytest.raises(SchemaVersionError, match="version 99"):
        compact_run(path)
    assert part_counts(path)["scalars"] == 3


def test_orphaned_temp_files_are_removed(tmp_path):
    path = tmp_path / "run"
    make_run(path, steps=2, snapshot_every=0)
    orphan = path / "scalars" / ".part-000000009-dead.parquet.0badf00d.tmp"  # a writer killed mid-write
    fresh = path / "scalars" / ".part-000000010-live.parquet.1badf00d.tmp"  # a live writer's, right now
    for f in (orphan, fresh):
        f.write_bytes(b"PAR1 half")
    hour_ago = time.time() - 3700
    os.utime(orphan, (hour_ago, hour_ago))
    result = compact_run(path)
    assert result.temp_files_removed == 1 and not orphan.exists() and fresh.exists()
