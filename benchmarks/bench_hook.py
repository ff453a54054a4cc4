"""Overhead of the cldiag training hook on CPU contrastive loops, per overhead budget, against TensorBoard.

Two SimCLR-style steps (two noisy views of a batch of 256, InfoNCE with τ = 0.2, Adam, d = 128):

- ``small``: the digits-sized MLP of issue 14 (64 → 256 → 128), ≈ 6 ms a step on one core;
- ``large``: an MLP 784 → 1024 → 1024 → 128.

Per model, four variants run interleaved in rounds (A B C D A B C D …, the order rotated each round) so
that machine noise hits all of them alike; the median of block means per variant is reported:

- ``plain``: no logging;
- ``cldiag none``: ``Monitor(budget=None)``, the fixed default cadences (loss, τ, batch size and the step
  statistics every step; pairwise statistics every 25 steps; spectra and temperature curves every 250; a
  snapshot every 1000);
- ``cldiag 0.03``: ``Monitor()`` at its default overhead budget of 3 % (the cadences above, the step
  statistics' included, are minimum spacings, stretched by one factor as the budget needs);
- ``tensorboard``: ``SummaryWriter`` logging the same per-step scalars (``add_scalar`` after ``.item()``)
  and, every 25 steps, uniformity plus the positive and negative score histograms.

End-to-end overhead (step time with logging / plain − 1) and in-call time (inside the logging call, as
a share of a plain step; its median in ms beside it, which a loaded machine's preemptions inflate less)
are printed, with how many steps each Monitor computed the step statistics (``alignment`` rows) and the
pairwise / spectrum / curves work at (the final spectrum at close included). The budget's own
``meta.json`` record would be wrong for the interleaved Monitor (the other variants' blocks count as training
time between its calls), so a last run of the same number of steps with a fresh ``Monitor()`` alone prints
it: ``share`` (everything it measured: calls and writer CPU, over calls + training), ``base_share`` (the
unscheduled part: argument checks, bookkeeping, flushes, writer) and ``stretch``.

Run:  OMP_NUM_THREADS=1 python benchmarks/bench_hook.py [--model small|large|both] [--rounds 8]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time

import torch

from cldiag import Monitor, read_run
from cldiag import functional as F
from cldiag.losses import info_nce

TAU = 0.2
MODELS = {"small": (64, 256, 128), "large": (784, 1024, 1024, 128)}
VARIANTS = ("plain", "cldiag none", "cldiag 0.03", "tensorboard")


def make_model(sizes: tuple[int, ...]) -> torch.nn.Module:
    layers: list[torch.nn.Module] = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(torch.nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


class Loop:
    """One training loop whose per-step logging is pluggable."""

    def __init__(self, seed: int, batch: int, sizes: tuple[int, ...]) -> None:
        torch.manual_seed(seed)
        self.model = make_model(sizes)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.data = torch.randn(4096, sizes[0])
        self.batch = batch
        self.step = 0

    def train_step(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, len(self.data), (self.batch,))
        x = self.data[idx]
        za = self.model(x + 0.1 * torch.randn_like(x))
        zb = self.model(x + 0.1 * torch.randn_like(x))
        loss = info_nce(za, zb, TAU)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.step += 1
        return za.detach(), zb.detach(), loss.detach()


def log_tensorboard(writer, step: int, za: torch.Tensor, zb: torch.Tensor, loss: torch.Tensor) -> None:
    stats = F.step_statistics(za, zb)
    for name in ("alignment", "pos_sim", "norm_a", "norm_b", "nonfinite_fraction"):
        writer.add_scalar(name, stats[name].item(), step)
    writer.add_scalar("loss", loss.item(), step)
    writer.add_scalar("temperature", TAU, step)
    if step % 25 == 0:
        writer.add_scalar("uniformity", F.uniformity(za).item(), step)
        s = F.similarity_matrix(za, zb)
        off = ~torch.eye(len(s), dtype=torch.bool)
        writer.add_histogram("pos", s.diagonal().numpy(), step)
        writer.add_histogram("neg", s[off].numpy(), step)


def bench(model: str, args: argparse.Namespace) -> None:
    from torch.utils.tensorboard import SummaryWriter

    tmp = tempfile.mkdtemp(prefix="cldiag-bench-")
    loops = {name: Loop(seed=0, batch=args.batch, sizes=MODELS[model]) for name in VARIANTS}
    config = {"tau": TAU, "batch_size": args.batch}
    monitors = {
        "cldiag none": Monitor(f"{tmp}/none", config=config, budget=None),
        "cldiag 0.03": Monitor(f"{tmp}/budget", config=config, budget=0.03),
    }
    writer = SummaryWriter(f"{tmp}/tb")
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    hook_times: dict[str, list[float]] = {name: [] for name in VARIANTS}

    def run_block(name: str, n: int, record: bool) -> None:
        loop = loops[name]
        for _ in range(n):
            t0 = time.perf_counter()
            za, zb, loss = loop.train_step()
            t1 = time.perf_counter()
            if name in monitors:
                monitors[name].log(loop.step, za, zb, temperature=TAU, loss=loss)
            elif name == "tensorboard":
                log_tensorboard(writer, loop.step, za, zb, loss)
            if record:
                t2 = time.perf_counter()
                times[name].append(t2 - t0)
                hook_times[name].append(t2 - t1)

    for name in VARIANTS:  # warm-up: allocator, kernels, first parquet write, TB event file
        run_block(name, 20, record=False)
    for r in range(args.rounds):
        k = r % len(VARIANTS)
        for name in VARIANTS[k:] + VARIANTS[:k]:  # rotate the order: no variant always runs first
            run_block(name, args.steps_per_block, record=True)
    for mon in monitors.values():
        mon.close()
    writer.close()
    report(model, args, times, hook_times, {name: mon.run_dir for name, mon in monitors.items()})
    alone(model, args, f"{tmp}/alone", config)


def alone(model: str, args: argparse.Namespace, path: str, config: dict) -> None:
    """The default budget's own record (``meta.json`` ``overhead``) for a Monitor that runs alone."""
    loop = Loop(seed=0, batch=args.batch, sizes=MODELS[model])
    with Monitor(path, config=config, budget=0.03) as mon:
        for _ in range(20 + args.rounds * args.steps_per_block):
            za, zb, loss = loop.train_step()
            mon.log(loop.step, za, zb, temperature=TAU, loss=loss)
    overhead = read_run(path).meta["overhead"]
    print(
        f"cldiag 0.03 alone, {loop.step} steps: meta.json overhead share {overhead['share']:.2%}, "
        f"base_share {overhead['base_share']:.2%}, stretch {overhead['stretch']:.2f}"
    )


def report(model, args, times, hook_times, run_dirs) -> None:
    # Block means (not single steps): the work done every 25/250/1000 steps is amortised as in training.
    def block_means(name: str) -> list[float]:
        t, k = times[name], args.steps_per_block
        return [statistics.fmean(t[i : i + k]) for i in range(0, len(t), k)]

    med = {name: statistics.median(block_means(name)) for name in VARIANTS}
    base = med["plain"]
    plain_step = statistics.fmean(times["plain"])
    print(
        f"\n[{model}] MLP {'→'.join(map(str, MODELS[model]))}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s), batch {args.batch}, "
        f"{args.rounds} rounds x {args.steps_per_block} steps per variant (interleaved)"
    )
    head = f"{'variant':<13} {'ms/step':>9} {'end-to-end':>11} {'in-call ms':>11} {'in-call %':>10}"
    head += f" {'median':>7}"
    print(f"{head}  computed at (steps)")
    for name in VARIANTS:
        hook = statistics.fmean(hook_times[name])
        heavy = ""
        if name in run_dirs:
            run = read_run(run_dirs[name])
            sc = run.scalars(["alignment", "uniformity", "effective_rank"])
            heavy = (
                f"step {sc[sc.metric == 'alignment'].step.nunique()}, "
                f"pairwise {sc[sc.metric == 'uniformity'].step.nunique()}, "
                f"spectrum {sc[sc.metric == 'effective_rank'].step.nunique()}, "
                f"curves {run.temperature().step.nunique()}"
            )
        median = statistics.median(hook_times[name])
        in_call = f"{hook * 1e3:>11.3f} {hook / plain_step:>+10.2%} {median * 1e3:>7.3f}"
        in_call = "" if name == "plain" else in_call
        print(f"{name:<13} {med[name] * 1e3:>9.3f} {med[name] / base - 1:>+11.2%} {in_call:>30}  {heavy}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=[*MODELS, "both"], default="both")
    parser.add_argument("--steps-per-block", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for model in MODELS if args.model == "both" else (args.model,):
        bench(model, args)


if __name__ == "__main__":
    main()
