"""Cost of the Monitor's statistics per step: the old call sequence against the fused functions.

At B = 256, d = 128 (one torch thread), each timed block runs the variants interleaved (A B A B …) and the
median over repeats is printed:

- ``pairwise``: the Monitor's whole pairwise step (labels, τ) before and after issue 15's fusion: before,
  :func:`cldiag.functional.pairwise_statistics` followed on the same rows by ``positive_ranks`` +
  ``rank_summary``, ``ordering_violations`` and ``false_negative_share``, each of which rebuilt the
  ``B × B`` similarity matrix; after, the one :func:`~cldiag.functional.pairwise_statistics` call that
  returns them all. With ``--before-rev REV`` the "before" column runs that git revision's
  ``cldiag/functional.py`` (loaded beside the current one), i.e. the code the Monitor actually ran; without
  it, the current functions (whose ``pairwise_statistics`` already does the fused work, so "before" is
  then an overestimate). ``per-anchor τ`` is the same step with iSogCLR's ``(B,)`` temperature.
- ``per-step``: :func:`cldiag.functional.step_statistics` (views and two modalities);
- ``curves``: a temperature-curves step over the Monitor's 13 τ values, the previous implementation
  (rebuilt here from the module's reference helpers) against :func:`cldiag.functional.temperature_curves`.

Then big batches, B = 1k … 20k: the time and the peak resident memory (``ru_maxrss`` of a fresh subprocess,
above its baseline) of one capped pairwise step plus a curves step on the same rows; then the "before" and
the fused pairwise step, three times each, interleaved (timed after the peak is read).

Run:  OMP_NUM_THREADS=1 python benchmarks/bench_pairwise.py [--repeats 30] [--big 1000,2000,4000,8000,20000]
      [--before-rev 8a844fa]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import torch

from cldiag import functional as F

TAUS = torch.logspace(-2, 0, 13)


def _batch(n: int, d: int = 128) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, d, generator=g)
    return a, a + 0.5 * torch.randn(n, d, generator=g), torch.randint(0, 10, (n,), generator=g)


def load_functional(rev: str | None) -> tuple[ModuleType, str | None]:
    """``cldiag/functional.py`` at git revision ``rev`` as a module of its own, and its file; or the current.

    The old file imports only ``cldiag._checks`` from the package, which is resolved in the current tree.
    """
    if rev is None:
        return F, None
    root = Path(__file__).resolve().parents[1]
    source = subprocess.run(
        ["git", "-C", str(root), "show", f"{rev}:cldiag/functional.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = Path(tempfile.mkdtemp(prefix="cldiag_before_")) / "functional_before.py"
    path.write_text(source)
    return _module_from(str(path)), str(path)


def _module_from(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location("cldiag_functional_before", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def monitor_step_before(
    fm: ModuleType, a: torch.Tensor, b: torch.Tensor, y: torch.Tensor, tau: float | torch.Tensor
) -> list[object]:
    """The calls of ``Monitor._pairwise`` + ``Monitor._ranks`` before the fusion (module ``fm``)."""
    per_anchor = isinstance(tau, torch.Tensor) and tau.ndim == 1
    st = fm.pairwise_statistics(a, b, labels=y, temperature=tau.mean() if per_anchor else tau, bins=50)
    summary = fm.rank_summary(fm.positive_ranks(a, b))
    return [st, summary, fm.ordering_violations(a, b), fm.false_negative_share(a, b, y, tau)]


def monitor_step_after(
    a: torch.Tensor, b: torch.Tensor, y: torch.Tensor, tau: float | torch.Tensor
) -> F.PairwiseStatistics:
    """The fused replacement: one call."""
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
import importlib.util, json, resource, sys, time, torch
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
fm = F
if sys.argv[2]:
    spec = importlib.util.spec_from_file_location("cldiag_functional_before", sys.argv[2])
    fm = importlib.util.module_from_spec(spec); spec.loader.exec_module(fm)
ar, br, yr = a[rows], b[rows], y[rows]
def before():
    fm.pairwise_statistics(a, b, labels=y, temperature=0.1, seed=1)
    fm.rank_summary(fm.positive_ranks(ar, br)); fm.ordering_violations(ar, br)
    fm.false_negative_share(ar, br, yr, 0.1)
def after():
    F.pairwise_statistics(a, b, labels=y, temperature=0.1, seed=1)
times = {before: [], after: []}
for _ in range(3):
    for f in (before, after):
        t3 = time.perf_counter(); f(); times[f].append((time.perf_counter() - t3) * 1e3)
print(json.dumps({"first_ms": (t1 - t0) * 1e3, "curves_ms": (t2 - t1) * 1e3, "rows": int(rows.numel()),
                  "extra_mib": (peak - base) / 1024, "before_ms": sorted(times[before])[1],
                  "after_ms": sorted(times[after])[1]}))
"""


def main() -> None:
    """Print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--big", default="1000,2000,4000,8000,20000")
    parser.add_argument("--before-rev", default=None, help="git revision whose functional.py is 'before'")
    args = parser.parse_args()
    torch.set_num_threads(1)
    fm, fm_path = load_functional(args.before_rev)
    a, b, y = _batch(256)
    tau_rows = torch.linspace(0.05, 0.5, 256)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    threads = torch.get_num_threads()
    before = f"functional.py at {args.before_rev}" if args.before_rev else "the current functions"
    print(f"B=256 d=128, torch threads {threads}, load average {load:.1f}, median of {args.repeats}")
    print(f"pairwise 'old' = pairwise_statistics + 4 standalone calls, from {before}")
    with torch.no_grad():
        pw = _interleaved(
            {
                "old": lambda: monitor_step_before(fm, a, b, y, 0.1),
                "new": lambda: monitor_step_after(a, b, y, 0.1),
                "old_rows": lambda: monitor_step_before(fm, a, b, y, tau_rows),
                "new_rows": lambda: monitor_step_after(a, b, y, tau_rows),
            },
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
    print(f"{'step':<32}{'old ms':>10}{'new ms':>10}")
    print(f"{'pairwise step (labels, τ)':<32}{pw['old']:>10.3f}{pw['new']:>10.3f}")
    print(f"{'pairwise step, per-anchor τ':<32}{pw['old_rows']:>10.3f}{pw['new_rows']:>10.3f}")
    print(f"{'temperature curves (13 τ)':<32}{cu['old']:>10.3f}{cu['new']:>10.3f}")
    print(f"{'per-step views':<32}{'':>10}{st['views']:>10.3f}")
    print(f"{'per-step two modalities':<32}{'':>10}{st['two_modality']:>10.3f}")
    print(f"{'(one a·bᵀ matmul)':<32}{'':>10}{mm['matmul']:>10.3f}")
    print()
    print(f"big batches (d=128, row cap {F.ROW_CAP}; each in a fresh process)")
    print("pairwise: the first call; old / new: median of 3 interleaved calls after it; curves: one call")
    head = f"{'B':>7}{'rows':>7}{'pairwise ms':>13}{'old ms':>9}{'new ms':>9}{'curves ms':>11}"
    print(f"{head}{'peak extra MiB':>16}")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for n in (int(x) for x in args.big.split(",") if x):
        out = subprocess.run(
            [sys.executable, "-c", _PROBE, str(n), fm_path or ""], capture_output=True, text=True, env=env
        )
        if out.returncode != 0:
            print(f"{n:>7}  failed: {out.stderr.strip().splitlines()[-1]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"{n:>7}{r['rows']:>7}{r['first_ms']:>13.1f}{r['before_ms']:>9.1f}{r['after_ms']:>9.1f}"
            f"{r['curves_ms']:>11.1f}{r['extra_mib']:>16.0f}"
        )


if __name__ == "__main__":
    main()
