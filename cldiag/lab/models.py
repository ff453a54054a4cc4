"""Tiny encoders for the lab: an MLP, a small CNN for 8×8 digits, an optional projector, a linear map.

Each encoder maps a batch to a representation ``h``; :class:`Encoder` optionally adds a projector head
``g`` and trains on ``z = g(h)``, as SimCLR does, while the kNN probe reads ``h``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["MLP", "Encoder", "LinearMap", "SmallCNN", "build_backbone", "reset_parameters"]


class MLP(nn.Module):
    """ReLU MLP: flatten, ``depth`` hidden layers of width ``hidden``, a linear output layer."""

    def __init__(self, in_dim: int, out_dim: int, *, hidden: int = 256, depth: int = 2) -> None:
        """Build the layers.

        Args:
            in_dim: Flattened input size.
            out_dim: Output (embedding) size.
            hidden: Width of the hidden layers.
            depth: Number of hidden layers (≥ 1).

        Raises:
            ValueError: If a size is < 1.
        """
        super().__init__()
        if min(in_dim, out_dim, hidden, depth) < 1:
            raise ValueError(
                f"sizes must be >= 1, got in={in_dim}, out={out_dim}, hidden={hidden}, depth={depth}"
            )
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Map (B, ...) to (B, out_dim)."""
        return self.net(x)


class SmallCNN(nn.Module):
    """Two 3×3 conv layers (16, 32 channels) and a 2×2 max-pool for 8×8 images, then a linear layer."""

    def __init__(self, out_dim: int, *, channels: int = 1) -> None:
        """Build the layers.

        Args:
            out_dim: Output (embedding) size (≥ 1).
            channels: Input channels.

        Raises:
            ValueError: If a size is < 1.
        """
        super().__init__()
        if out_dim < 1 or channels < 1:
            raise ValueError(f"out_dim and channels must be >= 1, got {out_dim}, {channels}")
        self.net = nn.Sequential(
            nn.Conv2d(channels, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 4 * 4, out_dim),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Map (B, channels, 8, 8) to (B, out_dim).

        Raises:
            ValueError: If the input is not 8×8 images.
        """
        if x.ndim != 4 or tuple(x.shape[2:]) != (8, 8):
            raise ValueError(f"SmallCNN expects (B, C, 8, 8) images, got shape {tuple(x.shape)}")
        return self.net(x)


class LinearMap(nn.Module):
    """One bias-free linear layer, the encoder of the Jing et al. collapse toy (16×16)."""

    def __init__(self, dim: int = 16) -> None:
        """Build a ``dim × dim`` map (≥ 1)."""
        super().__init__()
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.linear = nn.Linear(dim, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """Map (B, dim) to (B, dim)."""
        return self.linear(x)


class Encoder(nn.Module):
    """A backbone with an optional two-layer projector head (SimCLR's ``g``).

    ``forward`` returns what the loss sees (projector output if there is one); :meth:`represent` returns
    the backbone output, which is what a downstream probe (kNN) should use: SimCLR found the layer before
    the projector to transfer better.
    """

    def __init__(self, backbone: nn.Module, feature_dim: int, *, projector_dim: int | None = None) -> None:
        """Wrap ``backbone``.

        Args:
            backbone: Module mapping inputs to (B, feature_dim).
            feature_dim: Output size of the backbone.
            projector_dim: Output size of the projector, or None for no projector.
        """
        super().__init__()
        self.backbone = backbone
        self.projector: nn.Module | None = None
        if projector_dim is not None:
            self.projector = nn.Sequential(
                nn.Linear(feature_dim, feature_dim), nn.ReLU(), nn.Linear(feature_dim, projector_dim)
            )

    def represent(self, x: Tensor) -> Tensor:
        """Backbone features ``h`` (B, feature_dim)."""
        return self.backbone(x)

    def forward(self, x: Tensor) -> Tensor:
        """Training embeddings ``z = g(h)`` (or ``h`` without projector)."""
        h = self.backbone(x)
        return h if self.projector is None else self.projector(h)


def build_backbone(kind: str, input_shape: tuple[int, ...], out_dim: int, *, hidden: int = 256) -> nn.Module:
    """Build a backbone by name for inputs of ``input_shape``.

    Args:
        kind: ``"mlp"``, ``"cnn"`` (8×8 images only) or ``"linear"`` (square map, ``out_dim`` = input size).
        input_shape: Shape of one input without the batch dimension.
        out_dim: Embedding size.
        hidden: Hidden width of the MLP.

    Returns:
        The module.

    Raises:
        ValueError: If ``kind`` is unknown or does not fit the input.
    """
    in_dim = math.prod(input_shape)
    if kind == "mlp":
        return MLP(in_dim, out_dim, hidden=hidden)
    if kind == "cnn":
        if tuple(input_shape) != (1, 8, 8):
            raise ValueError(
                f"the cnn encoder needs 8×8 images (1, 8, 8), the data gives {tuple(input_shape)}"
            )
        return SmallCNN(out_dim)
    if kind == "linear":
        if out_dim != in_dim:
            raise ValueError(f"the linear encoder is square: embed_dim must equal the input size {in_dim}")
        return LinearMap(in_dim)
    raise ValueError(f"unknown encoder {kind!r}; choose 'mlp', 'cnn' or 'linear'")


def reset_parameters(module: nn.Module, generator: torch.Generator) -> None:
    """Re-initialise every Linear and Conv2d layer like PyTorch's default, drawing from ``generator``.

    PyTorch's default initialisation draws from the global RNG, which other threads (a second lab session,
    the dashboard) may also use; drawing from a private generator keeps a seeded run reproducible.

    Args:
        module: The model; its Linear and Conv2d layers are re-initialised in place.
        generator: Source of randomness.
    """
    for layer in module.modules():
        if isinstance(layer, nn.Linear | nn.Conv2d):
            # Kaiming-uniform with a = sqrt(5) and a fan-in-scaled bias is what reset_parameters() does.
            nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
            if layer.bias is not None:
                bound = 1 / math.sqrt(nn.init._calculate_fan_in_and_fan_out(layer.weight)[0])
                nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
