"""Input validation shared by functional, losses, projection and concepts.

One convention for every validator: the value comes first and its name second (``check_matrix(z, "z")``),
each returns the checked (possibly converted) value, and each message reads ``"<name> must …, got …"`` with
the actual type, dtype or shape. Types raise :class:`TypeError`, values and shapes :class:`ValueError`.

Nothing here reads a tensor's *values* (that would force a device sync); tensor temperatures are therefore
checked for shape only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from numbers import Real

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "check_array_matrix",
    "check_int",
    "check_labels",
    "check_matrix",
    "check_pair",
    "check_positive",
    "check_range",
    "check_rows",
    "check_scalar_temperature",
    "check_taus",
]

INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def check_matrix(z: object, name: str, *, min_rows: int = 1) -> Tensor:
    """A 2-D floating-point tensor with at least ``min_rows`` rows and one column."""
    if not isinstance(z, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(z).__name__}")
    if not z.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {z.dtype}")
    if z.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows, dim), got {z.ndim}-D tensor of shape {tuple(z.shape)}")
    if z.shape[0] == 0 or z.shape[1] == 0:
        raise ValueError(f"{name} must have at least one row and one column, got shape {tuple(z.shape)}")
    if z.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows, got shape {tuple(z.shape)}")
    return z


def check_rows(z: Tensor, name: str, minimum: int, why: str) -> None:
    """``z`` has at least ``minimum`` rows; ``why`` says what needs them."""
    if z.shape[0] < minimum:
        raise ValueError(f"{name} needs at least {minimum} rows ({why}), got shape {tuple(z.shape)}")


def check_pair(
    a: object,
    b: object,
    names: tuple[str, str] = ("a", "b"),
    *,
    same_batch: bool = True,
) -> tuple[Tensor, Tensor]:
    """Two matrices of the same dim on the same device (and the same row count if ``same_batch``)."""
    na, nb = names
    a = check_matrix(a, na)
    b = check_matrix(b, nb)
    got = f"got {na} {tuple(a.shape)} and {nb} {tuple(b.shape)}"
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{na} and {nb} must have the same embedding dim, {got}")
    if same_batch and a.shape[0] != b.shape[0]:
        raise ValueError(f"{na} and {nb} must have the same batch size (row i of each is a pair), {got}")
    if a.device != b.device:
        raise ValueError(f"{na} and {nb} must be on the same device, got {a.device} and {b.device}")
    return a, b


def check_labels(labels: object, n: int, device: torch.device, name: str = "labels") -> Tensor:
    """A ``(n,)`` integer tensor, moved to ``device``."""
    if not isinstance(labels, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(labels).__name__}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor, got dtype {labels.dtype}")
    if labels.ndim != 1 or labels.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},) to match the batch, got shape {tuple(labels.shape)}")
    return labels.to(device)


def check_positive(value: object, name: str) -> float:
    """A real number that is positive and finite, as a float."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be positive and finite, got {value}")
    return value


def check_scalar_temperature(value: object, name: str) -> float | Tensor:
    """A positive finite number, or a one-element tensor (not range-checked: that would sync)."""
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(
                f"{name} must be a number or a one-element tensor, got shape {tuple(value.shape)}"
            )
        return value
    return check_positive(value, name)


def check_taus(taus: object, device: torch.device, name: str) -> Tensor:
    """Temperatures as a 1-D float32 tensor on ``device`` (numbers are checked; tensors are not)."""
    if isinstance(taus, Tensor):
        if not (taus.is_floating_point() or taus.dtype in INT_DTYPES):
            raise TypeError(f"{name} must be a real-valued tensor, got dtype {taus.dtype}")
        if taus.ndim > 1 or taus.numel() == 0:
            raise ValueError(f"{name} must be a 0-d or non-empty 1-D tensor, got shape {tuple(taus.shape)}")
        return taus.reshape(-1).to(device=device, dtype=torch.float32)
    if isinstance(taus, Real):
        taus = [taus]
    if isinstance(taus, (str, bytes)) or not isinstance(taus, Iterable):
        raise TypeError(
            f"{name} must be a number, a sequence of numbers or a tensor, got {type(taus).__name__}"
        )
    checked = [check_positive(t, name) for t in taus]  # also accepts NumPy arrays of temperatures
    if not checked:
        raise ValueError(f"{name} must not be empty")
    return torch.tensor(checked, dtype=torch.float32, device=device)


def check_int(value: object, name: str, minimum: int) -> int:
    """An integer (Python or NumPy, not bool) ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_range(value: object, name: str, low: float, high: float) -> float:
    """A real number in ``[low, high]``, as a float."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if not low <= value <= high:
        raise ValueError(f"{name} must lie in [{low}, {high}], got {value}")
    return value


def check_array_matrix(x: object, name: str = "x") -> np.ndarray:
    """A 2-D floating-point NumPy array."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(x).__name__}")
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows, dim), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{name} must hold floats, got dtype {x.dtype}")
    return x
