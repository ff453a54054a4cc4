"""cldiag.paths: a typed path stays inside the run root (plain Python, no Streamlit)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cldiag.paths import resolve_under_root


def test_paths_module_imports_no_streamlit():
    code = "import sys, cldiag.paths; print('streamlit' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_resolve_under_root(tmp_path):
    root = tmp_path / "runs"
    (root / "a" / "b").mkdir(parents=True)
    assert resolve_under_root(str(root), "a/b") == str(root / "a" / "b")
    assert resolve_under_root(str(root), "./a//b/") == str(root / "a" / "b")
    os.symlink(tmp_path, root / "up")
    for bad in ["", "  ", ".", "../x", "a/../../x", "/abs", "~/x", "C:/x", "http://h/x", "up", "a\\..\\.."]:
        with pytest.raises(ValueError):
            resolve_under_root(str(root), bad)
    assert resolve_under_root("s3://bucket/runs/", "team/r1") == "s3://bucket/runs/team/r1"
    with pytest.raises(ValueError):
        resolve_under_root("s3://bucket/runs", "../other")
