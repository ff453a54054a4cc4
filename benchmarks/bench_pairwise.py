"""Cost of the Monitor's statistics per step: the old call sequence against the fused functions.

At B = 256, d = 128 (one torch thread), each timed block runs the variants interleaved (A B A B …) and the
median over repeats is printed:

- ``pairwise``: what ``Monitor._heavy`` computes on a pairwise step, as it calls it today (uniformity of
  both sides, std, tolerance, score histograms, overlap, mean and hardest negatives, retrieval, hardness at
  τ) against one :func:`cldiag.functional.pairwise_statistics`;
- ``per-step``: :func:`cldiag.functional.step_statistics` (views and two modalities);
- ``curves``: a temperature-curves step over the Monitor's 13 τ values, the previous implementation
  (rebuilt here from the module's reference helpers) against :func:`cldiag.functional.temperature_curves`.

Then big batches, B = 1k … 20k: the time and the peak resident memory (``ru_maxrss`` of a fresh subprocess,
above its baseline) of one capped pairwise step plus a curves step on the same rows.

Run:  OMP_NUM_THREADS=1 python benchmarks/bench_pairwise.py [--repeats 30] [--big 1000,2000,4000,8000,20000]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch

from cldiag import functional as F

TAUS = torch.logspace(-2, 0, 13)


def _batch(n: int, d: int = 128) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, d, generator=g)
    return a, a + 0.5 * torch.randn(n, d, generator=g), torch.randint(0, 10, (n,), generator=g)


def old_pairwise(a: torch.Tensor, b: torch.Tensor, y: torch.Tensor, tau: float) -> list[torch.Tensor]:
    """The calls of ``Monitor._heavy``'s pairwise branch before the fused function."""
    out = [
        torch.stack([F.uniformity(a), F.uniformity(b)]).mean(),
        F.std_of_l2_normalized(a),
        F.tolerance(a, y),
    ]
    h = F.score_histograms(a, b, bins=50)
    out += [h.pos, h.neg, h.hard_neg, F.histogram_overlap(h.pos, h.neg), F.negative_similarity(a, b)]
    out += [h.hardest_neg.mean(), F.retrieval_accuracy(a, b), *F.hardness(a, b, tau)]
    return out


def new_pairwise(a: torch.Tensor, b: torch.Tensor, y: torch.Tensor, tau: float) -> F.PairwiseStatistics:
    """The fused replacement."""
    return F.pairwise_statistics(a, b, labels=y, temperature=tau, bins=50)


def old_curves(a: torch.Tensor, b: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """``temperature_curves`` as it was: log-softmax passes per τ chunk and a logsumexp per τ."""
    n = a.shape[0]
    eye = torch.eye(n, dtype=torch.bool)
    same = ((y[:, None] == y[None, :]) & ~eye).float()
    ua = F._unit(a)
    s = ua @ F._unit(b).T
    neg_sq = -F._squared_distances(ua)
    chunk = max(1, F._MAX_CURVE_ELEMENTS // (n * n))
    out = []
    for t in torch.split(TAUS, chunk):
        out += list(F._penalty_stats(s, t, same))
        out.append(F._offdiag_log_mean_exp(neg_sq[None] / (2.0 * t[:, None, None])))
    return out


def new_curves(a: torch.Tensor, b: torch.Tensor, y: torch.Tensor) -> F.TemperatureCurves:
    """The vectorized ``temperature_curves``."""
    return F.temperature_curves(a, b, TAUS, labels=y)


def _interleaved(fns: dict[str, Callable[[], object]], repeats: int, inner: int) -> dict[str, float]:
    times: dict[str, list[float]] = {k: [] for k in fns}
    for f in fns.values():
        f()
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = time.perf_counter()
            for _ in range(inner):
                f()
            times[k].append((time.perf_counter() - t0) / inner * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


_PROBE = """
import json, resource, sys, time, torch
torch.set_num_threads(1)
import cldiag.functional as F
n = int(sys.argv[1]); g = torch.Generator().manual_seed(0)
a = torch.randn(n, 128, generator=g); b = a + 0.5 * torch.randn(n, 128, generator=g)
y = torch.randint(0, 10, (n,), generator=g); taus = torch.logspace(-2, 0, 13)
F.pairwise_statistics(a[:64], b[:64], labels=y[:64], temperature=0.1)
F.temperature_curves(a[:64], b[:64], taus)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
st = F.pairwise_statistics(a, b, labels=y, temperature=0.1, seed=1)
t1 = time.perf_counter()
c = F.temperature_curves(a, b, taus, labels=y, seed=1)
rows = c.rows if c.rows is not None else torch.arange(n)
t2 = time.perf_counter()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"pairwise_ms": (t1 - t0) * 1e3, "curves_ms": (t2 - t1) * 1e3, "rows": int(rows.numel()),
                  "extra_mib": (peak - base) / 1024}))
"""


def main() -> None:
    """Print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--big", default="1000,2000,4000,8000,20000")
    args = parser.parse_args()
    torch.set_num_threads(1)
    a, b, y = _batch(256)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    threads = torch.get_num_threads()
    print(f"B=256 d=128, torch threads {threads}, load average {load:.1f}, median of {args.repeats}")
    with torch.no_grad():
        pw = _interleaved(
            {"old": lambda: old_pairwise(a, b, y, 0.1), "new": lambda: new_pairwise(a, b, y, 0.1)},
            args.repeats,
            5,
        )
        st = _interleaved(
            {
                "views": lambda: F.step_statistics(a, b),
                "two_modality": lambda: F.step_statistics(a, b, two_modality=True),
            },
            args.repeats,
            50,
        )
        cu = _interleaved(
            {"old": lambda: old_curves(a, b, y), "new": lambda: new_curves(a, b, y)}, args.repeats, 2
        )
        mm = _interleaved({"matmul": lambda: a @ b.T}, args.repeats, 20)
    print(f"{'step':<28}{'old ms':>10}{'new ms':>10}")
    print(f"{'pairwise (fused)':<28}{pw['old']:>10.3f}{pw['new']:>10.3f}")
    print(f"{'temperature curves (13 τ)':<28}{cu['old']:>10.3f}{cu['new']:>10.3f}")
    print(f"{'per-step views':<28}{'':>10}{st['views']:>10.3f}")
    print(f"{'per-step two modalities':<28}{'':>10}{st['two_modality']:>10.3f}")
    print(f"{'(one a·bᵀ matmul)':<28}{'':>10}{mm['matmul']:>10.3f}")
    print()
    print(f"big batches (d=128, row cap {F.ROW_CAP}; each in a fresh process)")
    print(f"{'B':>7}{'rows':>7}{'pairwise ms':>13}{'curves ms':>11}{'peak extra MiB':>16}")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for n in (int(x) for x in args.big.split(",") if x):
        out = subprocess.run([sys.executable, "-c", _PROBE, str(n)], capture_output=True, text=True, env=env)
        if out.returncode != 0:
            print(f"{n:>7}  failed: {out.stderr.strip().splitlines()[-1]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{n:>7}{r['rows']:>7}{r['pairwise_ms']:>13.1f}{r['curves_ms']:>11.1f}{r['extra_mib']:>16.0f}")


if __name__ == "__main__":
    main()
