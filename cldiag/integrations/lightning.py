"""PyTorch Lightning: :class:`CLDiagCallback` logs the embeddings that ``training_step`` returns.

Add one line to the ``Trainer`` and return the embeddings from ``training_step``::

    from cldiag.integrations.lightning import CLDiagCallback
    trainer = Trainer(callbacks=[CLDiagCallback("runs/clip")])
    # training_step returns {"loss": loss, "image_features": zi, "text_features": zt, "logit_scale": s}

Works with ``lightning.pytorch`` (preferred) and the older ``pytorch_lightning`` package (whose Trainer
calls the hooks of any callback object). Under DDP every rank's batch is gathered (as a contrastive loss
does) and only rank 0 writes.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from cldiag.integrations._guard import Guard
from cldiag.integrations.outputs import OPENCLIP_KEYS
from cldiag.monitor import Monitor

try:
    from lightning.pytorch import Callback
except ImportError:
    try:
        from pytorch_lightning import Callback
    except ImportError as exc:
        raise ImportError(
            "cldiag.integrations.lightning needs PyTorch Lightning: pip install 'cldiag[lightning]'",
        ) from exc

__all__ = ["OPENCLIP_KEYS", "CLDiagCallback"]

logger = logging.getLogger("cldiag")

_STATE_VERSION = 1


class CLDiagCallback(Callback):
    """Log contrastive diagnostics of every training step from the ``training_step`` output dict.

    The step is ``trainer.global_step`` when the batch started (the weights that produced the embeddings);
    with gradient accumulation the first micro-batch of each optimizer step is logged. Sanity-check batches
    are never logged. All ranks take part (the Monitor gathers the global batch); only rank 0 writes.

    An exception inside the callback (an output dict without the keys, a run directory that cannot be
    opened …) is reported once as a logged error and a ``RuntimeWarning``, and training goes on without
    those diagnostics; ``strict=True`` raises it instead (and ``fit`` ends, the run marked failed).

    The callback's state (run directory, last logged step) travels with Lightning checkpoints: a fit
    resumed with ``ckpt_path=…`` reopens the same run with ``if_exists="resume"`` and appends to it.

    Args:
        run_dir: run directory (local path or URI such as ``s3://bucket/runs/x``).
        keys: the two embedding keys of the output dict: a positive pair per row. The default is
            open_clip's; any two-view keys work, e.g. ``("z1", "z2")``.
        logit_scale_key: key of an (exponentiated) logit scale, τ = 1 / scale; used when present.
        temperature_key: key of a temperature τ; used when present (instead of ``logit_scale_key``).
        labels_key: key of integer class labels ``(B,)``; required in every output when set.
        loss_key: key of the loss; used when present.
        every: log every ``every``-th optimizer step (1 = each step).
        **monitor_kwargs: passed to :class:`cldiag.Monitor` (``config``, ``modalities``, ``pairwise_every``,
            ``if_exists`` …). ``modalities`` defaults to ``("image", "text")`` for the open_clip keys and to
            two views of one modality otherwise; ``config`` defaults to the module's ``hparams``.
            ``strict=True`` also makes the callback raise its errors instead of reporting them.

    Raises:
        ValueError: bad arguments; with ``strict=True`` also (at the first logged step) an output dict
            that lacks a required key (the message lists the keys that are there; without ``strict`` it is
            reported once and training goes on).
        TypeError: ``monitor_kwargs`` that :class:`cldiag.Monitor` does not accept.

    Example:
        >>> from cldiag.integrations.lightning import CLDiagCallback
        >>> cb = CLDiagCallback("runs/simclr", keys=("z1", "z2"), labels_key="y", pairwise_every=20)
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        *,
        keys: Sequence[str] = OPENCLIP_KEYS,
        logit_scale_key: str | None = "logit_scale",
        temperature_key: str | None = None,
        labels_key: str | None = None,
        loss_key: str | None = "loss",
        every: int = 1,
        **monitor_kwargs: Any,
    ) -> None:
        keys = tuple(keys)
        if len(keys) != 2 or not all(isinstance(k, str) and k for k in keys) or keys[0] == keys[1]:
            raise ValueError(f"keys must be two distinct non-empty strings, got {keys!r}")
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ValueError(f"every must be an int >= 1, got {every!r}")
        try:
            inspect.signature(Monitor).bind(run_dir, **monitor_kwargs)
        except TypeError as exc:
            raise TypeError(f"CLDiagCallback: {exc} (extra keyword arguments go to cldiag.Monitor)") from None
        if keys == OPENCLIP_KEYS:
            monitor_kwargs.setdefault("modalities", ("image", "text"))
        self.keys: tuple[str, str] = keys  # type: ignore[assignment]
        self.logit_scale_key = logit_scale_key
        self.temperature_key = temperature_key
        self.labels_key = labels_key
        self.loss_key = loss_key
        self.every = every
        self._if_exists = monitor_kwargs.pop("if_exists", "error")
        self._monitor_kwargs = monitor_kwargs
        self._run_dir = _absolute(run_dir)
        self._last_step: int | None = None
        self._batch_step: int | None = None
        self._resume = False
        self._guard = Guard(type(self).__name__, strict=monitor_kwargs.get("strict", False))
        self.monitor: Monitor | None = None
        """The open :class:`cldiag.Monitor` during ``fit`` (``None`` before and after)."""

    @property
    def errors(self) -> list[str]:
        """The errors the callback reported (and swallowed) so far, each kind once."""
        return self._guard.errors

    @property
    def run_dir(self) -> str:
        """Where the run is written (the checkpoint's run directory after a restore)."""
        return self._run_dir

    # -- checkpointing ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The state stored in Lightning checkpoints: run directory and last logged step."""
        return {"version": _STATE_VERSION, "run_dir": self._run_dir, "last_step": self._last_step}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore from a checkpoint: the fit continues the checkpoint's run (``if_exists="resume"``)."""
        run_dir = state_dict.get("run_dir")
        if not isinstance(run_dir, str) or not run_dir:
            raise ValueError(f"not a CLDiagCallback state: {state_dict!r}")
        if run_dir != self._run_dir:
            logger.warning(
                "cldiag: the checkpoint's run %s is continued instead of %s (the run directory given)",
                run_dir,
                self._run_dir,
            )
        self._close("finished")
        self._run_dir = run_dir
        self._last_step = state_dict.get("last_step")
        self._resume = True

    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        """Write everything logged so far, so the run on disk covers the checkpoint."""
        if self.monitor is not None:
            with self._guard.run("on_save_checkpoint"):
                self.monitor.flush(wait=True)

    # -- training ---------------------------------------------------------------------------------------
    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        """Open the run (after any checkpoint restore, so a resumed fit appends to its run)."""
        with self._guard.run("on_train_start"):
            self._open(pl_module)

    def _open(self, pl_module: Any) -> None:
        if self.monitor is not None:
            return
        kwargs = dict(self._monitor_kwargs)
        if "config" not in kwargs:
            kwargs["config"] = _hparams(pl_module)
        self.monitor = Monitor(
            self._run_dir, if_exists="resume" if self._resume else self._if_exists, **kwargs
        )
        # A later fit() with this callback continues the same run.
        self._resume = True

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        """Remember the step of the weights that will embed this batch."""
        self._batch_step = int(trainer.global_step)

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Log the batch's embeddings (a collective under DDP: every rank calls it at the same steps)."""
        with self._guard.run("on_train_batch_end"):
            self._log_batch(trainer, outputs)

    def _log_batch(self, trainer: Any, outputs: Any) -> None:
        step = self._batch_step
        if self.monitor is None or step is None or getattr(trainer, "sanity_checking", False):
            return
        if (self._last_step is not None and step <= self._last_step) or step % self.every:
            return
        if outputs is None:  # training_step returned None: Lightning skipped the batch
            return
        if not isinstance(outputs, Mapping):
            raise ValueError(
                "CLDiagCallback needs training_step to return a dict with the keys "
                f"{list(self._required())}; it returned {type(outputs).__name__}",
            )
        missing = [k for k in self._required() if k not in outputs]
        if missing:
            raise ValueError(
                f"CLDiagCallback: the training_step output lacks {missing}; it has "
                f"{sorted(map(str, outputs))}. Return the embeddings under those keys or pass "
                "keys=(…) / labels_key=… to CLDiagCallback.",
            )
        temperature = _optional(outputs, self.temperature_key)
        if temperature is None:
            scale = _optional(outputs, self.logit_scale_key)
            if scale is not None:
                temperature = 1.0 / (
                    scale.detach().float() if isinstance(scale, torch.Tensor) else float(scale)
                )
        self.monitor.log(
            step,
            outputs[self.keys[0]],
            outputs[self.keys[1]],
            labels=outputs[self.labels_key] if self.labels_key is not None else None,
            temperature=temperature,
            loss=_optional(outputs, self.loss_key),
        )
        self._last_step = step

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        """Mark the run finished."""
        self._close("finished")

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        """Mark the run failed (everything logged so far is written)."""
        self._close("failed")

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """Close the run if ``fit`` ended without ``on_fit_end`` (never leaves a run ``running``)."""
        if stage == "fit":
            self._close("finished")

    # -- helpers ----------------------------------------------------------------------------------------
    def _required(self) -> tuple[str, ...]:
        return self.keys + ((self.labels_key,) if self.labels_key is not None else ())

    def _close(self, status: str) -> None:
        if self.monitor is not None:
            monitor, self.monitor = self.monitor, None
            with self._guard.run("closing the run"):
                monitor.close(status="failed" if status == "failed" else "finished")


def _absolute(run_dir: str | os.PathLike[str]) -> str:
    """Local paths become absolute, so a checkpoint resumed from another directory finds its run."""
    text = os.fspath(run_dir)
    return text if "://" in text else os.path.abspath(os.path.expanduser(text))


def _optional(outputs: Mapping[str, Any], key: str | None) -> Any:
    return outputs.get(key) if key is not None else None


def _hparams(pl_module: Any) -> dict[str, Any]:
    hparams = getattr(pl_module, "hparams", None)
    try:
        return dict(hparams) if hparams else {}
    except (TypeError, ValueError):
        return {}
