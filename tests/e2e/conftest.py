"""A real ``streamlit run app.py`` server on synthetic runs, and Playwright on Debian's Chromium."""

from __future__ import annotations

import http.server
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import ClassVar

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts"


def _load_synthetic_runs():
    # The dashboard tests' run builder, reused so both suites see the same runs.
    path = REPO / "tests" / "dashboard" / "synthetic_runs.py"
    spec = importlib.util.spec_from_file_location("synthetic_runs_e2e", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium)")
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": ["--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking"],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1400, "height": 2400}}


def _serve(root: Path, tmp_path_factory, log_name: str = "streamlit.log"):
    """Run ``streamlit run app.py`` on ``root``; yield its URL; stop it (its log goes to test-artifacts/)."""
    port = _free_port()
    env = {**os.environ, "CLDIAG_RUN_ROOT": str(root), "CLDIAG_CACHE_DIR": str(root.parent / ".cache")}
    log_path = tmp_path_factory.mktemp("e2e-log") / log_name
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                "app.py",
                "--server.headless",
                "true",
                "--server.address",
                "127.0.0.1",
                "--server.port",
                str(port),
                "--server.fileWatcherType",
                "none",
                "--browser.gatherUsageStats",
                "false",
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"streamlit did not start:\n{log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        if ARTIFACTS.exists():
            shutil.copy(log_path, ARTIFACTS / log_name)


@pytest.fixture(scope="session")
def dashboard_url(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e-runs") / "root"
    _load_synthetic_runs().make_runs(root)
    yield from _serve(root, tmp_path_factory)


class _LeakRecorder(http.server.BaseHTTPRequestHandler):
    """Counts every request: a browser showing only literal text never sends one."""

    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).hits.append(self.path)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="session")
def leak_server():
    """A local HTTP server on a free port; its ``hits`` list records any request that reaches it."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _LeakRecorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _LeakRecorder.hits
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def hostile_dashboard_url(tmp_path_factory, leak_server):
    """The dashboard on the hostile run root (tests/hostile_root.py), its Markdown run name aimed at the
    leak server."""
    sys.path.insert(0, str(REPO / "tests"))
    from hostile_root import build_hostile_root

    root = tmp_path_factory.mktemp("e2e-hostile") / "root"
    build_hostile_root(root, leak_url=leak_server[0])
    yield from _serve(root, tmp_path_factory, "streamlit-hostile.log")
