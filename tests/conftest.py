"""Shared test set-up."""

from __future__ import annotations

import os

# One intra-op thread per test process: the suite runs on 2 shared cores, subprocesses (DDP, SIGKILL,
# streamlit) run beside it, and oversubscribed OpenMP pools make small tensor ops 10-50x slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch

torch.set_num_threads(1)
