"""sentence-transformers: log the training batches themselves, or a fixed probe of texts.

**The batches the loss sees** — wrap the loss; its callback tells it the Trainer's step::

    from cldiag.integrations.sentence_transformers import CLDiagLoss
    loss = CLDiagLoss(MultipleNegativesRankingLoss(model), "runs/st")
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=ds, loss=loss,
                                         callbacks=[loss.callback])

Each optimizer step logs the anchor and positive ``sentence_embedding`` vectors of the batch the loss saw
(all B rows, labels where the dataset has an integer ``label`` column), the loss value and
τ = 1 / ``scale`` of MultipleNegativesRankingLoss and its cached and symmetric variants.

**A fixed probe** — :class:`cldiag.integrations.hf.CLDiagTrainerCallback` (re-exported here) takes the
texts themselves for a ``SentenceTransformer``: ``probe=(anchors, positives[, labels])``, embedded as
``model.encode`` would.

Needs ``pip install 'cldiag[st]'``.
"""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from cldiag.integrations._guard import Guard
from cldiag.integrations.hf import CLDiagTrainerCallback, _rows, _training_config, embed_pairs
from cldiag.monitor import Monitor

try:
    import sentence_transformers  # noqa: F401 - the extra this module needs
    from transformers import TrainerCallback
except ImportError as exc:
    raise ImportError(
        "cldiag.integrations.sentence_transformers needs sentence-transformers: pip install 'cldiag[st]'",
    ) from exc

__all__ = ["CLDiagLoss", "CLDiagTrainerCallback", "embed_pairs", "loss_temperature"]


class CLDiagLoss(nn.Module):
    """Wrap a sentence-transformers loss so that every optimizer step logs the embeddings it trained on.

    The wrapper returns the inner loss unchanged. While the inner loss runs on a batch that is logged, a
    forward hook on the ``SentenceTransformer`` collects the detached ``sentence_embedding`` of every
    forward pass it makes; in column order they are the anchors, the positives (and any hard negatives,
    which are not logged). This covers one forward per column, the merged forward of candidate columns,
    and the no-grad mini-batches of the Cached* losses, whose concatenation is the full batch (their
    re-embedding with gradients happens during ``backward``, after the hook is gone).

    Which step: with ``callbacks=[loss.callback]`` the Trainer's ``global_step`` when the optimizer step
    began (the weights that embedded the batch), logged on its first micro-batch only under gradient
    accumulation (each micro-batch is its own contrastive batch; the first stands for the step). Without
    the callback (e.g. ``model.fit``) the wrapper counts its own training calls, which equals the
    optimizer step only without gradient accumulation; this is reported once. Evaluation calls (no
    gradients or model in eval mode) are never logged.

    An error in the wrapper is reported once and training goes on (``strict=True`` raises); the inner
    loss's own errors always propagate.

    Args:
        loss: the sentence-transformers loss, e.g. ``MultipleNegativesRankingLoss(model)``.
        run: a run directory (local path or URI; the wrapper opens the :class:`cldiag.Monitor` at
            ``on_train_begin`` and closes it at ``on_train_end``) or an open ``Monitor`` you own.
        every: log every ``every``-th optimizer step.
        temperature: τ to log; default :func:`loss_temperature` of ``loss``.
        **monitor_kwargs: passed to :class:`cldiag.Monitor` when ``run`` is a directory (``config``
            defaults to the Trainer's main arguments; ``modalities=("query", "document")`` for asymmetric
            pairs). ``strict=True`` also makes the wrapper raise its errors.

    Example:
        >>> import torch
        >>> from cldiag.integrations.sentence_transformers import CLDiagLoss
        >>> class Toy(torch.nn.Module):  # any sentence-transformers loss
        ...     scale = 20.0
        ...     def forward(self, features, labels):
        ...         return torch.tensor(0.0)
        >>> loss = CLDiagLoss(Toy(), "runs/st", every=10)
        >>> loss.temperature
        0.05
    """

    def __init__(
        self,
        loss: nn.Module,
        run: Monitor | str | os.PathLike[str],
        *,
        every: int = 1,
        temperature: float | None = None,
        **monitor_kwargs: Any,
    ) -> None:
        super().__init__()
        if not isinstance(loss, nn.Module):
            raise TypeError(f"loss must be a torch.nn.Module (a sentence-transformers loss), got {loss!r}")
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ValueError(f"every must be an int >= 1, got {every!r}")
        if temperature is None:
            temperature = loss_temperature(loss)
        elif not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature!r}")
        if isinstance(run, Monitor):
            if monitor_kwargs:
                raise TypeError(f"Monitor arguments {sorted(monitor_kwargs)} given with an open Monitor")
            self._run_dir, self.monitor = run.run_dir, run
        else:
            try:
                inspect.signature(Monitor).bind(run, **monitor_kwargs)
            except TypeError as exc:
                raise TypeError(f"CLDiagLoss: {exc} (extra keyword arguments go to cldiag.Monitor)") from None
            self._run_dir, self.monitor = os.fspath(run), None
        self.loss = loss
        self.every = every
        self.temperature = temperature
        self._owns_monitor = not isinstance(run, Monitor)
        self._if_exists = monitor_kwargs.pop("if_exists", "error")
        self._monitor_kwargs = monitor_kwargs
        strict = run.strict if isinstance(run, Monitor) else monitor_kwargs.get("strict", False)
        self._guard = Guard(type(self).__name__, strict=strict)
        self._attached = False
        self._opened_before = False
        self._pending_step: int | None = None
        self._calls = 0
        self.callback = _StepCallback(self)
        """The ``TrainerCallback`` to pass to the Trainer: it tells the wrapper the step, opens and closes
        the run."""

    # ``model`` lets the sentence-transformers Trainer find (and, under DDP, replace) the model inside.
    @property
    def model(self) -> nn.Module:
        """The inner loss's model."""
        return self.loss.model

    @property
    def errors(self) -> list[str]:
        """The errors the wrapper reported (and swallowed) so far, each kind once."""
        return self._guard.errors

    def get_config_dict(self) -> dict[str, Any]:
        """The inner loss's configuration (for the model card)."""
        get = getattr(self.loss, "get_config_dict", None)
        return get() if callable(get) else {}

    def forward(
        self, sentence_features: Iterable[Mapping[str, Any]], labels: torch.Tensor | None = None
    ) -> Any:
        """Compute the inner loss; on a logged step, log the embeddings it computed."""
        features = list(sentence_features)
        step = self._claim_step()
        if step is None:
            return self.loss(features, labels)
        captured: list[torch.Tensor] = []
        handle = None
        with self._guard.run("registering the embedding hook"):
            handle = _unwrap(self.loss.model).register_forward_hook(_collector(captured))
        try:
            result = self.loss(features, labels)
        finally:
            if handle is not None:
                handle.remove()
        with self._guard.run(f"step {step}"):
            self._log(step, features, labels, captured, result)
        return result

    # -- internals --------------------------------------------------------------------------------------
    def _claim_step(self) -> int | None:
        model = _unwrap(self.loss.model)
        if not torch.is_grad_enabled() or not getattr(model, "training", True):
            return None  # evaluation
        if self._attached:
            step, self._pending_step = self._pending_step, None
        else:
            step = self._calls
            self._calls += 1
            if step == 0:
                self._guard.report(
                    "has no Trainer callback (pass callbacks=[loss.callback]): steps count the loss's "
                    "training calls, the optimizer step only without gradient accumulation",
                )
        if step is None or step % self.every:
            return None
        return step

    def _open(self, config: Mapping[str, Any] | None, resuming: bool) -> None:
        if self.monitor is not None or not self._owns_monitor:
            return
        kwargs = dict(self._monitor_kwargs)
        if config is not None:
            kwargs.setdefault("config", dict(config))
        if_exists = "resume" if resuming or self._opened_before else self._if_exists
        self.monitor = Monitor(self._run_dir, if_exists=if_exists, **kwargs)
        self._opened_before = True

    def _close(self) -> None:
        if self.monitor is not None and self._owns_monitor:
            monitor, self.monitor = self.monitor, None
            monitor.close()

    def _log(
        self,
        step: int,
        features: list[Mapping[str, Any]],
        labels: torch.Tensor | None,
        captured: list[torch.Tensor],
        result: Any,
    ) -> None:
        if self.monitor is None:
            self._open(None, resuming=False)  # no callback: open at the first logged step
        monitor = self.monitor
        if monitor is None:
            return
        if len(features) < 2:
            raise ValueError(f"CLDiagLoss needs (anchor, positive, …) columns, got {len(features)} column(s)")
        if not captured:
            raise ValueError(
                f"{type(self.loss).__name__} made no forward pass that returned a sentence_embedding; "
                "CLDiagLoss cannot see its embeddings",
            )
        n = _rows(features[0])
        emb = torch.cat(captured)
        if emb.shape[0] != n * len(features):
            raise ValueError(
                f"{type(self.loss).__name__} embedded {emb.shape[0]} rows for {len(features)} columns "
                f"of {n}; CLDiagLoss cannot split them into anchors and positives",
            )
        if not (isinstance(labels, torch.Tensor) and labels.shape == (n,) and not labels.is_floating_point()):
            labels = None  # no label column, or similarity scores rather than classes
        loss = result
        if isinstance(result, Mapping):
            loss = torch.stack([torch.as_tensor(v).detach().float() for v in result.values()]).sum()
        monitor.log(step, emb[:n], emb[n : 2 * n], labels=labels, temperature=self.temperature, loss=loss)


class _StepCallback(TrainerCallback):
    """Tells a :class:`CLDiagLoss` the Trainer's step; opens and closes its run."""

    def __init__(self, owner: CLDiagLoss) -> None:
        self.owner = owner

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Open the run (resumed when training resumes from a checkpoint)."""
        owner = self.owner
        owner._attached = True
        with owner._guard.run("on_train_begin"):
            owner._open(_training_config(args), resuming=state.global_step > 0)

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """The next training call of the loss is the first micro-batch of this optimizer step."""
        self.owner._pending_step = int(state.global_step)

    def on_log(
        self,
        args: Any,
        state: Any,
        control: Any,
        logs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Record the Trainer's own numbers as ``hf/<name>`` (its averaged loss as ``hf/loss``)."""
        monitor = self.owner.monitor
        if monitor is None or not logs or not state.is_world_process_zero:
            return
        with self.owner._guard.run("on_log"):
            for key, value in logs.items():
                if key in ("epoch", "step") or isinstance(value, bool) or not isinstance(value, int | float):
                    continue
                monitor.log_scalar(int(state.global_step), f"hf/{key}", value)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Write everything and mark the run finished."""
        with self.owner._guard.run("on_train_end"):
            self.owner._close()


def loss_temperature(loss: nn.Module) -> float | None:
    """τ of a sentence-transformers in-batch-negatives loss: its ``temperature``, else 1 / ``scale``.

    MultipleNegativesRankingLoss, its symmetric variant and the Cached ones keep the logit multiplier
    in ``scale`` (default 20, τ = 0.05); recent versions also expose ``temperature = 1 / scale``. A loss
    with neither (or a non-positive one) gives ``None``.
    """
    for name, invert in (("temperature", False), ("scale", True)):
        try:
            value = float(getattr(loss, name))
        except (AttributeError, TypeError, ValueError):
            continue
        if math.isfinite(value) and value > 0:
            return 1.0 / value if invert else value
    return None


def _unwrap(model: nn.Module) -> nn.Module:
    """The module inside DDP / compile wrappers (``.module`` / ``._orig_mod``)."""
    for attr in ("module", "_orig_mod"):
        inner = getattr(model, attr, None)
        if isinstance(inner, nn.Module):
            return _unwrap(inner)
    return model


def _collector(captured: list[torch.Tensor]) -> Any:
    def hook(module: nn.Module, args: Any, output: Any) -> None:
        # Never raises inside the model's forward: anything unexpected just is not collected.
        if isinstance(output, Mapping) and isinstance(output.get("sentence_embedding"), torch.Tensor):
            captured.append(output["sentence_embedding"].detach())

    return hook
