"""Monitor.log(step, outputs) with transformers CLIP / SigLIP outputs: tiny random models, no download."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from cldiag import Monitor, read_run, schema  # noqa: E402
from cldiag import functional as F  # noqa: E402
from cldiag.integrations.outputs import hf_clip_outputs, model_outputs  # noqa: E402

B, STEPS = 12, 4
TEXT = {
    "vocab_size": 50,
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "max_position_embeddings": 10,
}
VISION = {
    "image_size": 16,
    "patch_size": 8,
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
}


def _clip():
    torch.manual_seed(0)
    return transformers.CLIPModel(
        transformers.CLIPConfig(text_config=TEXT, vision_config=VISION, projection_dim=8)
    )


def _siglip():
    torch.manual_seed(0)
    return transformers.SiglipModel(transformers.SiglipConfig(text_config=TEXT, vision_config=VISION))


def _batch(step):
    g = torch.Generator().manual_seed(step)
    return {
        "input_ids": torch.randint(1, 50, (B, 10), generator=g),
        "pixel_values": torch.randn(B, 3, 16, 16, generator=g),
    }


def _value(df, step, metric):
    row = df[(df.step == step) & (df.metric == metric)]
    assert len(row) == 1, (step, metric, len(row))
    return float(row.value.iloc[0])


def test_clip_training_logs_gap_cones_and_tau_from_the_output(tmp_path):
    model = _clip()
    opt = torch.optim.Adam(model.parameters(), lr=3e-2)
    seen = []
    with Monitor(tmp_path / "clip", pairwise_every=1, spectrum_every=2) as mon:
        for step in range(STEPS):
            out = model(**_batch(step), return_loss=True)
            seen.append(
                (
                    out.image_embeds.detach().clone(),
                    out.text_embeds.detach().clone(),
                    model.logit_scale.item(),
                )
            )
            mon.log(step, out, loss=out.loss)
            out.loss.backward()
            opt.step()
            opt.zero_grad()

    run = read_run(tmp_path / "clip")
    assert run.two_modality and run.modalities == ["image", "text"] and run.problems == []
    df = run.scalars()
    assert sorted(df.step.unique()) == list(range(STEPS))
    scales = [s for *_, s in seen]
    assert len(set(scales)) == STEPS  # logit_scale is learned: τ moves, and the log follows it
    for step, (img, txt, log_scale) in enumerate(seen):
        gap = F.modality_gap(img, txt)
        assert _value(df, step, schema.M_GAP) == pytest.approx(float(gap.gap), rel=1e-5, abs=1e-7)
        assert _value(df, step, f"{schema.M_CONE}/image") == pytest.approx(float(gap.cone_a), rel=1e-5)
        assert _value(df, step, f"{schema.M_CONE}/text") == pytest.approx(float(gap.cone_b), rel=1e-5)
        assert _value(df, step, schema.M_TEMPERATURE) == pytest.approx(
            1 / torch.tensor(log_scale).exp().item(), rel=1e-4
        )
        assert _value(df, step, schema.M_ALIGNMENT) == pytest.approx(float(F.alignment(img, txt)), rel=1e-5)
    assert set(run.spectra().modality) == {"image", "text"}


def test_siglip_tau_is_fitted_with_its_bias():
    model = _siglip().eval()
    with torch.no_grad():
        model.logit_scale.fill_(2.5)  # τ = e^-2.5, bias far from 0: a fit through the origin would be wrong
        model.logit_bias.fill_(-7.0)
        out = model(**_batch(0))
    fitted = model_outputs(out)
    assert float(fitted.temperature) == pytest.approx(float(torch.exp(torch.tensor(-2.5))), rel=1e-3)
    assert float(fitted.bias) == pytest.approx(-7.0, rel=1e-3)
    exact = hf_clip_outputs(out, model=model)
    assert float(exact.temperature) == pytest.approx(float(torch.exp(torch.tensor(-2.5))), rel=1e-6)
    assert float(exact.bias) == -7.0
    torch.testing.assert_close(fitted.a, out.image_embeds)


def test_explicit_temperature_wins_and_missing_keys_are_named(tmp_path):
    model = _clip().eval()
    with torch.no_grad():
        out = model(**_batch(1))
    with Monitor(tmp_path / "t", pairwise_every=1) as mon:
        mon.log(0, out, temperature=0.5)
    assert _value(read_run(tmp_path / "t").scalars(), 0, schema.M_TEMPERATURE) == 0.5
    with pytest.raises(KeyError, match=r"lacks \['text_embeds'\].*image_embeds"):
        model_outputs({"image_embeds": out.image_embeds})
