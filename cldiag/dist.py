"""Tiny ``torch.distributed`` helpers: rank, world size, and a gather that accepts uneven batch sizes.

Contrastive losses compute their similarity matrix over the global batch (all ranks' embeddings
gathered); cldiag does the same, so a diagnostic logged under DDP equals the one a single process would
compute on the concatenated batch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """Whether a ``torch.distributed`` process group with more than one process is active."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's global rank (0 without a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """Number of processes (1 without a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def gather_rows(t: torch.Tensor) -> torch.Tensor:
    """All-gather ``t`` along dim 0 from every rank, concatenated in rank order.

    Ranks may hold different numbers of rows (a last, smaller batch, or none at all): shapes are exchanged
    first, rows are padded to the largest size for the collective and trimmed afterwards. Every rank must
    call this the same number of times (it is a collective). Without a process group it returns ``t``
    unchanged.

    Args:
        t: tensor of shape ``(n, ...)``; trailing dimensions and dtype must agree across ranks.

    Returns:
        Tensor of shape ``(sum of n over ranks, ...)`` on ``t``'s device.

    Raises:
        ValueError: on every rank alike, when the ranks' trailing dimensions or dtypes differ.
    """
    if not is_distributed():
        return t
    if not 1 <= t.ndim <= _MAX_DIMS:
        raise ValueError(f"gather_rows needs a tensor with 1 to {_MAX_DIMS} dimensions, got {tuple(t.shape)}")
    t = t.detach().contiguous()
    n = world_size()
    # Shapes and dtypes travel together in one small collective, so a mismatch raises the same error on
    # every rank; gathering mismatched tensors directly aborts the process (gloo) or corrupts data (nccl).
    code = _DTYPES.index(t.dtype) if t.dtype in _DTYPES else len(_DTYPES)
    desc = [code, t.ndim, *t.shape] + [-1] * (_MAX_DIMS - t.ndim)
    local = torch.tensor(desc, device=t.device, dtype=torch.long)
    descs = [torch.empty_like(local) for _ in range(n)]
    dist.all_gather(descs, local)
    table = torch.stack(descs).cpu().tolist()
    shapes = [tuple(row[2 : 2 + row[1]]) for row in table]
    if any(row[0] != table[0][0] or s[1:] != shapes[0][1:] for row, s in zip(table, shapes, strict=True)):
        described = ", ".join(
            f"rank {r}: {s} {_DTYPES[row[0]] if row[0] < len(_DTYPES) else 'other dtype'}"
            for r, (row, s) in enumerate(zip(table, shapes, strict=True))
        )
        raise ValueError(f"ranks passed tensors that cannot be gathered along dim 0 ({described})")
    counts = [s[0] for s in shapes]
    biggest = max(counts)
    if t.shape[0] < biggest:
        pad = torch.zeros((biggest - t.shape[0], *t.shape[1:]), dtype=t.dtype, device=t.device)
        t = torch.cat([t, pad])
    out = [torch.empty_like(t) for _ in range(n)]
    dist.all_gather(out, t)
    return torch.cat([o[:c] for o, c in zip(out, counts, strict=True)])


_MAX_DIMS = 8
_DTYPES = (
    torch.float32,
    torch.float64,
    torch.float16,
    torch.bfloat16,
    torch.int64,
    torch.int32,
    torch.int16,
    torch.int8,
    torch.uint8,
    torch.bool,
)


def all_true(flag: bool) -> bool:
    """Whether ``flag`` is true on every rank (a collective; ``flag`` itself without a process group)."""
    if not is_distributed():
        return flag
    backend = dist.get_backend()
    device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
    t = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def broadcast_object(obj: object, src: int = 0) -> object:
    """Broadcast a picklable Python object from ``src`` to every rank (identity without a group)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]
