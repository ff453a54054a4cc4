from __future__ import annotations

from pathlib import Path

import pytest
from synthetic_runs import make_runs


@pytest.fixture(scope="session")
def run_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    make_runs(root)
    return root
