"""The Monitor's parts at their own homes: Cadence validation, Monitor(cadence=…), RunWriter, FlushJob."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch

from cldiag import Monitor, host_tables, read_run
from cldiag.monitor import DEFAULT_TAUS, Cadence, RunWriter, config
from cldiag.monitor.report import Reporter
from cldiag.monitor.writer import open_run


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"pairwise_every": -1}, "pairwise_every must be an int >= 0"),
        ({"curves_every": 2.0}, "curves_every must be an int >= 0"),
        ({"flush_every": 0}, "flush_every must be an int >= 1"),
        ({"step_every": 0}, "step_every must be an int >= 1"),
        ({"step_every": 2.0}, "step_every must be an int >= 1"),
        ({"bins": 1001}, r"bins must be an int in \[2, 1000\]"),
        ({"snapshot_size": 0}, r"snapshot_size must be an int in \[1, 100000\]"),
        ({"taus": []}, "taus must be a non-empty sequence of positive numbers"),
        ({"taus": [0.1, -1.0]}, "taus must be a non-empty sequence of positive numbers"),
    ],
)
def test_cadence_rejects_bad_settings_naming_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Cadence(**kwargs)


def test_cadence_is_frozen_and_normalises_its_values():
    c = Cadence(taus=None, flush_secs=1, heartbeat_secs=2)
    assert c.taus == DEFAULT_TAUS and c.flush_secs == 1.0 and isinstance(c.heartbeat_secs, float)
    with pytest.raises(AttributeError):
        c.pairwise_every = 3  # type: ignore[misc]
    assert torch.equal(c.taus_tensor(), torch.tensor(DEFAULT_TAUS, dtype=torch.float32))


def test_cadence_every_includes_the_step_statistics():
    c = Cadence(step_every=4, pairwise_every=8)
    assert c.every() == {"step": 4, "pairwise": 8, "spectrum": 250, "curves": 250}
    assert Cadence().step_every == 1  # every step unless asked: budget=None behaves as before


def test_config_doctests_pass():
    result = doctest.testmod(config)
    assert result.attempted > 0 and result.failed == 0


def test_monitor_takes_a_cadence_object_like_its_keywords(tmp_path):
    a = torch.randn(16, 8, generator=torch.Generator().manual_seed(0))
    b = a + 0.1
    for name, kwargs in (
        (
            "keywords",
            {
                "pairwise_every": 3,
                "spectrum_every": 0,
                "curves_every": 0,
                "snapshot_every": 0,
                "budget": None,
            },
        ),
        (
            "object",
            {
                "cadence": Cadence(
                    pairwise_every=3, spectrum_every=0, curves_every=0, snapshot_every=0, budget=None
                )
            },
        ),
    ):
        with Monitor(tmp_path / name, **kwargs) as mon:
            assert mon.pairwise_every == 3 and mon.spectrum_every == 0
            for step in range(7):
                mon.log(step, a, b)
    steps = [sorted(read_run(tmp_path / n).scalars(["uniformity"]).step) for n in ("keywords", "object")]
    assert steps[0] == steps[1] == [0, 3, 6]


def test_run_writer_writes_a_typed_job_and_forgets_each_written_table(tmp_path):
    opened = open_run(
        tmp_path / "run",
        config=None,
        name=None,
        if_exists="error",
        storage_options=None,
        modalities=("view1", "view2"),
        two_modality=False,
        heartbeat_secs=30.0,
    )
    reporter = Reporter()
    writer = RunWriter(opened, reporter=reporter, heartbeat_secs=30.0, compact_on_close=False)
    job = host_tables.FlushJob(
        scalars=(np.array([4, 5]), np.array(["loss", "loss"], object), np.array([1.0, 2.0])),
        last_step=5,
        dim=8,
    )
    writer.submit(job)
    writer.wait()
    assert job.scalars is None  # written: a retry of this job would not write it again
    assert writer.finish("finished", timeout=30, strict=True)
    run = read_run(tmp_path / "run")
    assert sorted(run.scalars(["loss"]).value) == [1.0, 2.0]
    assert run.meta["last_step"] == 5 and run.meta["dim"] == 8 and run.meta["status"] == "finished"
    assert reporter.errors == []


def test_a_run_open_in_a_writer_is_refused_until_released(tmp_path):
    mon = Monitor(tmp_path / "run")
    with pytest.raises(FileExistsError, match="another Monitor in this process"):
        Monitor(tmp_path / "run", if_exists="resume")
    mon.close()
    Monitor(tmp_path / "run", if_exists="resume").close()
