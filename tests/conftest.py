"""Shared test set-up."""

from __future__ import annotations

import os

# One intra-op thread per test process: the suite runs on 2 shared cores, subprocesses (DDP, SIGKILL,
# streamlit) run beside it, and oversubscribed OpenMP pools make small tensor ops 10-50x slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch

torch.set_num_threads(1)


import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _fixed_monitor_cadences():
    """Monitors in tests keep fixed cadences unless a test passes ``budget``.

    The default overhead budget schedules the step and heavy statistics by the real clock, so which steps
    get them would depend on the machine's load; tests of the budget inject their own clock
    (tests/test_monitor_budget.py). Session-scoped so that module- and session-scoped fixtures that write
    runs get it too. Scripts a test runs in a subprocess pass ``budget=None`` themselves.
    """
    from cldiag.monitor import Monitor

    defaults = Monitor.__init__.__kwdefaults__
    before = defaults["budget"]
    defaults["budget"] = None
    yield
    defaults["budget"] = before


@pytest.fixture(autouse=True)
def _restore_main_module():
    """Undo AppTest's swap of ``sys.modules["__main__"]`` for the script it ran (app.py or a page).

    Left in place, every later ``torch.multiprocessing.spawn`` child (the DDP tests) re-imports that
    Streamlit script as its main module and dies in bare mode.
    """
    import sys

    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main
