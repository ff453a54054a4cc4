"""The lab trainer: a small contrastive training that writes a normal cldiag run.

:func:`train` runs one configuration to the end (or until asked to stop, or until the loss turns NaN) and
logs every step through :class:`cldiag.Monitor`, so every dashboard page can open the run, live or later.
On top of the Monitor's diagnostics it logs

- ``knn_acc``: cosine 5-NN accuracy of held-out embeddings against training embeddings (data with labels),
  every ``eval_every`` steps;
- ``knn_acc_raw``: the same probe on raw inputs, once at step 0 -- the bar a trained encoder has to clear;
- an embedding snapshot of the held-out set every ``snapshot_every`` steps and at the end.

:class:`LabSession` runs :func:`train` in a daemon thread for an interactive page: it exposes progress,
stops on request, and never lets two trainings of one session run at once.

Example:
    >>> import tempfile
    >>> config = LabConfig(data="toy", encoder="linear", embed_dim=16, steps=20, batch_size=32)
    >>> result = train(config, tempfile.mkdtemp() + "/toy")
    >>> result.status, result.steps_done
    ('finished', 20)
"""

from __future__ import annotations

import dataclasses
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import torch
from torch import Tensor

from cldiag import losses, paths, schema
from cldiag.lab.data import (
    ClutteredDigitsViews,
    DigitsViews,
    GaussianToy,
    HiddenPrototypes,
    PairedDigitsCaptions,
    ViewBatch,
)
from cldiag.lab.models import MLP, Encoder, build_backbone, reset_parameters
from cldiag.lab.probe import knn_accuracy

__all__ = [
    "LabBusyError",
    "LabConfig",
    "LabProgress",
    "LabResult",
    "LabSession",
    "train",
]

DataName = Literal["digits", "cluttered-digits", "prototypes", "pairs", "toy"]
EncoderName = Literal["mlp", "cnn", "linear"]
LossName = Literal["nt_xent", "info_nce", "clip", "dcl", "dclw", "supcon", "mochi", "align"]
OptimizerName = Literal["adam", "sgd"]
Status = Literal["running", "finished", "stopped", "diverged", "failed"]

# Bounds: what a 2-core laptop finishes in minutes and what the models and data sets can take. The largest
# batch stays below the smallest training set (1400 digits), so every batch holds distinct samples.
MAX_STEPS = 20_000
BATCH_RANGE = (4, 1024)
TEMPERATURE_RANGE = (0.01, 10.0)
LR_MAX = 1e30  # beyond this torch's optimizers overflow with an opaque error; below it NaN is caught
EMBED_RANGE = (2, 512)
HIDDEN_RANGE = (8, 2048)
SNAPSHOT_RANGE = (16, 1024)
TOY_NOISE_MAX = 3.0
MAX_THREADS = 16
KNN_K = 5

_TWO_MODALITY_LOSSES = ("clip", "info_nce")


@dataclass(frozen=True)
class LabConfig:
    """Everything that defines a lab training. Out-of-range values raise ``ValueError`` on construction.

    The defaults are a healthy SimCLR-style run on digits that finishes in a few seconds.
    """

    data: DataName = "digits"  # real images, bundled with scikit-learn; "prototypes"/"cluttered-digits"
    # hide the class under nuisance (raw kNN poor), "pairs" is image↔caption, "toy" the Jing et al. 16-d toy
    encoder: EncoderName = "mlp"  # an MLP trains fastest on a CPU; "cnn" for 8×8 images, "linear" for the toy
    projector: bool = False  # SimCLR's head helps at scale; without it the loss and the kNN see one space
    loss: LossName = "nt_xent"  # SimCLR's loss: 2N views, 2N−2 negatives per anchor
    temperature: float = 0.2  # inside [0.1, 0.5] where SimCLR-style training is stable in a few hundred steps
    learnable_temperature: bool = False  # as CLIP: τ = 1/scale, scale learned in log space, τ ≥ 0.01
    batch_size: int = 256  # 510 negatives per anchor, still ≈10–17 ms per step on one core (measured)
    steps: int = 600  # digits' kNN accuracy and uniformity have settled by then (measured)
    lr: float = 1e-3  # Adam's default; the small models here tolerate it without warm-up
    optimizer: OptimizerName = "adam"  # forgiving of gradient scale; "sgd" (momentum 0.9) exposes it
    augmentation: float = 0.5  # images: strength in [0, 1] (0.5: half shifted ±1 px, noise 0.15, 3×3 erase);
    # toy: the noise std on dims 8–15 in [0, 3] (Jing et al.: 0.1 weak, 1.5 strong)
    embed_dim: int = 64  # the embedding the loss sees; wide enough for 10 classes to spread out
    hidden_dim: int = 256  # MLP width: large enough to fit digits, small enough for fast steps
    seed: int = 0  # fixes initialisation, batches and augmentations
    eval_every: int = 100  # kNN probe cadence: a handful of points per curve, each ≈10 ms
    snapshot_every: int = 200  # held-out snapshots for the projection pages; 0 = start and end only
    snapshot_size: int = 512  # rows per snapshot; the held-out sets are 397–512, keeps a run ≲ 1 MB
    threads: int = 1  # tiny matmuls gain little from a second thread, and oversubscribed threads slow 10×
    preset: str | None = None  # the preset this run belongs to, recorded in meta.json for the checks

    def __post_init__(self) -> None:
        """Validate every field; the message names the field, the value and the allowed range."""
        _check_choice("data", self.data, DataName)
        _check_choice("encoder", self.encoder, EncoderName)
        _check_choice("loss", self.loss, LossName)
        _check_choice("optimizer", self.optimizer, OptimizerName)
        for name in ("projector", "learnable_temperature"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")
        _check_int("batch_size", self.batch_size, *BATCH_RANGE)
        _check_int("steps", self.steps, 1, MAX_STEPS)
        _check_int("embed_dim", self.embed_dim, *EMBED_RANGE)
        _check_int("hidden_dim", self.hidden_dim, *HIDDEN_RANGE)
        _check_int("seed", self.seed, 0, 2**31 - 1)
        _check_int("eval_every", self.eval_every, 1, MAX_STEPS)
        _check_int("snapshot_every", self.snapshot_every, 0, MAX_STEPS)
        _check_int("snapshot_size", self.snapshot_size, *SNAPSHOT_RANGE)
        _check_int("threads", self.threads, 1, MAX_THREADS)
        _check_float("temperature", self.temperature, *TEMPERATURE_RANGE)
        _check_float("lr", self.lr, 0.0, LR_MAX, low_open=True)
        if self.data == "toy":
            _check_float("augmentation (toy: noise std on dims 8-15)", self.augmentation, 0.0, TOY_NOISE_MAX)
        else:
            _check_float("augmentation (strength)", self.augmentation, 0.0, 1.0)
        if self.preset is not None and not isinstance(self.preset, str):
            raise TypeError(f"preset must be a string or None, got {self.preset!r}")
        self._check_combination()

    def _check_combination(self) -> None:
        if self.data == "pairs" and self.loss not in _TWO_MODALITY_LOSSES:
            raise ValueError(
                f"loss {self.loss!r} compares views of one modality; the image↔caption pairs need a "
                f"cross-modal loss: {' or '.join(_TWO_MODALITY_LOSSES)}"
            )
        if self.loss == "supcon" and self.data == "toy":
            raise ValueError("supcon needs class labels and the toy has none; pick another loss or data set")
        if self.encoder == "cnn" and self.data not in ("digits", "pairs"):
            raise ValueError(
                f"the cnn encoder needs 8×8 images; data {self.data!r} is a flat vector, use 'mlp'"
            )
        if self.encoder == "linear":
            size = _input_size(self.data)
            if self.embed_dim != size:
                raise ValueError(
                    f"the linear encoder is a square map: embed_dim must equal the input size {size} of "
                    f"{self.data!r}, got {self.embed_dim}"
                )

    @property
    def has_labels(self) -> bool:
        """Whether the data set has class labels (kNN probe, tolerance)."""
        return self.data != "toy"

    @property
    def two_modality(self) -> bool:
        """Whether the run has two modalities (image and text towers)."""
        return self.data == "pairs"

    def replace(self, **changes: Any) -> LabConfig:
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    def scaled(self, steps_scale: float) -> LabConfig:
        """A copy with ``steps`` and the evaluation cadences multiplied by ``steps_scale`` (≥ 10 steps).

        Raises:
            ValueError: If ``steps_scale`` is not a positive finite number, or the result is out of range.
        """
        if isinstance(steps_scale, bool) or not isinstance(steps_scale, int | float):
            raise ValueError(f"steps_scale must be a positive number, got {steps_scale!r}")
        if not (math.isfinite(steps_scale) and steps_scale > 0):
            raise ValueError(f"steps_scale must be a positive number, got {steps_scale!r}")
        steps = max(10, round(self.steps * steps_scale))
        return self.replace(
            steps=steps,
            eval_every=max(1, min(steps, round(self.eval_every * steps_scale))),
            snapshot_every=min(steps, round(self.snapshot_every * steps_scale)),
        )

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (what goes into ``meta.json``)."""
        return dataclasses.asdict(self)


def _check_choice(name: str, value: object, choices: object) -> None:
    allowed = get_args(choices)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must lie in [{low}, {high}], got {value}")


def _check_float(name: str, value: object, low: float, high: float, *, low_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    ok = math.isfinite(value) and (low < value if low_open else low <= value) and value <= high
    if not ok:
        bracket = "(" if low_open else "["
        raise ValueError(f"{name} must lie in {bracket}{low:g}, {high:g}], got {value}")


def _input_size(data: str) -> int:
    return {"digits": 64, "pairs": 64, "cluttered-digits": 128, "prototypes": 64, "toy": 16}[data]


# ---------------------------------------------------------------------------------------------------------
# Progress and results.


@dataclass(frozen=True)
class LabProgress:
    """Where a training stands. ``metrics`` holds the latest ``loss``, ``knn_acc``, ``knn_acc_raw``."""

    run_dir: str
    step: int
    total: int
    status: Status
    metrics: dict[str, float] = field(default_factory=dict)
    message: str = ""

    @property
    def fraction(self) -> float:
        """Share of steps done, in [0, 1]."""
        return min(1.0, self.step / self.total) if self.total else 0.0


@dataclass(frozen=True)
class LabResult:
    """The outcome of :func:`train`.

    Attributes:
        run_dir: The run directory written.
        config: The configuration trained.
        status: ``finished``, ``stopped`` (stop requested) or ``diverged`` (non-finite loss).
        steps_done: Optimizer steps taken.
        seconds: Wall time of the training loop.
        metrics: Final ``loss``, ``knn_acc`` and ``knn_acc_raw`` (the last two when the data has labels).
        message: A sentence for the learner saying how the run ended.
    """

    run_dir: str
    config: LabConfig
    status: Status
    steps_done: int
    seconds: float
    metrics: dict[str, float]
    message: str

    @property
    def diverged(self) -> bool:
        """True when the loss became NaN or infinite and training stopped itself."""
        return self.status == "diverged"

    @property
    def steps_per_second(self) -> float:
        """Training throughput, including the Monitor's logging."""
        return self.steps_done / self.seconds if self.seconds > 0 else 0.0


ProgressFn = Callable[[LabProgress], None]


# ---------------------------------------------------------------------------------------------------------
# Building blocks.


def make_data(config: LabConfig) -> DigitsViews | HiddenPrototypes | GaussianToy:
    """The data set a configuration asks for, seeded by ``config.seed``."""
    if config.data == "digits":
        return DigitsViews(config.augmentation, config.seed)
    if config.data == "cluttered-digits":
        return ClutteredDigitsViews(config.augmentation, config.seed)
    if config.data == "pairs":
        return PairedDigitsCaptions(config.augmentation, config.seed)
    if config.data == "prototypes":
        return HiddenPrototypes(config.seed)
    return GaussianToy(config.augmentation, config.seed)


def make_towers(config: LabConfig, input_shape: tuple[int, ...]) -> tuple[Encoder, Encoder | None]:
    """The encoder (and for two-modality data the text tower), initialised from ``config.seed``."""
    projector = config.embed_dim if config.projector else None
    first = Encoder(
        build_backbone(config.encoder, input_shape, config.embed_dim, hidden=config.hidden_dim),
        config.embed_dim,
        projector_dim=projector,
    )
    second = None
    if config.two_modality:
        text = MLP(PairedDigitsCaptions.caption_dim, config.embed_dim, hidden=config.hidden_dim)
        second = Encoder(text, config.embed_dim, projector_dim=projector)
    generator = torch.Generator().manual_seed(config.seed)
    for tower in (first, second):
        if tower is not None:
            reset_parameters(tower, generator)
    return first, second


def contrastive_loss(
    config: LabConfig, za: Tensor, zb: Tensor, labels: Tensor | None, tau: Tensor | float
) -> Tensor:
    """The loss ``config.loss`` of one batch (see :mod:`cldiag.losses`)."""
    if config.loss == "nt_xent":
        return losses.nt_xent(za, zb, tau)
    if config.loss == "info_nce":
        return losses.info_nce(za, zb, tau, symmetric=True)
    if config.loss == "clip":
        return losses.clip_loss(za, zb, 1 / tau)
    if config.loss == "dcl":
        return losses.dcl_loss(za, zb, tau)
    if config.loss == "dclw":
        return losses.dclw_loss(za, zb, tau)
    if config.loss == "align":
        return losses.alignment_only_loss(za, zb)
    if config.loss == "supcon":
        if labels is None:
            raise ValueError("supcon needs labels")
        return losses.supcon_loss(torch.cat([za, zb]), labels.repeat(2), tau)
    n_hard = min(16, za.shape[0] - 1)
    return losses.mochi_loss(za, zb, None, tau, n_hard=n_hard, n_mix=n_hard, n_mix_query=max(1, n_hard // 2))


class _Probe:
    """Held-out evaluation: the kNN accuracy and the snapshot rows of a training."""

    def __init__(self, config: LabConfig, data: DigitsViews | HiddenPrototypes | GaussianToy) -> None:
        self.config = config
        self.labels = config.has_labels
        if isinstance(data, GaussianToy):
            self.x_train = self.y_train = self.y_test = None
            self.x_test = data.probe
        else:
            self.x_train, self.y_train, self.x_test, self.y_test = data.eval_sets()
        self.c_train = self.c_test = None
        if isinstance(data, PairedDigitsCaptions):
            self.c_train, self.c_test = data.eval_captions()

    def raw_knn(self) -> float | None:
        if self.x_train is None or self.y_train is None or self.y_test is None:
            return None
        return knn_accuracy(self.x_train.flatten(1), self.y_train, self.x_test.flatten(1), self.y_test, KNN_K)

    @torch.no_grad()
    def knn(self, tower: Encoder) -> float | None:
        if self.x_train is None or self.y_train is None or self.y_test is None:
            return None
        return knn_accuracy(
            tower.represent(self.x_train), self.y_train, tower.represent(self.x_test), self.y_test, KNN_K
        )

    @torch.no_grad()
    def snapshot(self, step: int, mon: Any, first: Encoder, second: Encoder | None) -> None:
        ids = torch.arange(self.x_test.shape[0])
        if second is None:
            mon.log_embeddings(step, first(self.x_test), labels=self.y_test, ids=ids)
            return
        mon.log_embeddings(step, first(self.x_test), labels=self.y_test, modality="image", ids=ids)
        mon.log_embeddings(step, second(self.c_test), labels=self.y_test, modality="text", ids=ids)


# ---------------------------------------------------------------------------------------------------------
# Training.


def train(
    config: LabConfig,
    run_dir: str,
    stop_event: threading.Event | None = None,
    progress: ProgressFn | None = None,
    *,
    overwrite: bool = False,
) -> LabResult:
    """Train ``config`` and write the run to ``run_dir`` through :class:`cldiag.Monitor`.

    Each step draws a batch of two views (or an image and its caption), computes the loss, logs the step to
    the Monitor (scalars, histograms, spectra, temperature curves at the Monitor's cadences) and updates the
    model. Every ``config.eval_every`` steps the kNN probe runs on held-out data; snapshots of held-out
    embeddings go to the run every ``config.snapshot_every`` steps and at the start and end.

    Training ends when all steps are done, when ``stop_event`` is set (checked before every step; status
    ``stopped``, the run is still closed cleanly), or when the loss stops being finite (status
    ``diverged``; the run is marked ``failed`` and the message says what to change).

    ``torch.set_num_threads(config.threads)`` is applied; it is process-wide.

    Args:
        config: What to train.
        run_dir: Run directory (local path or fsspec URI) for the Monitor.
        stop_event: Set it from another thread to stop training early.
        progress: Called with a :class:`LabProgress` about every 1 % of the steps and at the end.
        overwrite: Replace a run already in ``run_dir`` (otherwise that raises ``FileExistsError``).

    Returns:
        The :class:`LabResult`.

    Raises:
        FileExistsError: If ``run_dir`` holds a run and ``overwrite`` is False.
        TypeError: If ``config`` is not a :class:`LabConfig`.
    """
    from cldiag.monitor import Monitor  # local: keeps `import cldiag.lab` light for the dashboard

    if not isinstance(config, LabConfig):
        raise TypeError(f"config must be a LabConfig, got {type(config).__name__}")
    # A linked run directory (or table directory) would write, or with overwrite delete, outside out_dir.
    paths.refuse_linked_run_dir(run_dir, (schema.META_FILE, *schema.TABLES))
    torch.set_num_threads(config.threads)
    data = make_data(config)
    first, second = make_towers(config, data.input_shape)
    scale = losses.LogitScale(config.temperature) if config.learnable_temperature else None
    params = [
        *first.parameters(),
        *(second.parameters() if second is not None else ()),
        *(scale.parameters() if scale else ()),
    ]
    optimizer: torch.optim.Optimizer = (
        torch.optim.Adam(params, lr=config.lr)
        if config.optimizer == "adam"
        else torch.optim.SGD(params, lr=config.lr, momentum=0.9)
    )
    probe = _Probe(config, data)
    metrics: dict[str, float] = {}
    report_every = max(1, config.steps // 100)

    def report(step: int, status: Status, message: str = "") -> None:
        if progress is not None:
            progress(LabProgress(run_dir, step, config.steps, status, dict(metrics), message))

    evaluated: set[int] = set()

    def evaluate(step: int, mon: Monitor, snapshot: bool) -> None:
        if step in evaluated:  # a stop right after an evaluation must not log that step twice
            return
        evaluated.add(step)
        acc = probe.knn(first)
        if acc is not None:
            metrics["knn_acc"] = acc
            mon.log_scalar(step, "knn_acc", acc)
        if snapshot:
            probe.snapshot(step, mon, first, second)

    modalities = ("image", "text") if config.two_modality else None
    meta_config = {**config.to_dict(), "source": "cldiag.lab"}
    status: Status = "finished"
    message = ""
    step = 0
    start = time.perf_counter()
    with Monitor(
        run_dir,
        config=meta_config,
        modalities=modalities,
        snapshot_every=0,  # snapshots come from the held-out probe set, not from training batches
        snapshot_size=config.snapshot_size,
        flush_every=50,
        flush_secs=1.0,  # a live lab page polls the run; a second of latency keeps it fresh
        if_exists="overwrite" if overwrite else "error",
    ) as mon:
        raw = probe.raw_knn()
        if raw is not None:
            metrics["knn_acc_raw"] = raw
            mon.log_scalar(0, "knn_acc_raw", raw)
        evaluate(0, mon, snapshot=True)
        report(0, "running")
        for step in range(config.steps):
            if stop_event is not None and stop_event.is_set():
                status, message = "stopped", f"stopped on request after {step} of {config.steps} steps"
                break
            batch: ViewBatch = data.sample(config.batch_size)
            tau = 1 / scale() if scale is not None else config.temperature
            za = first(batch.a)
            zb = (second if second is not None else first)(batch.b)
            loss = contrastive_loss(config, za, zb, batch.labels, tau)
            mon.log(step, za.detach(), zb.detach(), labels=batch.labels, temperature=tau, loss=loss.detach())
            loss_value = float(loss.detach())
            metrics["loss"] = loss_value
            if not math.isfinite(loss_value):
                status = "diverged"
                message = (
                    f"the loss became {loss_value} at step {step}, so training stopped: the updates blew the "
                    f"weights up (lr={config.lr:g}, {config.optimizer}). Lower the learning rate."
                )
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            done = step + 1
            if done % config.eval_every == 0 and done < config.steps:
                evaluate(done, mon, snapshot=config.snapshot_every > 0 and done % config.snapshot_every == 0)
            if done % report_every == 0:
                report(done, "running")
        else:
            step = config.steps
        if status != "diverged":
            evaluate(step, mon, snapshot=True)
            if status == "finished":
                message = f"finished {step} steps"
        mon.close(status="failed" if status == "diverged" else "finished")
    seconds = time.perf_counter() - start
    report(step, status, message)
    return LabResult(run_dir, config, status, step, seconds, dict(metrics), message)


# ---------------------------------------------------------------------------------------------------------
# Background sessions.


class LabBusyError(RuntimeError):
    """A training is already running in this session and the caller asked not to replace it."""


class LabSession:
    """Runs one lab training (or one preset's trainings) at a time in a daemon thread.

    For a Streamlit page, keep one per browser session in ``st.session_state``: Streamlit reruns the page
    script on every widget change, which would kill a training loop running inside it; the thread lives
    outside the script and the page only reads :attr:`progress`. Starting anything while a training runs
    stops that training first (or raises :class:`LabBusyError` with ``replace=False``), so two trainings of
    one session never run at once.

    Example:
        >>> import tempfile
        >>> session = LabSession()
        >>> config = LabConfig(data="toy", encoder="linear", embed_dim=16, steps=10, batch_size=32)
        >>> session.start(config, tempfile.mkdtemp() + "/run")
        >>> session.join(timeout=60)
        True
        >>> session.progress.status
        'finished'
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._progress: LabProgress | None = None
        self._result: LabResult | None = None
        self._error: BaseException | None = None
        self._preset: str | None = None
        self._preset_position: tuple[int, int] | None = None
        self._preset_result: Any = None

    @property
    def running(self) -> bool:
        """Whether a training thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def progress(self) -> LabProgress | None:
        """The latest progress of the current (or last) training, None before the first start."""
        return self._progress

    @property
    def result(self) -> LabResult | None:
        """The result of the last single training once it has ended, else None."""
        return self._result

    @property
    def error(self) -> BaseException | None:
        """The exception that ended the last training, if one did (the run is then marked failed)."""
        return self._error

    @property
    def preset(self) -> str | None:
        """Name of the preset running or run last; None after a single training was started."""
        return self._preset

    @property
    def preset_position(self) -> tuple[int, int] | None:
        """``(index of the current run, number of runs)`` of the preset; None for a single training."""
        return self._preset_position

    @property
    def preset_result(self) -> Any:
        """The :class:`~cldiag.lab.presets.PresetResult` of the last preset once it has ended, else None."""
        return self._preset_result

    def start(
        self, config: LabConfig, run_dir: str, *, replace: bool = True, overwrite: bool = False
    ) -> None:
        """Start training ``config`` into ``run_dir`` in the background.

        Args:
            config: What to train (validated already by :class:`LabConfig`).
            run_dir: Run directory for the Monitor.
            replace: If a training is running: stop it and wait for it to end first (True), or raise
                :class:`LabBusyError` (False).
            overwrite: Replace a run already in ``run_dir``.

        Raises:
            LabBusyError: If a training is running and ``replace`` is False.
            TypeError: If ``config`` is not a :class:`LabConfig`.
        """
        if not isinstance(config, LabConfig):
            raise TypeError(f"config must be a LabConfig, got {type(config).__name__}")

        def work(stop: threading.Event) -> None:
            self._result = train(config, run_dir, stop, self._set_progress, overwrite=overwrite)

        with self._lock:
            self._claim(replace)
            self._preset = None
            self._preset_position = None
            self._launch(work, LabProgress(run_dir, 0, config.steps, "running", {}, "starting"))

    def start_preset(
        self, name: str, out_dir: str | os.PathLike[str], *, steps_scale: float = 1.0, replace: bool = True
    ) -> None:
        """Run every setting of preset ``name`` under ``out_dir`` in the background, then check it.

        See :func:`cldiag.lab.presets.run_preset`; the result lands in :attr:`preset_result`.

        Raises:
            ValueError: If the preset is unknown or ``steps_scale`` is not positive.
            LabBusyError: If a training is running and ``replace`` is False.
        """
        from cldiag.lab.presets import PRESETS, run_preset  # local: presets imports this module

        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(sorted(PRESETS))}")
        settings = PRESETS[name].scaled(steps_scale)
        first_dir = os.path.join(os.fspath(out_dir), f"{name}-{settings[0][0]}")

        def on_progress(index: int, count: int, p: LabProgress) -> None:
            self._preset_position = (index, count)
            self._progress = p

        def work(stop: threading.Event) -> None:
            self._preset_result = run_preset(
                name, out_dir, steps_scale=steps_scale, progress=on_progress, stop_event=stop
            )

        with self._lock:
            self._claim(replace)
            self._preset = name
            self._preset_position = (0, len(settings))
            self._preset_result = None
            self._launch(work, LabProgress(first_dir, 0, settings[0][1].steps, "running", {}, "starting"))

    def _set_progress(self, p: LabProgress) -> None:
        self._progress = p

    def _claim(self, replace: bool) -> None:
        """Make sure nothing runs (the caller holds the lock)."""
        if self.running:
            if not replace:
                raise LabBusyError("a training is already running in this session; stop it first")
            self._stop_locked(timeout=None)

    def _launch(self, work: Callable[[threading.Event], None], first: LabProgress) -> None:
        stop = self._stop = threading.Event()
        self._result = None
        self._error = None
        self._progress = first

        def run() -> None:
            try:
                work(stop)
            except Exception as exc:  # noqa: BLE001 - shown to the learner on the page instead of lost
                self._error = exc
                last = self._progress or first
                self._progress = dataclasses.replace(
                    last, status="failed", message=f"{type(exc).__name__}: {exc}"
                )

        self._thread = threading.Thread(
            target=run,
            name=f"cldiag-lab:{first.run_dir}",
            daemon=True,  # a closed browser tab or a stopped server must not wait for the training
        )
        self._thread.start()

    def stop(self, timeout: float | None = 30.0) -> bool:
        """Ask the running training to stop and wait up to ``timeout`` seconds for it to end.

        Returns:
            True when no training is running any more.
        """
        with self._lock:
            return self._stop_locked(timeout)

    def _stop_locked(self, timeout: float | None) -> bool:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the current training to end; True when it has."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.running
