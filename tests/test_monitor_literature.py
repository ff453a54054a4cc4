"""The issue-15 diagnostics the Monitor logs itself at pairwise steps: ranks, ordering, false negatives."""

from __future__ import annotations

import pytest
import torch

from cldiag import Monitor, read_run, schema
from cldiag import functional as F

RANK_NAMES = (
    schema.M_MRR,
    schema.M_RECALL_AT_1,
    schema.M_RECALL_AT_5,
    schema.M_RECALL_AT_10,
    schema.M_ORDERING_VIOLATIONS,
)
FALSE_NEG_NAMES = (schema.M_FALSE_NEG_SHARE, schema.M_FALSE_NEG_PENALTY_SHARE)


def _batch(seed: int, n: int = 40, d: int = 8, classes: int = 4):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, d, generator=g)
    b = a + 0.8 * torch.randn(n, d, generator=g)
    labels = torch.randint(0, classes, (n,), generator=g)
    return a, b, labels


def _values(path) -> dict[tuple[int, str], float]:
    df = read_run(path).scalars()
    assert not df.duplicated(["step", "metric"]).any()
    return {(int(s), str(m)): float(v) for s, m, v in zip(df.step, df.metric, df.value, strict=True)}


def _expected(a, b, labels, tau) -> dict[str, float]:
    s = F.rank_summary(F.positive_ranks(a, b))
    fn = F.false_negative_share(a, b, labels, tau)
    return {
        schema.M_MRR: float(s.mrr),
        schema.M_RECALL_AT_1: float(s.recall_at_1),
        schema.M_RECALL_AT_5: float(s.recall_at_5),
        schema.M_RECALL_AT_10: float(s.recall_at_10),
        schema.M_ORDERING_VIOLATIONS: float(F.ordering_violations(a, b)),
        schema.M_FALSE_NEG_SHARE: float(fn.count_share),
        schema.M_FALSE_NEG_PENALTY_SHARE: float(fn.penalty_share),
    }


def test_pairwise_steps_log_ranks_and_false_negatives_equal_to_functional(tmp_path):
    tau = 0.2
    batches = {step: _batch(step) for step in range(4)}
    with Monitor(tmp_path / "r", pairwise_every=2, spectrum_every=0, curves_every=0, budget=None) as mon:
        for step, (a, b, y) in batches.items():
            mon.log(step, a, b, labels=y, temperature=tau)
    got = _values(tmp_path / "r")
    for step in (0, 2):
        for name, want in _expected(*batches[step], tau).items():
            assert got[(step, name)] == pytest.approx(want, abs=1e-6), (step, name)
    for step in (1, 3):  # pairwise-step only: the per-step cost is unchanged
        assert not any((step, name) in got for name in RANK_NAMES + FALSE_NEG_NAMES)


def test_false_negative_shares_need_labels_and_a_temperature(tmp_path):
    a, b, y = _batch(7)
    with Monitor(tmp_path / "r", pairwise_every=1, spectrum_every=0, curves_every=0, budget=None) as mon:
        mon.log(0, a, b, labels=y)  # no τ
        mon.log(1, a, b, temperature=0.1)  # no labels
    got = _values(tmp_path / "r")
    for step in (0, 1):
        assert all((step, name) in got for name in RANK_NAMES)
        assert not any((step, name) in got for name in FALSE_NEG_NAMES)


def test_ranks_use_the_same_capped_rows_as_the_pairwise_statistics(tmp_path):
    n = F.ROW_CAP + 60
    a, b, y = _batch(3, n=n, d=4, classes=50)
    with Monitor(tmp_path / "r", pairwise_every=1, spectrum_every=0, curves_every=0, budget=None) as mon:
        mon.log(0, a, b, labels=y, temperature=0.5)
    got = _values(tmp_path / "r")
    rows = F.subsample_rows(n, F.ROW_CAP, seed=0, device=a.device)
    assert rows is not None and got[(0, "pairwise_rows")] == rows.numel()
    for name, want in _expected(a[rows], b[rows], y[rows], 0.5).items():
        assert got[(0, name)] == pytest.approx(want, abs=1e-6), name


# --- per-sample temperature --------------------------------------------------------------------------


def test_per_sample_temperature_logs_mean_every_step_and_quantiles_at_pairwise_steps(tmp_path):
    batches = {step: _batch(step) for step in range(3)}
    taus = {
        step: torch.linspace(0.05, 0.5, 40)[torch.randperm(40, generator=torch.Generator().manual_seed(step))]
        for step in range(3)
    }
    with Monitor(tmp_path / "r", pairwise_every=2, spectrum_every=0, curves_every=0, budget=None) as mon:
        for step, (a, b, y) in batches.items():
            mon.log(step, a, b, labels=y, temperature=taus[step])
    got = _values(tmp_path / "r")
    probs = torch.tensor(list(schema.TAU_QUANTILES.values()))
    for step in range(3):
        assert got[(step, schema.M_TEMPERATURE)] == pytest.approx(float(taus[step].mean()), abs=1e-6)
    for step in (0, 2):
        want = torch.quantile(taus[step], probs)
        for name, q in zip(schema.TAU_QUANTILES, want, strict=True):
            assert got[(step, name)] == pytest.approx(float(q), abs=1e-6), (step, name)
        # each anchor's own τ in the false-negative penalty share
        fn = F.false_negative_share(*batches[step], taus[step])
        assert got[(step, schema.M_FALSE_NEG_PENALTY_SHARE)] == pytest.approx(
            float(fn.penalty_share), abs=1e-6
        )
    assert not any((1, name) in got for name in schema.TAU_QUANTILES)


@pytest.mark.parametrize(
    ("tau", "error", "match"),
    [
        (torch.full((39,), 0.1), ValueError, r"shape \(40,\)"),
        (torch.full((40, 1), 0.1), ValueError, r"shape \(40,\)"),
        (torch.ones(40, dtype=torch.long), TypeError, "floating point"),
        (torch.full((40,), 0.1, device="meta"), ValueError, "meta"),
    ],
)
def test_per_sample_temperature_is_checked_at_call_time(tmp_path, tau, error, match):
    a, b, _ = _batch(1)
    with Monitor(tmp_path / "r", pairwise_every=0, strict=True) as mon, pytest.raises(error, match=match):
        mon.log(0, a, b, temperature=tau)


def test_bad_per_sample_temperature_values_are_caught_at_pairwise_steps(tmp_path):
    a, b, _ = _batch(2)
    tau = torch.full((40,), 0.1)
    tau[5] = -1.0
    with Monitor(tmp_path / "r", pairwise_every=2, spectrum_every=0, curves_every=0, strict=True) as mon:
        mon.log(1, a, b, temperature=tau)  # not a pairwise step: values are not read (no host sync)
        with pytest.raises(ValueError, match="per-sample temperature must be positive"):
            mon.log(2, a, b, temperature=tau)


def test_per_sample_temperature_follows_dropped_nonfinite_rows(tmp_path):
    a, b, y = _batch(4)
    a[3] = float("nan")
    tau = torch.linspace(0.05, 0.5, 40)
    with Monitor(tmp_path / "r", pairwise_every=1, spectrum_every=0, curves_every=0, budget=None) as mon:
        mon.log(0, a, b, labels=y, temperature=tau)
    got = _values(tmp_path / "r")
    keep = torch.arange(40) != 3
    assert got[(0, schema.M_TAU_Q50)] == pytest.approx(float(tau[keep].median()), abs=1e-6)
    fn = F.false_negative_share(a[keep], b[keep], y[keep], tau[keep])
    assert got[(0, schema.M_FALSE_NEG_PENALTY_SHARE)] == pytest.approx(float(fn.penalty_share), abs=1e-6)


# --- N modalities --------------------------------------------------------------------------------------


def _three(seed: int, n: int = 30, d: int = 6):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, d, generator=g)
    return {m: z + 0.7 * torch.randn(n, d, generator=g) for m in ("image", "text", "audio")}


def test_mapping_of_modalities_logs_every_pair_at_pairwise_steps(tmp_path):
    batches = {step: _three(step) for step in range(3)}
    with Monitor(tmp_path / "r", pairwise_every=2, spectrum_every=0, curves_every=0, budget=None) as mon:
        for step, mods in batches.items():
            mon.log(step, mods)
    got = _values(tmp_path / "r")
    for step in (0, 2):
        gm = F.modality_gap_matrix(batches[step])
        for p, first in enumerate(gm.names):
            for q, second in enumerate(gm.names):
                if p < q:
                    name = schema.pair_metric(schema.M_PAIR_GAP, first, second)
                    assert got[(step, name)] == pytest.approx(float(gm.gap[p, q]), abs=1e-6)
                if p != q:
                    name = schema.pair_metric(schema.M_PAIR_RETRIEVAL, first, second)
                    assert got[(step, name)] == pytest.approx(float(gm.retrieval[p, q]), abs=1e-6)
        # the first two modalities are a and b of every other statistic
        mrr = F.rank_summary(F.positive_ranks(batches[step]["image"], batches[step]["text"])).mrr
        assert got[(step, schema.M_MRR)] == pytest.approx(float(mrr), abs=1e-6)
    assert not any(key[0] == 1 and key[1].startswith("gap/") for key in got)
    meta = read_run(tmp_path / "r").meta
    assert meta["modalities"] == ["image", "text"] and meta["two_modality"]


def test_mapping_of_modalities_drops_rows_non_finite_in_any_modality(tmp_path):
    mods = _three(9)
    mods["audio"][4] = float("nan")
    with Monitor(tmp_path / "r", pairwise_every=1, spectrum_every=0, curves_every=0, budget=None) as mon:
        mon.log(0, mods)
    got = _values(tmp_path / "r")
    keep = torch.arange(30) != 4
    gm = F.modality_gap_matrix({m: z[keep] for m, z in mods.items()})
    assert got[(0, "gap/text-audio")] == pytest.approx(float(gm.gap[1, 2]), abs=1e-6)


@pytest.mark.parametrize(
    ("mods", "match"),
    [
        ({"image": torch.randn(5, 3)}, "at least 2"),
        ({"image": torch.randn(5, 3), "text": torch.randn(4, 3)}, "row i of every modality"),
        ({"image": torch.randn(5, 3), "a-b": torch.randn(5, 3)}, "no '/' or '-'"),
    ],
)
def test_bad_mapping_of_modalities_is_refused(tmp_path, mods, match):
    mon = Monitor(tmp_path / "r", pairwise_every=0, strict=True)
    with mon, pytest.raises(ValueError, match=match):
        mon.log(0, mods)
