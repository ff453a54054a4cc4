"""DDP and snapshot metadata (issue 16): metadata is host data, never gathered (no collective per step).

Each rank passes its own rows' texts; the gathered snapshot keeps the writing rank's (rank 0's rows come
first in the gather) and None for the other ranks' rows, instead of misaligning texts and vectors.
"""

from __future__ import annotations

import datetime
import os
import socket

import torch
import torch.distributed as tdist
import torch.multiprocessing as mp

from cldiag import Monitor, read_run

N, CUT = 10, 4  # rank 0 logs rows 0..3, rank 1 rows 4..9 of one global batch


def _worker(rank: int, port: int, root: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    tdist.init_process_group("gloo", rank=rank, world_size=2, timeout=datetime.timedelta(seconds=60))
    torch.set_num_threads(1)
    try:
        g = torch.Generator().manual_seed(0)
        a, b = torch.randn(N, 6, generator=g), torch.randn(N, 6, generator=g)
        rows = slice(0, CUT) if rank == 0 else slice(CUT, N)
        texts = [f"text {i}" for i in range(N)]
        mon = Monitor(os.path.join(root, "run"), snapshot_every=1, snapshot_size=N, strict=True)
        mon.log(0, a[rows], b[rows], ids=torch.arange(N)[rows], meta=texts[rows])
        mon.close()
    finally:
        tdist.destroy_process_group()


def test_ddp_snapshot_keeps_the_writing_ranks_metadata(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_worker, args=(port, str(tmp_path)), nprocs=2, join=True)
    emb = read_run(tmp_path / "run").embeddings(0)
    for side in ("view1", "view2"):
        rows = emb[emb.modality == side]
        assert rows.sample_id.tolist() == list(range(N))
        assert rows.meta.tolist() == [f"text {i}" for i in range(CUT)] + [None] * (N - CUT)
