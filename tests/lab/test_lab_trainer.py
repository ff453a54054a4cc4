"""The lab trainer: config bounds, the run it writes, stopping, divergence, and the background session."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest
import torch

from cldiag import read_run
from cldiag.lab.data import DigitsViews
from cldiag.lab.probe import knn_accuracy
from cldiag.lab.trainer import LabBusyError, LabConfig, LabProgress, LabSession, train

TOY = LabConfig(data="toy", encoder="linear", embed_dim=16, batch_size=32, steps=30, eval_every=10)
SMALL_DIGITS = LabConfig(
    batch_size=32, steps=20, hidden_dim=32, embed_dim=16, eval_every=10, snapshot_every=10
)


# --- config ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"steps": 0}, r"steps must lie in \[1, 20000\], got 0"),
        ({"steps": 10**6}, r"steps must lie in \[1, 20000\]"),
        ({"batch_size": 2}, r"batch_size must lie in \[4, 1024\], got 2"),
        ({"batch_size": 2048}, r"batch_size must lie in \[4, 1024\]"),
        ({"temperature": 0.0}, r"temperature must lie in \[0.01, 10\], got 0.0"),
        ({"temperature": float("nan")}, r"temperature must lie in"),
        ({"lr": 0.0}, r"lr must lie in \(0, 1e\+30\], got 0.0"),
        ({"lr": -1e-3}, r"lr must lie in"),
        ({"embed_dim": 1}, r"embed_dim must lie in \[2, 512\]"),
        ({"hidden_dim": 10**5}, r"hidden_dim must lie in"),
        ({"augmentation": 1.5}, r"augmentation \(strength\) must lie in \[0, 1\], got 1.5"),
        ({"seed": -1}, r"seed must lie in"),
        ({"threads": 0}, r"threads must lie in"),
        ({"snapshot_size": 5}, r"snapshot_size must lie in"),
        ({"data": "cifar"}, r"data must be one of 'digits'.*got 'cifar'"),
        ({"loss": "triplet"}, r"loss must be one of"),
        ({"data": "pairs", "loss": "nt_xent"}, r"cross-modal loss: clip or info_nce"),
        (
            {"data": "toy", "loss": "supcon", "encoder": "linear", "embed_dim": 16},
            r"supcon needs class labels",
        ),
        ({"data": "prototypes", "encoder": "cnn"}, r"cnn encoder needs 8×8 images"),
        ({"encoder": "linear", "embed_dim": 32}, r"embed_dim must equal the input size 64"),
        (
            {"data": "toy", "encoder": "linear", "embed_dim": 16, "augmentation": 3.5},
            r"toy: noise std.*\[0, 3\]",
        ),
    ],
)
def test_config_rejects_out_of_range_values(changes, message):
    with pytest.raises(ValueError, match=message):
        LabConfig(**changes)


def test_config_rejects_wrong_types():
    with pytest.raises(TypeError, match="steps must be an int"):
        LabConfig(steps=10.5)
    with pytest.raises(TypeError, match="batch_size must be an int"):
        LabConfig(batch_size=True)
    with pytest.raises(TypeError, match="projector must be a bool"):
        LabConfig(projector=1)
    with pytest.raises(TypeError, match="config must be a LabConfig"):
        train({"steps": 3}, "/nonexistent")


def test_config_scaled_and_dict():
    config = LabConfig(steps=600, eval_every=100, snapshot_every=200)
    half = config.scaled(0.5)
    assert (half.steps, half.eval_every, half.snapshot_every) == (300, 50, 100)
    assert config.scaled(0.001).steps == 10
    with pytest.raises(ValueError, match="steps_scale"):
        config.scaled(0)
    d = config.to_dict()
    assert d["temperature"] == 0.2 and d["loss"] == "nt_xent" and d["preset"] is None


# --- training ------------------------------------------------------------------------------------------


def test_train_writes_a_readable_run(tmp_path):
    seen: list[LabProgress] = []
    result = train(SMALL_DIGITS.replace(preset="unit"), str(tmp_path / "run"), progress=seen.append)
    assert result.status == "finished" and not result.diverged
    assert result.steps_done == 20 and result.steps_per_second > 0
    run = read_run(result.run_dir)
    assert run.status == "finished" and not run.problems
    config = run.config
    for key in ("temperature", "loss", "batch_size", "augmentation", "preset"):
        assert key in config
    assert config["preset"] == "unit" and config["batch_size"] == 32 and config["source"] == "cldiag.lab"
    metrics = set(run.metrics())
    assert {"loss", "knn_acc", "knn_acc_raw", "uniformity", "alignment", "tolerance"} <= metrics
    knn = run.scalars(["knn_acc"])
    assert knn["step"].tolist() == [0, 10, 20]
    assert knn["value"].iloc[-1] == pytest.approx(result.metrics["knn_acc"])
    # The raw baseline is the probe on raw pixels, logged once.
    raw = run.scalars(["knn_acc_raw"])
    x_train, y_train, x_test, y_test = DigitsViews().eval_sets()
    assert raw["value"].tolist() == [
        pytest.approx(knn_accuracy(x_train.flatten(1), y_train, x_test.flatten(1), y_test))
    ]
    assert run.snapshot_steps() == [0, 10, 20]
    matrix, rows = run.embedding_matrix(20)
    assert matrix.shape == (397, 16)
    np.testing.assert_array_equal(np.sort(rows["label"].unique()), np.arange(10))
    assert seen[-1].status == "finished" and seen[-1].step == 20 and seen[-1].fraction == 1.0
    assert [p.step for p in seen] == sorted(p.step for p in seen)


def test_train_is_deterministic_for_a_seed(tmp_path):
    a = train(TOY, str(tmp_path / "a"))
    b = train(TOY, str(tmp_path / "b"))
    c = train(TOY.replace(seed=1), str(tmp_path / "c"))
    assert a.metrics["loss"] == b.metrics["loss"]
    assert a.metrics["loss"] != c.metrics["loss"]


def test_existing_run_is_not_overwritten_unless_asked(tmp_path):
    train(TOY, str(tmp_path / "r"))
    with pytest.raises(FileExistsError):
        train(TOY, str(tmp_path / "r"))
    assert train(TOY, str(tmp_path / "r"), overwrite=True).status == "finished"


def test_two_modality_run_logs_both_sides(tmp_path):
    config = LabConfig(
        data="pairs", loss="clip", batch_size=32, steps=10, hidden_dim=32, embed_dim=8, eval_every=5
    )
    run = read_run(train(config, str(tmp_path / "pairs")).run_dir)
    assert run.two_modality and run.modalities == ["image", "text"]
    assert "modality_gap" in run.metrics()
    _, rows = run.embedding_matrix(10)
    assert sorted(rows["modality"].unique()) == ["image", "text"]


@pytest.mark.parametrize("loss", ["nt_xent", "info_nce", "clip", "dcl", "dclw", "supcon", "mochi"])
def test_every_loss_trains(tmp_path, loss):
    config = LabConfig(data="prototypes", loss=loss, batch_size=16, steps=15, hidden_dim=32, embed_dim=16)
    result = train(config, str(tmp_path / loss))
    assert result.status == "finished" and math.isfinite(result.metrics["loss"])


def test_learnable_temperature_is_logged_and_moves(tmp_path):
    config = TOY.replace(learnable_temperature=True, temperature=0.5, steps=30, lr=0.05)
    run = read_run(train(config, str(tmp_path / "t")).run_dir)
    taus = run.scalars(["temperature"]).sort_values("step")["value"].to_numpy()
    assert taus[0] == pytest.approx(0.5, rel=1e-5)
    assert taus[-1] != pytest.approx(0.5, rel=1e-3)


def test_cnn_and_projector_train(tmp_path):
    config = SMALL_DIGITS.replace(encoder="cnn", projector=True, steps=5)
    assert train(config, str(tmp_path / "cnn")).status == "finished"


def test_stop_event_stops_training_cleanly(tmp_path):
    stop = threading.Event()

    def progress(p: LabProgress) -> None:
        if p.step >= 5:
            stop.set()

    config = TOY.replace(steps=5000, eval_every=1000)
    result = train(config, str(tmp_path / "stopped"), stop, progress)
    assert result.status == "stopped"
    assert 5 <= result.steps_done < 5000
    assert "stopped on request" in result.message
    run = read_run(result.run_dir)
    assert run.status == "finished"
    assert run.last_step() == result.steps_done


def test_nan_loss_stops_training_and_says_so(tmp_path):
    config = SMALL_DIGITS.replace(optimizer="sgd", lr=1e20, steps=50)
    seen: list[LabProgress] = []
    result = train(config, str(tmp_path / "nan"), progress=seen.append)
    assert result.diverged and result.status == "diverged"
    assert result.steps_done < 50
    assert "Lower the learning rate" in result.message and "nan" in result.message.lower()
    assert seen[-1].status == "diverged" and seen[-1].message == result.message
    run = read_run(result.run_dir)
    assert run.status == "failed"
    # The step that diverged is on record: the Monitor writes a NaN loss as a flag row.
    flags = run.scalars(["nonfinite/loss"])
    assert flags["step"].tolist() == [result.steps_done] and flags["value"].tolist() == [1.0]


# --- background session ----------------------------------------------------------------------------------


def wait(condition, seconds=60.0):
    deadline = time.monotonic() + seconds  # guard against hangs, not a speed assertion
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_session_runs_in_background_and_reports_progress(tmp_path):
    session = LabSession()
    assert session.progress is None and not session.running
    session.start(TOY.replace(steps=200), str(tmp_path / "bg"))
    assert session.join(timeout=120)
    assert session.progress.status == "finished" and session.progress.step == 200
    assert session.result is not None and session.result.steps_done == 200
    assert session.error is None and session.preset is None


def test_session_never_runs_two_trainings_at_once(tmp_path, monkeypatch):
    import cldiag.lab.trainer as trainer_module

    active, overlaps, intervals = [0], [], []
    lock = threading.Lock()
    real_train = trainer_module.train

    def tracked(*args, **kwargs):
        with lock:
            active[0] += 1
            overlaps.append(active[0])
        start = time.monotonic()
        try:
            return real_train(*args, **kwargs)
        finally:
            intervals.append((start, time.monotonic()))
            with lock:
                active[0] -= 1

    monkeypatch.setattr(trainer_module, "train", tracked)
    session = LabSession()
    long = TOY.replace(steps=20000, eval_every=5000)
    session.start(long, str(tmp_path / "first"))
    wait(lambda: session.progress is not None and session.progress.step > 0)
    with pytest.raises(LabBusyError):
        session.start(long, str(tmp_path / "refused"), replace=False)
    assert session.running
    session.start(TOY, str(tmp_path / "second"))  # replace=True: stops the first, then starts
    assert session.join(timeout=120)
    assert max(overlaps) == 1
    assert len(intervals) == 2
    (_, e1), (s2, _) = sorted(intervals)
    assert e1 <= s2
    assert read_run(str(tmp_path / "first")).last_step() < 20000  # the first was stopped early
    assert session.progress.run_dir.endswith("second") and session.progress.status == "finished"
    assert not (tmp_path / "refused").exists()


def test_session_stop_and_error_reporting(tmp_path):
    session = LabSession()
    session.start(TOY.replace(steps=20000, eval_every=5000), str(tmp_path / "s"))
    wait(lambda: session.progress.step > 0)
    assert session.stop(timeout=60)
    assert session.progress.status == "stopped"
    # A failure inside the thread is kept for the page, not lost.
    session.start(TOY, str(tmp_path / "s"))  # exists already: FileExistsError in the thread
    assert session.join(timeout=60)
    assert isinstance(session.error, FileExistsError)
    assert session.progress.status == "failed" and "FileExistsError" in session.progress.message


def test_session_runs_a_preset(tmp_path):
    session = LabSession()
    positions = []
    session.start_preset("collapse", str(tmp_path), steps_scale=0.01)
    while session.running:
        if session.preset_position is not None:
            positions.append(session.preset_position)
        time.sleep(0.005)
    assert session.preset == "collapse"
    result = session.preset_result
    assert result is not None and result.name == "collapse" and len(result.results) == 2
    assert {p[1] for p in positions} == {2}
    with pytest.raises(ValueError, match="unknown preset"):
        session.start_preset("nope", str(tmp_path))


def test_threads_setting_is_applied(tmp_path):
    before = torch.get_num_threads()
    try:
        train(TOY.replace(threads=2, steps=2), str(tmp_path / "th"))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
