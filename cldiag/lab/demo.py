"""Build the bundled sample runs from real small trainings (``cldiag demo``).

The dashboard opens ``sample_runs/`` when it is given no runs of its own, so a first-time user sees every
page with data that means something. Each sample is a genuine lab training with a fixed seed:

=============================  ==========================================================================
run                            what it shows
=============================  ==========================================================================
``simclr-digits-tau0.2``       a healthy SimCLR run on digits, with labels (tolerance, kNN, projections)
``simclr-digits-tau0.1``       the same at a lower τ: more uniform, less tolerant (Wang & Liu 2021)
``simclr-digits-tau1``         the same at a high τ: less uniform, more tolerant
``collapse-toy-strong``        dimensional collapse: the Jing et al. toy with strong noise on dims 8–15
``collapse-toy-weak``          its healthy twin with weak noise: a full spectrum
``collapse-no-negatives``      complete collapse: digits trained with the alignment term alone (no negatives)
``clip-pairs-tau0.01``         image↔caption CLIP at τ = 0.01: a large modality gap stays (Liang et al.)
``clip-pairs-tau1``            the same at τ = 1: the gap closes
``symile-xor-triples``         three modalities whose label sits only in the triple (c = a XOR b),
                               trained with Symile: the N×N gap and retrieval matrices and Symile's
                               matched/mismatched score distribution (Saporta et al. 2024)
``isogclr-imbalanced``         one learned τ per sample (iSogCLR) on 4 frequent and 16 rare classes: the
                               τ quantiles, τ per class and τ against class frequency (Qiu et al. 2023)
``minilm-stdlib-pairs``        a real pretrained model: all-MiniLM-L6-v2 fine-tuned 40 steps with
                               MultipleNegativesRankingLoss on stdlib (docstring, signature) pairs
                               (:mod:`cldiag.lab.sentence_preset`; only with ``real_model=True``)
=============================  ==========================================================================

Every run is compacted to one part file per table after training, which keeps the directory small and
quick to open. The ten lab runs (:data:`SAMPLE_RUNS`) cost about 60 CPU-seconds on one thread and write
a few MB; that is what ``cldiag demo`` rebuilds. The real-model run (:data:`REAL_MODEL_RUNS`) needs the
``st`` extra (sentence-transformers and the MiniLM weights) and about 2 CPU-minutes more (206 CPU-seconds
measured for all nine runs against 80 for the eight; see docs/lab.md), so only
``cldiag demo --real-model`` rebuilds it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from cldiag.lab import presets, sentence_preset
from cldiag.lab.trainer import LabConfig, LabProgress, train

__all__ = ["REAL_MODEL_CONFIG", "REAL_MODEL_RUNS", "SAMPLE_RUNS", "make_sample_runs"]

_TOY = LabConfig(
    data="toy",
    encoder="linear",
    embed_dim=16,
    temperature=0.1,
    batch_size=128,
    steps=1500,
    optimizer="sgd",
    lr=0.01,
    eval_every=250,
    snapshot_every=500,
)
_DIGITS = LabConfig(data="digits", batch_size=256)  # the samples were made before the Lab default changed
_PAIRS = LabConfig(data="pairs", loss="clip", batch_size=128, embed_dim=32, steps=800, snapshot_every=200)

SAMPLE_RUNS: dict[str, LabConfig] = {
    "simclr-digits-tau0.2": _DIGITS.replace(temperature=0.2, steps=1000, snapshot_every=200),
    "simclr-digits-tau0.1": _DIGITS.replace(temperature=0.1, steps=600),
    "simclr-digits-tau1": _DIGITS.replace(temperature=1.0, steps=600),
    "collapse-toy-strong": _TOY.replace(augmentation=1.5),
    "collapse-toy-weak": _TOY.replace(augmentation=0.1),
    "collapse-no-negatives": _DIGITS.replace(loss="align", steps=400, snapshot_every=100),
    "clip-pairs-tau0.01": _PAIRS.replace(temperature=0.01),
    "clip-pairs-tau1": _PAIRS.replace(temperature=1.0),
    # Issue 15's preset runs, as `cldiag lab three-modalities` and `… individual-temperature` train them.
    "symile-xor-triples": dict(presets.PRESETS["three-modalities"].settings)["symile"],
    "isogclr-imbalanced": dict(presets.PRESETS["individual-temperature"].settings)["s0"],
}
"""Run name → configuration of every lab sample run (seed 0 throughout)."""

REAL_MODEL_RUNS: tuple[str, ...] = (sentence_preset.SAMPLE_RUN,)
"""The bundled real-model runs, built by ``make_sample_runs(real_model=True)`` (``cldiag demo --real-model``)
or ``python -m cldiag.lab.sentence_preset``."""

REAL_MODEL_CONFIG = sentence_preset.SentenceConfig(threads=1)
"""The MiniLM fine-tune of ``minilm-stdlib-pairs``: the preset's defaults on one torch thread, as the bundled
run was made (the lab runs use one thread too)."""


def make_sample_runs(
    out_dir: str | os.PathLike[str] = "sample_runs",
    *,
    steps_scale: float = 1.0,
    progress: Callable[[str, LabProgress], None] | None = None,
    real_model: bool = False,
    model: Any = None,
) -> list[str]:
    """Train the sample runs into ``out_dir`` (replacing runs of the same names) and compact them.

    Args:
        out_dir: Directory that receives one sub-directory per run.
        steps_scale: Multiplies every run's steps (tests use a small value; the bundle uses 1).
        progress: Called as ``progress(run_name, LabProgress)`` while runs train.
        real_model: Also fine-tune all-MiniLM-L6-v2 into ``minilm-stdlib-pairs`` (:data:`REAL_MODEL_RUNS`);
            needs the ``st`` extra and minutes of CPU. The model loads before any training starts, so a
            missing dependency fails at once.
        model: With ``real_model``, a ``SentenceTransformer`` to fine-tune instead of loading MiniLM
            (tests pass a loaded copy).

    Returns:
        The run directories written: :data:`SAMPLE_RUNS` order, then :data:`REAL_MODEL_RUNS`.

    Raises:
        ValueError: If ``steps_scale`` is not a positive number.
        ImportError: If ``real_model`` is set and sentence-transformers or the weights are missing.
        RuntimeError: If a sample run does not finish (which would ship a broken sample).
    """
    from cldiag.maintenance import compact_run

    scaled_configs = {name: config.scaled(steps_scale) for name, config in SAMPLE_RUNS.items()}
    if real_model:
        REAL_MODEL_CONFIG.scaled(steps_scale)  # a bad scale fails before the model loads
        if model is None:
            model = sentence_preset.load_minilm(REAL_MODEL_CONFIG.max_seq_length)
    written = []
    for name, scaled in scaled_configs.items():
        run_dir = os.path.join(os.fspath(out_dir), name)
        callback = None if progress is None else (lambda p, n=name: progress(n, p))
        result = train(scaled, run_dir, progress=callback, overwrite=True)
        if result.status != "finished":
            raise RuntimeError(f"sample run {name!r} ended {result.status}: {result.message}")
        compact_run(run_dir)
        written.append(run_dir)
    if real_model:
        (name,) = REAL_MODEL_RUNS
        callback = None if progress is None else (lambda p: progress(name, p))
        written.append(
            sentence_preset.make_sample_run(
                out_dir, steps_scale=steps_scale, model=model, progress=callback, config=REAL_MODEL_CONFIG
            )
        )
    return written
