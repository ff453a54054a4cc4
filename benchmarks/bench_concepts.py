"""How long one slider move costs on the Concepts page: recompute + figure build + JSON, per explainer.

Each case is what the page does on a rerun of one explainer with nothing cached: generate the synthetic
data, compute the diagnostics through cldiag.functional / cldiag.losses, build every figure of the tab and
serialize it as Streamlit does (``plotly.io.to_json``). The budget is 200 ms per interaction on 2 cores.

    python benchmarks/bench_concepts.py [--repeats 7] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import plotly.io as pio
import torch

from cldiag import concepts as C
from cldiag import functional as F
from cldiag.figures import concepts as FC
from cldiag.figures.scores import fig_score_overlay, overlap_coefficient

BUDGET_MS = 200.0
CONCENTRATIONS = [0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 1000.0, float("inf")]


def temperature(k: int, tau: float) -> list:
    neg = C.negative_scores(k, shape="hard tail")
    result = C.anchor_at_temperature(0.8, neg, tau)
    curves = C.anchor_temperature_curves(0.8, neg, np.logspace(-2, 1, 31).tolist())
    return [FC.fig_negative_weights(result, tau), FC.fig_anchor_temperature_curves(curves, tau)]


def align(dim: int, kappa: float) -> list:
    views = C.clustered_views(dim=dim, clusters=4, concentration=kappa, view_noise=0.2)
    au = C.align_uniform(views)
    sweep = C.align_uniform_sweep(CONCENTRATIONS, dim=dim, clusters=4, view_noise=0.2)
    ref = C.uniform_sphere_uniformity(dim)
    return [FC.fig_points_on_sphere(views), FC.fig_align_uniform_demo(au, sweep, ref)]


def align_point(dim: int, kappa: float) -> list:
    """A κ move alone: the sweep does not depend on κ, so the page serves it from the cache."""
    views = C.clustered_views(dim=dim, clusters=4, concentration=kappa, view_noise=0.2)
    au = C.align_uniform(views)
    return [FC.fig_points_on_sphere(views), au]


def gap(cone: float, tau: float) -> list:
    a, b = C.two_cones(cone_angle=cone, axis_angle=60.0, pair_noise=0.8)
    mg = F.modality_gap(a, b)
    shift = C.gap_shift(a, b, tau)
    return [FC.fig_gap_shift(shift), FC.fig_two_cones(C.modality_points(a, b), float(mg.gap))]


def collapse(dim: int, active: int) -> list:
    stats = C.collapse_stats(C.low_rank_embeddings(dim=dim, active=active))
    spectrum = C.spectrum_frame(stats.eigenvalues)
    return [FC.fig_collapse_spectrum(stats, spectrum, active), FC.fig_collapse_scorecard(stats)]


def scores(overlap: float, batch: int) -> list:
    a, b = C.scored_pairs(batch, overlap=overlap)
    stats = C.score_stats(a, b, 0.1)
    measured = overlap_coefficient(stats.histograms.loc[stats.histograms["kind"] != "hard_neg"])
    return [fig_score_overlay(stats.histograms, title=f"overlap {measured:.2f}")]


CASES: list[tuple[str, str, Callable[[], list]]] = [
    ("temperature", "K=32, τ=0.1", lambda: temperature(32, 0.1)),
    ("temperature", "K=128, τ=0.01", lambda: temperature(128, 0.01)),
    ("align", "circle, κ=20 (+sweep)", lambda: align(2, 20.0)),
    ("align", "sphere, κ=5 (+sweep)", lambda: align(3, 5.0)),
    ("align", "sphere, κ move only", lambda: align_point(3, 50.0)),
    ("gap", "θ=33°, τ=0.01", lambda: gap(33.0, 0.01)),
    ("gap", "θ=60°, τ=0.1", lambda: gap(60.0, 0.1)),
    ("collapse", "d=64, k=8", lambda: collapse(64, 8)),
    ("collapse", "d=128, k=32", lambda: collapse(128, 32)),
    ("scores", "overlap 0.2, B=128", lambda: scores(0.2, 128)),
    ("scores", "overlap 0.5, B=512", lambda: scores(0.5, 512)),
]


def _time(fn: Callable[[], list], repeats: int) -> tuple[float, float]:
    """Median wall and CPU milliseconds; on a shared machine CPU time is the cost, wall time the wait."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        for item in fn():
            if hasattr(item, "to_plotly_json"):
                pio.to_json(item, validate=False)
        wall.append((time.perf_counter() - start) * 1e3)
        cpu.append((time.process_time() - start_cpu) * 1e3)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for _, _, fn in CASES:  # warm-up: imports, plotly validators, torch kernels
        fn()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"torch threads {args.threads}, {os.cpu_count()} CPUs, load average {load:.1f}, "
        f"median of {args.repeats} repeats, budget {BUDGET_MS:.0f} ms"
    )
    print(f"{'explainer':<12} {'setting':<24} {'wall ms':>8} {'cpu ms':>8}  within budget")
    for name, setting, fn in CASES:
        wall, cpu = _time(fn, args.repeats)
        print(f"{name:<12} {setting:<24} {wall:8.1f} {cpu:8.1f}  {'yes' if wall <= BUDGET_MS else 'NO'}")


if __name__ == "__main__":
    main()
