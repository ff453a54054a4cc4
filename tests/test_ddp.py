"""DDP: two real gloo processes log slices of one batch; the run equals one process on the whole batch.

Each rank logs a different (often uneven, sometimes empty) slice of a fixed global batch. The Monitor
gathers the slices like a contrastive loss does, so every table (scalars, histograms, spectra,
temperature curves, snapshots) must equal what a single process writes for the concatenated batch, only
rank 0 may write, and no (step, metric) row may appear twice.
"""

from __future__ import annotations

import datetime
import json
import os
import socket

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as tdist
import torch.multiprocessing as mp

from cldiag import Monitor, read_run, schema

N, D, STEPS = 24, 8, 5
# Rows of the global batch that rank 0 takes at each step; rank 1 takes the rest (0 = rank 0 is empty).
SPLITS = (7, 12, 0, 23, 16)
MONITOR_KW = dict(
    budget=None,  # fixed cadences: ranks and the single-process run log the same steps
    pairwise_every=1,
    spectrum_every=1,
    curves_every=2,
    snapshot_every=2,
    snapshot_size=30,
    flush_every=2,
    bins=20,
    strict=True,
)


def _batch(step: int):
    g = torch.Generator().manual_seed(100 + step)
    a = torch.randn(N, D, generator=g)
    b = a + 0.7 * torch.randn(N, D, generator=g)
    labels = torch.randint(0, 3, (N,), generator=g)
    return a, b, labels


def _log_all(mon: Monitor, rows, two_modality: bool) -> None:
    for step in range(STEPS):
        a, b, y = _batch(step)
        sl = rows(step)
        # loss is the same on every rank (as with a loss over gathered features); rank 0's is written
        kw = dict(labels=y[sl], temperature=0.1, loss=float(step) / 10)
        if two_modality:
            out = {"image_features": a[sl], "text_features": b[sl], "logit_scale": torch.tensor(10.0)}
            mon.log(step, out, labels=y[sl], loss=kw["loss"])
        else:
            mon.log(step, a[sl], b[sl], ids=torch.arange(N)[sl] + 1000 * step, **kw)


def _worker(rank: int, port: int, root: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    tdist.init_process_group("gloo", rank=rank, world_size=2, timeout=datetime.timedelta(seconds=60))
    torch.set_num_threads(1)
    try:

        def rows(step: int) -> slice:
            cut = SPLITS[step]
            return slice(0, cut) if rank == 0 else slice(cut, N)

        report: dict[str, object] = {}
        for name, two in (("views", False), ("clip", True)):
            mon = Monitor(os.path.join(root, f"ddp-{name}"), **MONITOR_KW)
            _log_all(mon, rows, two)
            mon.close()
            report[f"run_dir_{name}"] = mon.run_dir

        # The HF callback: every rank embeds the same probe, only the main process's rows are counted.
        from transformers import TrainerState

        from cldiag.integrations.hf import CLDiagTrainerCallback

        probe_a, probe_b, _ = _batch(0)
        cb = CLDiagTrainerCallback(
            os.path.join(root, "ddp-hf"),
            probe=(probe_a, probe_b),
            embed_fn=lambda m, p: p,
            every=1,
            strict=True,
            budget=None,
        )
        state = TrainerState(global_step=0, is_world_process_zero=rank == 0)
        cb.on_train_begin(None, state, None, model=torch.nn.Linear(2, 2))
        state.global_step = 1
        cb.on_step_end(None, state, None, model=torch.nn.Linear(2, 2))
        cb.on_train_end(None, state, None)

        # Ranks whose embedding widths differ get the same clear error, and the group stays usable.
        mon = Monitor(os.path.join(root, "ddp-bad"), **MONITOR_KW)
        width = D if rank == 0 else D + 1
        try:
            mon.log(0, torch.randn(4, width), torch.randn(4, width))
            report["bad"] = "no error"
        except ValueError as exc:
            report["bad"] = str(exc)
        mon.close()

        # Labels rejected on one rank only: every rank gets an error for that step (nobody waits forever
        # in the gather), and the next step logs normally.
        mon = Monitor(os.path.join(root, "ddp-onebad"), **MONITOR_KW)
        a, b, y = _batch(0)
        try:
            mon.log(0, a[:4], b[:4], labels=y[:4] if rank == 0 else y[:3])
            report["onebad"] = "no error"
        except ValueError as exc:
            report["onebad"] = str(exc)
        mon.log(1, a[:4], b[:4])
        mon.close()

        # Rank 0 cannot open the run (it exists): the other ranks raise at once instead of hanging later.
        try:
            Monitor(os.path.join(root, "ddp-onebad"), **MONITOR_KW)
            report["open"] = "no error"
        except (FileExistsError, RuntimeError) as exc:
            report["open"] = f"{type(exc).__name__}: {exc}"
        tdist.barrier()
        with open(os.path.join(root, f"rank{rank}.json"), "w") as fh:
            json.dump(report, fh)
    finally:
        tdist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ddp_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(_free_port(), str(root)), nprocs=2, join=True)
    for name, two in (("views", False), ("clip", True)):
        with Monitor(root / f"single-{name}", **MONITOR_KW) as mon:
            _log_all(mon, lambda step: slice(0, N), two)
    return root


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    keys = [c for c in ("step", "metric", "kind", "modality", "curve", "tau", "index", "bin_left") if c in df]
    return df.sort_values(keys, kind="stable").reset_index(drop=True)


@pytest.mark.parametrize("name", ["views", "clip"])
def test_ddp_tables_equal_single_process(ddp_root, name):
    ddp, single = read_run(ddp_root / f"ddp-{name}"), read_run(ddp_root / f"single-{name}")
    assert ddp.problems == [] and ddp.status == schema.STATUS_FINISHED
    assert ddp.two_modality == (name == "clip")

    s_ddp, s_one = _sorted(ddp.scalars()), _sorted(single.scalars())
    assert len(s_ddp) >= 19 * STEPS
    pd.testing.assert_frame_equal(s_ddp[["step", "metric"]], s_one[["step", "metric"]])
    np.testing.assert_allclose(s_ddp.value, s_one.value, rtol=1e-5, atol=1e-6)
    batch = s_ddp[s_ddp.metric == schema.M_BATCH]
    assert batch.value.tolist() == [float(N)] * STEPS  # the global batch, never one rank's slice

    for table in ("histograms", "spectra", "temperature"):
        t_ddp, t_one = _sorted(getattr(ddp, table)()), _sorted(getattr(single, table)())
        assert len(t_ddp) > 0, table
        pd.testing.assert_frame_equal(t_ddp, t_one, rtol=1e-5, atol=1e-6, check_dtype=True)

    assert ddp.snapshot_steps() == single.snapshot_steps() == [0, 2, 4]
    for step in ddp.snapshot_steps():
        m_ddp, info_ddp = ddp.embedding_matrix(step)
        m_one, info_one = single.embedding_matrix(step)
        np.testing.assert_allclose(m_ddp, m_one, rtol=1e-6)
        pd.testing.assert_frame_equal(info_ddp, info_one)


@pytest.mark.parametrize("name", ["views", "clip"])
def test_ddp_run_has_one_writer_and_no_duplicates(ddp_root, name):
    ddp = read_run(ddp_root / f"ddp-{name}")
    scalars = ddp.scalars()
    assert not scalars.duplicated(["step", "metric"]).any()
    hist = ddp.histograms()
    assert not hist.duplicated(["step", "kind", "bin_left"]).any()
    # Hist counts are of the global batch: N positives per step.
    pos = hist[hist.kind == schema.HIST_POS].groupby("step")["count"].sum()
    assert pos.tolist() == [N] * STEPS

    ranks = [json.loads((ddp_root / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0][f"run_dir_{name}"].endswith(f"ddp-{name}")
    assert ranks[1][f"run_dir_{name}"] == ""  # rank 1 never opened the store
    n_parts = sum(1 for _ in ddp._store.iter_all_parts())
    assert n_parts == sum(1 for _ in read_run(ddp_root / f"single-{name}")._store.iter_all_parts())


def test_hf_probe_is_counted_once_under_ddp(ddp_root):
    a, b, _ = _batch(0)
    with Monitor(
        ddp_root / "single-hf", pairwise_every=1, spectrum_every=1, curves_every=1, snapshot_every=0
    ) as mon:
        for step in (0, 1):
            mon.log(step, a, b)
    ddp, single = read_run(ddp_root / "ddp-hf"), read_run(ddp_root / "single-hf")
    assert ddp.scalars(["batch_size"]).value.tolist() == [float(N), float(N)]
    pd.testing.assert_frame_equal(ddp.scalars(), single.scalars(), rtol=1e-5)
    assert ddp.snapshot_steps() == [0]
    assert len(ddp.embeddings(0)) == N


def test_ddp_mismatched_widths_fail_on_every_rank(ddp_root):
    for r in (0, 1):
        message = json.loads((ddp_root / f"rank{r}.json").read_text())["bad"]
        assert "(4, 8)" in message and "(4, 9)" in message, message
    assert read_run(ddp_root / "ddp-bad").scalars().empty


def test_ddp_input_rejected_on_one_rank_fails_every_rank_without_hanging(ddp_root):
    r0, r1 = (json.loads((ddp_root / f"rank{r}.json").read_text()) for r in (0, 1))
    assert "another rank's inputs" in r0["onebad"], r0["onebad"]
    assert "labels must have shape (4,)" in r1["onebad"], r1["onebad"]
    run = read_run(ddp_root / "ddp-onebad")
    assert run.scalars(["batch_size"]).step.tolist() == [1]  # step 0 skipped everywhere, step 1 logged
    assert run.scalars(["batch_size"]).value.tolist() == [8.0]


def test_ddp_rank0_open_failure_reaches_every_rank(ddp_root):
    r0, r1 = (json.loads((ddp_root / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["open"].startswith("FileExistsError"), r0["open"]
    assert r1["open"].startswith("RunStoreError: rank 0 could not open the run"), r1["open"]
