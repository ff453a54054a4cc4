"""The Monitor on a CUDA GPU: end-to-end overhead of the hook, and the cost of each heavy statistic.

1. A SimCLR-style step (MLP, InfoNCE τ = 0.2, Adam) on the GPU, three variants in interleaved blocks whose
   order rotates every round: no logging; ``Monitor(budget=None)`` (pairwise every 25 steps, spectrum and
   curves every 250, snapshot every 1000); ``Monitor()`` at its default 3 % budget. A block is timed from
   one ``torch.cuda.synchronize()`` to the next, so the GPU work the hook queues is counted; "in-call" is
   the host time inside ``Monitor.log`` (kernel launches and bookkeeping; the GPU runs behind it).
2. Each heavy statistic alone at B = 1k … 64k rows, d = 512, timed with CUDA events (median of 10 after
   3 warm-ups), with the peak memory it allocated above its inputs. Rows above ``functional.ROW_CAP``
   are subsampled by the Monitor, as here.

Run:  python benchmarks/bench_cuda.py [--rounds 6] [--big 1024,4096,16384,65536]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time

import torch

from cldiag import Monitor
from cldiag import functional as F

TAU = 0.2
MODELS = {"small": (64, 256, 128), "large": (1024, 4096, 4096, 512)}
VARIANTS = ("plain", "cldiag none", "cldiag 0.03")


class Loop:
    def __init__(self, sizes: tuple[int, ...], batch: int) -> None:
        torch.manual_seed(0)
        layers: list[torch.nn.Module] = []
        for n_in, n_out in itertools.pairwise(sizes):
            layers += [torch.nn.Linear(n_in, n_out), torch.nn.ReLU()]
        self.model = torch.nn.Sequential(*layers[:-1]).cuda()
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.x = torch.randn(batch, sizes[0], device="cuda")
        self.target = torch.arange(batch, device="cuda")
        self.step = 0

    def train_step(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.x + 0.1 * torch.randn_like(self.x)
        za, zb = self.model(x), self.model(x + 0.1 * torch.randn_like(x))
        logits = _unit(za) @ _unit(zb).T / TAU
        loss = torch.nn.functional.cross_entropy(logits, self.target)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.step += 1
        return za, zb, loss


def _unit(z: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(z, dim=1)


def bench_hook(model: str, batch: int, rounds: int, steps: int) -> None:
    tmp = tempfile.mkdtemp(prefix="cldiag-cuda-")
    loops = {name: Loop(MODELS[model], batch) for name in VARIANTS}
    monitors = {
        "cldiag none": Monitor(f"{tmp}/none", budget=None),
        "cldiag 0.03": Monitor(f"{tmp}/budget", budget=0.03),
    }
    blocks: dict[str, list[float]] = {name: [] for name in VARIANTS}
    in_call: dict[str, list[float]] = {name: [] for name in VARIANTS}

    def run_block(name: str, n: int, record: bool) -> None:
        loop = loops[name]
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(n):
            za, zb, loss = loop.train_step()
            if name in monitors:
                t1 = time.perf_counter()
                monitors[name].log(loop.step, za, zb, temperature=TAU, loss=loss)
                if record:
                    in_call[name].append(time.perf_counter() - t1)
        torch.cuda.synchronize()
        if record:
            blocks[name].append((time.perf_counter() - t0) / n)

    for name in VARIANTS:
        run_block(name, 30, record=False)
    for r in range(rounds):
        k = r % len(VARIANTS)
        for name in VARIANTS[k:] + VARIANTS[:k]:
            run_block(name, steps, record=True)
    for mon in monitors.values():
        mon.close()
    base = statistics.median(blocks["plain"])
    print(
        f"\n[{model}] MLP {'→'.join(map(str, MODELS[model]))}, batch {batch}, {rounds} rounds x {steps} steps"
    )
    print(f"{'variant':<13} {'ms/step':>8} {'end-to-end':>11} {'in-call ms mean':>16} {'median':>7}")
    for name in VARIANTS:
        med = statistics.median(blocks[name])
        calls = in_call[name]
        tail = (
            f"{statistics.fmean(calls) * 1e3:>16.3f} {statistics.median(calls) * 1e3:>7.3f}" if calls else ""
        )
        print(f"{name:<13} {med * 1e3:>8.3f} {med / base - 1:>+11.2%} {tail}")


def cuda_time(fn, repeats: int = 10) -> tuple[float, float]:
    """Median ms over ``repeats`` (after 3 warm-ups) and the peak MiB allocated above the inputs."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times), (torch.cuda.max_memory_allocated() - base) / 2**20


def bench_heavy(sizes: list[int], d: int = 512) -> None:
    print(f"\nheavy statistics, d = {d}, float32; rows above ROW_CAP = {F.ROW_CAP} are subsampled")
    names = ("pairwise", "curves", "spectrum", "effective rank")
    print(f"{'B':>7}" + "".join(f" {name + ' ms':>18} {'MiB':>7}" for name in names))
    taus = torch.logspace(-2, 0, 13, device="cuda")
    for n in sizes:
        g = torch.Generator(device="cuda").manual_seed(0)
        a = torch.randn(n, d, device="cuda", generator=g)
        b = a + 0.5 * torch.randn(n, d, device="cuda", generator=g)
        y = torch.randint(0, 100, (n,), device="cuda", generator=g)
        pw = cuda_time(lambda: F.pairwise_statistics(a, b, labels=y, temperature=TAU, seed=1))  # noqa: B023
        cv = cuda_time(lambda: F.temperature_curves(a, b, taus, labels=y, seed=1))  # noqa: B023
        sp = cuda_time(lambda: F.spectrum(a))  # noqa: B023
        rk = cuda_time(lambda: F.effective_rank(a))  # noqa: B023
        print(f"{n:>7}" + "".join(f" {ms:>18.3f} {mib:>7.1f}" for ms, mib in (pw, cv, sp, rk)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps-per-block", type=int, default=100)
    parser.add_argument("--big", default="1024,4096,16384,65536")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench_cuda.py needs a CUDA device")
    torch.backends.cuda.matmul.allow_tf32 = True
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}")
    bench_hook("small", 256, args.rounds, args.steps_per_block)
    bench_hook("large", 4096, args.rounds, args.steps_per_block)
    bench_heavy([int(s) for s in args.big.split(",")])


if __name__ == "__main__":
    main()
