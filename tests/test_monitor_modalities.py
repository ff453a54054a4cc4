"""N >= 3 modalities: Symile's multilinear inner product (MIP) histograms, in functional and the Monitor."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cldiag import Monitor, read_run, schema
from cldiag import functional as F

NEAR_EDGE = 1e-5  # float32 vs float64 rounding can move a score this close to an edge into the next bin


def _mods(seed: int, n: int = 24, d: int = 6, names=("image", "text", "audio")) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, d, generator=g)
    return {m: z + 0.7 * torch.randn(n, d, generator=g) for m in names}


def _brute_scores(zs: list[torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
    """Matched and mismatched MIPs in float64, one loop per (modality, anchor, other row)."""
    u = [torch.nn.functional.normalize(z.double(), dim=1) for z in zs]
    n = u[0].shape[0]
    pos = [float(torch.stack([z[i] for z in u]).prod(dim=0).sum()) for i in range(n)]
    neg = []
    for m in range(len(u)):
        for i in range(n):
            others = torch.stack([z[i] for k, z in enumerate(u) if k != m]).prod(dim=0)
            neg.extend(float(others @ u[m][j]) for j in range(n) if j != i)
    return np.array(pos), np.array(neg)


def _assert_counts(counts: np.ndarray, scores: np.ndarray, edges: np.ndarray) -> None:
    """``counts`` equal the float64 histogram of ``scores`` but for scores within NEAR_EDGE of an edge."""
    want, _ = np.histogram(np.clip(scores, -1.0, 1.0), bins=edges)
    assert counts.sum() == len(scores)
    near = int((np.abs(scores[:, None] - edges[None, 1:-1]) < NEAR_EDGE).any(axis=1).sum())
    assert near <= len(scores) // 1000  # the comparison below is a real one
    assert np.abs(counts - want).sum() <= 2 * near


# --- functional -----------------------------------------------------------------------------------------


def test_multilinear_histograms_count_multilinear_scores():
    zs = list(_mods(1, n=40, d=5).values())
    h = F.multilinear_histograms(*zs, bins=20)
    s = F.multilinear_scores(*zs)
    edges = h.edges.double().numpy()
    assert h.pos.dtype == torch.int64 and h.neg.shape == (20,)
    assert h.pos.sum() == 40 and h.neg.sum() == 3 * 40 * 39
    _assert_counts(h.pos.numpy(), s.pos.double().numpy(), edges)
    _assert_counts(h.neg.numpy(), s.neg.double().flatten().numpy(), edges)
    pos, neg = _brute_scores(zs)
    _assert_counts(h.neg.numpy(), neg, edges)
    _assert_counts(h.pos.numpy(), pos, edges)
    assert float(h.pos_mean) == pytest.approx(pos.mean(), abs=1e-6)
    assert float(h.neg_mean) == pytest.approx(neg.mean(), abs=1e-6)


def test_multilinear_histograms_take_edges_and_refuse_one_row():
    zs = list(_mods(2, n=10).values())
    edges = torch.tensor([-1.0, -0.1, 0.0, 0.1, 1.0])
    h = F.multilinear_histograms(*zs, bins=edges)
    assert torch.equal(h.edges, edges) and h.neg.sum() == 3 * 10 * 9
    _assert_counts(h.neg.numpy(), _brute_scores(zs)[1], edges.double().numpy())
    with pytest.raises(ValueError, match="at least 2"):
        F.multilinear_histograms(torch.randn(1, 3), torch.randn(1, 3), torch.randn(1, 3))
    with pytest.raises(ValueError, match="at least 2 modalities"):
        F.multilinear_histograms(torch.randn(4, 3))


def test_multilinear_histograms_read_no_value_on_the_host():
    # On the meta device any host read (.item(), bool(tensor), data-dependent indexing) raises.
    zs = [torch.randn(8, 4, device="meta") for _ in range(3)]
    h = F.multilinear_histograms(*zs, bins=10)
    assert h.pos.device.type == h.neg.device.type == "meta" and h.neg.shape == (10,)
    assert F.histogram_overlap(h.pos, h.neg).device.type == "meta"


# --- Monitor --------------------------------------------------------------------------------------------


def _hist(run_dir, kind: str) -> dict[int, np.ndarray]:
    h = read_run(run_dir).histograms()
    h = h.loc[h["kind"] == kind]
    return {int(step): part.sort_values("bin_left")["count"].to_numpy() for step, part in h.groupby("step")}


def _edges(run_dir, kind: str, step: int) -> np.ndarray:
    h = read_run(run_dir).histograms(step=step)
    h = h.loc[h["kind"] == kind].sort_values("bin_left")
    return np.r_[h["bin_left"].to_numpy(np.float64), h["bin_right"].to_numpy(np.float64)[-1]]


def _scalars(run_dir, metric: str) -> dict[int, float]:
    df = read_run(run_dir).scalars(metrics=[metric])
    return dict(zip(df["step"].astype(int), df["value"], strict=True))


def _monitor(run_dir, **kw) -> Monitor:
    return Monitor(run_dir, pairwise_every=2, spectrum_every=0, curves_every=0, budget=None, bins=25, **kw)


def test_three_modalities_log_mip_histograms_at_pairwise_steps(tmp_path):
    batches = {step: _mods(10 + step) for step in range(3)}
    with _monitor(tmp_path / "r") as mon:
        for step, mods in batches.items():
            mon.log(step, mods)
    pos, neg = _hist(tmp_path / "r", schema.HIST_MIP_POS), _hist(tmp_path / "r", schema.HIST_MIP_NEG)
    assert sorted(pos) == sorted(neg) == [0, 2]
    overlap = _scalars(tmp_path / "r", schema.M_MIP_OVERLAP)
    assert sorted(overlap) == [0, 2]
    for step in (0, 2):
        edges = _edges(tmp_path / "r", schema.HIST_MIP_NEG, step)
        assert len(edges) == 26 and edges[0] == -1.0 and edges[-1] == 1.0
        want_pos, want_neg = _brute_scores(list(batches[step].values()))
        _assert_counts(pos[step], want_pos, edges)
        _assert_counts(neg[step], want_neg, edges)
        assert pos[step].sum() == 24 and neg[step].sum() == 3 * 24 * 23
        p, q = pos[step] / pos[step].sum(), neg[step] / neg[step].sum()
        assert overlap[step] == pytest.approx(np.minimum(p, q).sum(), abs=1e-6)
    # matched triples of a shared latent score above mismatched ones: the overlap is well below 1
    assert max(overlap.values()) < 0.8


def test_mip_histograms_use_the_capped_rows_of_the_pair_metrics(tmp_path, monkeypatch):
    monkeypatch.setattr(F, "ROW_CAP", 16)
    mods = _mods(3, n=40, names=("a", "b", "c", "d"))
    with _monitor(tmp_path / "r") as mon:
        mon.log(0, mods)
    rows = F.subsample_rows(40, 16, seed=0, device=torch.device("cpu"))
    assert rows is not None
    want_pos, want_neg = _brute_scores([z[rows] for z in mods.values()])
    edges = _edges(tmp_path / "r", schema.HIST_MIP_POS, 0)
    _assert_counts(_hist(tmp_path / "r", schema.HIST_MIP_POS)[0], want_pos, edges)
    _assert_counts(_hist(tmp_path / "r", schema.HIST_MIP_NEG)[0], want_neg, edges)
    assert _hist(tmp_path / "r", schema.HIST_MIP_NEG)[0].sum() == 4 * 16 * 15


@pytest.mark.parametrize("how", ["two_modalities", "two_tensors", "one_view"])
def test_no_mip_histograms_below_three_modalities(tmp_path, how):
    mods = _mods(4, names=("image", "text"))
    with _monitor(tmp_path / "r") as mon:
        for step in range(3):
            if how == "two_modalities":
                mon.log(step, mods)
            elif how == "two_tensors":
                mon.log(step, mods["image"], mods["text"])
            else:
                mon.log(step, mods["image"])
    kinds = set(read_run(tmp_path / "r").histograms()["kind"])
    assert not kinds & {schema.HIST_MIP_POS, schema.HIST_MIP_NEG}
    assert schema.M_MIP_OVERLAP not in read_run(tmp_path / "r").metrics()
    if how != "one_view":
        assert schema.HIST_POS in kinds  # the score histograms were logged at the same steps
