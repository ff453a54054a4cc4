"""Validation of what the Monitor's logging calls receive: steps, scalars, embeddings, id/label vectors.

Each check reads only a tensor's device, dtype and shape, never its values (that would be a host sync in
the training step). A rejected value raises a ``TypeError``/``ValueError`` tagged with ``report_key``, the
kind it is reported once under (its message holds the varying value).
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any

import numpy as np
import torch

__all__ = [
    "StepNotIncreasing",
    "check_embedding",
    "check_step",
    "check_temperature",
    "check_vector",
    "keyed",
    "refuse_meta",
    "scalar",
    "step_repr",
    "take",
]


class StepNotIncreasing(ValueError):
    """A step at or before one already logged: writing it would duplicate or reorder rows."""

    report_key = "step not increasing"

    def __init__(self, what: str) -> None:
        super().__init__(f"{what}; steps must increase, so this one is dropped (no (step, metric) row twice)")


def keyed(exc: Exception, key: str) -> Exception:
    """``exc`` tagged with the kind it is reported once under (its message holds the varying value)."""
    exc.report_key = key  # type: ignore[attr-defined]
    return exc


_INT64 = (-(2**63), 2**63 - 1)


def check_step(step: object) -> int:
    """``step`` as a Python int: an int, NumPy integer or 0-d integer tensor, within int64 (as stored)."""
    if isinstance(step, torch.Tensor):
        if step.ndim != 0 or step.dtype.is_floating_point or step.is_complex() or step.dtype == torch.bool:
            raise keyed(
                TypeError(
                    f"step must be an int or a 0-d integer tensor, got a {step.dtype} tensor of shape "
                    f"{tuple(step.shape)}",
                ),
                "step type",
            )
        refuse_meta("step", step)
        step = int(step.item())
    elif isinstance(step, bool | np.bool_) or not isinstance(step, int | np.integer):
        raise keyed(TypeError(f"step must be an int, got {type(step).__name__} {step!r:.40}"), "step type")
    step = int(step)
    if not _INT64[0] <= step <= _INT64[1]:
        message = f"step {step} is outside the int64 range [-2**63, 2**63 - 1] that a run stores"
        raise keyed(ValueError(message), "step range")
    return step


def step_repr(step: object) -> str:
    """A short rendering of a (possibly bad) step for messages."""
    text = repr(step) if not isinstance(step, int | np.integer) else str(int(step))
    return text if len(text) <= 40 else text[:37] + "..."


def refuse_meta(arg: str, t: torch.Tensor) -> None:
    """Refuse a tensor on the ``meta`` device (accepted now, it would fail the whole flush that copies it)."""
    if t.device.type == "meta":
        raise ValueError(f"{arg} is a tensor on the meta device, which holds no values")


def scalar(value: object, arg: str) -> torch.Tensor | float:
    """A 0-d float tensor (detached, still on its device) or a Python float (NaN for non-finite numbers).

    Only device, dtype and shape of a tensor are checked: reading its value would sync with the device.
    """
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            message = f"{arg} must be a scalar, got a tensor of shape {tuple(value.shape)}"
            raise keyed(ValueError(message), f"{arg} shape")
        if value.is_complex():
            raise TypeError(f"{arg} must be real, got a tensor of dtype {value.dtype}")
        refuse_meta(arg, value)
        return value.detach().reshape(()).float()
    if isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "biuf":
        value = value.reshape(()).item()
    if not isinstance(value, Real):
        got = f"{type(value).__name__} {value!r:.40}"
        raise keyed(TypeError(f"{arg} must be a number or a one-element tensor, got {got}"), f"{arg} type")
    value = float(value)
    if not math.isfinite(value):
        return float("nan")
    return value


def check_temperature(value: object) -> torch.Tensor | float:
    """τ as :func:`scalar` returns it; a number must be positive and finite (a tensor is checked later)."""
    tau = scalar(value, "temperature")
    if isinstance(tau, float) and not (tau > 0 and math.isfinite(tau)):
        message = f"temperature must be positive and finite, got {tau:.6g}"
        raise keyed(ValueError(message), "bad temperature")
    return tau


def check_embedding(arg: str, z: Any) -> torch.Tensor:
    """``z`` detached, after checking it is a 2-D floating-point tensor."""
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"{arg} must be a torch.Tensor, got {type(z).__name__}")
    if z.ndim != 2:
        raise ValueError(f"{arg} must be 2-D (batch, dim), got shape {tuple(z.shape)}")
    if not z.dtype.is_floating_point:
        raise TypeError(f"{arg} must be a floating-point tensor, got dtype {z.dtype}")
    return z.detach()


def check_vector(arg: str, v: Any, n: int) -> torch.Tensor | None:
    """``v`` (labels, ids) as a detached int64 tensor of shape ``(n,)``; None stays None."""
    if v is None:
        return None
    v = torch.as_tensor(v).detach()
    refuse_meta(arg, v)
    if v.dtype.is_floating_point or v.dtype == torch.bool or v.is_complex():
        raise TypeError(f"{arg} must hold integers, got dtype {v.dtype}")
    if v.shape != (n,):
        raise ValueError(f"{arg} must have shape ({n},) to match the batch, got {tuple(v.shape)}")
    return v.long()


def take(t: torch.Tensor | None, idx: torch.Tensor) -> torch.Tensor | None:
    """Rows ``idx`` of ``t`` (None stays None)."""
    return None if t is None else t[idx.to(t.device)]
