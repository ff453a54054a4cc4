"""Where Lab runs go: a user folder (``$CLDIAG_LAB_DIR``), never the bundled samples, and no file watcher."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cldiag import cli
from cldiag.lab import paths

REPO = Path(__file__).resolve().parents[2]


def test_env_overrides_the_lab_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.ENV_LAB_DIR, str(tmp_path / "mine"))
    assert paths.lab_runs_dir() == str(tmp_path / "mine")
    monkeypatch.setenv(paths.ENV_LAB_DIR, "s3://bucket/lab")
    assert paths.lab_runs_dir() == "s3://bucket/lab"
    assert paths.lab_run_dir("s3://bucket/lab/", "lab-x") == "s3://bucket/lab/lab-x"


def test_default_lab_folder_is_a_user_cache_outside_the_checkout(tmp_path, monkeypatch):
    monkeypatch.delenv(paths.ENV_LAB_DIR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert paths.lab_runs_dir() == str(tmp_path / "cache" / "cldiag" / "lab-runs")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    folder = Path(paths.lab_runs_dir())
    assert folder == tmp_path / "home" / ".cache" / "cldiag" / "lab-runs"
    # Neither inside sample_runs/ nor anywhere under the folder of app.py that Streamlit watches.
    assert REPO not in folder.parents


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "/abs", ".hidden", "a\\b", "x y"])
def test_a_run_name_cannot_leave_the_lab_folder(tmp_path, name):
    with pytest.raises(ValueError, match="one plain path component"):
        paths.lab_run_dir(str(tmp_path), name)


def test_run_names_say_what_was_trained_and_fit_the_folder(tmp_path):
    name = paths.lab_run_name("cluttered-digits", "nt_xent", 0.2, 3)
    assert name.startswith("lab-cluttered-digits-nt_xent-t0.2-") and name.endswith("-3")
    assert paths.lab_run_dir(str(tmp_path), name) == os.path.join(str(tmp_path), name)


def test_serve_turns_streamlit_file_watcher_off(tmp_path, monkeypatch):
    # The watcher follows app.py's folder recursively, so runs written under it reach it (issue 17: a
    # "Callback with id … already exists" RuntimeWarning per Lab run). Serve users edit no sources.
    seen = {}

    def fake_execve(path, argv, env):
        seen["argv"] = argv
        raise SystemExit(0)

    monkeypatch.setattr(os, "execve", fake_execve)
    monkeypatch.setattr(os, "name", "posix")
    with pytest.raises(SystemExit):
        cli.main(["serve", str(tmp_path)])
    argv = seen["argv"]
    assert argv[argv.index("--server.fileWatcherType") + 1] == "none"
