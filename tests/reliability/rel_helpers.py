"""Shared helpers of the reliability suite: build runs with many parts and read every table of a run."""

from __future__ import annotations

import os
import sys

import pandas as pd
import torch

from cldiag import Monitor, read_run

# The child processes must import this checkout's cldiag, whatever the working directory of pytest.
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TABLES = ("scalars", "histograms", "spectra", "temperature")


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"  # two cores are shared by the writer, the reader and pytest
    return env


PYTHON = sys.executable


def batch(step: int, n: int = 16, d: int = 8, classes: int = 3):
    g = torch.Generator().manual_seed(step)
    a = torch.randn(n, d, generator=g)
    b = a + 0.3 * torch.randn(n, d, generator=g)
    return a, b, torch.randint(0, classes, (n,), generator=g)


def make_run(path, steps: int = 12, **kwargs) -> None:
    """A run with one part per table per step: every table and two multi-part snapshots."""
    opts = dict(
        flush_every=1,
        pairwise_every=2,
        spectrum_every=3,
        curves_every=3,
        snapshot_every=6,
        snapshot_size=24,  # batches of 16: each snapshot spans two steps, so two parts per snapshot
        compact_on_close=False,  # these tests need the parts as the writer leaves them
        final_snapshot=False,  # and only the parts of the cadences
    )
    opts.update(kwargs)
    with Monitor(path, **opts) as mon:
        for step in range(steps):
            a, b, y = batch(step)
            mon.log(step, a, b, labels=y, temperature=0.2, loss=float(step))


def canonical(df: pd.DataFrame) -> pd.DataFrame:
    """A frame sorted on every column, so two reads of the same rows compare equal."""
    if "vector" in df.columns:
        df = df.assign(vector=[tuple(v.tolist()) for v in df.vector])
    return df.sort_values(list(df.columns)).reset_index(drop=True)


def read_all(path) -> dict[str, pd.DataFrame]:
    """Every table of a run, snapshots keyed ``embeddings@step``, in canonical order."""
    run = read_run(path)
    out = {name: canonical(getattr(run, name)()) for name in TABLES}
    for step in run.snapshot_steps():
        out[f"embeddings@{step}"] = canonical(run.embeddings(step))
    assert not run.problems, run.problems
    return out


def assert_same_tables(before: dict[str, pd.DataFrame], after: dict[str, pd.DataFrame]) -> None:
    assert before.keys() == after.keys()
    for name in before:
        pd.testing.assert_frame_equal(before[name], after[name], check_dtype=True, obj=name)


def part_counts(path) -> dict[str, int]:
    counts = {}
    for root, _, files in os.walk(path):
        parts = [f for f in files if f.startswith("part-") and f.endswith(".parquet")]
        if parts:
            counts[os.path.relpath(root, path)] = len(parts)
    return counts
