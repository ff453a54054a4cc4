"""Model outputs → ``(a, b, labels, τ)``: the adapters behind ``Monitor.log(step, outputs)``.

Like open_clip's ``gather_features``, each adapter turns one library's objects into what the Monitor
logs and nothing more. Two families are recognised by their keys:

- **open_clip** (``create_model(..., output_dict=True)``): ``image_features``, ``text_features`` and
  ``logit_scale``, which open_clip returns already exponentiated, so τ = 1 / ``logit_scale``.
- **transformers CLIP / SigLIP** (``CLIPOutput``, ``SiglipOutput`` …): ``image_embeds``, ``text_embeds``
  and ``logits_per_text``. The output carries the logits, not the scale, so τ is recovered from them:
  ``logits_per_text[i, j] = s · cos(text_i, image_j) (+ b for SigLIP)``, fitted by least squares on the
  matched pairs and one mismatched pair per row (2B entries, O(B·d), no host sync), and τ = 1 / s. For
  CLIP the fit goes through the origin and is exact up to float rounding; for SigLIP (an output class
  whose name contains ``Siglip``) it has an intercept, the learned bias b, which cldiag does not log (its
  softmax-based hardness statistics at τ describe an InfoNCE loss, not SigLIP's sigmoid loss). Where
  the model is at hand, :func:`hf_clip_outputs` reads ``model.logit_scale.exp()`` (and ``logit_bias``)
  directly instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

__all__ = [
    "HF_CLIP_KEYS",
    "OPENCLIP_KEYS",
    "Unpacked",
    "hf_clip_outputs",
    "model_outputs",
    "open_clip_outputs",
]

OPENCLIP_KEYS: tuple[str, str] = ("image_features", "text_features")
"""Embedding keys of an open_clip output dict (``logit_scale`` comes with them, already exp'd)."""

HF_CLIP_KEYS: tuple[str, str] = ("image_embeds", "text_embeds")
"""Embedding keys of a transformers CLIP / SigLIP output (projected, L2-normalized)."""


@dataclass(frozen=True)
class Unpacked:
    """What the Monitor logs from one output object.

    Attributes:
        a: embeddings of the first modality ``(B, d)`` (images).
        b: embeddings of the second modality ``(B, d)`` (texts); ``a[i]``, ``b[i]`` are a positive pair.
        labels: class labels ``(B,)`` or ``None``.
        temperature: τ (0-d tensor on the embeddings' device, or a float) or ``None`` when unknown.
        bias: SigLIP's logit bias where known, else ``None`` (informational; not logged).
        modalities: names of the two modalities.
    """

    a: torch.Tensor
    b: torch.Tensor
    labels: torch.Tensor | None = None
    temperature: torch.Tensor | float | None = None
    bias: torch.Tensor | float | None = None
    modalities: tuple[str, str] = ("image", "text")


def model_outputs(outputs: Mapping[str, Any]) -> Unpacked:
    """Unpack an open_clip output dict or a transformers CLIP / SigLIP output, whichever it is.

    Args:
        outputs: the model's output mapping (a ``ModelOutput`` is one).

    Returns:
        The embeddings and τ (see the module docstring for how τ is obtained).

    Raises:
        KeyError: neither family's embedding keys are all there; the message lists the keys present.
    """
    if any(k in outputs for k in HF_CLIP_KEYS) and not any(k in outputs for k in OPENCLIP_KEYS):
        return hf_clip_outputs(outputs)
    return open_clip_outputs(outputs)


def open_clip_outputs(outputs: Mapping[str, Any]) -> Unpacked:
    """Unpack open_clip's ``{"image_features", "text_features", "logit_scale"}``; τ = 1 / logit_scale.

    Raises:
        KeyError: an embedding key is missing; the message lists the keys present.
    """
    _require(outputs, OPENCLIP_KEYS)
    scale = outputs.get("logit_scale")
    temperature = None
    if scale is not None:
        temperature = 1.0 / (scale.detach().reshape(()) if isinstance(scale, torch.Tensor) else scale)
    return Unpacked(outputs["image_features"], outputs["text_features"], temperature=temperature)


def hf_clip_outputs(outputs: Mapping[str, Any], *, model: torch.nn.Module | None = None) -> Unpacked:
    """Unpack a transformers ``CLIPOutput`` / ``SiglipOutput``: image and text embeddings and τ.

    Args:
        outputs: the output of ``CLIPModel(...)`` / ``SiglipModel(...)`` (or any mapping with
            ``image_embeds``, ``text_embeds`` and, for τ, ``logits_per_text``).
        model: the model that produced ``outputs``; when it has ``logit_scale``, τ = 1 / exp(logit_scale)
            is read from it (and ``logit_bias``, if any), instead of being fitted to the logits.

    Returns:
        ``Unpacked(image_embeds, text_embeds, temperature=τ)``; τ is ``None`` without logits or model,
        and NaN when the fit is degenerate (every fitted cosine equal, e.g. a fully collapsed batch with
        a bias to fit).

    Raises:
        KeyError: ``image_embeds`` or ``text_embeds`` is missing; the message lists the keys present.
    """
    _require(outputs, HF_CLIP_KEYS)
    image, text = outputs["image_embeds"], outputs["text_embeds"]
    with_bias = "siglip" in type(outputs).__name__.lower()
    scale = getattr(model, "logit_scale", None) if model is not None else None
    if isinstance(scale, torch.Tensor):
        bias = getattr(model, "logit_bias", None)
        return Unpacked(
            image,
            text,
            temperature=1.0 / scale.detach().float().exp().reshape(()),
            bias=bias.detach().float().reshape(()) if isinstance(bias, torch.Tensor) else None,
        )
    logits = outputs.get("logits_per_text")
    if not isinstance(logits, torch.Tensor) or not isinstance(text, torch.Tensor):
        return Unpacked(image, text)
    s, b = _fit_logit_scale(logits, text, image, with_bias=with_bias)
    return Unpacked(image, text, temperature=1.0 / s, bias=b)


def _fit_logit_scale(
    logits: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, *, with_bias: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Least-squares ``logits[i, j] ≈ s · <rows_i, cols_j> (+ b)`` over the diagonal and its neighbour.

    Uses the B matched entries ``(i, i)`` and B mismatched ones ``(i, i+1 mod B)``: O(B·d), on device.
    """
    logits, rows, cols = logits.detach().float(), rows.detach().float(), cols.detach().float()
    n = logits.shape[0]
    idx = torch.arange(n, device=logits.device)
    nxt = (idx + 1) % n
    y = torch.cat([logits[idx, idx], logits[idx, nxt]])
    x = torch.cat([(rows * cols).sum(-1), (rows * cols[nxt]).sum(-1)])
    if not with_bias:
        return (x * y).sum() / (x * x).sum(), None
    xc, yc = x - x.mean(), y - y.mean()
    s = (xc * yc).sum() / (xc * xc).sum()
    return s, y.mean() - s * x.mean()


def _require(outputs: Mapping[str, Any], keys: tuple[str, str]) -> None:
    missing = [k for k in keys if k not in outputs]
    if missing:
        raise KeyError(
            f"output dict lacks {missing}; it has keys {sorted(map(str, outputs))}. Monitor.log accepts "
            f"open_clip's {list(OPENCLIP_KEYS)} (+ logit_scale) or transformers CLIP/SigLIP's "
            f"{list(HF_CLIP_KEYS)} (+ logits_per_text)",
        )
