"""Every write of the dashboard and the lab stays under its root: links on the way are refused, pruning
deletes only cldiag's own files. Each case hashes a tree outside the root before and after."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from rel_helpers import make_run

from cldiag import paths
from cldiag import projection as P
from cldiag.lab.trainer import LabConfig, train
from cldiag.store import RunStore, RunStoreError


def tree_digest(root: Path) -> str:
    """A digest of every name, kind and file content under ``root`` (links are not followed)."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in sorted(os.walk(root)):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = Path(dirpath) / name
            h.update(str(path.relative_to(root)).encode())
            if path.is_symlink():
                h.update(b"link:" + os.readlink(path).encode())
            elif path.is_file():
                h.update(path.read_bytes())
    return h.hexdigest()


@pytest.fixture
def outside(tmp_path):
    """A user's folder beside the run root, holding files that look like cache files."""
    folder = tmp_path / "outside"
    folder.mkdir()
    for i in range(6):
        (folder / f"{i:040x}.npz").write_bytes(b"user data %d" % i)
        os.utime(folder / f"{i:040x}.npz", (i, i))  # older than anything the cache writes
    (folder / "notes.txt").write_text("keep me")
    return folder


def _fill_cache(cache: P.ProjectionCache, n: int = 4) -> None:
    for i in range(n):
        cache.save(f"{i:040x}".replace("0", "a"), np.zeros((3, 2)), np.arange(3), None)


@pytest.mark.parametrize("linked", [".cldiag_cache", ".cldiag_cache/projections"])
def test_projection_cache_never_writes_or_prunes_through_a_link(tmp_path, outside, monkeypatch, linked):
    monkeypatch.setenv("CLDIAG_CACHE_DIR", str(tmp_path / "user-cache"))
    run = tmp_path / "root" / "run"
    make_run(run, steps=2)
    link = run / linked
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside, target_is_directory=True)
    before = tree_digest(outside)
    directory = P.cache_dir_for(run)
    assert directory == tmp_path / "user-cache" / "projections"
    _fill_cache(P.ProjectionCache(directory, max_files=1))
    # A cache built by hand on the linked path refuses to save, and so cannot prune either.
    assert not P.ProjectionCache(run / ".cldiag_cache" / "projections", max_files=1).save(
        "b" * 40, np.zeros((3, 2)), np.arange(3), None
    )
    assert tree_digest(outside) == before
    assert len(list(directory.glob("*.npz"))) == 1  # the user cache itself is pruned as usual


def test_pruning_deletes_only_regular_cache_files_in_a_dir_cldiag_made(tmp_path, outside):
    run = tmp_path / "root" / "run"
    make_run(run, steps=2)
    cache = P.ProjectionCache(P.cache_dir_for(run), max_files=2)
    _fill_cache(cache, 1)
    directory = cache.directory
    assert (directory / paths.OWNED_MARKER).is_file()
    # Planted in the cache: links named like cache files (to a file and to a folder) and a user's file.
    (directory / ("c" * 40 + ".npz")).symlink_to(outside / f"{0:040x}.npz")
    (directory / ("d" * 40 + ".npz")).symlink_to(outside, target_is_directory=True)
    (directory / "mine.txt").write_text("a user's file")
    for p in directory.iterdir():
        os.utime(p, (1, 1), follow_symlinks=False)
    before = tree_digest(outside)
    _fill_cache(cache, 4)
    assert tree_digest(outside) == before
    assert (directory / "mine.txt").exists()
    assert (directory / ("c" * 40 + ".npz")).is_symlink() and (directory / ("d" * 40 + ".npz")).is_symlink()
    regular = [p for p in directory.glob("*.npz") if not p.is_symlink()]
    assert len(regular) == 2


def test_a_directory_cldiag_did_not_make_is_never_pruned(tmp_path, outside):
    before = tree_digest(outside)
    cache = P.ProjectionCache(outside, max_files=1)  # pointed at a user's folder by mistake
    _fill_cache(cache, 2)
    assert all((outside / f"{i:040x}.npz").exists() for i in range(6))
    assert before != tree_digest(outside)  # it did cache (two new files) …
    for p in outside.glob("a*.npz"):
        p.unlink()
    assert tree_digest(outside) == before  # … and touched nothing else


def test_cache_load_ignores_a_linked_file(tmp_path, outside):
    cache = P.ProjectionCache(tmp_path / "cache")
    _fill_cache(cache, 1)
    key = "e" * 40
    (tmp_path / "cache" / f"{key}.npz").symlink_to("/dev/zero")
    assert cache.load(key) is None


def test_owned_dir_refuses_links_and_files_on_the_way(tmp_path, outside):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "b").symlink_to(outside, target_is_directory=True)
    with pytest.raises(paths.UnsafePathError, match="symbolic link"):
        paths.owned_dir(tmp_path / "a", "b/c")
    (tmp_path / "f").write_text("x")
    with pytest.raises(paths.UnsafePathError, match="not a directory"):
        paths.owned_dir(tmp_path, "f/c")
    with pytest.raises(paths.UnsafePathError, match=r"\.\."):
        paths.owned_dir(tmp_path, "../x")
    made = paths.owned_dir(tmp_path, "x/y")
    assert made == Path(os.path.realpath(tmp_path)) / "x" / "y" and (made / paths.OWNED_MARKER).exists()
    assert not list(outside.glob("c"))


def test_lab_refuses_a_linked_run_directory(tmp_path, outside):
    root = tmp_path / "lab"
    root.mkdir()
    (root / "preset-a").symlink_to(outside, target_is_directory=True)
    before = tree_digest(outside)
    with pytest.raises(paths.UnsafePathError, match="symbolic link"):
        train(LabConfig(steps=2), str(root / "preset-a"), overwrite=True)
    (root / "preset-b").mkdir()
    (root / "preset-b" / "scalars").symlink_to(outside, target_is_directory=True)
    with pytest.raises(paths.UnsafePathError, match="symbolic link"):
        train(LabConfig(steps=2), str(root / "preset-b"), overwrite=True)
    assert tree_digest(outside) == before


def test_store_refuses_a_table_directory_linked_out_of_the_run(tmp_path, outside):
    run = tmp_path / "root" / "run"
    make_run(run, steps=2)
    (run / "spectra").rename(tmp_path / "old-spectra")
    (run / "spectra").symlink_to(outside, target_is_directory=True)
    before = tree_digest(outside)
    store = RunStore(run)
    table = pa.table({"x": [1]})
    with pytest.raises(RunStoreError, match="outside"):
        store.write_part("spectra", table, 99)
    assert tree_digest(outside) == before
