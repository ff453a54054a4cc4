"""Hugging Face ``Trainer``: :class:`CLDiagTrainerCallback` embeds a fixed probe set every N steps.

HF callbacks never see a batch's outputs, so the callback runs the model itself on a small, fixed probe
set of positive pairs (e.g. 256 (anchor, positive) sentences, tokenized once) and logs the diagnostics of
those embeddings, plus the Trainer's own loss::

    from cldiag.integrations.hf import CLDiagTrainerCallback
    probe = [tok(texts, padding=True, return_tensors="pt") for texts in (anchors, positives)]
    cb = CLDiagTrainerCallback("runs/st", probe=probe, every=100, temperature=0.05)
    trainer = Trainer(model, args, train_dataset=ds, callbacks=[cb])

For a ``SentenceTransformer`` the probe can be the plain texts, ``(anchors, positives[, labels])``: they
are embedded as ``model.encode`` would (its own tokenizer, pooling and normalization).

Because the probe never changes, its curves are comparable across steps and runs: a drop in effective
rank or a rise of the positive/negative overlap is the model's doing, not the batch's.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from cldiag import dist, schema
from cldiag.integrations._guard import Guard
from cldiag.monitor import Monitor

try:
    from transformers import TrainerCallback
except ImportError as exc:
    raise ImportError(
        "cldiag.integrations.hf needs Hugging Face transformers: pip install 'cldiag[hf]'",
    ) from exc

__all__ = ["CLDiagTrainerCallback", "embed_pairs", "is_sentence_transformer"]

EmbedFn = Callable[[torch.nn.Module, Any], Sequence[Any]]

_EMBEDDING_KEYS = ("sentence_embedding", "text_embeds", "image_embeds", "embeddings")
"""Output keys already holding one vector per input (sentence-transformers, CLIP projections …)."""


class CLDiagTrainerCallback(TrainerCallback):
    """Log contrastive diagnostics of a fixed probe set of positive pairs during ``Trainer.train()``.

    At the start of training (step 0) and every ``every`` optimizer steps the model embeds the probe in
    eval mode without gradients (the training mode is restored afterwards); the pairs are logged with
    :meth:`cldiag.Monitor.log` and, every ``snapshot_every`` steps, the embeddings as a snapshot with stable
    sample ids (``0 … n-1``) so the embedding pages can follow each probe item. Numbers the Trainer logs
    (``loss``, ``learning_rate``, ``grad_norm``, ``eval_*``) become scalars: ``loss`` as cldiag's ``loss``,
    the others as ``hf/<name>``.

    An exception inside the callback (a probe the model cannot embed, a run directory that cannot be
    opened …) is reported once as a logged error and a ``RuntimeWarning``, and training goes on without
    those diagnostics; ``strict=True`` raises it instead.

    Only the main process (``state.is_world_process_zero``) writes. Under ``torch.distributed`` every rank
    embeds the probe (sharded models need all ranks in the forward pass) and only rank 0's rows enter the
    Monitor's gather, so the probe is counted once.

    Args:
        run_dir: run directory (local path or URI such as ``s3://bucket/runs/x``).
        probe: the probe set. With the default ``embed_fn``: ``(inputs_a, inputs_b)`` or
            ``(inputs_a, inputs_b, labels)``, each ``inputs`` a tensor or a dict of tensors (a tokenizer's
            output) with one row per pair, or, for a ``SentenceTransformer``, a list of strings; see
            :func:`embed_pairs`. Anything else needs ``embed_fn``.
        embed_fn: ``embed_fn(model, probe) -> (a, b)`` or ``(a, b, labels)``, embeddings ``(n, d)``;
            called under ``torch.no_grad()`` with the model in eval mode.
        every: optimizer steps between probe evaluations.
        snapshot_every: steps between embedding snapshots of the probe (default ``10 * every``; 0 = off).
        temperature: the loss's τ (e.g. 1/20 for sentence-transformers' MultipleNegativesRankingLoss) for
            the hardness statistics at τ.
        batch_size: probe rows per forward pass of the default ``embed_fn``.
        **monitor_kwargs: passed to :class:`cldiag.Monitor` (``config``, ``modalities`` …). Each probe
            evaluation computes every statistic unless ``pairwise_every`` etc. say otherwise; ``config``
            defaults to the non-default ``TrainingArguments``. ``strict=True`` also makes the callback raise
            its errors instead of reporting them.

    Example:
        >>> import torch
        >>> from cldiag.integrations.hf import CLDiagTrainerCallback
        >>> ids = torch.randint(0, 100, (64, 12))
        >>> probe = ({"input_ids": ids}, {"input_ids": ids.flip(1)})
        >>> cb = CLDiagTrainerCallback("runs/st", probe=probe, every=50)
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        probe: Any,
        *,
        embed_fn: EmbedFn | None = None,
        every: int = 100,
        snapshot_every: int | None = None,
        temperature: float | None = None,
        batch_size: int = 64,
        **monitor_kwargs: Any,
    ) -> None:
        for arg, value in (("every", every), ("batch_size", batch_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{arg} must be an int >= 1, got {value!r}")
        if snapshot_every is None:
            snapshot_every = 10 * every
        if not isinstance(snapshot_every, int) or snapshot_every < 0:
            raise ValueError(f"snapshot_every must be an int >= 0 (0 = off), got {snapshot_every!r}")
        if temperature is not None and not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature!r}")
        if embed_fn is None:
            _check_probe(probe)
        elif not callable(embed_fn):
            raise TypeError(f"embed_fn must be callable, got {type(embed_fn).__name__}")
        for key in ("pairwise_every", "spectrum_every", "curves_every"):
            monitor_kwargs.setdefault(key, 1)
        monitor_kwargs["snapshot_every"] = 0  # snapshots come from log_embeddings with stable probe ids
        try:
            inspect.signature(Monitor).bind(run_dir, **monitor_kwargs)
        except TypeError as exc:
            raise TypeError(
                f"CLDiagTrainerCallback: {exc} (extra keyword arguments go to cldiag.Monitor)",
            ) from None
        self.run_dir = os.fspath(run_dir)
        self.probe = probe
        self.embed_fn: EmbedFn = embed_fn or (lambda model, p: embed_pairs(model, p, batch_size=batch_size))
        self.every = every
        self.snapshot_every = snapshot_every
        self.temperature = temperature
        self._if_exists = monitor_kwargs.pop("if_exists", "error")
        self._monitor_kwargs = monitor_kwargs
        self._opened_before = False
        self._is_main = True
        self._guard = Guard(type(self).__name__, strict=monitor_kwargs.get("strict", False))
        self.monitor: Monitor | None = None
        """The open :class:`cldiag.Monitor` during ``train()`` (``None`` before and after)."""

    @property
    def errors(self) -> list[str]:
        """The errors the callback reported (and swallowed) so far, each kind once."""
        return self._guard.errors

    # -- Trainer events ---------------------------------------------------------------------------------
    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        """Open the run (resumed when training resumes from a checkpoint); embed the probe at step 0."""
        with self._guard.run("on_train_begin"):
            self._train_begin(args, state, model)

    def _train_begin(self, args: Any, state: Any, model: Any) -> None:
        self._is_main = bool(state.is_world_process_zero)
        if self.monitor is not None or not (self._is_main or dist.is_distributed()):
            return
        resuming = self._opened_before or state.global_step > 0
        kwargs_ = dict(self._monitor_kwargs)
        kwargs_.setdefault("config", _training_config(args))
        self.monitor = Monitor(self.run_dir, if_exists="resume" if resuming else self._if_exists, **kwargs_)
        self._opened_before = True
        if state.global_step == 0 and model is not None:
            with self._guard.run("probe at step 0"):
                self._log_probe(0, model)

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        """Embed the probe every ``every`` optimizer steps."""
        if self.monitor is not None and model is not None and state.global_step % self.every == 0:
            with self._guard.run(f"probe at step {state.global_step}"):
                self._log_probe(int(state.global_step), model)

    def on_log(
        self,
        args: Any,
        state: Any,
        control: Any,
        logs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Record the numbers the Trainer logs (its loss, learning rate, gradient norm, eval metrics)."""
        if self.monitor is None or not self._is_main or not logs:
            return
        with self._guard.run("on_log"):
            for key, value in logs.items():
                if key in ("epoch", "step") or isinstance(value, bool) or not isinstance(value, int | float):
                    continue
                name = schema.M_LOSS if key == "loss" else f"hf/{key}"
                self.monitor.log_scalar(int(state.global_step), name, value)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Write everything and mark the run finished."""
        if self.monitor is not None:
            monitor, self.monitor = self.monitor, None
            with self._guard.run("on_train_end"):
                monitor.close()

    # -- the probe --------------------------------------------------------------------------------------
    def _log_probe(self, step: int, model: torch.nn.Module) -> None:
        monitor = self.monitor
        if monitor is None:
            return
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                out = self.embed_fn(model, self.probe)
        finally:
            model.train(was_training)
        if not isinstance(out, Sequence) or len(out) not in (2, 3):
            raise TypeError(
                f"embed_fn must return (a, b) or (a, b, labels), got {type(out).__name__}"
                + (f" of length {len(out)}" if isinstance(out, Sequence) else ""),
            )
        a, b = out[0], out[1]
        labels = out[2] if len(out) == 3 else None
        if labels is not None:
            labels = torch.as_tensor(labels, device=a.device if isinstance(a, torch.Tensor) else None)
        if not self._is_main:
            # Every rank embedded the same probe; only the main process's rows count.
            a, b = a[:0], b[:0]
            labels = labels[:0] if labels is not None else None
        monitor.log(step, a, b, labels=labels, temperature=self.temperature)
        if self._is_main and self.snapshot_every and step % self.snapshot_every == 0:
            ids = torch.arange(a.shape[0])
            mod_a, mod_b = monitor.modalities
            monitor.log_embeddings(step, a, labels=labels, modality=mod_a, ids=ids)
            if monitor.two_modality:
                monitor.log_embeddings(step, b, labels=labels, modality=mod_b, ids=ids)


def embed_pairs(model: torch.nn.Module, probe: Sequence[Any], *, batch_size: int = 64) -> tuple[Any, ...]:
    """Embed a probe of positive pairs with a Hugging Face (or any) encoder: the default ``embed_fn``.

    Each side of ``probe`` (a tensor, or a dict of tensors such as a tokenizer's output) is passed to the
    model in chunks of ``batch_size`` rows: a tensor positionally, a dict as keyword arguments (as one
    features dict to a ``SentenceTransformer``, whose ``forward`` takes it so). One vector per row is read
    from the output: the output itself if it is a 2-D tensor, else the first of ``sentence_embedding``,
    ``text_embeds``, ``image_embeds``, ``embeddings``, else the mean of ``last_hidden_state`` over the
    tokens that ``attention_mask`` keeps (sentence-transformers' default pooling).

    A side given as a list of strings is embedded with ``model.encode(texts, batch_size=batch_size,
    convert_to_tensor=True)``: the ``SentenceTransformer``'s own tokenizer, pooling and normalization.

    Args:
        model: the encoder; inputs are moved to the device of its first parameter.
        probe: ``(inputs_a, inputs_b)`` or ``(inputs_a, inputs_b, labels)`` with the same number of rows.
        batch_size: rows per forward pass.

    Returns:
        ``(a, b)`` or ``(a, b, labels)``, embeddings of shape ``(n, d)``.

    Raises:
        TypeError: texts for a model without ``encode``, or an output without embeddings.
    """
    _check_probe(probe)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    a, b = (_embed_side(model, side, batch_size, device) for side in probe[:2])
    return (a, b, probe[2]) if len(probe) == 3 else (a, b)


def is_sentence_transformer(model: Any) -> bool:
    """Whether ``model`` is a sentence-transformers model (checked without importing the package)."""
    return any(cls.__module__.split(".")[0] == "sentence_transformers" for cls in type(model).__mro__)


def _is_texts(side: Any) -> bool:
    return (
        isinstance(side, Sequence)
        and not isinstance(side, str | bytes)
        and len(side) > 0
        and all(isinstance(t, str) for t in side)
    )


def _rows(inputs: Any) -> int:
    if _is_texts(inputs):
        return len(inputs)
    if isinstance(inputs, torch.Tensor):
        return inputs.shape[0] if inputs.ndim else 0
    return next(v.shape[0] for v in inputs.values() if isinstance(v, torch.Tensor) and v.ndim)


def _check_probe(probe: Any) -> None:
    if not isinstance(probe, Sequence) or isinstance(probe, str | bytes) or len(probe) not in (2, 3):
        raise TypeError(
            "probe must be (inputs_a, inputs_b) or (inputs_a, inputs_b, labels), each inputs a tensor, a "
            f"dict of tensors or a list of strings; got {type(probe).__name__}. Pass embed_fn=… for any "
            "other probe.",
        )
    sizes = []
    for i, side in enumerate(probe[:2]):
        ok = _is_texts(side) or (isinstance(side, torch.Tensor) and side.ndim >= 1)
        ok = ok or (
            isinstance(side, Mapping) and any(isinstance(v, torch.Tensor) and v.ndim for v in side.values())
        )
        if not ok:
            raise TypeError(
                f"probe[{i}] must be a tensor, a dict of tensors or a list of strings with one row per "
                f"pair, got {type(side).__name__}",
            )
        sizes.append(_rows(side))
    if len(probe) == 3:
        sizes.append(len(probe[2]))
    if len(set(sizes)) != 1 or sizes[0] < 2:
        raise ValueError(f"probe sides must have the same number (>= 2) of rows, got {sizes}")


def _embed_side(model: torch.nn.Module, inputs: Any, batch_size: int, device: torch.device) -> torch.Tensor:
    n = _rows(inputs)
    if _is_texts(inputs):
        encode = getattr(model, "encode", None)
        if not is_sentence_transformer(model) or not callable(encode):
            raise TypeError(
                f"a probe of strings needs a SentenceTransformer (model.encode); {type(model).__name__} has "
                "none. Tokenize the texts (tok(texts, padding=True, return_tensors='pt')) or pass embed_fn=…",
            )
        out = encode(list(inputs), batch_size=batch_size, convert_to_tensor=True, show_progress_bar=False)
        return out.clone()  # encode runs under inference_mode; a plain tensor suits in-place users downstream
    features_dict = is_sentence_transformer(model)
    chunks = []
    for start in range(0, n, batch_size):
        rows = slice(start, start + batch_size)
        if isinstance(inputs, torch.Tensor):
            out = model(inputs[rows].to(device))
            mask = None
        else:
            batch = {
                k: v[rows].to(device) if isinstance(v, torch.Tensor) and v.ndim and v.shape[0] == n else v
                for k, v in inputs.items()
            }
            out = model(batch) if features_dict else model(**batch)
            mask = batch.get("attention_mask")
        chunks.append(_pool(out, mask))
    return torch.cat(chunks)


def _pool(out: Any, mask: torch.Tensor | None) -> torch.Tensor:
    if isinstance(out, torch.Tensor) and out.ndim == 2:
        return out
    if isinstance(out, Mapping):
        for key in _EMBEDDING_KEYS:
            if out.get(key) is not None:
                return out[key]
        hidden = out.get("last_hidden_state")
        if hidden is not None:
            if mask is None:
                return hidden.mean(dim=1)
            weights = mask.to(hidden.dtype).unsqueeze(-1)
            return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)
        found = sorted(out)
    else:
        shape = f" of shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else ""
        found = [f"{type(out).__name__}{shape}"]
    raise TypeError(
        f"cannot read embeddings from the model's output ({found}); expected a 2-D tensor or one of "
        f"{[*_EMBEDDING_KEYS, 'last_hidden_state']}. Pass embed_fn=… to CLDiagTrainerCallback.",
    )


def _training_config(args: Any) -> dict[str, Any]:
    """The TrainingArguments a reader compares runs by (a curated few; the full set is ~150 fields)."""
    config = {}
    for key in _CONFIG_KEYS:
        value = getattr(args, key, None)
        if value is not None:
            config[key] = value if isinstance(value, bool | int | float | str) else str(value)
    return config


_CONFIG_KEYS = (
    "learning_rate",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "max_steps",
    "num_train_epochs",
    "weight_decay",
    "warmup_steps",
    "lr_scheduler_type",
    "optim",
    "seed",
    "world_size",
)
