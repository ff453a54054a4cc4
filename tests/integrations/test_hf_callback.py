"""CLDiagTrainerCallback under a real HF Trainer: a 2-layer BERT bi-encoder from a config, no downloads."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch

transformers = pytest.importorskip("transformers")

from cldiag import functional as F  # noqa: E402
from cldiag import read_run, schema  # noqa: E402
from cldiag.integrations.hf import CLDiagTrainerCallback, embed_pairs  # noqa: E402

VOCAB, LEN, N_TRAIN, N_PROBE = 40, 10, 64, 12


def _encoder(seed: int = 0):
    torch.manual_seed(seed)
    config = transformers.BertConfig(
        vocab_size=VOCAB,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=LEN,
        hidden_dropout_prob=0.3,  # eval mode must switch it off, or probe values would be random
        attention_probs_dropout_prob=0.0,
    )
    return transformers.BertModel(config)


def _tokens(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (n, LEN), generator=g)
    lengths = torch.randint(3, LEN + 1, (n,), generator=g)
    mask = (torch.arange(LEN) < lengths[:, None]).long()
    ids = ids * mask  # padding id 0 after each sentence's end
    # the positive: same sentence, a few tokens replaced
    noisy = torch.where(
        torch.rand(n, LEN, generator=g) < 0.2, torch.randint(1, VOCAB, (n, LEN), generator=g), ids
    )
    return {"input_ids": ids, "attention_mask": mask}, {"input_ids": noisy * mask, "attention_mask": mask}


class PairData(torch.utils.data.Dataset):
    def __init__(self):
        self.a, self.b = _tokens(N_TRAIN, seed=1)

    def __len__(self):
        return N_TRAIN

    def __getitem__(self, i):
        return {
            "anchor_input_ids": self.a["input_ids"][i],
            "anchor_attention_mask": self.a["attention_mask"][i],
            "positive_input_ids": self.b["input_ids"][i],
            "positive_attention_mask": self.b["attention_mask"][i],
        }


class BiEncoderTrainer(transformers.Trainer):
    """In-batch InfoNCE over mean-pooled BERT embeddings (sentence-transformers' MNRL, scale 20)."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        def embed(prefix):
            mask = inputs[f"{prefix}_attention_mask"]
            h = model(input_ids=inputs[f"{prefix}_input_ids"], attention_mask=mask).last_hidden_state
            w = mask.unsqueeze(-1).float()
            return torch.nn.functional.normalize((h * w).sum(1) / w.sum(1), dim=-1)

        a, b = embed("anchor"), embed("positive")
        loss = torch.nn.functional.cross_entropy(20.0 * a @ b.T, torch.arange(len(a)))
        return (loss, {}) if return_outputs else loss


def _args(tmp_path, max_steps, **kw):
    return transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=max_steps,
        per_device_train_batch_size=16,
        learning_rate=1e-3,
        logging_steps=2,
        report_to=[],
        save_strategy=kw.pop("save_strategy", "no"),
        use_cpu=True,
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        **kw,
    )


def _probe():
    a, b = _tokens(N_PROBE, seed=2)
    return a, b, torch.arange(N_PROBE) % 3


def _value(df, step, metric):
    row = df[(df.step == step) & (df.metric == metric)]
    assert len(row) == 1, (step, metric, len(row))
    return float(row.value.iloc[0])


def test_trainer_logs_probe_pairs_loss_and_snapshots(tmp_path):
    model, probe = _encoder(), _probe()
    cb = CLDiagTrainerCallback(tmp_path / "st", probe=probe, every=2, snapshot_every=4, temperature=0.05)
    trainer = BiEncoderTrainer(model=model, args=_args(tmp_path, 6), train_dataset=PairData(), callbacks=[cb])
    trainer.train()

    run = read_run(tmp_path / "st")
    assert run.status == schema.STATUS_FINISHED and run.problems == []
    assert run.config["learning_rate"] == 1e-3 and run.config["max_steps"] == 6
    df = run.scalars()
    assert not df.duplicated(["step", "metric"]).any()
    probe_steps = sorted(df[df.metric == schema.M_ALIGNMENT].step)
    assert probe_steps == [0, 2, 4, 6]
    assert set(df[df.metric == schema.M_BATCH].value) == {float(N_PROBE)}
    assert set(df[df.metric == schema.M_TEMPERATURE].value) == {0.05}
    assert set(df[df.metric == schema.M_TOLERANCE].step) == {0, 2, 4, 6}  # labels from the probe

    # The last probe evaluation saw the final weights: recompute it here, in eval mode.
    model.eval()
    with torch.no_grad():
        a, b, _ = embed_pairs(model, probe)
    assert _value(df, 6, schema.M_ALIGNMENT) == pytest.approx(float(F.alignment(a, b)), rel=1e-4)
    assert _value(df, 6, schema.M_RANK) == pytest.approx(float(F.effective_rank(a)), rel=1e-4)

    # The Trainer's own logged loss (and learning rate) become scalars at their steps.
    history = [h for h in trainer.state.log_history if "loss" in h]
    assert [h["step"] for h in history] == [2, 4, 6]
    for h in history:
        assert _value(df, h["step"], schema.M_LOSS) == pytest.approx(h["loss"])
        assert _value(df, h["step"], "hf/learning_rate") == pytest.approx(h["learning_rate"])

    assert run.snapshot_steps() == [0, 4]
    matrix, info = run.embedding_matrix(4)
    assert matrix.shape == (N_PROBE, 16)
    assert info.sample_id.tolist() == list(range(N_PROBE))
    assert info.label.tolist() == [i % 3 for i in range(N_PROBE)]


def test_resumed_training_appends_to_the_run(tmp_path):
    probe = _probe()
    args = _args(tmp_path, 4, save_strategy="steps", save_steps=2)
    cb = CLDiagTrainerCallback(tmp_path / "st", probe=probe, every=2, snapshot_every=0)
    BiEncoderTrainer(model=_encoder(), args=args, train_dataset=PairData(), callbacks=[cb]).train()

    args = _args(tmp_path, 6, save_strategy="no")
    cb = CLDiagTrainerCallback(tmp_path / "st", probe=probe, every=2, snapshot_every=0)
    trainer = BiEncoderTrainer(model=_encoder(), args=args, train_dataset=PairData(), callbacks=[cb])
    with pytest.warns(
        RuntimeWarning, match="steps <= 4 were logged before"
    ):  # the run went past the checkpoint
        trainer.train(resume_from_checkpoint=str(tmp_path / "out" / "checkpoint-2"))

    run = read_run(tmp_path / "st")
    df = run.scalars()
    assert sorted(df[df.metric == schema.M_ALIGNMENT].step) == [0, 2, 4, 6]
    assert not df.duplicated(["step", "metric"]).any()
    assert run.meta["resumed"][0]["after_step"] == 4
    assert run.status == schema.STATUS_FINISHED


def test_embed_pairs_mean_pools_over_the_attention_mask():
    model = _encoder().eval()
    a_in, b_in = _tokens(5, seed=3)
    with torch.no_grad():
        a, b = embed_pairs(model, (a_in, b_in), batch_size=2)  # chunks of 2, 2, 1
        for i in range(5):
            keep = a_in["attention_mask"][i].bool()
            h = model(input_ids=a_in["input_ids"][i : i + 1, keep]).last_hidden_state[0]
            torch.testing.assert_close(a[i], h.mean(0), rtol=1e-4, atol=1e-5)
    assert b.shape == (5, 16)


def test_custom_embed_fn_and_training_mode_restored(tmp_path):
    model = _encoder()
    model.train()
    seen_modes = []

    def embed_fn(m, probe):
        seen_modes.append(m.training)
        return probe["x"], probe["y"]

    x = torch.randn(10, 4)
    cb = CLDiagTrainerCallback(
        tmp_path / "custom",
        probe={"x": x, "y": x + 0.1},
        embed_fn=embed_fn,
        every=5,
        modalities=("query", "doc"),
    )
    state = transformers.TrainerState(global_step=0, is_world_process_zero=True)
    cb.on_train_begin(_args(tmp_path, 5), state, None, model=model)
    state.global_step = 5
    cb.on_step_end(None, state, None, model=model)
    state.global_step = 6  # not a multiple of every: no probe
    cb.on_step_end(None, state, None, model=model)
    cb.on_train_end(None, state, None)
    assert seen_modes == [False, False] and model.training

    run = read_run(tmp_path / "custom")
    assert run.two_modality and run.modalities == ["query", "doc"]
    df = run.scalars()
    assert sorted(df[df.metric == schema.M_GAP].step) == [0, 5]
    assert _value(df, 5, schema.M_GAP) == pytest.approx(float(F.modality_gap(x, x + 0.1).gap), rel=1e-5)


def test_output_without_embeddings_names_what_is_there():
    class Odd(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 3)

        def forward(self, x):
            return {"logits": self.lin(x), "hidden": x}

    with pytest.raises(TypeError, match=r"\['hidden', 'logits'\].*embed_fn"):
        embed_pairs(Odd(), (torch.randn(4, 3), torch.randn(4, 3)))


@pytest.mark.parametrize(
    ("probe", "kwargs", "error", "match"),
    [
        ("some text", {}, TypeError, "probe must be"),
        ((torch.randn(4, 3),), {}, TypeError, "probe must be"),
        ((torch.randn(4, 3), [1, 2]), {}, TypeError, r"probe\[1\]"),
        ((torch.randn(4, 3), torch.randn(5, 3)), {}, ValueError, r"\[4, 5\]"),
        ((torch.randn(4, 3), torch.randn(4, 3)), {"every": 0}, ValueError, "every must be"),
        ((torch.randn(4, 3), torch.randn(4, 3)), {"embed_fn": 3}, TypeError, "callable"),
        ((torch.randn(4, 3), torch.randn(4, 3)), {"spectrum_evry": 3}, TypeError, "spectrum_evry"),
    ],
)
def test_bad_arguments_fail_in_constructor(tmp_path, probe, kwargs, error, match):
    with pytest.raises(error, match=match):
        CLDiagTrainerCallback(tmp_path / "x", probe=probe, **kwargs)


def _failing_embed_fn(model, probe):
    raise RuntimeError("probe exploded")


def test_failing_probe_is_reported_once_and_training_goes_on(tmp_path, caplog):
    cb = CLDiagTrainerCallback(tmp_path / "st", probe=_probe(), embed_fn=_failing_embed_fn, every=2)
    trainer = BiEncoderTrainer(
        model=_encoder(), args=_args(tmp_path, 6), train_dataset=PairData(), callbacks=[cb]
    )
    with pytest.warns(RuntimeWarning, match="probe at step 0: RuntimeError: probe exploded") as warned:
        trainer.train()
    assert trainer.state.global_step == 6  # trained to the end
    assert len([w for w in warned if "probe exploded" in str(w.message)]) == 1  # 4 failures, 1 report
    assert cb.errors == ["probe at step 0: RuntimeError: probe exploded"]
    assert any("training continues" in r.getMessage() for r in caplog.records if r.name == "cldiag")
    run = read_run(tmp_path / "st")
    assert run.status == schema.STATUS_FINISHED
    df = run.scalars()
    assert schema.M_ALIGNMENT not in set(df.metric)  # no probe values …
    assert sorted(df[df.metric == schema.M_LOSS].step) == [2, 4, 6]  # … but the Trainer's loss is there


def test_strict_probe_error_ends_training(tmp_path):
    cb = CLDiagTrainerCallback(
        tmp_path / "st", probe=_probe(), embed_fn=_failing_embed_fn, every=2, strict=True
    )
    trainer = BiEncoderTrainer(
        model=_encoder(), args=_args(tmp_path, 6), train_dataset=PairData(), callbacks=[cb]
    )
    with pytest.raises(RuntimeError, match="probe exploded"):
        trainer.train()
    assert trainer.state.global_step == 0


def test_strings_need_a_sentence_transformer():
    with pytest.raises(TypeError, match=r"needs a SentenceTransformer.*BertModel"):
        embed_pairs(_encoder(), (["a b", "c d"], ["a", "c"]))
