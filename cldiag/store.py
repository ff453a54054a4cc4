"""All file access of a run directory: local paths and fsspec URIs, atomic part files, ``meta.json``.

Writers never modify a file a reader may see: a part file is written under a hidden temporary name and
renamed into place (``os.replace`` is atomic on POSIX), and object stores (``s3://``) publish an object only
when its upload completes. Readers therefore see whole files or nothing. (A parquet file is unreadable until
its footer is written; a reader polling a directory written in place saw over a thousand errors in 30 s
where temp-name + rename gave none.)
"""

from __future__ import annotations

import io
import json
import os
import posixpath
import secrets
import shutil
import stat
from collections.abc import Iterator
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from cldiag import schema

IfExists = Literal["error", "resume", "overwrite"]


class RunStoreError(RuntimeError):
    """A run directory cannot be created, opened or written; the message says why."""


def _split_uri(uri: str | os.PathLike[str], storage_options: dict[str, Any] | None) -> tuple[Any, str]:
    """Return ``(fsspec filesystem or None for local, path)`` for a path or URI."""
    text = os.fspath(uri)
    if text.startswith("file://"):
        text = text[len("file://") :]
    if "://" not in text:
        if storage_options:
            raise ValueError(f"storage_options were given but {text!r} is a local path")
        return None, os.path.abspath(os.path.expanduser(text))
    try:
        import fsspec
    except ImportError as exc:  # pragma: no cover - fsspec is a declared dependency
        raise RunStoreError("remote run directories need fsspec: pip install fsspec") from exc
    protocol = text.split("://", 1)[0]
    try:
        fs, path = fsspec.core.url_to_fs(text, **(storage_options or {}))
    except (ImportError, ValueError) as exc:
        hint = " (pip install 'cldiag[s3]')" if protocol in ("s3", "s3a") else ""
        raise RunStoreError(f"cannot open a filesystem for {text!r}: {exc}{hint}") from exc
    return fs, path.rstrip("/")


_OBJECT_STORE_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "oss"})


def _is_object_store(fs: Any) -> bool:
    """Whether ``fs`` is an object store, which has buckets and keys but no directories."""
    protocol = fs.protocol
    protocols = {protocol} if isinstance(protocol, str) else set(protocol)
    return bool(protocols & _OBJECT_STORE_PROTOCOLS)


class RunStore:
    """File access for one run directory (local or remote).

    Args:
        uri: a local path, ``file://`` URI, or any fsspec URI such as ``s3://bucket/prefix/run``.
        storage_options: passed to fsspec for remote URIs (for S3: ``key``, ``secret``,
            ``client_kwargs={"endpoint_url": ...}``); the standard AWS settings (``AWS_ENDPOINT_URL``,
            credential chain) apply when omitted.
    """

    def __init__(self, uri: str | os.PathLike[str], storage_options: dict[str, Any] | None = None) -> None:
        self.uri = os.fspath(uri)
        self.storage_options = storage_options
        self.fs, self.root = _split_uri(uri, storage_options)

    # -- paths ------------------------------------------------------------------------------------------
    @property
    def is_local(self) -> bool:
        """Whether the run lives on the local filesystem."""
        return self.fs is None

    def join(self, *parts: str) -> str:
        """Join path components under the run root."""
        if self.is_local:
            return os.path.join(self.root, *parts)
        return posixpath.join(self.root, *parts)

    def exists(self, relpath: str = "") -> bool:
        """Whether a file or directory exists under the run root."""
        path = self.join(relpath) if relpath else self.root
        return os.path.exists(path) if self.is_local else bool(self.fs.exists(path))

    def listdir(self, relpath: str = "") -> list[str]:
        """Names (not paths) directly under ``relpath``; empty if it does not exist."""
        path = self.join(relpath) if relpath else self.root
        if self.is_local:
            try:
                return sorted(os.listdir(path))
            except (FileNotFoundError, NotADirectoryError):
                return []
        try:
            entries = self.fs.ls(path, detail=False, refresh=True)
        except FileNotFoundError:
            return []
        return sorted(posixpath.basename(e.rstrip("/")) for e in entries)

    def part_files(self, relpath: str) -> list[str]:
        """Full paths of the complete part files under ``relpath`` (temporary files excluded), sorted."""
        return [
            self.join(relpath, n)
            for n in self.listdir(relpath)
            if n.startswith(schema.PART_PREFIX) and n.endswith(schema.PART_SUFFIX)
        ]

    def signature(self, path: str) -> tuple[int, float]:
        """``(size, mtime)`` of a file: changes when the file is replaced."""
        if self.is_local:
            st = os.stat(path)
            return st.st_size, st.st_mtime
        info = self.fs.info(path)
        mtime = info.get("mtime") or info.get("LastModified") or 0
        if hasattr(mtime, "timestamp"):
            mtime = mtime.timestamp()
        return int(info.get("size", 0)), float(mtime)

    # -- reading ----------------------------------------------------------------------------------------
    def read_table(self, path: str, columns: list[str] | None = None) -> pa.Table:
        """Read one parquet file (raises the underlying error for a corrupt file)."""
        if self.is_local:
            return pq.read_table(path, columns=columns)
        with self.fs.open(path, "rb") as fh:
            return pq.read_table(io.BytesIO(fh.read()), columns=columns)

    def parquet_file(self, path: str) -> pq.ParquetFile:
        """One part file opened for its footer and for row batches read through a 1 MiB buffer, not whole."""
        if self.is_local:
            return pq.ParquetFile(path, buffer_size=1 << 20, pre_buffer=False)
        return pq.ParquetFile(self.fs.open(path, "rb"), buffer_size=1 << 20, pre_buffer=False)

    def read_meta(self) -> dict[str, Any]:
        """Read ``meta.json``: ``FileNotFoundError`` if absent, ``ValueError`` if it cannot be trusted.

        Locally only a regular file is read (a FIFO, a device or a link out of the run directory is
        refused without blocking), and at most :data:`cldiag.schema.MAX_META_BYTES` bytes of it; nesting
        too deep for the JSON parser is a ``ValueError`` like any other malformed file.
        """
        path = self.join(schema.META_FILE)
        limit = schema.MAX_META_BYTES
        try:
            data = (
                self._read_meta_local(path, limit) if self.is_local else self._read_meta_remote(path, limit)
            )
        except FileNotFoundError:
            raise
        except OSError as exc:
            if not self.is_local and "Not Found" in str(exc):
                raise FileNotFoundError(path) from exc
            raise
        if len(data) > limit:
            raise ValueError(f"{path} is larger than the {limit:,}-byte limit for meta.json")
        try:
            meta = json.loads(data.decode("utf-8"))
        except RecursionError as exc:
            raise ValueError(f"{path} is nested too deeply to parse") from exc
        except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError, too many digits, bad UTF-8
            raise ValueError(f"{path} is not valid JSON: {exc}") from exc
        if not isinstance(meta, dict):
            raise ValueError(f"{path} does not hold a JSON object")
        return meta

    def _read_meta_local(self, path: str, limit: int) -> bytes:
        real_root = os.path.realpath(self.root)
        if os.path.commonpath([os.path.realpath(path), real_root]) != real_root:
            raise ValueError(f"{path} links outside the run directory; not read")
        # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then says what was opened.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise ValueError(f"{path} is not a regular file; not read")
            if info.st_size > limit:
                raise ValueError(
                    f"{path} is {info.st_size:,} bytes, over the {limit:,}-byte limit for meta.json"
                )
            with os.fdopen(fd, "rb", closefd=False) as fh:
                return fh.read(limit + 1)
        finally:
            os.close(fd)

    def _read_meta_remote(self, path: str, limit: int) -> bytes:
        with self.fs.open(path, "rb") as fh:
            return fh.read(limit + 1)

    # -- writing ----------------------------------------------------------------------------------------
    def makedirs(self, relpath: str = "") -> None:
        """Create a directory under the run root (no-op on object stores that have no directories)."""
        path = self.join(relpath) if relpath else self.root
        if self.is_local:
            os.makedirs(path, exist_ok=True)
        elif not _is_object_store(self.fs):
            # s3fs.makedirs would create a missing bucket: a typo in the bucket name must fail instead.
            self.fs.makedirs(path, exist_ok=True)

    def _atomic_write_bytes(self, relpath: str, data: bytes) -> str:
        final = self.join(relpath)
        if self.is_local:
            directory = os.path.dirname(final)
            os.makedirs(directory, exist_ok=True)
            self._check_confined(directory)
            tmp = os.path.join(directory, f".{os.path.basename(final)}.{secrets.token_hex(4)}.tmp")
            try:
                with open(tmp, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, final)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
        else:
            # An object store publishes an object only once its upload completes: already atomic.
            with self.fs.open(final, "wb") as fh:
                fh.write(data)
        return final

    def _check_confined(self, directory: str) -> None:
        """Refuse to write into a directory of the run that a symbolic link takes outside the run."""
        real_root = os.path.realpath(self.root)
        if os.path.commonpath([os.path.realpath(directory), real_root]) != real_root:
            raise RunStoreError(
                f"refusing to write into {directory}: a symbolic link takes it outside {self.root}"
            )

    def write_meta(self, meta: dict[str, Any]) -> None:
        """Write ``meta.json`` atomically."""
        data = json.dumps(meta, indent=2, sort_keys=True, default=str).encode("utf-8")
        self._atomic_write_bytes(schema.META_FILE, data)

    def write_part(self, relpath: str, table: pa.Table, seq: int) -> str:
        """Write ``table`` as a new part file under ``relpath`` atomically and return its path.

        The name ``part-<seq>-<random>.parquet`` sorts by write order and never collides with a part from
        another writer session (resumed runs, compaction).
        """
        name = f"{schema.PART_PREFIX}{seq:09d}-{secrets.token_hex(4)}{schema.PART_SUFFIX}"
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        return self._atomic_write_bytes(posixpath.join(relpath, name), sink.getvalue().to_pybytes())

    def remove(self, path: str) -> None:
        """Delete one file (full path)."""
        if self.is_local:
            os.unlink(path)
        else:
            self.fs.rm(path)

    def clear(self) -> None:
        """Delete the whole run directory. Refuses a directory that is not a cldiag run."""
        if not self.exists():
            return
        if not self.exists(schema.META_FILE):
            names = set(self.listdir())
            if names - set(schema.TABLES):
                raise RunStoreError(
                    f"refusing to delete {self.uri!r}: it holds files but no meta.json, "
                    "so it is not a cldiag run",
                )
        if self.is_local:
            shutil.rmtree(self.root)
        else:
            self.fs.rm(self.root, recursive=True)

    def iter_all_parts(self) -> Iterator[str]:
        """Every part file of every table, snapshot directories included."""
        for table in schema.TABLES:
            if table == "embeddings":
                for sub in self.listdir(table):
                    yield from self.part_files(posixpath.join(table, sub))
            else:
                yield from self.part_files(table)


def snapshot_dir(step: int) -> str:
    """Relative directory of the embedding snapshot taken at ``step`` (hive-style partition)."""
    return posixpath.join("embeddings", f"step={int(step)}")


def parse_snapshot_dir(name: str) -> int | None:
    """The step of a ``step=N`` directory name, or None for anything else."""
    if not name.startswith("step="):
        return None
    try:
        return int(name[len("step=") :])
    except ValueError:
        return None
