"""Projections: stratified cap, PCA against scikit-learn, the disk cache and background jobs."""

from __future__ import annotations

import os
import sys
import types

import numpy as np
import pandas as pd
import pytest
from sklearn.decomposition import PCA

from cldiag import projection as P

RNG = np.random.default_rng(0)


def clusters(n_per=30, d=8, k=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = np.eye(d)[:k] * 5
    x = np.concatenate([c + rng.normal(scale=0.3, size=(n_per, d)) for c in centers]).astype(np.float32)
    return x, np.repeat(np.arange(k), n_per)


def knn_purity(coords, labels, k=5):
    d = ((coords[:, None] - coords[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    nn = np.argsort(d, axis=1)[:, :k]
    return float((labels[nn] == labels[:, None]).mean())


def test_stratified_indices_keeps_shares_and_rare_strata():
    strata = np.array(["a"] * 900 + ["b"] * 90 + ["c"] * 10)
    idx = P.stratified_indices(1000, 100, strata, seed=1)
    assert idx.size == 100 and np.all(np.diff(idx) > 0)
    chosen = strata[idx]
    assert [(chosen == s).sum() for s in "abc"] == [90, 9, 1]
    one_rare = np.array([0] * 999 + [1])
    assert 1 in one_rare[P.stratified_indices(1000, 10, one_rare)]
    np.testing.assert_array_equal(P.stratified_indices(5, 10), np.arange(5))
    plain = P.stratified_indices(1000, 37, seed=3)
    assert plain.size == 37 and np.unique(plain).size == 37
    np.testing.assert_array_equal(plain, P.stratified_indices(1000, 37, seed=3))
    with pytest.raises(ValueError, match="one entry per row"):
        P.stratified_indices(10, 5, [1, 2])
    with pytest.raises(ValueError, match="cap"):
        P.stratified_indices(10, 0)


def test_stratified_indices_groups_missing_labels_together():
    strata = [None] * 30 + [np.nan] * 30 + [pd.NA] * 40 + [1] * 100
    idx = P.stratified_indices(200, 20, strata)
    assert idx.size == 20 and (idx < 100).sum() == 10  # the 100 missing labels are one stratum


def test_stratified_indices_never_exceeds_cap_with_many_strata():
    idx = P.stratified_indices(1000, 50, np.arange(1000))
    assert idx.size == 50 and np.unique(idx).size == 50
    pairs = [("image", i % 3) for i in range(90)] + [("text", i % 3) for i in range(10)]
    chosen = [pairs[i] for i in P.stratified_indices(100, 10, pairs)]
    assert len(chosen) == 10 and set(chosen) == set(pairs)  # every (modality, label) stratum stays


def test_pca_matches_sklearn_on_unit_rows():
    x = RNG.normal(size=(300, 6)) * np.array([5, 3, 1, 1, 1, 1])
    coords, explained = P.pca_2d(x.astype(np.float32))
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    ref = PCA(n_components=2).fit(unit)
    expected = ref.transform(unit)
    for j in range(2):
        sign = np.sign(coords[:, j] @ expected[:, j])
        np.testing.assert_allclose(coords[:, j], sign * expected[:, j], atol=1e-4)
    np.testing.assert_allclose(explained, ref.explained_variance_ratio_, atol=1e-6)


def test_pca_edge_cases():
    line = np.array([[1.0, 0.0], [-1.0, 0.0], [1.0, 0.0]])
    coords, explained = P.pca_2d(line)
    assert explained == pytest.approx((1.0, 0.0))
    assert coords.shape == (3, 2)
    one_dim, ex1 = P.pca_2d(np.array([[1.0], [-1.0], [2.0]]))
    assert one_dim.shape == (3, 2) and np.all(one_dim[:, 1] == 0) and ex1[1] == 0
    with_nan = RNG.normal(size=(20, 4))
    with_nan[3, 1] = np.nan
    c, _ = P.pca_2d(with_nan)
    np.testing.assert_allclose(c[3], [0, 0], atol=1e-6)
    with pytest.raises(ValueError, match="2-D"):
        P.pca_2d(np.zeros(5))
    with pytest.raises(TypeError, match="floats"):
        P.pca_2d(np.zeros((3, 3), dtype=np.int64))


def test_project_validates_method_and_size():
    with pytest.raises(ValueError, match="method"):
        P.project(np.zeros((20, 3)), "mds")
    with pytest.raises(ValueError, match="at least"):
        P.project(RNG.normal(size=(5, 3)), "tsne")


def test_tsne_separates_clusters():
    x, y = clusters()
    coords, explained = P.project(x, "tsne", {"perplexity": 10})
    assert coords.shape == (90, 2) and coords.dtype == np.float32 and explained is None
    assert knn_purity(coords, y) > 0.95


def test_umap_gets_unit_rows_cosine_metric_and_a_feasible_neighbourhood(monkeypatch):
    seen = {}

    class FakeUMAP:
        def __init__(self, **kwargs):
            seen.update(kwargs)

        def fit_transform(self, z):
            seen["norms"] = np.linalg.norm(z, axis=1)
            return z[:, :2] * 2

    monkeypatch.setitem(sys.modules, "umap", types.SimpleNamespace(UMAP=FakeUMAP))
    x = RNG.normal(size=(12, 4)) * 7
    coords, explained = P.project(x, "umap", {"min_dist": 0.3})
    assert seen["n_neighbors"] == 11 and seen["metric"] == "cosine" and seen["min_dist"] == 0.3
    assert seen["n_components"] == 2 and seen["random_state"] == 0
    np.testing.assert_allclose(seen["norms"], 1.0)
    assert coords.dtype == np.float32 and explained is None
    with pytest.raises(ValueError, match="finite"):
        P.project(np.full((12, 4), np.nan), "umap")


@pytest.mark.slow
def test_umap_separates_clusters():
    x, y = clusters()
    coords, _ = P.project(x, "umap", {"n_neighbors": 10})
    assert coords.shape == (90, 2)
    assert knn_purity(coords, y) > 0.95


def test_compute_projection_caches_on_disk(tmp_path):
    x, y = clusters(n_per=50)
    cache = P.ProjectionCache(tmp_path / "cache")
    kw = dict(method="pca", cap=60, strata=y, run_path="/runs/a", step=10, cache=cache)
    first = P.compute_projection(x, **kw)
    assert not first.from_cache and first.indices.size == 60 and first.explained is not None
    files = list((tmp_path / "cache").glob("*.npz"))
    assert len(files) == 1
    with np.load(files[0], allow_pickle=False) as data:  # plain arrays, no pickles
        assert set(data.files) == {"coords", "indices", "explained"}
    second = P.compute_projection(x, **kw)
    assert second.from_cache
    np.testing.assert_array_equal(second.coords, first.coords)
    np.testing.assert_array_equal(second.indices, first.indices)
    assert second.explained == pytest.approx(first.explained)
    # Every ingredient of the key matters.
    assert not P.compute_projection(x, **{**kw, "step": 11}).from_cache
    assert not P.compute_projection(x, **{**kw, "cap": 61}).from_cache
    assert not P.compute_projection(x + 1e-3, **kw).from_cache
    assert not P.compute_projection(x, **{**kw, "run_path": "/runs/b"}).from_cache


def test_compute_projection_skips_nonfinite_rows():
    x, _ = clusters(n_per=10)
    x[[0, 5], 2] = np.nan
    proj = P.compute_projection(x, method="pca", cap=100)
    assert proj.indices.size == 28 and 0 not in proj.indices and 5 not in proj.indices


def test_cache_survives_corrupt_and_unwritable_files(tmp_path):
    cache = P.ProjectionCache(tmp_path)
    key = "abc123"
    (tmp_path / f"{key}.npz").write_bytes(b"not an npz")
    assert cache.load(key) is None
    assert cache.save(key, np.zeros((2, 2)), np.arange(2), None)
    coords, idx, explained = cache.load(key)
    assert coords.shape == (2, 2) and idx.tolist() == [0, 1] and explained is None
    blocked = P.ProjectionCache(tmp_path / "file-not-dir" / "x")
    (tmp_path / "file-not-dir").write_text("a file where a directory should be")
    assert not blocked.save(key, np.zeros((2, 2)), np.arange(2), None)
    with pytest.raises(ValueError, match="alphanumeric"):
        cache.load("../escape")


def test_cache_prunes_oldest_files(tmp_path):
    cache = P.ProjectionCache(tmp_path / "cache", max_files=3)
    for i in range(5):
        cache.save(f"k{i}", np.zeros((1, 2)), np.arange(1), None)
        os.utime(tmp_path / "cache" / f"k{i}.npz", (i, i))
    assert sorted(p.stem for p in (tmp_path / "cache").glob("*.npz")) == ["k2", "k3", "k4"]


def test_cache_dir_for_local_writable_and_remote(tmp_path, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    assert P.cache_dir_for(run) == run / ".cldiag_cache" / "projections"
    monkeypatch.setenv("CLDIAG_CACHE_DIR", str(tmp_path / "user"))
    assert P.cache_dir_for("s3://bucket/runs/a") == tmp_path / "user" / "projections"
    assert P.cache_dir_for(tmp_path / "missing") == tmp_path / "user" / "projections"
