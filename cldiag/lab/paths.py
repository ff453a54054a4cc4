"""Where Lab runs are written: a user run folder, never the bundled ``sample_runs/``.

The folder is ``$CLDIAG_LAB_DIR`` when set, else ``$XDG_CACHE_HOME/cldiag/lab-runs`` (``~/.cache/cldiag/
lab-runs`` without XDG). Why there:

- not inside the source checkout: Lab runs do not mix with the bundled samples or show up in ``git status``,
  and Streamlit's file watcher (which watches the folder of ``app.py`` recursively) does not see hundreds of
  part files appear during a training;
- the same folder whatever directory the dashboard was started from (``./runs/lab`` would move with it);
- a cache folder, because Lab runs are experiments that can be deleted at any time; set
  ``CLDIAG_LAB_DIR`` to keep them somewhere else (a local path or an fsspec URI).

The dashboard's run picker lists the runs of this folder after those of the run root, so every page can
open a Lab run.

Example:
    >>> lab_run_dir("/tmp/lab", "lab-digits-1")
    '/tmp/lab/lab-digits-1'
"""

from __future__ import annotations

import os
import posixpath
import re
import time

__all__ = ["ENV_LAB_DIR", "lab_run_dir", "lab_run_name", "lab_runs_dir"]

ENV_LAB_DIR = "CLDIAG_LAB_DIR"
"""Environment variable that overrides the Lab's run folder."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def lab_runs_dir() -> str:
    """The folder Lab trainings and presets write their runs into (see the module docstring)."""
    configured = os.environ.get(ENV_LAB_DIR, "").strip()
    if configured:
        return configured if "://" in configured else os.path.abspath(os.path.expanduser(configured))
    cache = os.environ.get("XDG_CACHE_HOME", "").strip() or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(os.path.abspath(cache), "cldiag", "lab-runs")


def lab_run_name(data: str, loss: str, temperature: float, count: int) -> str:
    """A run name that says what was trained and stays unique: ``lab-<data>-<loss>-t<τ>-<time>-<count>``.

    The time keeps browser sessions apart; ``count`` (a per-session counter) keeps two starts within one
    second apart.
    """
    return f"lab-{data}-{loss}-t{temperature:g}-{time.strftime('%Y%m%d-%H%M%S')}-{count}"


def lab_run_dir(root: str, name: str) -> str:
    """The directory of run ``name`` right under the Lab folder ``root``: the one place Lab run dirs are made.

    Raises:
        ValueError: If ``name`` is not a single plain path component (letters, digits, ``. _ -``; no
            separators, no leading dot), so a run can never land outside ``root``.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in (".", ".."):
        raise ValueError(f"a Lab run name must be one plain path component, got {name!r}")
    if "://" in root:
        return posixpath.join(root.rstrip("/"), name)
    return os.path.join(root, name)
