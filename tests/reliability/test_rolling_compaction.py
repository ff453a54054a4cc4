"""Rolling compaction: a long live run keeps few parts per table and every row is read back once."""

from __future__ import annotations

import threading

from rel_helpers import TABLES, batch, make_run, part_counts

from cldiag import Monitor, read_run
from cldiag.store import RunStore


def test_long_run_keeps_parts_bounded_and_every_row_once(tmp_path):
    path, cap, steps = tmp_path / "run", 6, 90
    counts_seen = []
    with Monitor(
        path,
        flush_every=1,  # one part per table and step: 90 parts per table without rolling compaction
        pairwise_every=1,
        spectrum_every=3,
        curves_every=3,
        snapshot_every=0,
        bins=10,
        compact_parts=cap,
        compact_on_close=False,
        final_snapshot=False,
    ) as mon:
        for step in range(steps):
            a, b, y = batch(step)
            mon.log(step, a, b, labels=y, temperature=0.2)
            mon.flush(wait=True)
            counts = part_counts(path)
            counts_seen.append(max(counts.get(t, 0) for t in TABLES))
        writer = mon._writer
    assert max(counts_seen) <= cap  # (flushes in flight: none, each flush is waited for)
    assert writer.compactions >= steps // cap - 2
    run = read_run(path)
    scalars = run.scalars()
    assert not scalars.duplicated(["step", "metric"]).any()
    assert sorted(scalars[scalars.metric == "alignment"].step) == list(range(steps))
    assert sorted(scalars[scalars.metric == "uniformity"].step) == list(range(steps))
    assert sorted(run.spectra().step.unique()) == list(range(0, steps, 3))
    hist = run.histograms()
    assert len(hist) == steps * 3 * 10 and not hist.duplicated(["step", "kind", "bin_left"]).any()


def test_readers_polling_during_rolling_compaction_never_double_count(tmp_path):
    path, steps = tmp_path / "run", 60
    stop, seen, errors = threading.Event(), [], []

    def poll():
        while not stop.is_set():
            try:
                df = read_run(path).scalars(["alignment"])
            except FileNotFoundError:
                continue
            except Exception as exc:  # reported by the assertion below
                errors.append(exc)
                return
            seen.append((len(df), int(df.step.duplicated().sum())))

    quiet = dict(pairwise_every=0, spectrum_every=0, curves_every=0, snapshot_every=0)
    with Monitor(path, flush_every=1, compact_parts=4, compact_on_close=False, **quiet) as mon:
        reader = threading.Thread(target=poll, daemon=True)
        reader.start()
        for step in range(steps):
            a, b, _ = batch(step)
            mon.log(step, a, b)
            mon.flush(wait=True)
        stop.set()
        reader.join(timeout=60)
    assert not errors, errors
    assert seen and all(dups == 0 for _, dups in seen)
    lengths = [n for n, _ in seen]
    assert lengths == sorted(lengths)  # a reader never loses rows it saw before
    assert sorted(read_run(path).scalars(["alignment"]).step) == list(range(steps))


def test_resumed_run_counts_the_parts_already_there(tmp_path):
    path = tmp_path / "run"
    quiet = dict(pairwise_every=0, spectrum_every=0, curves_every=0, snapshot_every=0)
    with Monitor(path, flush_every=1, compact_parts=0, compact_on_close=False, **quiet) as mon:
        for step in range(10):
            mon.log(step, *batch(step)[:2])
    assert len(RunStore(path).part_files("scalars")) == 10
    with Monitor(
        path, if_exists="resume", flush_every=1, compact_parts=8, compact_on_close=False, **quiet
    ) as mon:
        mon.log(10, *batch(10)[:2])
        mon.flush(wait=True)
        assert len(RunStore(path).part_files("scalars")) == 1  # 11 > 8: compacted at the first flush
    assert sorted(read_run(path).scalars(["alignment"]).step) == list(range(11))


def test_compact_run_of_chosen_tables_leaves_the_others(tmp_path):
    import pytest

    from cldiag.maintenance import compact_run

    path = tmp_path / "run"
    make_run(path)
    before = part_counts(path)
    result = compact_run(path, tables=["scalars"])
    after = part_counts(path)
    assert after["scalars"] == 1 and result.parts_before == before["scalars"] and result.parts_after == 1
    assert {t: n for t, n in after.items() if t != "scalars"} == {
        t: n for t, n in before.items() if t != "scalars"
    }
    with pytest.raises(ValueError, match="'nope' is not a table"):
        compact_run(path, tables=["nope"])
