"""Monitor: logged values equal the functional calls on the same batch; cadence; input handling."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from cldiag import Monitor, read_run, schema
from cldiag import functional as F
from cldiag.monitor import DEFAULT_TAUS

B, D = 48, 12


def _batch(seed: int, n: int = B, d: int = D, classes: int = 4):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, d, generator=g)
    b = a + 0.5 * torch.randn(n, d, generator=g)
    labels = torch.randint(0, classes, (n,), generator=g)
    return a, b, labels


def _value(df, step, metric):
    row = df[(df.step == step) & (df.metric == metric)]
    assert len(row) == 1, f"{metric} at step {step}: {len(row)} rows"
    return float(row.value.iloc[0])


def test_logged_values_equal_functional(tmp_path):
    path = tmp_path / "run"
    tau = 0.2
    with Monitor(
        path, pairwise_every=2, spectrum_every=3, curves_every=3, snapshot_every=0, budget=None
    ) as mon:
        for step in range(7):
            a, b, y = _batch(step)
            mon.log(step, a, b, labels=y, temperature=tau, loss=torch.tensor(float(step)))
    run = read_run(path)
    df = run.scalars()
    for step in range(7):
        a, b, y = _batch(step)
        assert _value(df, step, "alignment") == pytest.approx(float(F.alignment(a, b)), rel=1e-5)
        assert _value(df, step, "pos_sim") == pytest.approx(
            float(torch.nn.functional.cosine_similarity(a, b).mean()), rel=1e-5
        )
        assert _value(df, step, "loss") == step
        assert _value(df, step, "temperature") == pytest.approx(tau)
        assert _value(df, step, "nonfinite_fraction") == 0
        assert _value(df, step, "norm/view1") == pytest.approx(float(a.norm(dim=1).mean()), rel=1e-5)
        if step % 2 == 0:
            unif = (float(F.uniformity(a)) + float(F.uniformity(b))) / 2
            assert _value(df, step, "uniformity") == pytest.approx(unif, rel=1e-5)
            assert _value(df, step, "tolerance") == pytest.approx(float(F.tolerance(a, y)), rel=1e-5)
            assert _value(df, step, "retrieval_acc") == pytest.approx(float(F.retrieval_accuracy(a, b)))
            hard = F.hardness(a, b, tau)
            assert _value(df, step, "neg_entropy") == pytest.approx(float(hard.entropy), rel=1e-5)
            assert _value(df, step, "dcl_coupling") == pytest.approx(1 - float(hard.pos_prob), rel=1e-5)
            h = F.score_histograms(a, b, bins=50)
            hist = run.histograms(step)
            for kind, counts in (("pos", h.pos), ("neg", h.neg), ("hard_neg", h.hard_neg)):
                got = hist[hist.kind == kind].sort_values("bin_left")["count"].to_numpy()
                np.testing.assert_array_equal(got, counts.numpy())
        else:
            assert df[(df.step == step) & (df.metric == "uniformity")].empty
        if step % 3 == 0:
            spec = run.spectra(step).sort_values("index")["eigenvalue"].to_numpy()
            np.testing.assert_allclose(spec, F.spectrum(a).numpy(), rtol=1e-5, atol=1e-7)
            assert _value(df, step, "effective_rank") == pytest.approx(float(F.effective_rank(a)), rel=1e-5)
            curves = F.temperature_curves(a, b, torch.tensor(DEFAULT_TAUS), labels=y)
            temp = run.temperature(step)
            ent = temp[temp.curve == "entropy"].sort_values("tau")["value"].to_numpy()
            np.testing.assert_allclose(ent, curves.entropy.numpy(), rtol=1e-4, atol=1e-6)
    assert run.meta["status"] == "finished"
    assert run.meta["dim"] == D
    assert run.meta["last_step"] == 6
    assert not run.problems


def test_no_duplicate_rows_and_all_steps_present(tmp_path):
    with Monitor(tmp_path / "r", flush_every=3, pairwise_every=5) as mon:
        for step in range(20):
            a, b, _ = _batch(step)
            mon.log(step, a, b)
    df = read_run(tmp_path / "r").scalars()
    assert not df.duplicated(["step", "metric"]).any()
    assert sorted(df[df.metric == "alignment"].step) == list(range(20))


def test_two_modality_output_dict(tmp_path):
    a, b, _ = _batch(0)
    b = b + 3.0  # shifted: a visible gap
    scale = torch.tensor(1 / 0.05)
    with Monitor(
        tmp_path / "clip", pairwise_every=1, spectrum_every=1, snapshot_every=1, snapshot_size=10
    ) as mon:
        mon.log(0, {"image_features": a, "text_features": b, "logit_scale": scale})
    run = read_run(tmp_path / "clip")
    assert run.two_modality and run.modalities == ["image", "text"]
    df = run.scalars()
    gap = F.modality_gap(a, b)
    assert _value(df, 0, "modality_gap") == pytest.approx(float(gap.gap), rel=1e-5)
    assert _value(df, 0, "cone/image") == pytest.approx(float(gap.cone_a), rel=1e-5)
    assert _value(df, 0, "cone/text") == pytest.approx(float(gap.cone_b), rel=1e-5)
    assert _value(df, 0, "matched_distance") == pytest.approx(float(gap.matched_distance), rel=1e-5)
    assert _value(df, 0, "temperature") == pytest.approx(0.05)
    assert set(run.spectra(0).modality) == {"image", "text"}
    assert _value(df, 0, "uniformity/text") == pytest.approx(float(F.uniformity(b)), rel=1e-5)
    matrix, info = run.embedding_matrix(0)
    assert matrix.shape == (20, D)
    assert sorted(set(info.modality)) == ["image", "text"]
    np.testing.assert_allclose(matrix[info.modality.to_numpy() == "image"], a[:10].numpy(), rtol=1e-6)


def test_snapshot_collects_across_batches(tmp_path):
    with Monitor(tmp_path / "s", snapshot_every=4, snapshot_size=100, pairwise_every=0) as mon:
        for step in range(10):
            a, b, y = _batch(step)
            mon.log(step, a, b, labels=y)
    run = read_run(tmp_path / "s")
    assert run.snapshot_steps() == [0, 4, 8]
    both = run.embeddings(4)
    assert both.modality.value_counts().to_dict() == {"view1": 100, "view2": 100}  # both views of each pair
    emb = both[both.modality == "view1"]
    assert len(emb) == 100  # 48 + 48 + 4 rows from steps 4, 5, 6
    assert emb.sample_id.is_unique
    assert both[both.modality == "view2"].sample_id.tolist() == emb.sample_id.tolist()
    first = _batch(4)[0]
    np.testing.assert_allclose(np.stack(emb.vector.iloc[:48].to_list()), first.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(emb.label.iloc[:48].to_numpy(dtype=int), _batch(4)[2].numpy())


def test_log_embeddings_probe_is_capped(tmp_path):
    z = torch.randn(500, 8)
    with Monitor(tmp_path / "p", snapshot_every=0, snapshot_size=64) as mon:
        mon.log_embeddings(3, z, labels=torch.arange(500) % 10)
    matrix, _ = read_run(tmp_path / "p").embedding_matrix(3)
    assert matrix.shape == (64, 8)
    np.testing.assert_allclose(matrix[0], z[0].numpy())
    np.testing.assert_allclose(matrix[-1], z[-1].numpy())


def test_nonfinite_rows_flagged_and_excluded(tmp_path):
    a, b, y = _batch(1)
    a[3] = float("nan")
    b[7, 2] = float("inf")
    with Monitor(tmp_path / "n", pairwise_every=1, spectrum_every=1, curves_every=0) as mon:
        mon.log(0, a, b, labels=y)
    df = read_run(tmp_path / "n").scalars()
    keep = torch.ones(B, dtype=torch.bool)
    keep[[3, 7]] = False
    assert _value(df, 0, "nonfinite_fraction") == pytest.approx(2 / B)
    assert _value(df, 0, "alignment") == pytest.approx(float(F.alignment(a[keep], b[keep])), rel=1e-5)
    assert _value(df, 0, "uniformity") == pytest.approx(
        (float(F.uniformity(a[keep])) + float(F.uniformity(b[keep]))) / 2, rel=1e-5
    )
    assert all(math.isfinite(v) for v in df.value)


def test_bad_input_strict_raises_clear_errors(tmp_path):
    mon = Monitor(tmp_path / "bad", strict=True)
    a, b, y = _batch(0)
    with pytest.raises(ValueError, match=r"same shape.*\(48, 12\).*\(40, 12\)"):
        mon.log(0, a, b[:40])
    with pytest.raises(ValueError, match="2-D"):
        mon.log(0, a[0], b[0])
    with pytest.raises(ValueError, match="2-D"):
        mon.log(0, a[None], b[None])
    with pytest.raises(TypeError, match="floating-point"):
        mon.log(0, a.long(), b.long())
    with pytest.raises(ValueError, match=r"labels must have shape \(48,\)"):
        mon.log(0, a, b, labels=y[:5])
    with pytest.raises(KeyError, match="text_features"):
        mon.log(0, {"image_features": a})
    mon.close()


def test_bad_input_reported_once_training_continues(tmp_path):
    mon = Monitor(tmp_path / "soft")
    a, b, _ = _batch(0)
    with pytest.warns(RuntimeWarning, match="same shape"):
        mon.log(0, a, b[:40])
    mon.log(1, a, b)
    mon.close()
    assert len(mon.errors) == 1
    df = read_run(tmp_path / "soft").scalars()
    assert sorted(df.step.unique()) == [1]


def test_if_exists_modes(tmp_path):
    path = tmp_path / "again"
    with Monitor(path, pairwise_every=0) as mon:
        for step in range(5):
            mon.log(step, *_batch(step)[:2])
    with pytest.raises(FileExistsError, match="if_exists='resume'"):
        Monitor(path)
    with (
        pytest.warns(RuntimeWarning, match="resumed"),
        Monitor(path, if_exists="resume", pairwise_every=0) as mon,
    ):
        for step in range(3, 8):  # 3 and 4 were already logged
            mon.log(step, *_batch(step)[:2])
    run = read_run(path)
    df = run.scalars(["alignment"])
    assert list(df.step) == list(range(8))
    assert run.meta["resumed"][0]["after_step"] == 4
    with Monitor(path, if_exists="overwrite", pairwise_every=0) as mon:
        mon.log(100, *_batch(0)[:2])
    assert list(read_run(path).scalars(["alignment"]).step) == [100]


def test_other_schema_version_is_refused(tmp_path):
    with Monitor(tmp_path / "v") as mon:
        mon.log(0, *_batch(0)[:2])
    meta = json.loads((tmp_path / "v" / "meta.json").read_text())
    meta["schema_version"] = 99
    (tmp_path / "v" / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(schema.SchemaVersionError, match="version 99"):
        read_run(tmp_path / "v")
    with pytest.raises(schema.SchemaVersionError):
        Monitor(tmp_path / "v", if_exists="resume")


def test_fp16_and_bf16_inputs(tmp_path):
    a, b, _ = _batch(2)
    with Monitor(tmp_path / "h", pairwise_every=1) as mon:
        mon.log(0, a.half(), b.half())
        mon.log(1, a.bfloat16(), b.bfloat16())
    df = read_run(tmp_path / "h").scalars()
    ref = float(F.alignment(a, b))
    assert _value(df, 0, "alignment") == pytest.approx(ref, rel=1e-2)
    assert _value(df, 1, "alignment") == pytest.approx(ref, rel=3e-2)
    assert np.isfinite(df.value).all()


def test_tiny_batches_never_write_nan(tmp_path):
    with Monitor(tmp_path / "tiny", pairwise_every=1, spectrum_every=1, curves_every=1) as mon:
        mon.log(0, torch.randn(1, 4), torch.randn(1, 4))  # B=1: pairwise statistics are skipped, reported
        mon.log(1, torch.randn(2, 4), torch.randn(2, 4))
    df = read_run(tmp_path / "tiny").scalars()
    assert np.isfinite(df.value).all()
    assert set(df.step) == {0, 1}
    assert any("fewer than 2" in e for e in mon.errors)
    with Monitor(tmp_path / "d1", pairwise_every=1, spectrum_every=1, curves_every=1, strict=True) as mon:
        mon.log(0, torch.randn(5, 1), torch.randn(5, 1))  # d=1: every row is ±1
    df = read_run(tmp_path / "d1").scalars()
    assert np.isfinite(df.value).all()
    assert _value(df, 0, "effective_rank") == pytest.approx(1.0, abs=1e-3)


def test_dim_change_is_an_error(tmp_path):
    with Monitor(tmp_path / "dim", strict=True) as mon:
        mon.log(0, torch.randn(4, 8), torch.randn(4, 8))
        with pytest.raises(ValueError, match="dim changed from 8 to 4"):
            mon.log(1, torch.randn(4, 4), torch.randn(4, 4))


def test_user_scalars_and_flush_wait(tmp_path):
    mon = Monitor(tmp_path / "u", flush_every=1000, flush_secs=1e9)
    mon.log_scalar(0, "knn_acc", 0.5)
    mon.log_scalar(1, "knn_acc", torch.tensor(0.75))
    mon.flush(wait=True)
    run = read_run(tmp_path / "u")
    assert list(run.scalars(["knn_acc"]).value) == [0.5, 0.75]
    assert run.meta["status"] == "running"
    mon.close()
    assert run.refresh().meta["status"] == "finished"


def test_exception_in_with_block_marks_failed(tmp_path):
    with pytest.raises(RuntimeError), Monitor(tmp_path / "f") as mon:
        mon.log(0, *_batch(0)[:2])
        raise RuntimeError("training blew up")
    assert read_run(tmp_path / "f").meta["status"] == "failed"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"bins": 5000}, "bins"),
        ({"snapshot_size": 10**6}, "snapshot_size"),
        ({"pairwise_every": -1}, "pairwise_every"),
        ({"modalities": ("image",)}, "modalities"),
        ({"if_exists": "append"}, "if_exists"),
        ({"taus": [0.1, -1.0]}, "taus"),
    ],
)
def test_constructor_validates(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        Monitor(tmp_path / "c", **kwargs)


def test_nonfinite_scalar_becomes_a_flag_row(tmp_path):
    a, b, _ = _batch(3)
    with Monitor(tmp_path / "nanloss", pairwise_every=0) as mon:
        mon.log(0, a, b, loss=torch.tensor(0.5))
        mon.log(1, a, b, loss=torch.tensor(float("nan")))
        mon.log_scalar(2, "knn_acc", float("inf"))
    df = read_run(tmp_path / "nanloss").scalars()
    assert np.isfinite(df.value).all()
    assert list(df[df.metric == "loss"].step) == [0]
    assert list(df[df.metric == "nonfinite/loss"].step) == [1]
    assert list(df[df.metric == "nonfinite/knn_acc"].step) == [2]


def test_resume_refuses_a_run_another_live_process_writes(tmp_path):
    import subprocess
    import sys

    from cldiag.store import RunStore

    path = tmp_path / "busy"
    with Monitor(path) as mon:
        mon.log(0, *_batch(0)[:2])
    store = RunStore(path)
    meta = store.read_meta()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        store.write_meta({**meta, "status": "running", "pid": other.pid})
        with pytest.raises(FileExistsError, match=f"still being written by process {other.pid}"):
            Monitor(path, if_exists="resume")
    finally:
        other.kill()
        other.wait()
    with Monitor(path, if_exists="resume") as mon:  # that writer is dead now: resuming is allowed
        mon.log(1, *_batch(1)[:2])
    # A writer on another host is judged by its heartbeat.
    fresh = {**store.read_meta(), "status": "running", "host": "elsewhere", "heartbeat": schema.now_iso()}
    store.write_meta(fresh)
    with pytest.raises(FileExistsError, match="being written on host 'elsewhere'"):
        Monitor(path, if_exists="resume")
    store.write_meta({**fresh, "heartbeat": "2020-01-01T00:00:00+00:00"})
    with Monitor(path, if_exists="resume") as mon:
        mon.log(2, *_batch(2)[:2])
    assert sorted(read_run(path).scalars(["alignment"]).step) == [0, 1, 2]


def test_close_with_timeout_does_not_hang_on_a_stuck_writer(tmp_path, monkeypatch):
    import threading as _threading

    from cldiag.store import RunStore

    release = _threading.Event()
    real = RunStore.write_part

    def stuck(self, *args, **kwargs):
        release.wait(30)  # a filesystem that does not answer
        return real(self, *args, **kwargs)

    mon = Monitor(tmp_path / "stuck", pairwise_every=0)
    mon.log(0, *_batch(0)[:2])
    monkeypatch.setattr(RunStore, "write_part", stuck)
    with pytest.warns(RuntimeWarning, match="still busy after 0.5 s"):
        mon.close(timeout=0.5)
    release.set()


def test_close_compacts_each_table_into_one_part(tmp_path):
    from cldiag.store import RunStore

    with Monitor(tmp_path / "c", flush_every=2, pairwise_every=1, spectrum_every=3, snapshot_every=0) as mon:
        for step in range(10):
            mon.log(step, *_batch(step)[:2])
    store = RunStore(tmp_path / "c")
    assert len(store.part_files("scalars")) == 1 and len(store.part_files("histograms")) == 1
    run = read_run(tmp_path / "c")
    assert sorted(run.scalars(["alignment"]).step) == list(range(10))
    assert not run.scalars().duplicated(["step", "metric"]).any()
    # spectrum_every=0: no final spectrum at close, so exactly one scalars part per flush of two steps
    opts = dict(flush_every=2, snapshot_every=0, spectrum_every=0, compact_on_close=False)
    with Monitor(tmp_path / "k", **opts) as mon:
        for step in range(10):
            mon.log(step, *_batch(step)[:2])
    assert len(RunStore(tmp_path / "k").part_files("scalars")) == 5


def test_big_batch_pairwise_uses_the_seeded_row_subsample_and_records_it(tmp_path):
    n = F.ROW_CAP + 52
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, 8, generator=g), torch.randn(n, 8, generator=g)
    y = torch.randint(0, 5, (n,), generator=g)
    cadence = dict(pairwise_every=1, spectrum_every=0, curves_every=2, snapshot_every=0, budget=None)
    with Monitor(tmp_path / "run", **cadence) as mon:
        for step in range(3, 5):
            mon.log(step, a, b, labels=y, temperature=0.1)
        mon.log(5, a[:40], b[:40], labels=y[:40], temperature=0.1)  # under the cap: every row
    df = read_run(tmp_path / "run").scalars()
    assert sorted(df[df.metric == "pairwise_rows"].step) == [3, 4]
    assert set(df[df.metric == "pairwise_rows"].value) == {float(F.ROW_CAP)}
    for step in (3, 4):
        rows = F.subsample_rows(n, F.ROW_CAP, seed=step)
        st = F.pairwise_statistics(a[rows], b[rows], labels=y[rows], temperature=0.1, max_rows=None)
        unif = (float(st.uniformity_a) + float(st.uniformity_b)) / 2
        assert _value(df, step, "uniformity") == pytest.approx(unif, rel=1e-5)
        assert _value(df, step, "tolerance") == pytest.approx(float(st.tolerance), rel=1e-5)
        assert _value(df, step, "retrieval_acc") == pytest.approx(float(st.retrieval))
    assert _value(df, 5, "uniformity") == pytest.approx(
        (float(F.uniformity(a[:40])) + float(F.uniformity(b[:40]))) / 2, rel=1e-5
    )


def test_big_single_view_batch_is_capped_too(tmp_path):
    n = F.ROW_CAP + 10
    a = torch.randn(n, 6, generator=torch.Generator().manual_seed(1))
    with Monitor(tmp_path / "run", pairwise_every=1, spectrum_every=0, curves_every=0, budget=None) as mon:
        mon.log(7, a)
    df = read_run(tmp_path / "run").scalars()
    rows = F.subsample_rows(n, F.ROW_CAP, seed=7)
    assert _value(df, 7, "pairwise_rows") == F.ROW_CAP
    assert _value(df, 7, "uniformity") == pytest.approx(float(F.uniformity(a[rows])), rel=1e-5)


def test_batch_of_20000_rows_stays_within_bounded_memory(tmp_path):
    import resource

    n, d = 20_000, 32
    g = torch.Generator().manual_seed(2)
    a = torch.randn(n, d, generator=g)
    b = a + 0.3 * torch.randn(n, d, generator=g)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    cadence = dict(pairwise_every=1, spectrum_every=1, curves_every=1, snapshot_every=0, budget=None)
    with Monitor(tmp_path / "run", **cadence) as mon:
        mon.log(0, a, b, temperature=0.1)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak) / 1024
    # One 20k × 20k float32 matrix alone is 1.5 GiB; the capped step stays near 5 × 16 MiB.
    assert grown_mib < 400, grown_mib
    df = read_run(tmp_path / "run").scalars()
    assert _value(df, 0, "pairwise_rows") == F.ROW_CAP
