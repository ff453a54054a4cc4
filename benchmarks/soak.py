"""Soak: a Monitor writes a run in one process while this process polls it every 50 ms for N minutes.

The writer (a child process) logs a contrastive batch every step through ``Monitor.log`` (every table:
scalars, histograms, spectra, temperature curves, snapshots) plus one exact counter scalar
(``soak/counter`` = step + 0.5), flushing every few steps. The reader polls the run every ``--poll``
seconds with a long-lived ``Run`` (per-part cache) and, every second, a fresh ``read_run``; every
``--compact-every`` seconds it also compacts the run while the writer keeps writing. Each poll checks:
no exception, no (step, metric) twice, no problem reported, never fewer rows than the previous poll.

At the end it prints rows written (counted by the writer as it hands rows to the Monitor), rows read
(distinct (step, metric) in the final read), rows lost (written − read; expected 0), and the anomalies
seen while polling. Exit status 1 when anything was lost, doubled or raised.

Run:  python benchmarks/soak.py --minutes 10 [--poll 0.05] [--compact-every 60] [--root DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def writer(path: str, seconds: float, step_sleep: float, summary: str) -> None:
    import torch

    from cldiag import Monitor

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    rows = 0
    step = 0
    mon = Monitor(
        path,
        flush_every=5,
        flush_secs=1.0,
        pairwise_every=5,
        spectrum_every=50,
        curves_every=50,
        snapshot_every=500,
        snapshot_size=256,
    )
    add = mon._add

    def counting_add(*args: object) -> None:
        # Every scalar row passes through Monitor._add (private; wrapped here for bookkeeping only).
        nonlocal rows
        rows += 1
        add(*args)

    mon._add = counting_add
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        a = torch.randn(64, 32, generator=g)
        b = a + 0.3 * torch.randn(64, 32, generator=g)
        labels = torch.randint(0, 10, (64,), generator=g)
        mon.log(step, a, b, labels=labels, temperature=0.2, loss=float(step % 7))
        mon.log_scalar(step, "soak/counter", step + 0.5)
        step += 1
        time.sleep(step_sleep)
    mon.close()
    with open(summary, "w", encoding="utf-8") as fh:
        json.dump({"steps": step, "rows_written": rows, "errors": mon.errors}, fh)


def reader(path: str, proc: subprocess.Popen[bytes], poll: float, compact_every: float) -> dict[str, object]:
    from cldiag.maintenance import compact_run
    from cldiag.reader import read_run

    while not os.path.exists(os.path.join(path, "meta.json")):
        time.sleep(0.05)
    run = read_run(path)
    stats: dict[str, object] = {"polls": 0, "errors": [], "duplicates": 0, "problems": 0, "regressions": 0}
    latencies: list[float] = []
    last_rows, last_fresh, last_compact, compactions = 0, 0.0, time.monotonic(), 0
    while proc.poll() is None:
        t0 = time.monotonic()
        try:
            current = run
            if t0 - last_fresh >= 1.0:
                current, last_fresh = read_run(path), t0
            df = current.scalars()
            latencies.append(time.monotonic() - t0)
            stats["duplicates"] += int(df.duplicated(["step", "metric"]).sum())
            stats["problems"] += len(current.problems)
            if current is run:
                stats["regressions"] += int(len(df) < last_rows)
                last_rows = len(df)
            stats["polls"] += 1
        except Exception as exc:  # noqa: BLE001 - counted and reported, the soak goes on
            stats["errors"].append(f"{type(exc).__name__}: {exc}")
        if compact_every and time.monotonic() - last_compact >= compact_every:
            compact_run(path)
            compactions += 1
            last_compact = time.monotonic()
        time.sleep(max(0.0, poll - (time.monotonic() - t0)))
    lat = np.array(latencies) * 1000
    stats["compactions"] = compactions
    stats["poll_ms_p50_p99_max"] = [round(float(np.percentile(lat, q)), 1) for q in (50, 99, 100)]
    return stats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--poll", type=float, default=0.05, help="seconds between reader polls")
    parser.add_argument("--compact-every", type=float, default=60.0, help="seconds; 0 = never compact")
    parser.add_argument("--step-sleep", type=float, default=0.01, help="seconds the writer sleeps per step")
    parser.add_argument("--root", default=None, help="directory for the run (default: a temp dir)")
    parser.add_argument("--role", default="reader", choices=["reader", "writer"], help=argparse.SUPPRESS)
    parser.add_argument("--path", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--summary", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "writer":
        writer(args.path, args.minutes * 60, args.step_sleep, args.summary)
        return 0

    root = args.root or tempfile.mkdtemp(prefix="cldiag-soak-")
    path = os.path.join(root, "soak")
    summary = os.path.join(root, "writer.json")
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--role",
        "writer",
        "--path",
        path,
        "--summary",
        summary,
    ]
    cmd += ["--minutes", str(args.minutes), "--step-sleep", str(args.step_sleep)]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd)
    stats = reader(path, proc, args.poll, args.compact_every)
    if proc.wait() != 0:
        print(f"writer exited with status {proc.returncode}")
        return 1
    with open(summary, encoding="utf-8") as fh:
        written = json.load(fh)

    from cldiag.reader import read_run

    final = read_run(path)
    df = final.scalars()
    distinct = len(df.drop_duplicates(["step", "metric"]))
    counter = df[df.metric == "soak/counter"].sort_values("step")
    counter_ok = counter.step.tolist() == list(range(written["steps"])) and bool(
        (counter.value == counter.step + 0.5).all()
    )
    lost = written["rows_written"] - distinct
    report = {
        "minutes": round((time.monotonic() - t0) / 60, 2),
        "steps": written["steps"],
        "rows_written": written["rows_written"],
        "rows_read": len(df),
        "rows_lost": lost,
        "duplicates_final": len(df) - distinct,
        "counter_exact": counter_ok,
        "writer_errors": written["errors"],
        "part_files_final": sum(1 for _ in final._store.iter_all_parts()),
        **stats,
    }
    for key, value in report.items():
        print(f"{key:>22}: {value}")
    bad = lost or report["duplicates_final"] or not counter_ok or stats["errors"] or stats["duplicates"]
    return 1 if bad or stats["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
