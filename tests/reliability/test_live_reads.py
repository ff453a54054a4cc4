"""A reader polling every 50 ms while a Monitor in another process flushes: no error, no row twice, every
row read in the end. (The same for minutes, with compaction: ``benchmarks/soak.py``.)"""

from __future__ import annotations

import os
import subprocess
import textwrap
import time

from rel_helpers import PYTHON, child_env

from cldiag import read_run

WRITER = textwrap.dedent(
    """
    import sys, time
    import torch
    from cldiag import Monitor

    torch.set_num_threads(1)
    mon = Monitor(sys.argv[1], flush_every=2, flush_secs=0.2, pairwise_every=2, spectrum_every=0,
                  curves_every=0, snapshot_every=0, bins=20, budget=None)
    g = torch.Generator().manual_seed(0)
    step, end = 0, time.monotonic() + float(sys.argv[2])
    while time.monotonic() < end:
        a = torch.randn(32, 8, generator=g)
        mon.log(step, a, a + 0.2 * torch.randn(32, 8, generator=g))
        mon.log_scalar(step, "counter", step + 0.25)
        step += 1
        time.sleep(0.002)
    mon.close()
    print(step)
    """
)


def test_polling_reader_sees_each_row_once_and_all_rows_in_the_end(tmp_path):
    path = tmp_path / "live"
    proc = subprocess.Popen(
        [PYTHON, "-c", WRITER, str(path), "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    polls, last_rows, long_lived = 0, 0, None
    try:
        while proc.poll() is None:
            time.sleep(0.05)
            if not (path / "meta.json").exists():
                continue
            long_lived = long_lived or read_run(path)
            rows = []
            # The long-lived Run reads only new parts; every 5th poll a fresh Run reads every part cold.
            for run in (long_lived, read_run(path)) if polls % 5 == 0 else (long_lived,):
                df = run.scalars()
                assert not df.duplicated(["step", "metric"]).any(), "a (step, metric) seen twice"
                hist = run.histograms()
                assert not hist.duplicated(["step", "kind", "bin_left"]).any(), "a histogram row seen twice"
                assert run.problems == []
                rows.append(len(df))
            assert rows[0] >= last_rows, "rows disappeared between polls"
            last_rows = rows[0]
            polls += 1
    finally:
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    steps = int(out)
    assert polls >= 3 and last_rows > 0  # the reader really overlapped the writer
    run = read_run(path)
    df = run.scalars()
    counter = df[df.metric == "counter"]
    assert counter.step.tolist() == list(range(steps))
    assert (counter.value == counter.step + 0.25).all()
    assert sorted(df[df.metric == "alignment"].step) == list(range(steps))
    hist = run.histograms()
    assert len(hist) == len(range(0, steps, 2)) * 3 * 20
    assert not df.duplicated(["step", "metric"]).any() and run.status == "finished"
    assert not any(n.endswith(".tmp") for _, _, files in os.walk(path) for n in files)
