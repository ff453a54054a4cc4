"""The training hook: :class:`Monitor` logs contrastive diagnostics of each step to a parquet run.

Cost model (what runs when, B = batch size, d = embedding dim):

================================  ============  =====================================================
what                              cadence       cost
================================  ============  =====================================================
loss, τ, batch size               every step    none worth counting
alignment, positive cosine,       ``step``      O(B·d), stays on the tensors' device (no host sync)
norms, non-finite share; with
two modalities gap, cones,
matched distance
uniformity, score histograms,     ``pairwise``  O(B²·d)
hardest negatives, retrieval,
tolerance, hardness at τ
spectra and effective rank        ``spectrum``  O(B·d² + d³)
temperature curves over a τ grid  ``curves``    O(B²·(d + #τ))
embedding snapshot                ``snapshot``  copies up to ``snapshot_size`` rows
================================  ============  =====================================================

Values stay on the device until a flush (every ``flush_every`` logged steps or ``flush_secs`` seconds),
which copies them to the host in one go and hands them to a background writer thread that writes new
part files atomically. ``close()`` — also called by the context manager and at interpreter exit — flushes
everything.

The hook never kills the training it watches: an error inside cldiag is reported once, loudly, and that
step's diagnostics are skipped (``strict=True`` raises instead, for tests and debugging).

The package splits policy from mechanism:

- :mod:`cldiag.monitor.config`: :class:`Cadence`, the validated cadence settings;
- :mod:`cldiag.monitor.inputs`: validation of what the logging calls receive;
- :mod:`cldiag.monitor.core`: :class:`Monitor`, what is computed and when;
- :mod:`cldiag.monitor.writer`: :class:`RunWriter`, the thread, queue, retries, heartbeat and compaction;
- :mod:`cldiag.monitor.report`: :class:`Reporter`, each error reported once.
"""

from __future__ import annotations

import importlib
from typing import Any

from cldiag.monitor.config import DEFAULT_TAUS, MAX_BINS, MAX_SNAPSHOT, Cadence

__all__ = ["DEFAULT_TAUS", "MAX_BINS", "MAX_SNAPSHOT", "Cadence", "Monitor", "Reporter", "RunWriter"]

_LAZY = {
    "Monitor": "cldiag.monitor.core",
    "Reporter": "cldiag.monitor.report",
    "RunWriter": "cldiag.monitor.writer",
}


def __getattr__(name: str) -> Any:
    # Lazy: the dashboard reads the default cadences (config) without loading the hook and its writer.
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cldiag.monitor' has no attribute {name!r}")
