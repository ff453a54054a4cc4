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
=============================  ==========================================================================

Every run is compacted to one part file per table after training, which keeps the directory small and
quick to open. About 1 minute on two CPU cores, a few MB in all.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from cldiag.lab.trainer import LabConfig, LabProgress, train

__all__ = ["SAMPLE_RUNS", "make_sample_runs"]

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
}
"""Run name → configuration of every sample run (seed 0 throughout)."""


def make_sample_runs(
    out_dir: str | os.PathLike[str] = "sample_runs",
    *,
    steps_scale: float = 1.0,
    progress: Callable[[str, LabProgress], None] | None = None,
) -> list[str]:
    """Train the sample runs into ``out_dir`` (replacing runs of the same names) and compact them.

    Args:
        out_dir: Directory that receives one sub-directory per run.
        steps_scale: Multiplies every run's steps (tests use a small value; the bundle uses 1).
        progress: Called as ``progress(run_name, LabProgress)`` while runs train.

    Returns:
        The run directories written, in :data:`SAMPLE_RUNS` order.

    Raises:
        ValueError: If ``steps_scale`` is not a positive number.
        RuntimeError: If a sample run does not finish (which would ship a broken sample).
    """
    from cldiag.maintenance import compact_run

    scaled_configs = {name: config.scaled(steps_scale) for name, config in SAMPLE_RUNS.items()}
    written = []
    for name, scaled in scaled_configs.items():
        run_dir = os.path.join(os.fspath(out_dir), name)
        callback = None if progress is None else (lambda p, n=name: progress(n, p))
        result = train(scaled, run_dir, progress=callback, overwrite=True)
        if result.status != "finished":
            raise RuntimeError(f"sample run {name!r} ended {result.status}: {result.message}")
        compact_run(run_dir)
        written.append(run_dir)
    return written
