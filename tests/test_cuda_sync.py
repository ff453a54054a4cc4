"""On a CUDA device, ``Monitor.log`` must not make the host wait for the GPU at an ordinary step.

PyTorch's sync debug mode turns every synchronizing call (``.item()``, ``.cpu()``, a blocking copy,
``cudaStreamSynchronize``) into an error (``"error"``) or a warning (``"warn"``). Ordinary steps run under
``"error"``; the scheduled heavy steps and the flush, which are allowed to read values back, run under
``"warn"`` and their syncs are counted, so a regression that adds one shows up as a number.

Skipped without CUDA (CI has none); the CPU-side guard is ``tests/reliability/test_monitor_hostile_calls.py``
(``test_validation_reads_no_tensor_value_at_ordinary_steps``) and the meta-device tests of
``tests/test_functional.py``.
"""

from __future__ import annotations

import linecache
import warnings

import pytest
import torch

from cldiag import Monitor, read_run

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

EVERY = 10  # pairwise, spectrum, curves and snapshot are all due at steps 0, 10, 20, …
STEPS = 30
B, D = 256, 64


class _Syncs:
    """Run a block under a sync debug mode; in ``"warn"`` mode count the synchronizing calls."""

    def __init__(self, mode: str) -> None:
        self.mode, self.count = mode, 0

    def __enter__(self) -> _Syncs:
        self._catch = warnings.catch_warnings(record=True)
        self._records = self._catch.__enter__()
        warnings.simplefilter("always")
        torch.cuda.synchronize()  # nothing queued before the block is blamed on it
        torch.cuda.set_sync_debug_mode(self.mode)
        return self

    def __exit__(self, *exc: object) -> None:
        torch.cuda.set_sync_debug_mode("default")
        syncs = [w for w in self._records if "synchroniz" in str(w.message)]
        self.count = len(syncs)
        self.where = sorted({(w.filename, w.lineno) for w in syncs})
        self._catch.__exit__(*exc)


def _monitor(path) -> Monitor:
    """Every heavy kind due at the same steps; no flush before the end (it is measured on its own)."""
    every = dict(pairwise_every=EVERY, spectrum_every=EVERY, curves_every=EVERY, snapshot_every=EVERY)
    return Monitor(
        path, **every, snapshot_size=B, flush_every=10**6, flush_secs=1e9, budget=None, strict=True
    )


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(32, 128), torch.nn.ReLU(), torch.nn.Linear(128, D)).cuda()


def _train(tmp_path, name, log_step):
    """A real training loop on the GPU; ``log_step(mon, step, za, zb, y, loss)`` makes the logging call."""
    model = _model()
    logit_scale = torch.nn.Parameter(torch.tensor(2.66, device="cuda"))
    opt = torch.optim.Adam([*model.parameters(), logit_scale], lr=1e-3)
    mon = _monitor(tmp_path / name)
    heavy_syncs = {}
    g = torch.Generator(device="cuda").manual_seed(0)
    for step in range(STEPS):
        x = torch.randn(B, 32, device="cuda", generator=g)
        y = torch.randint(0, 10, (B,), device="cuda", generator=g)
        za, zb = model(x), model(x + 0.1 * torch.randn_like(x))
        logits = torch.nn.functional.normalize(za, dim=1) @ torch.nn.functional.normalize(zb, dim=1).T
        loss = torch.nn.functional.cross_entropy(logits * logit_scale.exp(), torch.arange(B, device="cuda"))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ordinary = step % EVERY != 0
        with _Syncs("error" if ordinary else "warn") as syncs:
            log_step(mon, step, za, zb, y, loss, logit_scale)
        if not ordinary:
            heavy_syncs[step] = syncs.count
            where = syncs.where
    with _Syncs("warn") as flush_syncs:
        mon.flush(wait=True)
    mon.close()
    lines = ", ".join(f"{f.rsplit('/', 1)[-1]}:{n}" for f, n in where)
    print(f"{name}: syncs at heavy steps {heavy_syncs} ({lines}), at the flush {flush_syncs.count}")
    return read_run(tmp_path / name), heavy_syncs, where


def _two_views(mon, step, za, zb, y, loss, logit_scale):
    mon.log(step, za, zb, labels=y, temperature=1 / logit_scale.exp(), loss=loss)
    mon.log_scalar(step, "logit_scale", logit_scale)


def _per_row_tau(mon, step, za, zb, y, loss, logit_scale):
    tau = (0.1 + 0.05 * torch.sigmoid(za[:, 0])).detach()
    mon.log(step, za, zb, labels=y, temperature=tau, loss=loss)


def _three_modalities(mon, step, za, zb, y, loss, logit_scale):
    mon.log(step, {"image": za, "text": zb, "audio": za + zb}, labels=y, loss=loss)


def _single_view(mon, step, za, zb, y, loss, logit_scale):
    mon.log(step, za, labels=y, loss=loss)


def _clip_output(mon, step, za, zb, y, loss, logit_scale):
    # open_clip's dict output (CLIP(output_dict=True)): features and the logit scale tensor.
    mon.log(step, {"image_features": za, "text_features": zb, "logit_scale": logit_scale.exp()}, loss=loss)


def test_hf_clip_outputs_make_no_host_sync(tmp_path):
    """A real (tiny, randomly initialised) transformers CLIPModel on the GPU: τ fitted from its logits."""
    transformers = pytest.importorskip("transformers")
    sizes = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    text = dict(vocab_size=64, max_position_embeddings=10, **sizes)
    vision = dict(image_size=16, patch_size=8, **sizes)
    torch.manual_seed(0)
    model = transformers.CLIPModel(
        transformers.CLIPConfig(text_config=text, vision_config=vision, projection_dim=8)
    ).cuda()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator(device="cuda").manual_seed(0)
    mon = _monitor(tmp_path / "hf")
    for step in range(STEPS):
        batch = {
            "input_ids": torch.randint(1, 50, (32, 10), device="cuda", generator=g),
            "pixel_values": torch.randn(32, 3, 16, 16, device="cuda", generator=g),
        }
        out = model(**batch, return_loss=True)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        with _Syncs("error" if step % EVERY else "warn"):
            mon.log(step, out, loss=out.loss)
    mon.close()
    df = read_run(tmp_path / "hf").scalars()
    assert sorted(df[df.metric == "temperature"].step) == list(range(STEPS))
    assert df[df.metric == "temperature"].value.between(0.001, 100).all()


@pytest.mark.parametrize(
    "log_step",
    [_two_views, _per_row_tau, _three_modalities, _single_view, _clip_output],
    ids=lambda f: f.__name__,
)
def test_ordinary_steps_make_no_host_sync(tmp_path, log_step):
    run, heavy, where = _train(tmp_path, log_step.__name__.strip("_"), log_step)
    df = run.scalars()
    # Every step is written, and the heavy steps' statistics too: the check ran over the real work.
    assert sorted(df[df.metric == "loss"].step) == list(range(STEPS))
    assert set(heavy) == {0, 10, 20}
    assert run.snapshot_steps() == [0, 10, 20, STEPS - 1]  # the last batch is kept at close
    # A heavy step waits for the GPU once to drop non-finite rows and in each eigen-solver (PyTorch checks
    # its status on the host); nothing else in its work does.
    for filename, lineno in where:
        line = linecache.getline(filename, lineno)
        assert "eigvalsh" in line or (
            ".tolist()" in line and "_finite_rows" in _function_at(filename, lineno)
        ), f"{filename}:{lineno} syncs: {line.strip()}"
    assert max(heavy.values()) <= 1 + 2 * 3, heavy  # 1 + (spectrum + rank) of at most 3 sides


def _function_at(filename: str, lineno: int) -> str:
    """The name of the function whose body holds ``filename:lineno``."""
    for n in range(lineno, 0, -1):
        line = linecache.getline(filename, n).strip()
        if line.startswith("def "):
            return line[4:].split("(")[0]
    return ""
