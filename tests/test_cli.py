"""The ``cldiag`` command, always through a subprocess: exit codes, one-line errors, help, each command."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest
import torch

import cldiag
from cldiag import Monitor, read_run

PACKAGE = Path(cldiag.__file__).resolve().parent
APP = PACKAGE.parent / "app.py"


def cli(*args, env=None, cwd=None, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "cldiag.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd,
    )


def stub(module: str, source: str, *args):
    """Run the CLI with ``module`` replaced by a stub (``None`` = missing), to test the wiring alone."""
    code = textwrap.dedent(
        f"""
        import sys, types
        src = {source!r}
        if src == "None":
            sys.modules[{module!r}] = None
        else:
            mod = types.ModuleType({module!r})
            exec(src, mod.__dict__)
            sys.modules[{module!r}] = mod
        from cldiag.cli import main
        sys.exit(main({[str(a) for a in args]!r}))
        """,
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def assert_one_line_error(proc, *fragments):
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for name, collapsed in (("healthy", False), ("collapsed", True)):
        with Monitor(
            root / name, pairwise_every=5, spectrum_every=5, curves_every=5, snapshot_every=0, flush_every=5
        ) as mon:
            for step in range(30):
                g = torch.Generator().manual_seed(step)
                a = torch.randn(128, 16, generator=g)
                b = a + 0.3 * torch.randn(128, 16, generator=g)
                if collapsed:  # every embedding the same point, up to float noise
                    a, b = torch.ones(128, 16) + 1e-4 * a, torch.ones(128, 16) + 1e-4 * b
                mon.log(step, a, b, labels=torch.arange(128) % 4, temperature=0.1, loss=2.0 - step / 100)
    return root


def test_version_and_help():
    proc = cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"cldiag {cldiag.__version__}"
    proc = cli("--help")
    assert proc.returncode == 0
    for command in ("serve", "report", "demo", "lab", "compact"):
        assert command in proc.stdout
    for command, option in (
        ("serve", "--port"),
        ("report", "--json"),
        ("demo", "--real-model"),
        ("lab", "--steps-scale"),
        ("compact", "RUN"),
    ):
        sub = cli(command, "--help")
        assert sub.returncode == 0 and option in sub.stdout, (command, sub.stdout)


def test_usage_errors_exit_2():
    for args in (
        (),
        ("bogus",),
        ("serve", "--port", "99999"),
        ("lab", "x"),
        ("lab", "x", "--out", "d", "--steps-scale", "0"),
    ):
        proc = cli(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "usage: cldiag" in proc.stderr and "Traceback" not in proc.stderr


def test_report_exit_codes_follow_the_verdicts(runs):
    healthy = cli("report", runs / "healthy")
    assert healthy.returncode == 0, healthy.stderr
    assert "cldiag report: healthy" in healthy.stdout and "ALARM" not in healthy.stdout

    collapsed = cli("report", runs / "collapsed")
    assert collapsed.returncode == 1
    assert "complete_collapse" in collapsed.stdout and "ALARM" in collapsed.stdout

    as_json = cli("report", runs / "collapsed", "--json")
    assert as_json.returncode == 1
    report = json.loads(as_json.stdout)
    assert report["name"] == "collapsed" and report["level"] == "alarm"
    assert any(v["rule"] == "complete_collapse" and v["level"] == "alarm" for v in report["verdicts"])

    # The healthy run has warnings (random labels do not cluster): --fail-on warn turns them into exit 1.
    levels = {v["level"] for v in json.loads(cli("report", runs / "healthy", "--json").stdout)["verdicts"]}
    assert "alarm" not in levels
    assert cli("report", runs / "healthy", "--fail-on", "warn").returncode == (1 if "warn" in levels else 0)


def test_report_on_a_missing_run_is_one_line(tmp_path):
    assert_one_line_error(cli("report", tmp_path / "nope"), "cldiag report: error:", "no meta.json")


def test_compact_merges_parts_and_keeps_rows(tmp_path):
    path = tmp_path / "run"
    with Monitor(
        path,
        flush_every=1,
        pairwise_every=1,
        spectrum_every=0,
        curves_every=0,
        snapshot_every=0,
        compact_on_close=False,
    ) as mon:
        for step in range(6):
            mon.log(step, torch.randn(8, 4), torch.randn(8, 4))
    before = read_run(path)
    rows = before.scalars()
    parts = sum(1 for _ in before._store.iter_all_parts())
    assert parts >= 6

    proc = cli("compact", path)
    assert proc.returncode == 0, proc.stderr
    assert f"compacted {path}: {parts} → 2 part files" in proc.stdout  # scalars + histograms
    after = read_run(path)
    assert sum(1 for _ in after._store.iter_all_parts()) == 2
    assert after.scalars().equals(rows)
    assert_one_line_error(cli("compact", tmp_path / "nope"), "cldiag compact: error:")


def test_demo_wiring_and_missing_backend(tmp_path):
    source = textwrap.dedent(
        """
        def make_sample_runs(out_dir, real_model=False):
            if real_model and out_dir.endswith("no-st"):
                raise ImportError("the preset needs sentence-transformers: pip install 'cldiag[st]'")
            return [f'{out_dir}/a', f'{out_dir}/b'] + ([f'{out_dir}/minilm'] if real_model else [])
        """
    )
    proc = stub("cldiag.lab.demo", source, "demo", "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [f"{tmp_path}/a", f"{tmp_path}/b"]  # the default: no real model
    assert f"cldiag serve {tmp_path}" in proc.stderr
    real = stub("cldiag.lab.demo", source, "demo", "--out", tmp_path, "--real-model")
    assert real.returncode == 0, real.stderr
    assert real.stdout.splitlines() == [f"{tmp_path}/a", f"{tmp_path}/b", f"{tmp_path}/minilm"]
    # A missing optional dependency is one line that says what to install, not a traceback.
    missing = stub("cldiag.lab.demo", source, "demo", "--out", tmp_path / "no-st", "--real-model")
    assert_one_line_error(missing, "cldiag demo: error: the preset needs", "pip install 'cldiag[st]'")
    assert "ImportError" not in missing.stderr
    assert_one_line_error(stub("cldiag.lab.demo", "None", "demo"), "needs cldiag.lab.demo")


def test_lab_wiring_passes_arguments_and_check_result(tmp_path):
    source = textwrap.dedent(
        """
        class Result:
            def __init__(self, passed, text):
                self.passed, self.text = passed, text
            def __str__(self):
                return self.text
        def run_preset(name, out_dir, steps_scale=1.0):
            if name == "unknown":
                raise KeyError("unknown preset 'unknown'; presets: temperature, collapse")
            verdict = "reproduced" if name == "good" else "NOT reproduced"
            return Result(name == "good", f"{name} in {out_dir} at x{steps_scale}: {verdict}")
        """
    )
    good = stub("cldiag.lab.presets", source, "lab", "good", "--out", tmp_path, "--steps-scale", "0.25")
    assert good.returncode == 0, good.stderr
    assert good.stdout.strip() == f"good in {tmp_path} at x0.25: reproduced"
    bad = stub("cldiag.lab.presets", source, "lab", "bad", "--out", tmp_path)
    assert bad.returncode == 1 and "NOT reproduced" in bad.stdout
    unknown = stub("cldiag.lab.presets", source, "lab", "unknown", "--out", tmp_path)
    assert_one_line_error(unknown, "cldiag lab: error:", "presets: temperature, collapse")
    assert_one_line_error(
        stub("cldiag.lab.presets", "None", "lab", "x", "--out", tmp_path), "needs cldiag.lab.presets"
    )


def test_serve_refuses_a_missing_root(tmp_path):
    assert_one_line_error(cli("serve", tmp_path / "nope"), "is not a directory")


def test_serve_without_the_app_says_so(tmp_path):
    # A wheel install ships the package without app.py: copy the package alone and run it from there.
    shutil.copytree(PACKAGE, tmp_path / "cldiag", ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = cli("serve", tmp_path, env=env, cwd=tmp_path)
    assert_one_line_error(proc, f"the dashboard app is not at {tmp_path / 'app.py'}")


@pytest.mark.skipif(not APP.is_file(), reason="app.py is not in this checkout yet")
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_serve_starts_streamlit_on_localhost_with_the_run_root(runs):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "cldiag.cli", "serve", str(runs), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        body = None
        for _ in range(600):  # streamlit needs a few seconds on a busy machine
            if proc.poll() is not None:
                pytest.fail(f"cldiag serve exited with {proc.returncode}: {proc.stderr.read()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as resp:
                    body = resp.read().decode()
                break
            except OSError:
                time.sleep(0.1)
        assert body == "ok"
        # cldiag became the streamlit process (exec): same pid, the run root in its environment.
        environ = Path(f"/proc/{proc.pid}/environ").read_bytes().split(b"\0")
        assert f"CLDIAG_RUN_ROOT={runs}".encode() in environ
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[cmdline.index(b"--server.address") :][:2] == [b"--server.address", b"127.0.0.1"]
        assert str(APP).encode() in cmdline
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        proc.stderr.close()
