"""CLDiagCallback under a real Lightning Trainer (CPU, a few steps, a tiny two-tower CLIP-style module)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

pl = pytest.importorskip("lightning.pytorch")

from cldiag import functional as F  # noqa: E402
from cldiag import read_run, schema  # noqa: E402
from cldiag.integrations.lightning import CLDiagCallback  # noqa: E402

N, BATCH = 48, 8


class TwoTower(pl.LightningModule):
    """Image tower on 10-d inputs, text tower on 6-d inputs, CLIP loss; returns open_clip's keys."""

    def __init__(self, extra_keys: bool = True, dim: int = 8):
        super().__init__()
        self.save_hyperparameters()
        self.image = nn.Linear(10, dim)
        self.text = nn.Linear(6, dim)
        self.log_scale = nn.Parameter(torch.tensor(2.0))
        self.seen: list[dict[str, torch.Tensor]] = []

    def training_step(self, batch, batch_idx):
        x, t, y = batch
        zi = nn.functional.normalize(self.image(x), dim=-1)
        zt = nn.functional.normalize(self.text(t), dim=-1)
        scale = self.log_scale.exp()
        logits = scale * zi @ zt.T
        target = torch.arange(len(x))
        loss = (
            nn.functional.cross_entropy(logits, target) + nn.functional.cross_entropy(logits.T, target)
        ) / 2
        self.seen.append(
            {"a": zi.detach().clone(), "b": zt.detach().clone(), "scale": scale.detach().clone()}
        )
        out = {"loss": loss, "image_features": zi, "text_features": zt, "logit_scale": scale}
        if self.hparams.extra_keys:
            out["y"] = y
        else:
            out = {"loss": loss, "emb": zi}
        return out

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)


def _loader():
    g = torch.Generator().manual_seed(0)
    x, t = torch.randn(N, 10, generator=g), torch.randn(N, 6, generator=g)
    y = torch.randint(0, 3, (N,), generator=g)
    return DataLoader(TensorDataset(x, t, y), batch_size=BATCH, shuffle=False)


def _trainer(max_steps, callbacks, tmp_path, **kw):
    return pl.Trainer(
        max_steps=max_steps,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=kw.pop("enable_checkpointing", False),
        default_root_dir=tmp_path,
        callbacks=callbacks,
        **kw,
    )


def _value(df, step, metric):
    row = df[(df.step == step) & (df.metric == metric)]
    assert len(row) == 1, (step, metric, len(row))
    return float(row.value.iloc[0])


def test_trainer_writes_readable_run_with_gap(tmp_path):
    model = TwoTower()
    cb = CLDiagCallback(tmp_path / "clip", labels_key="y", pairwise_every=2, spectrum_every=3)
    _trainer(5, [cb], tmp_path).fit(model, _loader())

    run = read_run(tmp_path / "clip")
    assert run.status == schema.STATUS_FINISHED and run.problems == []
    assert run.two_modality and run.modalities == ["image", "text"]
    assert run.config == {"extra_keys": True, "dim": 8}  # the module's hparams
    df = run.scalars()
    assert sorted(df.step.unique()) == [0, 1, 2, 3, 4]
    assert not df.duplicated(["step", "metric"]).any()
    for step, seen in enumerate(model.seen):
        gap = F.modality_gap(seen["a"], seen["b"])
        assert _value(df, step, schema.M_GAP) == pytest.approx(float(gap.gap), rel=1e-5)
        assert _value(df, step, schema.M_TEMPERATURE) == pytest.approx(1 / float(seen["scale"]), rel=1e-6)
        assert _value(df, step, schema.M_ALIGNMENT) == pytest.approx(
            float(F.alignment(seen["a"], seen["b"])), rel=1e-5
        )
    assert set(df[df.metric == schema.M_TOLERANCE].step) == {0, 2, 4}  # labels from labels_key
    assert set(run.spectra().step) == {0, 3, 4}  # 4: the final spectrum at close (last step had none)
    assert cb.monitor is None and cb.state_dict()["last_step"] == 4


def test_checkpoint_restores_callback_and_appends_to_run(tmp_path):
    ckpt_cb = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=3, save_top_k=-1)
    first = CLDiagCallback(tmp_path / "run", pairwise_every=1)
    _trainer(3, [first, ckpt_cb], tmp_path, enable_checkpointing=True).fit(TwoTower(), _loader())
    ckpt = torch.load(tmp_path / "ckpt" / "epoch=0-step=3.ckpt", weights_only=False)
    state = ckpt["callbacks"]["CLDiagCallback"]
    assert state["run_dir"] == str(tmp_path / "run") and state["last_step"] == 2

    # A new process would build a fresh callback; the checkpoint's run wins over the directory given here.
    second = CLDiagCallback(tmp_path / "elsewhere", pairwise_every=1)
    model = TwoTower()
    _trainer(6, [second], tmp_path).fit(model, _loader(), ckpt_path=tmp_path / "ckpt" / "epoch=0-step=3.ckpt")
    assert second.run_dir == str(tmp_path / "run")
    assert not (tmp_path / "elsewhere").exists()

    run = read_run(tmp_path / "run")
    df = run.scalars()
    assert sorted(df.step.unique()) == [0, 1, 2, 3, 4, 5]
    assert not df.duplicated(["step", "metric"]).any()
    assert run.meta["resumed"][0]["after_step"] == 2 and run.status == schema.STATUS_FINISHED
    # The resumed steps come from the restored weights: the module's own outputs after the restore.
    for seen, step in zip(model.seen, (3, 4, 5), strict=True):
        assert _value(df, step, schema.M_GAP) == pytest.approx(
            float(F.modality_gap(seen["a"], seen["b"]).gap), rel=1e-5
        )


def test_state_dict_round_trip_and_bad_state(tmp_path):
    cb = CLDiagCallback(tmp_path / "a")
    other = CLDiagCallback(tmp_path / "b")
    other.load_state_dict({"version": 1, "run_dir": str(tmp_path / "a"), "last_step": 7})
    assert other.state_dict() == {"version": 1, "run_dir": str(tmp_path / "a"), "last_step": 7}
    assert cb.state_dict() == {"version": 1, "run_dir": str(tmp_path / "a"), "last_step": None}
    with pytest.raises(ValueError, match="not a CLDiagCallback state"):
        cb.load_state_dict({})


def test_two_view_keys_and_accumulation(tmp_path):
    class Views(TwoTower):
        def training_step(self, batch, batch_idx):
            out = super().training_step(batch, batch_idx)
            return {
                "loss": out["loss"],
                "z1": out["image_features"],
                "z2": out["text_features"],
                "y": out["y"],
            }

    model = Views()
    cb = CLDiagCallback(tmp_path / "views", keys=("z1", "z2"), labels_key="y", pairwise_every=1)
    _trainer(3, [cb], tmp_path, accumulate_grad_batches=2).fit(model, _loader())
    run = read_run(tmp_path / "views")
    assert not run.two_modality and run.modalities == ["view1", "view2"]
    df = run.scalars()
    assert schema.M_GAP not in set(df.metric) and schema.M_TOLERANCE in set(df.metric)
    # 6 micro-batches, 3 optimizer steps: the first micro-batch of each step is logged, at its step.
    assert sorted(df.step.unique()) == [0, 1, 2]
    for step, seen in zip((0, 1, 2), model.seen[::2], strict=True):
        assert _value(df, step, schema.M_ALIGNMENT) == pytest.approx(
            float(F.alignment(seen["a"], seen["b"])), rel=1e-5
        )


MISSING = r"lacks \['image_features', 'text_features'\]; it has \['emb', 'loss'\]"


def test_failing_hook_is_reported_once_and_training_goes_on(tmp_path, caplog):
    cb = CLDiagCallback(tmp_path / "bad")
    trainer = _trainer(3, [cb], tmp_path)
    with pytest.warns(RuntimeWarning, match=MISSING) as warned:
        trainer.fit(TwoTower(extra_keys=False), _loader())
    assert trainer.global_step == 3  # all three steps trained
    assert len([w for w in warned if "lacks" in str(w.message)]) == 1  # three failures, one report
    assert len(cb.errors) == 1 and "on_train_batch_end: ValueError" in cb.errors[0]
    assert any("training continues" in r.getMessage() for r in caplog.records if r.name == "cldiag")
    run = read_run(tmp_path / "bad")
    assert run.status == schema.STATUS_FINISHED and run.scalars().empty


def test_strict_hook_error_ends_fit_and_fails_the_run(tmp_path):
    cb = CLDiagCallback(tmp_path / "bad", strict=True)
    with pytest.raises(ValueError, match=MISSING):
        _trainer(2, [cb], tmp_path).fit(TwoTower(extra_keys=False), _loader())
    assert read_run(tmp_path / "bad").status == schema.STATUS_FAILED


def test_run_that_cannot_open_does_not_stop_training(tmp_path):
    _trainer(1, [CLDiagCallback(tmp_path / "taken")], tmp_path).fit(TwoTower(), _loader())
    cb = CLDiagCallback(tmp_path / "taken")  # if_exists="error": the second fit cannot open the run
    trainer = _trainer(2, [cb], tmp_path)
    with pytest.warns(RuntimeWarning, match="on_train_start: FileExistsError"):
        trainer.fit(TwoTower(), _loader())
    assert trainer.global_step == 2 and cb.monitor is None
    assert sorted(read_run(tmp_path / "taken").scalars().step.unique()) == [0]  # untouched


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"keys": ("a",)}, ValueError, "two distinct"),
        ({"keys": ("a", "a")}, ValueError, "two distinct"),
        ({"every": 0}, ValueError, "every must be"),
        ({"pairwise_evry": 3}, TypeError, "pairwise_evry"),
    ],
)
def test_bad_arguments_fail_in_constructor(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        CLDiagCallback(tmp_path / "x", **kwargs)


def test_pytorch_lightning_trainer_accepts_the_callback(tmp_path):
    legacy = pytest.importorskip("pytorch_lightning")

    class Legacy(legacy.LightningModule):
        def __init__(self):
            super().__init__()
            self.image, self.text = nn.Linear(10, 4), nn.Linear(6, 4)

        def training_step(self, batch, batch_idx):
            x, t, _ = batch
            zi, zt = self.image(x), self.text(t)
            return {"loss": (zi - zt).pow(2).mean(), "image_features": zi, "text_features": zt}

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    trainer = legacy.Trainer(
        max_steps=2,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        callbacks=[CLDiagCallback(tmp_path / "legacy")],
    )
    trainer.fit(Legacy(), _loader())
    assert sorted(read_run(tmp_path / "legacy").scalars().step.unique()) == [0, 1]


def test_missing_lightning_gives_install_hint():
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['lightning'] = sys.modules['lightning.pytorch'] = None; "
        "sys.modules['pytorch_lightning'] = None; import cldiag.integrations.lightning"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "pip install 'cldiag[lightning]'" in proc.stderr.splitlines()[-1]
