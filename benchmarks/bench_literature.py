"""Cost of the literature diagnostics of issue 15 (and the iSogCLR loss) at B=256, d=128, one thread.

Each case is timed as the median of ``--repeats`` calls after ``--warmup`` calls, with the spread
(25th-75th percentile) beside it. Reference cases from the existing module (``retrieval_accuracy``,
``score_histograms``, ``hardness``) and ``info_nce`` forward+backward are timed in the same run, so the new
numbers can be read against what the Monitor already pays. The cases run interleaved in rounds (A B C …
A B C …) so machine noise hits them alike. Three modalities for the N-modality functions; 10 classes for
the false-negative share; per-sample temperatures for a 50,000-sample data set.

    OMP_NUM_THREADS=1 python benchmarks/bench_literature.py [--repeats 30] [--warmup 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch

from cldiag import functional as F
from cldiag.losses import IndividualTemperatureLoss, info_nce, isogclr_loss

B, D = 256, 128


def cases() -> dict[str, Callable[[], object]]:
    g = torch.Generator().manual_seed(0)
    za, zb, zc = (torch.randn(B, D, generator=g) for _ in range(3))
    zb = za + zb  # a partly trained pair: ranks spread over [1, B]
    labels = torch.randint(0, 10, (B,), generator=g)
    tau_batch = torch.rand(B, generator=g) * 0.95 + 0.05
    tau_dataset = torch.rand(50_000, generator=g) * 0.95 + 0.05
    ranks = F.positive_ranks(za, zb)
    module = IndividualTemperatureLoss(50_000)
    index = torch.randperm(50_000, generator=g)[:B]
    wa, wb = za.clone().requires_grad_(), zb.clone().requires_grad_()
    tau_leaf = tau_batch.clone().requires_grad_()

    def backward(loss: torch.Tensor) -> None:
        loss.backward()
        wa.grad = wb.grad = tau_leaf.grad = module.tau.grad = None

    return {
        "retrieval_accuracy (reference)": lambda: F.retrieval_accuracy(za, zb),
        "score_histograms (reference)": lambda: F.score_histograms(za, zb),
        "hardness (reference)": lambda: F.hardness(za, zb, 0.1),
        "modality_gap_matrix (N=3)": lambda: F.modality_gap_matrix({"a": za, "b": zb, "c": zc}),
        "multilinear_scores (M=3)": lambda: F.multilinear_scores(za, zb, zc),
        "positive_ranks": lambda: F.positive_ranks(za, zb),
        "rank_summary": lambda: F.rank_summary(ranks),
        "positive_ranks + rank_summary": lambda: F.rank_summary(F.positive_ranks(za, zb)),
        "ordering_violations": lambda: F.ordering_violations(za, zb),
        "false_negative_share (10 classes)": lambda: F.false_negative_share(za, zb, labels, 0.1),
        "temperature_distribution (256 tau)": lambda: F.temperature_distribution(tau_batch),
        "temperature_distribution (50k tau)": lambda: F.temperature_distribution(tau_dataset),
        "info_nce fwd+bwd (reference)": lambda: backward(info_nce(wa, wb, 0.1)),
        "isogclr_loss fwd+bwd": lambda: backward(isogclr_loss(wa, wb, tau_leaf)),
        "IndividualTemperatureLoss fwd+bwd": lambda: backward(module(wa, wb, index)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    run = cases()
    for fn in run.values():
        for _ in range(args.warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in run}
    for _ in range(args.repeats):
        for name, fn in run.items():
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1e3)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread, B={B}, d={D}, "
        f"{args.repeats} interleaved repeats, load average {load:.1f}"
    )
    print(f"{'case':<40} {'median ms':>10} {'p25-p75 ms':>16}")
    for name, values in times.items():
        q = statistics.quantiles(values, n=4)
        print(f"{name:<40} {statistics.median(values):>10.3f} {q[0]:>7.3f}-{q[2]:<8.3f}")


if __name__ == "__main__":
    main()
