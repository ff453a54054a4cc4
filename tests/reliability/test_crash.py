"""A training process killed with SIGKILL mid-run leaves a run that reads back whole up to its last flush.

The child below is a real training loop in its own process: it logs every step, flushes on its own every
3 steps and, every 10 steps, waits for its flush and prints the step ("confirmed on disk"). The test kills
it with SIGKILL right after a confirmation, while it keeps logging and writing, then reads the run back and
re-opens it in each ``if_exists`` mode.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import textwrap
import time

import pyarrow.parquet as pq
import pytest
from rel_helpers import PYTHON, batch, child_env, part_counts

from cldiag import Monitor, read_run
from cldiag import functional as F

CHILD = textwrap.dedent(
    """
    import sys
    import torch
    from rel_helpers import batch
    from cldiag import Monitor

    torch.set_num_threads(1)
    mon = Monitor(sys.argv[1], flush_every=3, flush_secs=1e9, heartbeat_secs=0.2, pairwise_every=2,
                  spectrum_every=5, curves_every=5, snapshot_every=10, snapshot_size=20, budget=None)
    step = 0
    while True:
        a, b, y = batch(step)
        mon.log(step, a, b, labels=y, temperature=0.2, loss=float(step))
        if step % 10 == 9:
            mon.flush(wait=True)
            print(step, flush=True)
        step += 1
    """
)
PER_STEP = ["alignment", "pos_sim", "loss", "temperature", "batch_size", "nonfinite_fraction", "norm/view1"]


def _kill_after_confirmed(path, confirmed_at_least: int) -> int:
    env = child_env()
    env["PYTHONPATH"] = os.path.dirname(os.path.abspath(__file__)) + os.pathsep + env["PYTHONPATH"]
    proc = subprocess.Popen(
        [PYTHON, "-c", CHILD, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        confirmed = -1
        for line in proc.stdout:
            confirmed = int(line)
            if confirmed >= confirmed_at_least:
                break
        time.sleep(0.2)  # the child keeps logging and flushing: the kill lands at an arbitrary point
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err
    assert confirmed >= confirmed_at_least, err
    return confirmed


def _steps(df, metric=None):
    if metric is not None:
        df = df[df.metric == metric]
    return sorted(df.step.unique().tolist())


def _prefix(steps, every):
    """Whether ``steps`` are exactly the multiples of ``every`` from 0 up to their maximum."""
    return bool(steps) and steps == list(range(0, steps[-1] + 1, every))


@pytest.fixture(scope="module")
def crashed(tmp_path_factory):
    path = tmp_path_factory.mktemp("crash") / "run"
    confirmed = _kill_after_confirmed(path, 39)
    time.sleep(2.5)  # let the last heartbeat (written at most 0.2 s before the kill) grow old
    return path, confirmed


def test_killed_run_reads_back_whole_up_to_last_flush(crashed):
    path, confirmed = crashed
    for rel in part_counts(path):  # no partial file is visible: every listed part is a whole parquet file
        for name in os.listdir(path / rel):
            if name.startswith("part-"):
                pq.read_table(path / rel / name)
    run = read_run(path)
    assert run.problems == []
    df = run.scalars()
    assert not df.duplicated(["step", "metric"]).any()
    last = _steps(df, "alignment")[-1]
    assert last >= confirmed
    for metric in PER_STEP:  # a flush is one part per table: all per-step metrics stop at the same step
        assert _steps(df, metric) == list(range(last + 1)), metric
    assert _steps(df, "uniformity") == list(range(0, last + 1, 2))
    for table, every in (("histograms", 2), ("spectra", 5), ("temperature", 5)):
        steps = _steps(getattr(run, table)())
        assert _prefix(steps, every), (table, steps)
        assert steps[-1] >= confirmed - confirmed % every and steps[-1] <= last, (table, steps, confirmed)
    hist = run.histograms()
    assert not hist.duplicated(["step", "kind", "bin_left"]).any()
    for snap in run.snapshot_steps():
        if snap + 1 <= confirmed:  # both batches of this snapshot were flushed before the confirmation
            assert len(run.embeddings(snap)) == 40  # 20 pairs, both views
    for step in (0, confirmed):  # the rows hold the right batch's values
        a, b, _ = batch(step)
        value = df[(df.step == step) & (df.metric == "alignment")].value.item()
        assert value == pytest.approx(float(F.alignment(a, b)), rel=1e-5)


def test_killed_run_is_not_finished_and_goes_stale(crashed):
    path, _ = crashed
    run = read_run(path)
    meta = json.loads((path / "meta.json").read_text())
    assert meta["status"] == "running" == run.status
    assert run.is_stale(1.0)  # heartbeat older than a second: crashed, not running
    assert not run.is_stale(3600.0)


def test_reopen_error_resume_overwrite(crashed, tmp_path):
    crashed_path, _ = crashed
    path = tmp_path / "run"
    shutil.copytree(crashed_path, path)  # the module fixture stays untouched for the other tests
    before = read_run(path)
    old = before.scalars()
    resume_after = before.last_step()

    with pytest.raises(FileExistsError, match=r"if_exists='resume'.*if_exists='overwrite'"):
        Monitor(path)
    assert read_run(path).scalars().equals(old)  # refusing touched nothing

    restart = resume_after - 7  # training restarts from an older checkpoint and re-logs some steps
    with pytest.warns(RuntimeWarning, match="resumed"):
        mon = Monitor(path, if_exists="resume", pairwise_every=2, spectrum_every=5, curves_every=5)
        for step in range(restart, resume_after + 12):
            a, b, y = batch(step)
            mon.log(step, a, b, labels=y, temperature=0.2, loss=float(step))
        mon.close()
    assert len(mon.errors) == 1, mon.errors  # the skipped steps are reported once, not once per step
    run = read_run(path)
    df = run.scalars()
    assert not df.duplicated(["step", "metric"]).any()
    assert _steps(df, "alignment")[-1] == resume_after + 11
    kept = df[df.step <= resume_after].reset_index(drop=True)
    assert kept.equals(old.reset_index(drop=True))  # nothing from before the crash was overwritten
    assert _steps(df[df.step > resume_after], "alignment") == list(range(resume_after + 1, resume_after + 12))
    assert run.status == "finished" and run.meta["resumed"][0]["after_step"] == resume_after
    assert not run.histograms().duplicated(["step", "kind", "bin_left"]).any()

    with Monitor(path, if_exists="overwrite", pairwise_every=0, snapshot_every=0) as mon:
        mon.log(0, *batch(0)[:2])
    run = read_run(path)
    assert _steps(run.scalars()) == [0]
    assert run.histograms().empty and run.snapshot_steps() == []
    assert "resumed" not in run.meta
