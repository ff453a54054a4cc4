"""Fixtures of the reliability suite."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    # Tests here run next to child processes on two cores; torch's default of one thread per core
    # makes them fight over the cores.
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
