"""2-D projections of embedding snapshots (PCA, UMAP, t-SNE) with a stratified point cap and a disk cache.

PCA is instant and deterministic; UMAP and t-SNE take seconds to minutes (UMAP also spends ~20 s compiling
numba code in a fresh process), so their results are cached on disk under a key made of everything that
determines them: the run, the snapshot step, the method and its parameters, the point cap, the seed and a
digest of the data itself (so a rewritten snapshot never returns a stale picture).

Cache files are plain ``.npz`` arrays read with ``allow_pickle=False``: the cache never unpickles anything.
They live in ``<run>/.cldiag_cache/projections`` when the run is a writable local directory, else in
``$CLDIAG_CACHE_DIR`` or ``~/.cache/cldiag/projections`` (read-only and remote runs).

The dashboard runs slow projections on a background thread (``cldiag.ui.BackgroundJobs``), showing PCA at
once and the UMAP picture when it is ready.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import stat
import sys
import threading
import warnings
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from cldiag import paths
from cldiag._checks import check_array_matrix

__all__ = [
    "DEFAULT_PARAMS",
    "METHODS",
    "Projection",
    "ProjectionCache",
    "cache_dir_for",
    "compute_projection",
    "find_cached",
    "pca_2d",
    "project",
    "projection_key",
    "stratified_indices",
    "to_points",
    "warm_up",
]

Method = Literal["pca", "umap", "tsne"]
METHODS: tuple[str, ...] = ("pca", "umap", "tsne")
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "pca": {},
    # Cosine neighbours: contrastive embeddings are compared by angle.
    "umap": {"n_neighbors": 15, "min_dist": 0.1, "metric": "cosine"},
    "tsne": {"perplexity": 30.0},
}
MIN_POINTS_NONLINEAR = 10
"""UMAP and t-SNE need a neighbourhood; below this many points only PCA is offered."""
WARM_ROWS = 4200
"""Rows of the warm-up UMAP: above umap-learn's 4,096-row switch from exact neighbours to NN-descent, so
the warm-up compiles the code a real snapshot (thousands of points) runs, not the small-data path."""
ENV_WARM = "CLDIAG_WARM_UMAP"
"""Set to ``0`` to turn the dashboard's UMAP warm-up off."""
_warm_lock = threading.Lock()
_warm_thread: threading.Thread | None = None


@dataclass(frozen=True)
class Projection:
    """A 2-D projection of (a capped subset of) a snapshot.

    Attributes:
        coords: n × 2 float32 coordinates.
        indices: the input rows they belong to (ascending int64), length n.
        method: ``pca``, ``umap`` or ``tsne``.
        explained: for PCA, the share of variance of the two components; None otherwise.
        from_cache: whether the result was read from the disk cache.
    """

    coords: np.ndarray
    indices: np.ndarray
    method: str
    explained: tuple[float, float] | None
    from_cache: bool


# -- sampling --------------------------------------------------------------------------------------------
def _stratum_key(value: Hashable) -> str:
    """A sortable key per stratum; None, NaN and pandas' NA are one "missing" stratum."""
    if isinstance(value, tuple):
        return "\x1f".join(_stratum_key(v) for v in value)
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return "\x00missing"
    return str(value)


def stratified_indices(
    n: int, cap: int, strata: Sequence[Hashable] | np.ndarray | None = None, seed: int = 0
) -> np.ndarray:
    """Choose at most ``cap`` of ``n`` rows, keeping each stratum's share (every stratum keeps ≥ 1 row).

    Quotas are proportional to stratum size (largest remainders get the leftover slots), so a rare class
    stays visible in a capped scatter instead of vanishing by chance.

    Args:
        n: number of rows.
        cap: the most rows to keep (``n`` or fewer rows are all kept).
        strata: a stratum per row (e.g. label, or (modality, label)); None samples uniformly.
        seed: random seed.

    Returns:
        Ascending row indices, ``min(n, cap)`` of them. With more strata than ``cap`` the rows are drawn
        uniformly (the cap is never exceeded).
    """
    if cap < 1:
        raise ValueError(f"cap must be >= 1, got {cap}")
    if strata is not None and len(strata) != n:
        raise ValueError(f"strata must have one entry per row: got {len(strata)} for {n} rows")
    if n <= cap:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    if strata is None:
        return np.sort(rng.choice(n, size=cap, replace=False)).astype(np.int64)
    _, codes = np.unique(np.asarray([_stratum_key(s) for s in strata], dtype=object), return_inverse=True)
    sizes = np.bincount(codes)
    if sizes.size > cap:  # more strata than points: a hard cap wins over one point per stratum
        return np.sort(rng.choice(n, size=cap, replace=False)).astype(np.int64)
    exact = cap * sizes / n
    quota = np.maximum(np.floor(exact).astype(np.int64), 1)
    left = cap - int(quota.sum())
    while left < 0:  # the one-per-stratum floor overshot: take back from the largest quotas
        k = int(np.argmax(quota))
        quota[k] -= 1
        left += 1
    if left > 0:
        room = sizes - quota
        order = np.argsort(-(exact - np.floor(exact)), kind="stable")
        for k in order:
            if left == 0:
                break
            if room[k] > 0:
                quota[k] += 1
                left -= 1
    quota = np.minimum(quota, sizes)
    picked = [rng.choice(np.flatnonzero(codes == k), size=int(q), replace=False) for k, q in enumerate(quota)]
    return np.sort(np.concatenate(picked)).astype(np.int64)


# -- projections -----------------------------------------------------------------------------------------
def _unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def _check_matrix(x: np.ndarray) -> None:
    check_array_matrix(x, "x")


def pca_2d(x: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """First two principal components of the L2-normalized rows (rows with NaN/Inf land at the origin).

    Signs are fixed so that each component's largest-magnitude loading is positive (the picture does not
    flip between reruns).

    Returns:
        ``(N×2 float32 coordinates, share of variance of component 1 and 2)``.
    """
    _check_matrix(x)
    finite = np.isfinite(x).all(axis=1)
    z = _unit_rows(np.where(finite[:, None], x, 0.0).astype(np.float64))
    if not finite.any():
        return np.zeros((z.shape[0], 2), np.float32), (0.0, 0.0)
    # Non-finite rows sit at the mean, i.e. the origin after centering, and do not move the components.
    z[~finite] = z[finite].mean(axis=0)
    z = z - z.mean(axis=0)
    cov = z.T @ z / max(z.shape[0] - 1, 1)
    vals, vecs = np.linalg.eigh(cov)
    order = np.argsort(vals)[::-1][:2]
    vecs = vecs[:, order]
    vals = np.clip(vals[order], 0.0, None)
    signs = np.sign(vecs[np.abs(vecs).argmax(axis=0), np.arange(vecs.shape[1])])
    vecs = vecs * np.where(signs == 0, 1.0, signs)
    coords = z @ vecs
    if coords.shape[1] < 2:  # d = 1: the second axis carries nothing
        coords = np.column_stack([coords, np.zeros(coords.shape[0])])
        vals = np.r_[vals, 0.0]
    total = float(np.trace(cov))
    explained = (float(vals[0] / total), float(vals[1] / total)) if total > 0 else (0.0, 0.0)
    return coords.astype(np.float32), explained


def project(
    x: np.ndarray,
    method: Method,
    params: Mapping[str, Any] | None = None,
    *,
    seed: int = 0,
) -> tuple[np.ndarray, tuple[float, float] | None]:
    """Project rows to 2-D with PCA, UMAP or t-SNE (rows are L2-normalized first).

    Args:
        x: N×d float array.
        method: ``pca``, ``umap`` or ``tsne``.
        params: method parameters overriding :data:`DEFAULT_PARAMS` (UMAP: ``n_neighbors``, ``min_dist``,
            ``metric``; t-SNE: ``perplexity``).
        seed: random seed (UMAP and t-SNE).

    Returns:
        ``(N×2 float32 coordinates, PCA variance shares or None)``.

    Raises:
        ValueError: unknown method, or fewer than :data:`MIN_POINTS_NONLINEAR` rows for UMAP/t-SNE.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "pca":
        return pca_2d(x)
    _check_matrix(x)
    if not np.isfinite(x).all():
        raise ValueError(f"{method} needs finite rows; drop rows with NaN/Inf first")
    z = _unit_rows(x.astype(np.float64))
    n = z.shape[0]
    if n < MIN_POINTS_NONLINEAR:
        raise ValueError(f"{method} needs at least {MIN_POINTS_NONLINEAR} points, got {n}")
    p = {**DEFAULT_PARAMS[method], **(params or {})}
    # Half the cores: the dashboard keeps serving while this runs, and oversubscribed BLAS/OpenMP threads
    # made t-SNE 20x slower on a busy 2-core machine.
    with threadpool_limits(limits=max(1, (os.cpu_count() or 2) // 2)):
        coords = _fit_nonlinear(z, method, p, seed)
    return np.asarray(coords, dtype=np.float32), None


def _fit_nonlinear(z: np.ndarray, method: str, p: Mapping[str, Any], seed: int) -> np.ndarray:
    n = z.shape[0]
    if method == "umap":
        import umap  # imported lazily: numba start-up costs seconds

        with warnings.catch_warnings():
            # random_state forces a single thread and says so; reproducibility matters more here.
            warnings.simplefilter("ignore")
            reducer = umap.UMAP(
                n_components=2,
                n_neighbors=int(min(p["n_neighbors"], n - 1)),
                min_dist=float(p["min_dist"]),
                metric=str(p["metric"]),
                random_state=seed,
            )
            coords = reducer.fit_transform(z)
    else:
        from sklearn.manifold import TSNE

        perplexity = float(min(p["perplexity"], (n - 1) / 3))
        coords = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(z)
    return np.asarray(coords)


def _cache_umap_jit() -> int:
    """Let numba keep umap-learn's compiled functions on disk, as pynndescent already does its own.

    umap-learn jit-compiles its layout and graph code in every process without ``cache=True``; numba's
    ``Dispatcher.enable_caching`` stores each compiled function on disk, keyed on the source file, so a
    later process loads it instead of compiling. The files go to ``$NUMBA_CACHE_DIR`` when the user set
    it, else to cldiag's own cache directory (``<cache>/cldiag/numba``), never beside umap's source in
    site-packages. Functions numba cannot cache are compiled as before.

    Returns:
        How many dispatchers were switched.
    """
    from numba.core import config as numba_config
    from numba.core.dispatcher import Dispatcher

    switched = 0
    user_dir = numba_config.CACHE_DIR
    # numba picks a cache's directory when caching is enabled: point it at a directory cldiag owns.
    numba_config.CACHE_DIR = user_dir or str(_user_cache_dir().parent / "numba")
    try:
        for name, module in list(sys.modules.items()):
            if not (name == "umap" or name.startswith("umap.")) or module is None:
                continue
            for obj in list(vars(module).values()):
                if isinstance(obj, Dispatcher) and obj._cache.__class__.__name__ == "NullCache":
                    try:
                        obj.enable_caching()
                        switched += 1
                    except Exception:  # noqa: BLE001 - a function numba cannot cache compiles as usual
                        continue
    finally:
        numba_config.CACHE_DIR = user_dir
    return switched


WARM_EPOCHS = 20
"""Layout epochs of the warm-up fit: each epoch runs the same compiled code, so a few suffice."""


def _warm() -> None:
    import umap  # the import itself takes seconds (numba, pynndescent)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba's notes on functions it cannot cache; random_state's note
        _cache_umap_jit()
        x = np.random.default_rng(0).standard_normal((WARM_ROWS, 16))
        p = DEFAULT_PARAMS["umap"]
        reducer = umap.UMAP(
            n_components=2,
            n_neighbors=p["n_neighbors"],
            min_dist=p["min_dist"],
            metric=p["metric"],
            random_state=0,
            n_epochs=WARM_EPOCHS,
        )
        # The same input type as project() hands over: unit rows in float64.
        with threadpool_limits(limits=max(1, (os.cpu_count() or 2) // 2)):
            reducer.fit_transform(_unit_rows(x))


def warm_up() -> threading.Thread | None:
    """Compile UMAP's numba code on a background thread, once per process, so the first UMAP is fast.

    A fresh process compiles numba code for tens of seconds before its first UMAP (benchmarks/README.md,
    ``bench_dashboard.py --umap-first``); the dashboard calls this when it starts, so by the time someone
    opens the Embeddings page the compiled code is ready (and, through numba's disk cache, ready in later
    processes too). The warm-up fits :data:`WARM_ROWS` random points
    for :data:`WARM_EPOCHS` epochs with the dashboard's UMAP parameters. The thread is a daemon and holds
    no lock a page needs; ``$CLDIAG_WARM_UMAP=0`` turns it off (only a served dashboard calls this).

    Returns:
        The warm-up thread (the same one on every call), or None when turned off or umap is missing.
    """
    global _warm_thread
    if os.environ.get(ENV_WARM, "1") == "0":
        return None
    with _warm_lock:
        if _warm_thread is None:
            if importlib.util.find_spec("umap") is None:
                return None
            _warm_thread = threading.Thread(target=_warm_safely, name="cldiag-umap-warm-up", daemon=True)
            _warm_thread.start()
        return _warm_thread


def _warm_safely() -> None:
    try:
        _warm()
    except Exception:  # a failed warm-up only means that the first UMAP compiles as before
        logging.getLogger("cldiag.projection").warning("UMAP warm-up failed", exc_info=True)


# -- cache -----------------------------------------------------------------------------------------------
CACHE_LEVELS = (".cldiag_cache", "projections")
"""The cache's directories inside a run (each created by cldiag, never followed if it is a link)."""
_CACHE_FILE = r"[A-Za-z0-9]{1,64}\.npz"
"""The names of cache files; pruning deletes nothing else."""


def _user_cache_dir() -> Path:
    explicit = os.environ.get("CLDIAG_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser() / "projections"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cldiag" / "projections"


def cache_dir_for(run_path: str | os.PathLike[str]) -> Path:
    """Where projections of a run are cached: inside the run if it is a writable local dir, else per user.

    Inside the run the cache is ``<run>/.cldiag_cache/projections``, only while neither level is a symbolic
    link or a file (a link there could point anywhere: the cache then moves to the user's directory).
    """
    text = os.fspath(run_path)
    if text.startswith("file://"):
        text = text[len("file://") :]
    if "://" not in text and os.path.isdir(text) and os.access(text, os.W_OK | os.X_OK):
        try:
            return paths.owned_dir(text, CACHE_LEVELS, create=False)
        except FileNotFoundError:
            return Path(os.path.realpath(text)).joinpath(*CACHE_LEVELS)
        except paths.UnsafePathError:
            pass
    return _user_cache_dir()


def projection_key(
    *,
    run_path: str,
    step: int | Sequence[int] | None,
    method: str,
    params: Mapping[str, Any],
    cap: int,
    seed: int,
    x: np.ndarray,
    strata: Sequence[Hashable] | np.ndarray | None,
) -> str:
    """A hex key naming one projection: run, step, method, parameters, cap, seed and a digest of the data."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(str(x.shape).encode())
    digest.update(np.ascontiguousarray(x).tobytes())
    if strata is not None:
        digest.update("\x1f".join(map(str, strata)).encode())
    steps = [] if step is None else [int(s) for s in step] if isinstance(step, Sequence) else [int(step)]
    spec = {
        "run": str(run_path),
        "steps": steps,
        "method": method,
        "params": {k: params[k] for k in sorted(params)},
        "cap": int(cap),
        "seed": int(seed),
        "data": digest.hexdigest(),
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:40]


class ProjectionCache:
    """Projections on disk as ``<key>.npz`` (coords, indices, explained); at most ``max_files`` are kept.

    The cache writes only into directories it checks first: the last ``levels`` levels of ``directory``
    are created by it (and marked as its own) or must be real directories, never symbolic links. Pruning
    deletes only regular ``<alphanumeric key>.npz`` files in a directory cldiag made (see
    :func:`cldiag.paths.prune_owned`).

    Args:
        directory: where the files live (created on first save).
        max_files: the oldest files beyond this many are deleted after each save.
        levels: how many trailing levels of ``directory`` belong to the cache (default: 2 for
            ``<run>/.cldiag_cache/projections``, else 1).
    """

    def __init__(
        self, directory: str | os.PathLike[str], max_files: int = 200, *, levels: int | None = None
    ) -> None:
        if max_files < 1:
            raise ValueError(f"max_files must be >= 1, got {max_files}")
        self.directory = Path(directory)
        self.max_files = max_files
        if levels is None:
            levels = len(CACHE_LEVELS) if self.directory.parts[-len(CACHE_LEVELS) :] == CACHE_LEVELS else 1
        if not 1 <= levels < len(self.directory.parts):
            raise ValueError(f"levels must be between 1 and {len(self.directory.parts) - 1}, got {levels}")
        self.levels = levels

    def _checked_directory(self) -> Path:
        """The cache directory, created with no link on the way (raises ``OSError`` / ``UnsafePathError``)."""
        anchor = self.directory.parents[self.levels - 1]
        anchor.mkdir(parents=True, exist_ok=True)
        return paths.owned_dir(anchor, self.directory.parts[-self.levels :])

    def _path(self, key: str) -> Path:
        if not key.isalnum():
            raise ValueError(f"cache keys are alphanumeric, got {key!r}")
        return self.directory / f"{key}.npz"

    def load(self, key: str) -> tuple[np.ndarray, np.ndarray, tuple[float, float] | None] | None:
        """The cached ``(coords, indices, explained)`` for ``key``, or None (absent or unreadable)."""
        path = self._path(key)
        try:
            if not stat.S_ISREG(os.lstat(path).st_mode):  # a link or a device is never a cache file
                return None
            with np.load(path, allow_pickle=False) as data:
                coords = data["coords"].astype(np.float32)
                indices = data["indices"].astype(np.int64)
                explained = data["explained"]
        except (OSError, KeyError, ValueError):
            return None
        if coords.ndim != 2 or coords.shape[1] != 2 or coords.shape[0] != indices.shape[0]:
            return None
        return coords, indices, (float(explained[0]), float(explained[1])) if explained.size == 2 else None

    def save(
        self,
        key: str,
        coords: np.ndarray,
        indices: np.ndarray,
        explained: tuple[float, float] | None,
    ) -> bool:
        """Write one projection atomically; False (nothing cached) when the directory is unwritable."""
        self._path(key)
        try:
            directory = self._checked_directory()
        except (OSError, ValueError):  # unwritable, or a link / file where the cache would go
            return False
        path = directory / f"{key}.npz"
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            # O_EXCL: never write through a link planted under the temporary name.
            with open(tmp, "xb") as fh:
                np.savez(
                    fh,
                    coords=np.asarray(coords, np.float32),
                    indices=np.asarray(indices, np.int64),
                    explained=np.asarray(explained if explained is not None else [], np.float64),
                )
            os.replace(tmp, path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            return False
        paths.prune_owned(directory, _CACHE_FILE, self.max_files)
        return True


def find_cached(
    x: np.ndarray,
    *,
    method: Method,
    params: Mapping[str, Any] | None = None,
    cap: int = 5000,
    strata: Sequence[Hashable] | np.ndarray | None = None,
    seed: int = 0,
    run_path: str = "",
    step: int | Sequence[int] | None = None,
    cache: ProjectionCache,
) -> tuple[str, Projection | None]:
    """The cache key of a projection and the cached result, if any (arguments: :func:`compute_projection`)."""
    _check_matrix(x)
    full = {**DEFAULT_PARAMS.get(method, {}), **(params or {})}
    key = projection_key(
        run_path=run_path, step=step, method=method, params=full, cap=cap, seed=seed, x=x, strata=strata
    )
    hit = cache.load(key)
    return key, None if hit is None else Projection(hit[0], hit[1], method, hit[2], from_cache=True)


def compute_projection(
    x: np.ndarray,
    *,
    method: Method,
    params: Mapping[str, Any] | None = None,
    cap: int = 5000,
    strata: Sequence[Hashable] | np.ndarray | None = None,
    seed: int = 0,
    run_path: str = "",
    step: int | Sequence[int] | None = None,
    cache: ProjectionCache | None = None,
) -> Projection:
    """Cap the rows (stratified), project them, and read/write the disk cache.

    Args:
        x: N×d float array of the whole snapshot.
        method: ``pca``, ``umap`` or ``tsne``.
        params: method parameters (see :func:`project`).
        cap: the most points to project.
        strata: one stratum per row for the cap (labels, or modality + label).
        seed: seed of the sampling and the projection.
        run_path: the run's location (part of the cache key).
        step: the snapshot step(s) (part of the cache key).
        cache: where to look up and store the result; None computes without caching.

    Returns:
        The :class:`Projection` (``from_cache`` tells whether it came from disk). Rows with NaN/Inf are
        never among ``indices``.
    """
    _check_matrix(x)
    full = {**DEFAULT_PARAMS.get(method, {}), **(params or {})}
    key = None
    if cache is not None:
        key, hit = find_cached(
            x,
            method=method,
            params=full,
            cap=cap,
            strata=strata,
            seed=seed,
            run_path=run_path,
            step=step,
            cache=cache,
        )
        if hit is not None:
            return hit
    # Rows with NaN/Inf have no place on the sphere: they are left out of every projection.
    finite = np.flatnonzero(np.isfinite(x).all(axis=1))
    kept_strata = None
    if strata is not None:
        as_objects = np.empty(len(strata), dtype=object)  # 1-D even when each stratum is a tuple
        as_objects[:] = list(strata)
        kept_strata = as_objects[finite]
    indices = finite[stratified_indices(finite.size, cap, kept_strata, seed)]
    coords, explained = project(x[indices], method, full, seed=seed)
    if cache is not None and key is not None:
        cache.save(key, coords, indices, explained)
    return Projection(coords, indices, method, explained, from_cache=False)


def to_points(projection: Projection, info: pd.DataFrame) -> pd.DataFrame:
    """The projected rows as a frame: ``x, y`` beside the snapshot's other columns (``step, sample_id …``).

    Args:
        projection: the result of :func:`compute_projection` on the snapshot's matrix.
        info: the snapshot's info frame (one row per matrix row, as from ``Run.embedding_matrix``).
    """
    if projection.indices.size and int(projection.indices.max()) >= len(info):
        raise ValueError(
            f"projection rows go up to {int(projection.indices.max())}; the info frame has {len(info)} rows",
        )
    points = info.iloc[projection.indices].reset_index(drop=True)
    return points.assign(x=projection.coords[:, 0], y=projection.coords[:, 1])
