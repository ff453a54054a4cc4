"""Property test: what the Monitor writes for a random batch equals the functional layer on that batch
(random B, d, dtype, memory layout, labels, one or two modalities). Complements the functional properties
in tests/test_functional_properties.py, which this file does not repeat."""

from __future__ import annotations

import math
import tempfile
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cldiag import Monitor, read_run
from cldiag import functional as F
from cldiag.monitor import DEFAULT_TAUS

TAU = 0.3


@st.composite
def logged_batches(draw):
    n = draw(st.integers(2, 10))
    d = draw(st.integers(1, 6))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    a = torch.randn(n, 2 * d, generator=gen)
    b = a + draw(st.sampled_from([0.1, 1.0, 3.0])) * torch.randn(n, 2 * d, generator=gen)
    if draw(st.booleans()):  # strided columns: a non-contiguous view
        a, b = a[:, ::2], b[:, ::2]
    else:
        a, b = a[:, :d], b[:, :d]
    dtype = draw(st.sampled_from([torch.float32, torch.float64, torch.float16, torch.bfloat16]))
    labels = torch.randint(0, draw(st.integers(1, 4)), (n,), generator=gen)
    return a.to(dtype), b.to(dtype), labels, draw(st.booleans())


def _close(got, expected, metric):
    expected = float(expected)
    if not math.isfinite(expected):
        assert metric not in got, f"{metric}: undefined ({expected}) but written as {got.get(metric)}"
        assert got[f"nonfinite/{metric}"] == 1, f"{metric}: undefined but not flagged"
        return
    assert got[metric] == pytest.approx(expected, rel=1e-4, abs=1e-5), metric


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(logged_batches())
def test_monitor_writes_the_functional_values(batch):
    a, b, labels, two = batch
    mods = ("image", "text") if two else None
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # B = 2 and d = 1 edge reports
        path = f"{tmp}/run"
        mon = Monitor(
            path,
            modalities=mods,
            pairwise_every=1,
            spectrum_every=1,
            curves_every=1,
            snapshot_every=1,
            snapshot_size=64,
            bins=16,
            strict=True,
        )
        mon.log(0, a, b, labels=labels, temperature=TAU)
        mon.close()
        run = read_run(path)
        df = run.scalars()
        got = dict(zip(df.metric, df.value, strict=True))
        hist, spectra, curves = run.histograms(), run.spectra(), run.temperature()
        matrix, info = run.embedding_matrix(0)

    assert not df.duplicated("metric").any() and np.isfinite(df.value).all()
    m1, m2 = ("image", "text") if two else ("view1", "view2")
    _close(got, F.alignment(a, b), "alignment")
    _close(got, torch.nn.functional.cosine_similarity(a.float(), b.float(), eps=1e-12).mean(), "pos_sim")
    _close(got, a.float().norm(dim=1).mean(), f"norm/{m1}")
    _close(got, (F.uniformity(a) + F.uniformity(b)) / 2, "uniformity")
    _close(got, F.std_of_l2_normalized(a), "std_l2")
    _close(got, F.retrieval_accuracy(a, b), "retrieval_acc")
    _close(got, F.tolerance(a, labels), "tolerance")
    hard = F.hardness(a, b, TAU)
    _close(got, hard.entropy, "neg_entropy")
    _close(got, 1 - hard.pos_prob, "dcl_coupling")
    if two:
        gap = F.modality_gap(a, b)
        _close(got, gap.gap, "modality_gap")
        _close(got, gap.cone_a, f"cone/{m1}")
        _close(got, gap.matched_distance, "matched_distance")
        _close(got, F.uniformity(b), f"uniformity/{m2}")
        _close(got, F.effective_rank(b), f"effective_rank/{m2}")
        _close(got, F.effective_rank(torch.cat([a, b])), "effective_rank")
    else:
        _close(got, F.effective_rank(a), "effective_rank")

    h = F.score_histograms(a, b, bins=16)
    for kind, counts in (("pos", h.pos), ("neg", h.neg), ("hard_neg", h.hard_neg)):
        assert hist[hist.kind == kind]["count"].tolist() == counts.tolist(), kind
    eig = spectra[spectra.modality == m1].sort_values("index").eigenvalue.to_numpy()
    np.testing.assert_allclose(eig, F.spectrum(a).double().numpy(), rtol=1e-4, atol=1e-7)
    c = F.temperature_curves(a, b, list(DEFAULT_TAUS), labels=labels)
    ent = curves[curves.curve == "entropy"].sort_values("tau")
    np.testing.assert_allclose(ent.value, c.entropy.double().numpy(), rtol=1e-4, atol=1e-6)
    rows = info.modality == m1
    np.testing.assert_array_equal(matrix[rows.to_numpy()], a.float().numpy())  # snapshot: the raw rows
    assert info[rows].label.tolist() == labels.tolist()
