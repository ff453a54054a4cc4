"""Lab benchmark: wall time of each preset at full length, and trainer throughput.

    python benchmarks/bench_lab.py                 # all presets at full length + throughput table
    python benchmarks/bench_lab.py --presets none  # throughput only
    python benchmarks/bench_lab.py --presets collapse,temperature --steps-scale 0.5
    python benchmarks/bench_lab.py --presets none --default-seeds 0,1,2 --threads 1  # default run

Wall time is what a learner waits; CPU time (this process, all threads, including the Monitor's writer)
shows how much of the wall time was our own work on a shared machine. The load average printed first says
how busy the machine was. Each preset's verdict is printed too, so a slow-but-wrong change shows up here.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch

from cldiag.lab.presets import PRESETS, run_preset
from cldiag.lab.trainer import LabConfig, train

THROUGHPUT = {
    "default: cluttered b128": LabConfig(),
    "digits mlp b256 nt_xent": LabConfig(data="digits", batch_size=256, steps=300),
    "digits cnn b256 nt_xent": LabConfig(data="digits", encoder="cnn", batch_size=256, steps=150),
    "prototypes mlp b16 dcl": LabConfig(data="prototypes", loss="dcl", batch_size=16, steps=600),
    "pairs mlp b128 clip": LabConfig(data="pairs", loss="clip", batch_size=128, embed_dim=32, steps=300),
    "toy linear b128 nt_xent": LabConfig(
        data="toy", encoder="linear", embed_dim=16, batch_size=128, steps=600, optimizer="sgd", lr=0.01
    ),
}


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--presets",
        default="all",
        help="comma-separated names, 'all' (the lab presets; name sentence-embeddings, a minutes-long "
        "MiniLM fine-tune, to include it) or 'none'",
    )
    parser.add_argument("--steps-scale", type=float, default=1.0)
    parser.add_argument("--threads", default="1,2", help="thread counts for the throughput table")
    parser.add_argument(
        "--default-seeds", default="0", help="seeds of the full default Lab run (kNN vs raw, time); '' skips"
    )
    args = parser.parse_args()

    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()}")
    out = tempfile.mkdtemp(prefix="bench_lab_")
    train(
        LabConfig(steps=5), os.path.join(out, "warmup")
    )  # imports (scikit-learn, dynamo) out of the timings

    names = (
        [n for n, p in PRESETS.items() if p.runner is None]
        if args.presets == "all"
        else []
        if args.presets == "none"
        else args.presets.split(",")
    )
    if names:
        print(f"\nPresets (steps_scale {args.steps_scale})")
        print(f"{'preset':<14} {'runs':>4} {'steps':>6} {'wall s':>7} {'cpu s':>7}  verdict")
        for name in names:
            result, wall, cpu = timed(
                lambda n=name: run_preset(n, os.path.join(out, "presets"), steps_scale=args.steps_scale)
            )
            steps = sum(r.steps_done for r in result.results)
            verdict = "reproduced" if result.passed else "NOT reproduced"
            print(
                f"{name:<14} {len(result.results):>4} {steps:>6} {wall:>7.1f} {cpu:>7.1f}  {verdict}",
                flush=True,
            )
            print(f"    {result.summary}")

    seeds = [int(x) for x in args.default_seeds.split(",") if x.strip()]
    if seeds:
        print("\nThe default Lab run (LabConfig()): final held-out 5-NN accuracy against raw inputs")
        print(f"{'seed':>4} {'knn_acc':>8} {'raw':>6} {'margin':>7} {'wall s':>7} {'cpu s':>7}")
        for seed in seeds:
            config = LabConfig(seed=seed)
            result, wall, cpu = timed(lambda c=config: train(c, os.path.join(out, f"default-{c.seed}")))
            knn, raw = result.metrics["knn_acc"], result.metrics["knn_acc_raw"]
            row = f"{seed:>4} {knn:>8.3f} {raw:>6.3f} {knn - raw:>+7.3f} {wall:>7.1f} {cpu:>7.1f}"
            print(row, flush=True)

    print("\nTrainer throughput (train() with the Monitor logging every step)")
    print(f"{'configuration':<26} {'threads':>7} {'steps':>6} {'steps/s':>8} {'ms/step':>8}")
    for label, config in THROUGHPUT.items():
        for threads in (int(t) for t in args.threads.split(",")):
            cfg = config.replace(threads=threads, eval_every=config.steps, snapshot_every=0)
            result = train(cfg, os.path.join(out, f"{label}-{threads}"))
            rate = result.steps_per_second  # the training loop only, set-up excluded
            print(
                f"{label:<26} {threads:>7} {result.steps_done:>6} {rate:>8.0f} {1000 / rate:>8.2f}",
                flush=True,
            )
    torch.set_num_threads(1)


if __name__ == "__main__":
    main()
