"""Runs on S3-compatible storage: a real moto server on 127.0.0.1, written by Monitor through s3fs.

The endpoint comes from ``AWS_ENDPOINT_URL`` (the standard AWS setting) or from ``storage_options``; bad
URIs, missing buckets and unreachable endpoints fail when the Monitor is created, not at a later step.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("s3fs")
pytest.importorskip("moto")

from cldiag import Monitor, list_runs, read_run
from cldiag.store import RunStoreError

BUCKET = "cldiag-test"
KW = dict(pairwise_every=2, spectrum_every=2, curves_every=2, snapshot_every=2, snapshot_size=16, strict=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def endpoint():
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    names = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL")
    saved = {k: os.environ.get(k) for k in names}
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=url,
    )
    try:
        for _ in range(300):  # moto imports a lot before it listens; poll instead of sleeping blindly
            if proc.poll() is not None:
                pytest.fail(f"moto server exited with code {proc.returncode}")
            try:
                urllib.request.urlopen(url, timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("moto server did not start within 30 s")
        import s3fs

        s3fs.S3FileSystem(endpoint_url=url).mkdir(BUCKET)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _log(mon: Monitor, steps) -> None:
    for step in steps:
        g = torch.Generator().manual_seed(step)
        a = torch.randn(20, 6, generator=g)
        b = a + 0.3 * torch.randn(20, 6, generator=g)
        mon.log(step, a, b, labels=torch.arange(20) % 3, temperature=0.2, loss=1.0 / (step + 1))


def test_s3_round_trip_equals_local_run(endpoint, tmp_path):
    uri = f"s3://{BUCKET}/runs/alpha"
    with Monitor(uri, config={"tau": 0.2}, **KW) as mon:  # endpoint from AWS_ENDPOINT_URL
        _log(mon, range(5))
    with Monitor(tmp_path / "alpha", config={"tau": 0.2}, **KW) as mon:
        _log(mon, range(5))

    remote, local = read_run(uri), read_run(tmp_path / "alpha")
    assert remote.path == uri and remote.problems == []
    assert remote.status == "finished" and remote.config == {"tau": 0.2}
    pd.testing.assert_frame_equal(remote.scalars(), local.scalars())
    pd.testing.assert_frame_equal(remote.histograms(), local.histograms())
    pd.testing.assert_frame_equal(remote.spectra(), local.spectra())
    pd.testing.assert_frame_equal(remote.temperature(), local.temperature())
    assert remote.snapshot_steps() == local.snapshot_steps() == [0, 2, 4]
    np.testing.assert_array_equal(remote.embedding_matrix(4)[0], local.embedding_matrix(4)[0])


def test_s3_resume_appends_without_duplicates(endpoint):
    uri = f"s3://{BUCKET}/runs/resumed"
    with Monitor(uri, **KW) as mon:
        _log(mon, range(3))
    with pytest.raises(FileExistsError, match="already holds a cldiag run"):
        Monitor(uri, **KW)
    with Monitor(uri, if_exists="resume", **KW) as mon, pytest.warns(RuntimeWarning, match="steps <= 2"):
        _log(mon, range(1, 6))  # steps 1, 2 were logged before: skipped, not duplicated
    run = read_run(uri)
    scalars = run.scalars()
    assert sorted(scalars.step.unique()) == [0, 1, 2, 3, 4, 5]
    assert not scalars.duplicated(["step", "metric"]).any()
    assert run.meta["last_step"] == 5


def test_s3_list_runs_with_explicit_storage_options(endpoint):
    opts = {"endpoint_url": endpoint, "key": "testing", "secret": "testing"}
    root = f"s3://{BUCKET}/listing"
    for name in ("b-run", "a-run"):
        with Monitor(f"{root}/{name}", storage_options=opts, **KW) as mon:
            _log(mon, range(2))
    import s3fs

    s3fs.S3FileSystem(**opts).pipe(f"{BUCKET}/listing/not-a-run/notes.txt", b"hello")
    runs = list_runs(root, storage_options=opts)
    assert [r.name for r in runs] == ["a-run", "b-run"]
    assert [r.path for r in runs] == [f"{root}/a-run", f"{root}/b-run"]
    assert runs[0].scalars(["batch_size"]).value.tolist() == [20.0, 20.0]


def test_missing_bucket_fails_at_creation_and_creates_nothing(endpoint):
    import s3fs

    with pytest.raises(RunStoreError, match="bucket does not exist"):
        Monitor("s3://no-such-bucket-cldiag/run", **KW)
    assert not s3fs.S3FileSystem(endpoint_url=endpoint).exists("no-such-bucket-cldiag")


def test_unreachable_endpoint_fails_at_creation():
    dead = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    opts = {
        "endpoint_url": dead,
        "key": "k",
        "secret": "s",
        "config_kwargs": {"connect_timeout": 1, "read_timeout": 1, "retries": {"max_attempts": 1}},
    }
    with pytest.raises(
        RunStoreError, match=r"cannot open run directory 's3://bucket/run'.*Could not connect"
    ):
        Monitor("s3://bucket/run", storage_options=opts, **KW)


@pytest.mark.parametrize(
    ("uri", "opts", "message"),
    [
        ("nosuchproto://bucket/run", None, "Protocol not known: nosuchproto"),
        ("s3://bucket/run", {"no_such_option": 1}, "no_such_option"),
    ],
)
def test_invalid_uri_fails_at_creation(uri, opts, message):
    with pytest.raises(RunStoreError, match=message):
        Monitor(uri, storage_options=opts, **KW)
