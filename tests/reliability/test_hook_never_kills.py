"""The hook never kills training: errors in diagnostics or storage are reported once, loudly, and logging
degrades; after the cause goes away nothing is lost or written twice. ``strict=True`` raises instead."""

from __future__ import annotations

import errno
import threading
import warnings

import pytest
import torch
from rel_helpers import batch

from cldiag import Monitor, read_run
from cldiag import functional as F
from cldiag.monitor.writer import RunWriter
from cldiag.store import RunStore

QUIET = dict(pairwise_every=0, spectrum_every=0, curves_every=0, snapshot_every=0)


def _train(mon, steps, bad=(), make_bad=None):
    """A training loop that must survive whatever the monitor does; returns the steps it completed."""
    done = []
    for step in steps:
        a, b, y = batch(step)
        if step in bad:
            a, b = make_bad(a, b)
        mon.log(step, a, b, labels=y, loss=float(step))
        done.append(step)
    return done


def _runtime_warnings(record):
    return [str(w.message) for w in record if issubclass(w.category, RuntimeWarning)]


def test_bad_batch_mid_run_is_reported_once(tmp_path):
    mon = Monitor(tmp_path / "run", **QUIET)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        done = _train(mon, range(20), bad=range(8, 14), make_bad=lambda a, b: (a, b[:, :-1]))
        mon.close()
    assert done == list(range(20))
    assert len(_runtime_warnings(record)) == 1, _runtime_warnings(record)
    assert len(mon.errors) == 1 and "(16, 8) and (16, 7)" in mon.errors[0] and "step 8" in mon.errors[0]
    steps = sorted(read_run(tmp_path / "run").scalars(["alignment"]).step)
    assert steps == [*range(8), *range(14, 20)]


def test_bad_batch_strict_raises(tmp_path):
    mon = Monitor(tmp_path / "run", strict=True, **QUIET)
    _train(mon, range(3))
    with pytest.raises(ValueError, match=r"\(16, 8\) and \(16, 7\)"):
        _train(mon, [3], bad=[3], make_bad=lambda a, b: (a, b[:, :-1]))
    mon.close()


def test_exception_inside_diagnostics_is_reported_once(tmp_path, monkeypatch):
    real = F.pairwise_statistics  # the Monitor's one call for a step's O(B²) statistics
    gpu = {"flaky": False}

    def flaky_pairwise(*args, **kwargs):
        if gpu["flaky"]:
            raise RuntimeError("CUBLAS_STATUS_EXECUTION_FAILED")  # what a failing GPU kernel looks like
        return real(*args, **kwargs)

    monkeypatch.setattr(F, "pairwise_statistics", flaky_pairwise)
    mon = Monitor(tmp_path / "run", pairwise_every=1, spectrum_every=0, curves_every=0, snapshot_every=0)
    with pytest.warns(RuntimeWarning, match="CUBLAS") as record:
        for step in range(10):
            gpu["flaky"] = 3 <= step <= 6
            _train(mon, [step])
        mon.close()
    assert len(_runtime_warnings(record)) == 1 and len(mon.errors) == 1
    df = read_run(tmp_path / "run").scalars()
    # A failing step is dropped whole (no half-logged step); every other step is complete.
    assert sorted(df[df.metric == "uniformity"].step) == [0, 1, 2, 7, 8, 9]
    assert sorted(df.step.unique()) == [0, 1, 2, 7, 8, 9]
    assert not df.duplicated(["step", "metric"]).any()

    gpu["flaky"] = True
    strict = Monitor(
        tmp_path / "strict", pairwise_every=1, strict=True, **{k: 0 for k in ("spectrum_every",)}
    )
    with pytest.raises(RuntimeError, match="CUBLAS"):
        _train(strict, [0])
    strict.close()


class DiskFull:
    """Make every write of the run store fail with ENOSPC while ``full`` is set."""

    def __init__(self, monkeypatch):
        self.full = False
        self.refused = 0
        real = RunStore._atomic_write_bytes

        def write(store, relpath, data):
            if self.full:
                self.refused += 1
                raise OSError(errno.ENOSPC, "No space left on device", relpath)
            return real(store, relpath, data)

        monkeypatch.setattr(RunStore, "_atomic_write_bytes", write)


def test_disk_full_then_recovered_loses_and_duplicates_nothing(tmp_path, monkeypatch):
    disk = DiskFull(monkeypatch)
    mon = Monitor(
        tmp_path / "run",
        flush_every=2,
        pairwise_every=2,
        spectrum_every=0,
        curves_every=0,
        snapshot_every=0,
        heartbeat_secs=60,
    )
    with pytest.warns(RuntimeWarning, match="No space left") as record:
        for step in range(30):
            disk.full = 6 <= step < 20  # the disk fills up at step 6 and is freed at step 20
            _train(mon, [step])
            mon.flush(wait=True)  # each flush reaches the writer while the disk is in that state
        mon.close()
    assert disk.refused >= 7
    assert len(_runtime_warnings(record)) == 1 and len(mon.errors) == 1
    run = read_run(tmp_path / "run")
    df = run.scalars()
    assert not df.duplicated(["step", "metric"]).any()
    assert sorted(df[df.metric == "alignment"].step) == list(range(30))
    assert sorted(df[df.metric == "loss"].value) == [float(s) for s in range(30)]
    assert sorted(run.histograms().step.unique()) == list(range(0, 30, 2))
    assert run.status == "finished"


def test_disk_full_until_the_end_is_reported_and_close_returns(tmp_path, monkeypatch):
    disk = DiskFull(monkeypatch)
    mon = Monitor(tmp_path / "run", flush_every=2, heartbeat_secs=60, **QUIET)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        _train(mon, range(4))
        mon.flush(wait=True)
        disk.full = True
        _train(mon, range(4, 10))
        mon.close()  # must return, not hang or raise, with the disk still full
    messages = _runtime_warnings(record)
    assert any("No space left" in m for m in messages) and any("3 flushes unwritten" in m for m in messages)
    assert messages == [
        f"cldiag: {e} (training continues; pass strict=True to raise instead)" for e in mon.errors
    ]
    df = read_run(tmp_path / "run").scalars(["alignment"])
    assert sorted(df.step) == [0, 1, 2, 3]


def test_disk_full_strict_raises_in_the_training_thread(tmp_path, monkeypatch):
    disk = DiskFull(monkeypatch)
    mon = Monitor(tmp_path / "run", strict=True, flush_every=1000, heartbeat_secs=60, **QUIET)
    _train(mon, range(3))
    disk.full = True
    with pytest.warns(RuntimeWarning, match="No space left"), pytest.raises(OSError, match="No space left"):
        mon.flush(wait=True)  # the writer thread's error surfaces at the next flush or close
    disk.full = False
    mon.close()
    assert sorted(read_run(tmp_path / "run").scalars(["alignment"]).step) == [0, 1, 2]


class WriterDeath(BaseException):
    """Escapes ``except Exception``: kills the writer thread like a bug in its error handling would."""


def test_writer_thread_death_is_reported_and_logging_recovers(tmp_path, monkeypatch):
    real = RunWriter._write_job
    deaths = []

    def dies_once(self, job):
        if not deaths:
            deaths.append(1)
            raise WriterDeath()
        return real(self, job)

    monkeypatch.setattr(RunWriter, "_write_job", dies_once)
    monkeypatch.setattr(threading, "excepthook", lambda args: None)  # the traceback is expected here
    mon = Monitor(tmp_path / "run", flush_every=1000, heartbeat_secs=60, **QUIET)
    with pytest.warns(RuntimeWarning, match="writer"):
        _train(mon, range(5))
        mon.flush()
        mon._writer.join(timeout=30)  # it died on that flush
        _train(mon, range(5, 10))
        flusher = threading.Thread(target=mon.flush, kwargs={"wait": True}, daemon=True)
        flusher.start()
        flusher.join(timeout=60)
        assert not flusher.is_alive(), "flush(wait=True) hangs on a dead writer thread"
        mon.close()
    assert deaths and len(mon.errors) == 1
    df = read_run(tmp_path / "run").scalars(["alignment"])
    assert sorted(df.step) == list(range(10))  # the flush it died on was retried, not lost


def test_training_gradients_are_untouched(tmp_path):
    """Logging inside the step changes neither the graph nor the gradients of the loop."""
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 4)
    x = torch.randn(16, 8)
    grads = []
    for log in (False, True):
        model.zero_grad()
        za, zb = model(x), model(x + 0.1)
        if log:
            with Monitor(
                tmp_path / "g", pairwise_every=1, spectrum_every=1, curves_every=1, strict=True
            ) as mon:
                mon.log(0, za, zb, temperature=0.2, loss=(za - zb).pow(2).sum())
        (za - zb).pow(2).sum().backward()
        grads.append(model.weight.grad.clone())
    assert torch.equal(grads[0], grads[1])
