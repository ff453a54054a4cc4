"""The lab trainer: a small contrastive training that writes a normal cldiag run.

:func:`train` runs one configuration to the end (or until asked to stop, or until the loss turns NaN) and
logs every step through :class:`cldiag.Monitor`, so every dashboard page can open the run, live or later.
On top of the Monitor's diagnostics it logs

- ``knn_acc``: cosine 5-NN accuracy of held-out embeddings against training embeddings (data with labels),
  every ``eval_every`` steps;
- ``knn_acc_raw``: the same probe on raw inputs, once at step 0 -- the bar a trained encoder has to clear;
- an embedding snapshot of the held-out set every ``snapshot_every`` steps and at the end;
- three modalities go to the Monitor as one mapping, so its pairwise step logs the per-pair gaps and
  retrieval and Symile's MIP beside the ranks, ordering violations, false negatives and a per-sample τ's
  quantiles (issue 15);
- ``tau_frequent`` / ``tau_rare`` (iSogCLR on long-tailed data): mean learned τ of the training samples of
  frequent and of rare classes, and ``zeroshot_acc`` (three modalities): held-out accuracy of picking the
  right ``c`` among all ``2^bits`` patterns given ``(a, b)``, with the run's own scoring.

:class:`cldiag.lab.session.LabSession` runs :func:`train` in a daemon thread for an interactive page.

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
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, get_args

import torch
from torch import Tensor

from cldiag import losses, paths, schema
from cldiag.lab.data import (
    CAPTION_ATTRIBUTES,
    ClutteredDigitsViews,
    DigitsViews,
    GaussianToy,
    HiddenPrototypes,
    ImbalancedPrototypes,
    PairedDigitsCaptions,
    ViewBatch,
    XorTriples,
)
from cldiag.lab.models import MLP, Encoder, build_backbone, reset_parameters
from cldiag.lab.probe import knn_accuracy

if TYPE_CHECKING:
    from cldiag.monitor import Monitor

__all__ = [
    "LabConfig",
    "LabProgress",
    "LabResult",
    "train",
]

DataName = Literal[
    "digits", "cluttered-digits", "prototypes", "imbalanced-prototypes", "pairs", "xor-triples", "toy"
]
EncoderName = Literal["mlp", "cnn", "linear"]
LossName = Literal[
    "nt_xent",
    "info_nce",
    "clip",
    "dcl",
    "dclw",
    "supcon",
    "mochi",
    "align",
    "isogclr",
    "symile",
    "pairwise_clip",
]
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
_THREE_MODALITY_LOSSES = ("symile", "pairwise_clip")
_INDEXED_DATA = ("imbalanced-prototypes",)  # data sets that hand out sample ids (iSogCLR keeps τ per id)
ISOGCLR_TAU_LR = 0.3  # step on τ_i per visit (SGD). The authors' 0.03 is for full trainings (one visit per
# epoch); a lab run visits each sample ≈ 13 times, and at 0.03 τ is still climbing when it ends (measured)
ISOGCLR_TAU_BOUNDS = (0.05, 1.0)  # the paper's projection interval for τ_i
MOCHI_MIX = 16  # MoCHi's synthetic negatives per query (and half as many query mixes), from the 16 hardest


@dataclass(frozen=True)
class LabConfig:
    """Everything that defines a lab training. Out-of-range values raise ``ValueError`` on construction.

    The defaults are a healthy SimCLR-style run on cluttered digits that beats the raw-input kNN probe by a
    clear margin (held-out 5-NN 0.962 against 0.778, seed 0) in about 6 CPU-seconds (see docs/lab.md).
    """

    data: DataName = "cluttered-digits"  # digits beside clutter redrawn per view: raw kNN 0.78, so training
    # has a bar to clear (on plain "digits" raw pixels reach 0.995 and beat every small encoder); "prototypes"
    # hides 50 classes under nuisance, "pairs" is image↔caption, "toy" the Jing et al. 16-d toy
    encoder: EncoderName = "mlp"  # an MLP trains fastest on a CPU; "cnn" for 8×8 images, "linear" for the toy
    projector: bool = False  # SimCLR's head helps at scale; without it the loss and the kNN see one space
    loss: LossName = "nt_xent"  # SimCLR's loss: 2N views, 2N−2 negatives per anchor
    temperature: float = 0.2  # inside [0.1, 0.5] where SimCLR-style training is stable in a few hundred steps
    learnable_temperature: bool = False  # as CLIP: τ = 1/scale, scale learned in log space, τ ≥ 0.01
    batch_size: int = 128  # 254 negatives per anchor; 600 steps of 128 cost what 300 of 256 do (measured)
    steps: int = 600  # held-out kNN is past the raw bar by step 100 and settled by 600 (measured)
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
        if (self.data == "xor-triples") != (self.loss in _THREE_MODALITY_LOSSES):
            raise ValueError(
                f"the three-modality data 'xor-triples' and the losses {' / '.join(_THREE_MODALITY_LOSSES)} "
                f"go together; got data {self.data!r}, loss {self.loss!r}"
            )
        if self.loss == "isogclr" and self.data not in _INDEXED_DATA:
            raise ValueError(
                f"isogclr keeps one τ per training sample and needs sample ids; use data "
                f"{' or '.join(map(repr, _INDEXED_DATA))}, got {self.data!r}"
            )
        if self.loss == "isogclr" and self.learnable_temperature:
            raise ValueError("isogclr learns its own per-sample τ; set learnable_temperature=False")
        low, high = ISOGCLR_TAU_BOUNDS
        if self.loss == "isogclr" and not low <= self.temperature <= high:
            raise ValueError(
                f"isogclr starts every τ_i at temperature, which must lie in its bounds [{low:g}, {high:g}], "
                f"got {self.temperature}"
            )
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
        """Whether the run has separate towers per modality (image↔text pairs, or three modalities)."""
        return self.data in ("pairs", "xor-triples")

    @property
    def three_modality(self) -> bool:
        """Whether the run has three modalities ``a``, ``b``, ``c`` (one tower each)."""
        return self.data == "xor-triples"

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
    sizes = {"digits": 64, "pairs": 64, "cluttered-digits": 128, "prototypes": 64, "toy": 16}
    return {**sizes, "imbalanced-prototypes": 64, "xor-triples": XorTriples.default_bits}[data]


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


LabData = DigitsViews | HiddenPrototypes | GaussianToy | XorTriples


def make_data(config: LabConfig) -> LabData:
    """The data set a configuration asks for, seeded by ``config.seed``."""
    if config.data == "xor-triples":
        return XorTriples(config.seed)
    if config.data == "imbalanced-prototypes":
        return ImbalancedPrototypes(config.seed)
    if config.data == "digits":
        return DigitsViews(config.augmentation, config.seed)
    if config.data == "cluttered-digits":
        return ClutteredDigitsViews(config.augmentation, config.seed)
    if config.data == "pairs":
        return PairedDigitsCaptions(config.augmentation, config.seed)
    if config.data == "prototypes":
        return HiddenPrototypes(config.seed)
    return GaussianToy(config.augmentation, config.seed)


def make_towers(
    config: LabConfig, input_shape: tuple[int, ...]
) -> tuple[Encoder, Encoder | None, Encoder | None]:
    """The encoder, the second tower (two or three modalities) and the third (three), seeded by the config."""
    projector = config.embed_dim if config.projector else None

    def tower(backbone: torch.nn.Module) -> Encoder:
        return Encoder(backbone, config.embed_dim, projector_dim=projector)

    first = tower(build_backbone(config.encoder, input_shape, config.embed_dim, hidden=config.hidden_dim))
    second = third = None
    if config.three_modality:
        second = tower(
            build_backbone(config.encoder, input_shape, config.embed_dim, hidden=config.hidden_dim)
        )
        third = tower(build_backbone(config.encoder, input_shape, config.embed_dim, hidden=config.hidden_dim))
    elif config.two_modality:
        second = tower(MLP(PairedDigitsCaptions.caption_dim, config.embed_dim, hidden=config.hidden_dim))
    generator = torch.Generator().manual_seed(config.seed)
    for t in (first, second, third):
        if t is not None:
            reset_parameters(t, generator)
    return first, second, third


def contrastive_loss(
    config: LabConfig,
    za: Tensor,
    zb: Tensor,
    labels: Tensor | None,
    tau: Tensor | float,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The loss ``config.loss`` of one batch (see :mod:`cldiag.losses`); ``generator`` drives MoCHi's mix."""
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
    if config.loss != "mochi":
        raise ValueError(f"loss {config.loss!r} is not a two-view loss; the trainer computes it itself")
    # Both directions, like the symmetric InfoNCE it is compared with: with no synthetic negatives this is
    # exactly info_nce(..., symmetric=True), so the two differ only in MoCHi's mixed hard negatives.
    n_hard = min(MOCHI_MIX, za.shape[0] - 1)
    n_query = max(1, n_hard // 2)

    def one_way(q: Tensor, k: Tensor) -> Tensor:
        return losses.mochi_loss(
            q, k, None, tau, n_hard=n_hard, n_mix=n_hard, n_mix_query=n_query, generator=generator
        )

    return (one_way(za, zb) + one_way(zb, za)) / 2


class _Probe:
    """Held-out evaluation: the kNN accuracy and the snapshot rows of a training."""

    def __init__(self, config: LabConfig, data: LabData) -> None:
        self.config = config
        self.labels = config.has_labels
        self.triples: ViewBatch | None = None
        self.codes: Tensor | None = None
        if isinstance(data, XorTriples):
            # No kNN: the first modality alone says nothing about the label (that is the point of the set).
            self.x_train = self.y_train = None
            self.triples, self.codes = data.test, data.codes
            self.x_test, self.y_test = data.test.a, data.test.labels
        elif isinstance(data, GaussianToy):
            self.x_train = self.y_train = self.y_test = None
            self.x_test = data.probe
        else:
            self.x_train, self.y_train, self.x_test, self.y_test = data.eval_sets()
        self.c_train = self.c_test = None
        if isinstance(data, PairedDigitsCaptions):
            self.c_train, self.c_test = data.eval_captions()
        self.what = _what_samples_are(data, self.y_test, self.x_test.shape[0])

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
    def zeroshot(self, towers: tuple[Encoder, Encoder | None, Encoder | None]) -> float | None:
        """Three modalities: held-out share of ``(a, b)`` whose ``c`` pattern scores first of all ``2^bits``.

        Symile runs score a candidate by the multilinear inner product ``MIP(a, b, c)``; pairwise-CLIP runs
        by the sum of their pairwise cosines ``cos(a, c) + cos(b, c)``, the zero-shot rule of the Symile
        paper's CLIP baseline. Each model is read with the score its loss trained.
        """
        first, second, third = towers
        if self.triples is None or self.codes is None or second is None or third is None:
            return None
        za = torch.nn.functional.normalize(first(self.triples.a), dim=1)
        zb = torch.nn.functional.normalize(second(self.triples.b), dim=1)
        zc = torch.nn.functional.normalize(third(self.codes), dim=1)
        scores = (za * zb) @ zc.T if self.config.loss == "symile" else za @ zc.T + zb @ zc.T
        return float((scores.argmax(dim=1) == self.triples.labels).float().mean())

    @torch.no_grad()
    def snapshot(
        self, step: int, mon: Monitor, first: Encoder, second: Encoder | None, third: Encoder | None = None
    ) -> None:
        ids, (what, caption) = torch.arange(self.x_test.shape[0]), self.what
        if self.triples is not None and second is not None and third is not None:
            t = self.triples
            for name, tower, x in (("a", first, t.a), ("b", second, t.b), ("c", third, t.c)):
                mon.log_embeddings(step, tower(x), labels=self.y_test, modality=name, ids=ids, meta=what)
            return
        if second is None:
            mon.log_embeddings(step, first(self.x_test), labels=self.y_test, ids=ids, meta=what)
            return
        sides = (("image", first(self.x_test), what), ("text", second(self.c_test), caption))
        for modality, z, meta in sides:
            mon.log_embeddings(step, z, labels=self.y_test, modality=modality, ids=ids, meta=meta)


def _what_samples_are(data: LabData, labels: Tensor | None, n: int) -> tuple[list[str], list[str] | None]:
    """Snapshot metadata of the held-out samples: what each one is, and the caption's words (paired data)."""
    if labels is None:
        return [f"toy probe sample {i}" for i in range(n)], None
    kind = "digit" if isinstance(data, DigitsViews) else "class"
    what = [f"{kind} {y}, held-out sample {i}" for i, y in enumerate(labels.tolist())]
    if not isinstance(data, PairedDigitsCaptions):
        return what, None
    words = {d: ", ".join(w for w, members in CAPTION_ATTRIBUTES if d in members) for d in range(10)}
    return what, [f"caption of a {y}: {words[y] or 'no attribute'} (+ noise)" for y in labels.tolist()]


# ---------------------------------------------------------------------------------------------------------
# Training.


def make_optimizer(config: LabConfig, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """Adam, or SGD with momentum 0.9, at ``config.lr``."""
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr)
    return torch.optim.SGD(params, lr=config.lr, momentum=0.9)


def _modalities(config: LabConfig) -> tuple[str, str] | None:
    """The Monitor's two modality names (three modalities: the Monitor sees the pair ``a``–``b``)."""
    if config.three_modality:
        return ("a", "b")
    return ("image", "text") if config.two_modality else None


def _open_monitor(config: LabConfig, run_dir: str, overwrite: bool) -> Monitor:
    from cldiag.monitor import Monitor  # local: keeps `import cldiag.lab` light for the dashboard

    return Monitor(
        run_dir,
        config={**config.to_dict(), "source": "cldiag.lab"},
        modalities=_modalities(config),
        snapshot_every=0,  # snapshots come from the held-out probe set, not from training batches
        snapshot_size=config.snapshot_size,
        flush_every=50,
        flush_secs=1.0,  # a live lab page polls the run; a second of latency keeps it fresh
        budget=None,  # teaching runs: every configured step's statistics, the same on any machine
        if_exists="overwrite" if overwrite else "error",
    )


class _Training:
    """One training's state: data, towers, optimizer, probe, and the metrics reported so far."""

    def __init__(self, config: LabConfig) -> None:
        self.config = config
        self.data = make_data(config)
        self.first, self.second, self.third = make_towers(config, self.data.input_shape)
        # τ may start above open_clip's ceiling of 1 (Lab range up to 2): lower the scale's floor to match.
        self.scale = (
            losses.LogitScale(config.temperature, min_scale=min(1.0, 1 / config.temperature))
            if config.learnable_temperature
            else None
        )
        params = [
            *self.first.parameters(),
            *(self.second.parameters() if self.second is not None else ()),
            *(self.third.parameters() if self.third is not None else ()),
            *(self.scale.parameters() if self.scale is not None else ()),
        ]
        self.optimizer = make_optimizer(config, params)
        self.isogclr: losses.IndividualTemperatureLoss | None = None
        self.tau_optimizer: torch.optim.Optimizer | None = None
        if config.loss == "isogclr" and isinstance(self.data, ImbalancedPrototypes):
            low, high = ISOGCLR_TAU_BOUNDS
            self.isogclr = losses.IndividualTemperatureLoss(
                len(self.data.y_train), tau_init=config.temperature, tau_min=low, tau_max=high
            )
            # SGD without momentum (the authors use momentum): with few visits per sample, momentum or Adam
            # would keep moving the τ of samples absent from the batch. The loss is a mean over B anchors,
            # so lr·B makes each visit a step of ISOGCLR_TAU_LR times that sample's own gradient.
            self.tau_optimizer = torch.optim.SGD([self.isogclr.tau], lr=ISOGCLR_TAU_LR * config.batch_size)
        self.probe = _Probe(config, self.data)
        # MoCHi's mixing draws from its own generator: the global RNG would make a seeded run unrepeatable.
        self.mix_generator = torch.Generator().manual_seed(config.seed)
        self.metrics: dict[str, float] = {}
        self._evaluated: set[int] = set()

    def log_raw_bar(self, mon: Monitor) -> None:
        """Log the kNN accuracy of raw inputs at step 0: the bar the encoder has to clear."""
        raw = self.probe.raw_knn()
        if raw is not None:
            self.metrics["knn_acc_raw"] = raw
            mon.log_scalar(0, "knn_acc_raw", raw)

    def evaluate(self, step: int, mon: Monitor, *, snapshot: bool) -> None:
        """Log the held-out kNN accuracy at ``step`` (and a snapshot of held-out embeddings if asked)."""
        if step in self._evaluated:  # a stop right after an evaluation must not log that step twice
            return
        self._evaluated.add(step)
        acc = self.probe.knn(self.first)
        if acc is not None:
            self.metrics["knn_acc"] = acc
            mon.log_scalar(step, "knn_acc", acc)
        zeroshot = self.probe.zeroshot((self.first, self.second, self.third))
        if zeroshot is not None:
            self.metrics["zeroshot_acc"] = zeroshot
            mon.log_scalar(step, "zeroshot_acc", zeroshot)
        if self.isogclr is not None and isinstance(self.data, ImbalancedPrototypes):
            tau, seen = self.isogclr.temperatures(), self.isogclr.seen
            frequent = self.data.is_frequent(self.data.y_train)
            for name, group in (("tau_frequent", frequent & seen), ("tau_rare", ~frequent & seen)):
                if bool(group.any()):
                    self.metrics[name] = float(tau[group].mean())
                    mon.log_scalar(step, name, self.metrics[name])
        if snapshot:
            self.probe.snapshot(step, mon, self.first, self.second, self.third)

    def step(self, step: int, mon: Monitor) -> float:
        """One batch: forward both views, log them to the Monitor, and update unless the loss is not finite.

        Returns:
            The loss (not finite means the weights blew up and no update was made).
        """
        config = self.config
        batch: ViewBatch = self.data.sample(config.batch_size)
        tau: Tensor | float = 1 / self.scale() if self.scale is not None else config.temperature
        za = self.first(batch.a)
        zb = (self.second if self.second is not None else self.first)(batch.b)
        zc = None
        if self.third is not None and batch.c is not None:
            zc = self.third(batch.c)
            three = losses.symile_loss if config.loss == "symile" else losses.pairwise_clip_loss
            loss = three(za, zb, zc, tau=tau)
        elif self.isogclr is not None and batch.index is not None:
            loss = self.isogclr(za, zb, batch.index)
            tau = self.isogclr.temperatures(batch.index)
        else:
            loss = contrastive_loss(config, za, zb, batch.labels, tau, self.mix_generator)
        # A per-sample τ (B,) goes to the Monitor as it is: the mean every step, quantiles at pairwise steps.
        mon_tau = tau.detach() if isinstance(tau, Tensor) else tau
        if zc is not None:
            # A mapping: the Monitor logs every pair's gap and retrieval and Symile's MIP itself.
            mods = {"a": za.detach(), "b": zb.detach(), "c": zc.detach()}
            mon.log(step, mods, labels=batch.labels, temperature=mon_tau, loss=loss.detach())
        else:
            mon.log(
                step, za.detach(), zb.detach(), labels=batch.labels, temperature=mon_tau, loss=loss.detach()
            )
        value = float(loss.detach())
        self.metrics["loss"] = value
        if math.isfinite(value):
            self.optimizer.zero_grad(set_to_none=True)
            if self.tau_optimizer is not None:
                self.tau_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            if self.scale is not None:
                self.scale.clamp_()  # open_clip's in-place clamp: the bound holds, the gradient never dies
            if self.tau_optimizer is not None and self.isogclr is not None:
                self.tau_optimizer.step()
                self.isogclr.project_()
        return value

    def loop(
        self, mon: Monitor, stop_event: threading.Event | None, report: Callable[[int, Status], None]
    ) -> tuple[Status, str, int]:
        """Run the steps until done, stopped or diverged; returns ``(status, message, steps done)``."""
        config = self.config
        report_every = max(1, config.steps // 100)
        for step in range(config.steps):
            if stop_event is not None and stop_event.is_set():
                return "stopped", f"stopped on request after {step} of {config.steps} steps", step
            loss = self.step(step, mon)
            if not math.isfinite(loss):
                return "diverged", _diverged_message(config, loss, step), step
            done = step + 1
            if done % config.eval_every == 0 and done < config.steps:
                snapshot = config.snapshot_every > 0 and done % config.snapshot_every == 0
                self.evaluate(done, mon, snapshot=snapshot)
            if done % report_every == 0:
                report(done, "running")
        return "finished", f"finished {config.steps} steps", config.steps


def _diverged_message(config: LabConfig, loss: float, step: int) -> str:
    return (
        f"the loss became {loss} at step {step}, so training stopped: the updates blew the "
        f"weights up (lr={config.lr:g}, {config.optimizer}). Lower the learning rate."
    )


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
    if not isinstance(config, LabConfig):
        raise TypeError(f"config must be a LabConfig, got {type(config).__name__}")
    # A linked run directory (or table directory) would write, or with overwrite delete, outside out_dir.
    paths.refuse_linked_run_dir(run_dir, (schema.META_FILE, *schema.TABLES))
    torch.set_num_threads(config.threads)
    training = _Training(config)

    def report(step: int, status: Status, message: str = "") -> None:
        if progress is not None:
            progress(LabProgress(run_dir, step, config.steps, status, dict(training.metrics), message))

    start = time.perf_counter()
    with _open_monitor(config, run_dir, overwrite) as mon:
        training.log_raw_bar(mon)
        training.evaluate(0, mon, snapshot=True)
        report(0, "running")
        status, message, steps_done = training.loop(mon, stop_event, report)
        if status != "diverged":
            training.evaluate(steps_done, mon, snapshot=True)
        mon.close(status="failed" if status == "diverged" else "finished")
    seconds = time.perf_counter() - start
    report(steps_done, status, message)
    return LabResult(run_dir, config, status, steps_done, seconds, dict(training.metrics), message)
