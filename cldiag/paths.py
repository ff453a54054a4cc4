"""Path confinement for everything the dashboard and the lab read by name or write: no Streamlit here.

Two directions:

* Reading by a name a person typed (``?run=``, the "open a run in a subfolder" box):
  :func:`resolve_under_root` accepts only a relative path that stays under the run root.
* Writing (the projection cache, a lab run directory): :func:`owned_dir` creates or checks a directory
  below an anchor the caller trusts, refusing a symbolic link or a non-directory at every level on the way,
  and marks directories it created; :func:`prune_owned` deletes only regular files whose names match
  cldiag's own pattern, inside such a marked, non-linked directory, never following a link.

The checks are made just before each write; a process that swaps a directory for a link between the check
and the write (a race on a directory it already controls) is outside what these checks promise.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

__all__ = [
    "OWNED_MARKER",
    "UnsafePathError",
    "is_within",
    "owned_dir",
    "prune_owned",
    "refuse_linked_run_dir",
    "resolve_under_root",
]

OWNED_MARKER = ".cldiag-owned"
"""File cldiag puts in a directory it created, so that pruning never touches a directory it did not make."""


class UnsafePathError(ValueError):
    """A path would leave its root, or goes through a symbolic link or a non-directory where cldiag writes."""


def _is_remote(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def is_within(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> bool:
    """Whether ``path`` resolves (links followed) to ``root`` or somewhere below it."""
    real_root = os.path.realpath(root)
    return os.path.commonpath([os.path.realpath(path), real_root]) == real_root


def resolve_under_root(root: str, relative: str) -> str:
    """The location of ``relative`` inside ``root``; refuses anything that would leave the root.

    Args:
        root: the configured run root (local path or fsspec URI).
        relative: a path typed by the user, relative to the root (``group/run-3``).

    Returns:
        The joined path or URI.

    Raises:
        ValueError: ``relative`` is empty, absolute, a URI, contains ``..``, or (locally) resolves outside
            the root through a symbolic link.
    """
    text = relative.strip().replace("\\", "/")
    if not text:
        raise ValueError("the path is empty")
    if "://" in text or text.startswith(("/", "~")) or re.match(r"^[A-Za-z]:", text):
        raise ValueError(f"{relative!r} must be a path relative to the run root, not an absolute path or URI")
    parts = [p for p in PurePosixPath(text).parts if p != "."]
    if ".." in parts:
        raise ValueError(f"{relative!r} may not leave the run root ('..')")
    if not parts:
        raise ValueError("the path names the run root itself")
    if _is_remote(root):
        return posixpath.join(root.rstrip("/"), *parts)
    local_root = root[len("file://") :] if root.startswith("file://") else root
    candidate = os.path.realpath(os.path.join(local_root, *parts))
    if not is_within(candidate, local_root):
        raise ValueError(f"{relative!r} resolves outside the run root (a symbolic link?)")
    return candidate


def _check_component(path: Path) -> bool:
    """Whether ``path`` exists as a real directory; False if absent. Raises for a link or a non-directory."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(info.st_mode):
        raise UnsafePathError(f"refusing to write through {path}: it is a symbolic link")
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafePathError(f"refusing to write into {path}: it is not a directory")
    return True


def owned_dir(anchor: str | os.PathLike[str], relative: str | Sequence[str], *, create: bool = True) -> Path:
    """The directory ``anchor/relative``, created level by level with no symbolic link on the way.

    ``anchor`` itself is trusted as given (a user may keep their runs on a linked disk); every level
    below it must be a real directory or absent. Levels that this call creates get an
    :data:`OWNED_MARKER` file, so :func:`prune_owned` knows cldiag made them.

    Args:
        anchor: an existing directory the caller trusts (a run directory, the user's cache directory).
        relative: the levels below it (``".cldiag_cache/projections"`` or a list of names); no ``..``.
        create: create missing levels (otherwise a missing level raises ``FileNotFoundError``).

    Returns:
        The real path of the directory (``realpath(anchor)`` joined with the levels).

    Raises:
        UnsafePathError: a level is a symbolic link or not a directory, or ``relative`` leaves the anchor.
        FileNotFoundError: the anchor is missing, or a level is and ``create`` is False.
    """
    names = list(PurePosixPath(relative).parts) if isinstance(relative, str) else list(relative)
    if not names or any(n in ("", ".", "..") or "/" in n or os.sep in n for n in names):
        raise UnsafePathError(f"{relative!r} must name directories below the anchor, without '..'")
    base = Path(os.path.realpath(anchor))
    if not base.is_dir():
        raise FileNotFoundError(f"{os.fspath(anchor)!r} is not a directory")
    path = base
    for name in names:
        path = path / name
        if _check_component(path):
            continue
        if not create:
            raise FileNotFoundError(f"{path} does not exist")
        try:
            os.mkdir(path, 0o755)
        except FileExistsError:  # made by a concurrent writer: check what it is
            _check_component(path)
            continue
        (path / OWNED_MARKER).touch()
    return path


def prune_owned(directory: str | os.PathLike[str], pattern: str, keep: int) -> list[Path]:
    """Delete the oldest cldiag-written files in ``directory`` beyond the newest ``keep`` of them.

    Only regular files (never a link, whatever it points to) whose whole name matches ``pattern`` are
    candidates, and only in a directory that is itself not a link and holds :data:`OWNED_MARKER`.
    Anything else is left alone.

    Args:
        directory: the cache directory (made by :func:`owned_dir`).
        pattern: a regular expression that cldiag's own file names match in full.
        keep: how many of the newest matching files stay.

    Returns:
        The files deleted.
    """
    path = Path(directory)
    try:
        if not _check_component(path) or not os.path.isfile(path / OWNED_MARKER):
            return []
    except UnsafePathError:
        return []
    regex = re.compile(pattern)
    mine: list[tuple[float, str]] = []
    with os.scandir(path) as entries:
        for entry in entries:
            if not regex.fullmatch(entry.name):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                mine.append((info.st_mtime, entry.name))
    mine.sort()
    removed = []
    for _, name in mine[: max(0, len(mine) - keep)]:
        victim = path / name
        try:
            if stat.S_ISREG(os.lstat(victim).st_mode):
                victim.unlink()
                removed.append(victim)
        except OSError:
            continue
    return removed


def refuse_linked_run_dir(run_dir: str | os.PathLike[str], entries: Sequence[str] = ()) -> None:
    """Refuse a local run directory that is a symbolic link, or holds links where cldiag writes.

    Writing a run through ``runs/name -> /elsewhere`` would write (or, with overwrite, delete) outside the
    folder the user gave. Remote URIs are left to their filesystem.

    Args:
        run_dir: the run directory about to be written (may not exist yet).
        entries: names inside it that the writer creates (``meta.json``, table directories).

    Raises:
        UnsafePathError: the directory or one of ``entries`` is a symbolic link, or the directory is not
            a directory.
    """
    text = os.fspath(run_dir)
    if _is_remote(text):
        return
    if text.startswith("file://"):
        text = text[len("file://") :]
    path = Path(os.path.abspath(os.path.expanduser(text)))
    if not _check_component(path):
        return
    for name in entries:
        if os.path.islink(path / name):
            raise UnsafePathError(f"refusing to write through {path / name}: it is a symbolic link")
