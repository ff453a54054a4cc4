"""Overhead of the cldiag training hook on a CPU contrastive loop, against TensorBoard.

A SimCLR-style step: MLP encoder (784 → 1024 → 1024 → 128), two noisy views of a batch of 256, InfoNCE
(τ = 0.2), Adam. Three variants run interleaved in rounds (A B C A B C …) so that machine noise hits all
of them alike; the median step time per variant is reported with the overhead ratios:

- ``plain``: no logging;
- ``cldiag``: ``Monitor`` at default settings (scalars every step; histograms, uniformity, hardness every
  10 steps; spectra and temperature curves every 100; a snapshot every 500; writes parquet in a thread);
- ``tensorboard``: ``SummaryWriter`` logging the same per-step scalars (``add_scalar`` after ``.item()``)
  and, every 10 steps, uniformity plus the positive and negative score histograms (``add_histogram``).

Run:  python benchmarks/bench_hook.py [--steps-per-block 50] [--rounds 8]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from cldiag import Monitor
from cldiag import functional as F
from cldiag.losses import info_nce

TAU = 0.2


def make_model() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Linear(784, 1024),
        torch.nn.ReLU(),
        torch.nn.Linear(1024, 1024),
        torch.nn.ReLU(),
        torch.nn.Linear(1024, 128),
    )


class Loop:
    """One training loop whose per-step logging is pluggable."""

    def __init__(self, seed: int, batch: int) -> None:
        torch.manual_seed(seed)
        self.model = make_model()
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.data = torch.randn(4096, 784)
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
    if step % 10 == 0:
        writer.add_scalar("uniformity", F.uniformity(za).item(), step)
        s = F.similarity_matrix(za, zb)
        off = ~torch.eye(len(s), dtype=torch.bool)
        writer.add_histogram("pos", s.diagonal().numpy(), step)
        writer.add_histogram("neg", s[off].numpy(), step)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps-per-block", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from torch.utils.tensorboard import SummaryWriter

    tmp = tempfile.mkdtemp(prefix="cldiag-bench-")
    loops = {name: Loop(seed=0, batch=args.batch) for name in ("plain", "cldiag", "tensorboard")}
    monitor = Monitor(f"{tmp}/run", config={"tau": TAU, "batch_size": args.batch})
    writer = SummaryWriter(f"{tmp}/tb")
    times: dict[str, list[float]] = {name: [] for name in loops}

    hook_times: dict[str, list[float]] = {name: [] for name in loops}

    def run_block(name: str, n: int, record: bool) -> None:
        loop = loops[name]
        for _ in range(n):
            t0 = time.perf_counter()
            za, zb, loss = loop.train_step()
            t1 = time.perf_counter()
            if name == "cldiag":
                monitor.log(loop.step, za, zb, temperature=TAU, loss=loss)
            elif name == "tensorboard":
                log_tensorboard(writer, loop.step, za, zb, loss)
            if record:
                t2 = time.perf_counter()
                times[name].append(t2 - t0)
                hook_times[name].append(t2 - t1)

    names = list(loops)
    for name in names:  # warm-up: allocator, kernels, first parquet write, TB event file
        run_block(name, 20, record=False)
    for r in range(args.rounds):
        for name in names[r % 3 :] + names[: r % 3]:  # rotate the order: no variant always runs first
            run_block(name, args.steps_per_block, record=True)
    monitor.close()
    writer.close()

    # Block means (not single steps): the work done every 25/250/1000 steps is amortised as in training.
    def block_means(name: str) -> list[float]:
        t = times[name]
        k = args.steps_per_block
        return [statistics.fmean(t[i : i + k]) for i in range(0, len(t), k)]

    med = {name: statistics.median(block_means(name)) for name in loops}
    base = med["plain"]
    over_cl = med["cldiag"] / base - 1
    over_tb = med["tensorboard"] / base - 1
    print(
        f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}, d=128, "
        f"{args.rounds} rounds x {args.steps_per_block} steps per variant (interleaved)"
    )
    print(f"{'variant':<12} {'ms/step (median of block means)':>32} {'overhead':>10}")
    for name in loops:
        print(f"{name:<12} {med[name] * 1e3:>32.3f} {med[name] / base - 1:>+10.2%}")
    # End-to-end differences of a few percent are within the run-to-run noise of a shared machine, so the
    # time spent inside the logging call is measured too: it is what the training thread pays per step
    # (cldiag's writer thread works beside it; its share shows up only end-to-end).
    plain_step = statistics.fmean(times["plain"])
    hook = {name: statistics.fmean(hook_times[name]) for name in ("cldiag", "tensorboard")}
    print()
    print(f"{'in the logging call':<20} {'ms/step (mean)':>16} {'% of a plain step':>18}")
    for name, value in hook.items():
        print(f"{name:<20} {value * 1e3:>16.3f} {value / plain_step:>+18.2%}")
    ratio = over_cl / over_tb if over_tb > 0 else float("nan")
    ratio_hook = hook["cldiag"] / hook["tensorboard"]
    share = hook["cldiag"] / plain_step
    print(f"end-to-end: cldiag overhead / TensorBoard overhead = {ratio:.2f}")
    print(f"in the call: cldiag / TensorBoard = {ratio_hook:.2f}")
    print(
        f"targets (in-call measure): cldiag <= 3 % of a step: {'met' if share <= 0.03 else 'NOT met'}; "
        f"<= 0.3x TensorBoard's: {'met' if ratio_hook <= 0.3 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
