"""cldiag: diagnostics that show why a contrastive-learning run is healthy or sick.

Quick start::

    from cldiag import Monitor
    with Monitor("runs/my-run", config={"temperature": 0.2}) as mon:
        for step, (x1, x2) in enumerate(loader):
            za, zb = model(x1), model(x2)
            loss = loss_fn(za, zb)
            mon.log(step, za, zb, temperature=0.2, loss=loss)

Then ``cldiag serve runs/`` opens the dashboard.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Monitor": ("cldiag.monitor", "Monitor"),
    "read_run": ("cldiag.reader", "read_run"),
    "list_runs": ("cldiag.reader", "list_runs"),
    "Run": ("cldiag.reader", "Run"),
    "functional": ("cldiag.functional", None),
    "losses": ("cldiag.losses", None),
    "plot": ("cldiag.plot", None),
}

__all__ = ["Monitor", "Run", "__version__", "functional", "list_runs", "losses", "plot", "read_run"]


def __getattr__(name: str) -> Any:
    # Lazy imports keep `import cldiag` cheap (no torch import for reader-only users such as the dashboard).
    if name in _LAZY:
        module_name, attr = _LAZY[name]
        module = importlib.import_module(module_name)
        return module if attr is None else getattr(module, attr)
    raise AttributeError(f"module 'cldiag' has no attribute {name!r}")
