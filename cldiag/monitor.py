"""The training hook: :class:`Monitor` logs contrastive diagnostics of each step to a parquet run.

Cost model (what runs when, B = batch size, d = embedding dim):

================================  ============  =====================================================
what                              cadence       cost
================================  ============  =====================================================
alignment, positive cosine,       every step    O(B·d), stays on the tensors' device (no host sync)
norms, non-finite share; with
two modalities gap, cones,
matched distance; loss, τ
uniformity, score histograms,     ``pairwise``  O(B²·d)
hardest negatives, retrieval,
tolerance, hardness at τ
spectra and effective rank        ``spectrum``  O(B·d² + d³)
temperature curves over a τ grid  ``curves``    O(B²·(d + #τ))
embedding snapshot                ``snapshot``  copies up to ``snapshot_size`` rows
================================  ============  =====================================================

Values stay on the device until a flush (every ``flush_every`` logged steps or ``flush_secs`` seconds),
which copies them to the host in one go and hands them to a background writer thread that writes new
part files atomically. ``close()`` — also called by the context manager and at interpreter exit — flushes
everything.

The hook never kills the training it watches: an error inside cldiag is reported once, loudly, and that
step's diagnostics are skipped (``strict=True`` raises instead, for tests and debugging).
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import queue
import socket
import threading
import time
import warnings
import weakref
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch

from cldiag import __version__, dist, host_tables, schema
from cldiag import functional as F
from cldiag.store import IfExists, RunStore, RunStoreError, snapshot_dir

__all__ = ["Monitor"]

logger = logging.getLogger("cldiag")

DEFAULT_TAUS: tuple[float, ...] = tuple(float(t) for t in np.logspace(-2, 0, 13))
"""τ grid of the temperature curves: 0.01 … 1, log-spaced (Wang & Liu 2021 study 0.07 … 1)."""

MAX_BINS = 1000
MAX_SNAPSHOT = 100_000
_OPENCLIP_KEYS = ("image_features", "text_features")

Number = float | int
TensorOrNumber = torch.Tensor | float | int
Meta = schema.Meta


class Monitor:
    """Log contrastive-learning diagnostics of a training run to a cldiag run directory.

    Args:
        run_dir: where the run goes: a local path, ``file://`` or any fsspec URI (``s3://bucket/runs/x``).
        config: your run configuration (τ, batch size, loss …), saved in ``meta.json`` and shown in the
            dashboard.
        modalities: names of two modalities, e.g. ``("image", "text")``, for two-tower/CLIP runs: enables
            the modality gap, cones and matched distance, and logs spectra and snapshots of both sides.
            ``None`` (default) means ``a`` and ``b`` are two views of the same inputs (SimCLR/MoCo); snapshots
            keep both views.
        name: display name (default: the directory name).
        pairwise_every: steps between O(B²) statistics (uniformity, histograms, tolerance, hardness). 0 = off.
        spectrum_every: steps between covariance spectra and effective rank. 0 = off.
        curves_every: steps between temperature curves over ``taus``. 0 = off.
        snapshot_every: steps between embedding snapshots. 0 = off.
        snapshot_size: rows per snapshot (collected over consecutive batches; capped at 100 000).
        bins: number of score-histogram bins on [−1, 1] (2 … 1000).
        taus: τ grid of the temperature curves (default: 13 values log-spaced over 0.01 … 1).
        flush_every: logged steps between flushes to disk.
        flush_secs: seconds between flushes, whichever comes first (keeps live dashboards current).
        if_exists: what to do when ``run_dir`` already holds a run: ``"error"`` (default), ``"resume"``
            (append; steps already logged are skipped, never duplicated) or ``"overwrite"``.
        strict: raise errors instead of reporting them and skipping the step's diagnostics.
        storage_options: fsspec options for remote ``run_dir`` URIs.
        heartbeat_secs: how often ``meta.json``'s heartbeat is refreshed while the process lives, so a
            reader can tell a live run from a crashed one.
        compact_on_close: merge each table's part files into one when the run closes (see
            :func:`cldiag.maintenance.compact_run`): a finished run then opens in the dashboard without
            parsing hundreds of small files. A failure is reported, never raised.

    Under ``torch.distributed`` every rank calls :meth:`log` at the same steps (it gathers the global
    batch, as contrastive losses do); only rank 0 computes and writes.

    Example:
        >>> import torch, tempfile
        >>> from cldiag import Monitor, read_run
        >>> path = tempfile.mkdtemp() + "/run"
        >>> with Monitor(path, config={"tau": 0.1}) as mon:
        ...     for step in range(3):
        ...         a, b = torch.randn(32, 16), torch.randn(32, 16)
        ...         mon.log(step, a, b, temperature=0.1)
        >>> sorted(read_run(path).scalars().metric.unique())[:3]
        ['alignment', 'batch_size', 'dcl_coupling']
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        *,
        config: Mapping[str, Any] | None = None,
        modalities: Sequence[str] | None = None,
        name: str | None = None,
        pairwise_every: int = 25,
        spectrum_every: int = 250,
        curves_every: int = 250,
        snapshot_every: int = 1000,
        snapshot_size: int = 1024,
        bins: int = 50,
        taus: Sequence[float] | None = None,
        flush_every: int = 500,
        flush_secs: float = 30.0,
        if_exists: IfExists = "error",
        strict: bool = False,
        storage_options: dict[str, Any] | None = None,
        heartbeat_secs: float = 30.0,
        compact_on_close: bool = True,
    ) -> None:
        for arg, value in (
            ("pairwise_every", pairwise_every),
            ("spectrum_every", spectrum_every),
            ("curves_every", curves_every),
            ("snapshot_every", snapshot_every),
        ):
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{arg} must be an int >= 0 (0 turns it off), got {value!r}")
        if not isinstance(flush_every, int) or flush_every < 1:
            raise ValueError(f"flush_every must be an int >= 1, got {flush_every!r}")
        if not isinstance(bins, int) or not 2 <= bins <= MAX_BINS:
            raise ValueError(f"bins must be an int in [2, {MAX_BINS}], got {bins!r}")
        if not isinstance(snapshot_size, int) or not 1 <= snapshot_size <= MAX_SNAPSHOT:
            raise ValueError(f"snapshot_size must be an int in [1, {MAX_SNAPSHOT}], got {snapshot_size!r}")
        if if_exists not in ("error", "resume", "overwrite"):
            raise ValueError(f"if_exists must be 'error', 'resume' or 'overwrite', got {if_exists!r}")
        if modalities is not None:
            modalities = tuple(str(m) for m in modalities)
            if len(modalities) != 2 or modalities[0] == modalities[1] or not all(modalities):
                raise ValueError(f"modalities must be two distinct non-empty names, got {modalities!r}")
        taus_t = torch.tensor(list(taus if taus is not None else DEFAULT_TAUS), dtype=torch.float32)
        if taus_t.ndim != 1 or taus_t.numel() == 0 or not bool(torch.all(taus_t > 0)):
            raise ValueError(f"taus must be a non-empty sequence of positive numbers, got {taus!r}")

        self.pairwise_every = pairwise_every
        self.spectrum_every = spectrum_every
        self.curves_every = curves_every
        self.snapshot_every = snapshot_every
        self.snapshot_size = snapshot_size
        self.bins = bins
        self.taus = taus_t
        self.flush_every = flush_every
        self.flush_secs = float(flush_secs)
        self.strict = strict
        self.two_modality = modalities is not None
        self.modalities: tuple[str, str] = modalities or ("view1", "view2")  # type: ignore[assignment]
        self._modalities_explicit = modalities is not None

        self._is_writer = dist.rank() == 0
        self._pending = host_tables.Pending()
        self._last_flush = time.monotonic()
        self._snap_step: int | None = None
        self._snap_rows = 0
        self._sample_counter = 0
        self._resume_after: int | None = None
        self._reported: set[str] = set()
        self._closed = False
        self._seq = 0
        self._dim: int | None = None
        self._lock = threading.Lock()
        self._failed: list[dict[str, Any]] = []  # jobs hit by a transient error, oldest first
        self._writer_error: Exception | None = None  # raised in the training thread when strict
        self.errors: list[str] = []
        """Messages of the errors reported so far (each reported once)."""

        self._store: RunStore | None = None
        self._meta: dict[str, Any] = {}
        self._heartbeat_secs = float(heartbeat_secs)
        self._compact_on_close = bool(compact_on_close)
        self._storage_options = storage_options
        open_error: Exception | None = None
        if self._is_writer:
            try:
                self._open_store(run_dir, config, name, if_exists, storage_options)
            except Exception as exc:  # noqa: BLE001 - re-raised below, after telling the other ranks
                open_error = exc
        if dist.is_distributed():
            # Other ranks would otherwise block in their first log() until the process group times out.
            verdict = dist.broadcast_object(
                None if open_error is None else f"{type(open_error).__name__}: {open_error}"
            )
            if verdict is not None and open_error is None:
                raise RunStoreError(f"rank 0 could not open the run, so no rank logs: {verdict}")
        if open_error is not None:
            raise open_error
        if self._is_writer:
            self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
            self._start_writer()
        _live_monitors.add(self)

    # ---------------------------------------------------------------------------------------------------
    # set-up
    def _open_store(
        self,
        run_dir: str | os.PathLike[str],
        config: Mapping[str, Any] | None,
        name: str | None,
        if_exists: IfExists,
        storage_options: dict[str, Any] | None,
    ) -> None:
        try:
            store = RunStore(run_dir, storage_options)
            exists = store.exists(schema.META_FILE)
        except Exception as exc:  # remote filesystems raise their own types (botocore, aiohttp)
            raise RunStoreError(f"cannot open run directory {os.fspath(run_dir)!r}: {exc}") from exc
        if exists and if_exists == "error":
            raise FileExistsError(
                f"{store.uri!r} already holds a cldiag run. Pass if_exists='resume' to append to it or "
                "if_exists='overwrite' to replace it, or choose another run_dir.",
            )
        try:
            if exists and if_exists == "overwrite":
                store.clear()
                exists = False
            if exists:
                from cldiag.reader import read_run

                previous = read_run(store.uri, storage_options=storage_options)
                _refuse_live_writer(store.uri, previous.meta)
                self._meta = dict(previous.meta)
                self._meta.update(host=socket.gethostname(), pid=os.getpid())
                self._resume_after = previous.last_step()
                self._seq = sum(1 for _ in store.iter_all_parts())
                self._meta["status"] = schema.STATUS_RUNNING
                self._meta["schema_version"] = schema.SCHEMA_VERSION  # new parts are written in this version
                self._meta.setdefault("resumed", []).append(
                    {"at": schema.now_iso(), "after_step": self._resume_after},
                )
                if config:
                    self._meta["config"] = {**self._meta.get("config", {}), **dict(config)}
                self._dim = self._meta.get("dim")
                if self._meta.get("two_modality") and not self._modalities_explicit:
                    self.two_modality = True
                    self.modalities = tuple(self._meta["modalities"])  # type: ignore[assignment]
            else:
                store.makedirs()
                self._meta = schema.new_meta(
                    name=name or os.path.basename(store.root.rstrip("/")),
                    config=dict(config or {}),
                    modalities=self.modalities,
                    two_modality=self.two_modality,
                    dim=None,
                    cldiag_version=__version__,
                    torch_version=torch.__version__,
                )
                self._meta["pid"] = os.getpid()
            self._meta["heartbeat_secs"] = self._heartbeat_secs
            store.write_meta(self._meta)
        except (schema.SchemaVersionError, RunStoreError, FileExistsError):
            raise
        except Exception as exc:  # remote filesystems raise their own types (botocore, aiohttp)
            raise RunStoreError(f"cannot write run directory {store.uri!r}: {exc}") from exc
        self._store = store

    @property
    def run_dir(self) -> str:
        """The run directory (rank 0; empty string on other ranks)."""
        return self._store.uri if self._store is not None else ""

    # ---------------------------------------------------------------------------------------------------
    # public logging API
    def log(
        self,
        step: int,
        a: torch.Tensor | Mapping[str, Any],
        b: torch.Tensor | None = None,
        *,
        labels: torch.Tensor | Sequence[int] | None = None,
        temperature: TensorOrNumber | None = None,
        loss: TensorOrNumber | None = None,
        ids: torch.Tensor | Sequence[int] | None = None,
        meta: Meta | None = None,
    ) -> None:
        """Log one training step.

        Args:
            step: the global step (int, increasing).
            a: embeddings ``(B, d)`` of the first view/modality — or an open_clip-style output dict with
                ``image_features``, ``text_features`` and optionally ``logit_scale`` (already exponentiated,
                as open_clip returns it; τ = 1/logit_scale).
            b: embeddings ``(B, d)``; ``a[i]`` and ``b[i]`` are a positive pair. ``None`` logs single-view
                statistics only (uniformity, spectrum, snapshot).
            labels: class labels ``(B,)`` (integers) for tolerance and same-class curves.
            temperature: the loss's τ (float or tensor, e.g. a learnable one).
            loss: the step's loss (float or tensor).
            ids: sample ids ``(B,)`` stored with snapshot rows (default: a running counter).
            meta: what each sample is, kept with snapshot rows only (host data, read at snapshot steps): one
                short string per row (caption, sentence, file name; ``None`` for none) or a mapping of
                column name → such a sequence. Cut to ``schema.META_MAX_CHARS`` characters per cell and
                stored as plain text. Under DDP only the writing rank's own rows keep theirs.
        """
        if self._closed:
            self._report("log() called after close(); nothing is logged")
            return
        pending, sizes = self._pending, self._pending.sizes()
        try:
            self._log(step, a, b, labels, temperature, loss, ids, meta)
        except Exception as exc:
            # A step is logged whole or not at all: half a step's values could hold the very tensors that
            # failed (e.g. on a broken device), and one of them would make the whole next flush fail.
            if self._pending is pending:
                pending.truncate(sizes)
            if self.strict:
                raise
            self._report(f"step {step}: {type(exc).__name__}: {exc}", key=f"{type(exc).__name__}: {exc}")

    def log_scalar(self, step: int, name: str, value: TensorOrNumber) -> None:
        """Log any scalar of your own (tensor or number); it is buffered and written like the others."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        if not self._is_writer or self._skip(step):
            return
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                raise ValueError(f"scalar {name!r} must have one element, got shape {tuple(value.shape)}")
            value = value.detach().reshape(()).float()
        else:
            value = float(value)
        self._add(step, name, value)
        self._maybe_flush()

    def log_embeddings(
        self,
        step: int,
        z: torch.Tensor,
        *,
        labels: torch.Tensor | Sequence[int] | None = None,
        modality: str | None = None,
        ids: torch.Tensor | Sequence[int] | None = None,
        meta: Meta | None = None,
    ) -> None:
        """Store an embedding snapshot of a fixed probe set (e.g. held-out data) at ``step``.

        Rows beyond ``snapshot_size`` are dropped (uniformly spaced rows are kept). Call it once per modality
        for two-modality probes, with the same ``ids`` for both sides of a pair. ``meta`` is what each row
        is, as in :meth:`log`.
        """
        z = self._check_embedding("z", z)
        n = z.shape[0]
        labels_t = self._check_vector("labels", labels, n)
        ids_t = self._check_vector("ids", ids, n)
        schema.check_meta(meta, n)
        if not self._is_writer or self._skip(step):
            return
        rows: list[int] | range = range(n)
        if n > self.snapshot_size:
            keep_host = torch.linspace(0, n - 1, self.snapshot_size).round().long()
            rows, keep = keep_host.tolist(), keep_host.to(z.device)
            z, labels_t, ids_t = z[keep], _take(labels_t, keep), _take(ids_t, keep)
            n = self.snapshot_size
        if ids_t is None:
            ids_t = torch.arange(n, device=z.device)
        self._set_dim(z.shape[1])
        texts = None if meta is None else schema.encode_meta(meta, rows)
        self._pending.snapshots.append((int(step), modality or self.modalities[0], z, labels_t, ids_t, texts))
        self._maybe_flush()

    # ---------------------------------------------------------------------------------------------------
    # validation
    @staticmethod
    def _check_embedding(arg: str, z: Any) -> torch.Tensor:
        if not isinstance(z, torch.Tensor):
            raise TypeError(f"{arg} must be a torch.Tensor, got {type(z).__name__}")
        if z.ndim != 2:
            raise ValueError(f"{arg} must be 2-D (batch, dim), got shape {tuple(z.shape)}")
        if not z.dtype.is_floating_point:
            raise TypeError(f"{arg} must be a floating-point tensor, got dtype {z.dtype}")
        return z.detach()

    @staticmethod
    def _check_vector(arg: str, v: Any, n: int) -> torch.Tensor | None:
        if v is None:
            return None
        v = torch.as_tensor(v).detach()
        if v.dtype.is_floating_point or v.dtype == torch.bool or v.is_complex():
            raise TypeError(f"{arg} must hold integers, got dtype {v.dtype}")
        if v.shape != (n,):
            raise ValueError(f"{arg} must have shape ({n},) to match the batch, got {tuple(v.shape)}")
        return v.long()

    def _unpack(
        self,
        a: torch.Tensor | Mapping[str, Any],
        b: torch.Tensor | None,
        temperature: TensorOrNumber | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, TensorOrNumber | None]:
        if isinstance(a, Mapping):
            missing = [k for k in _OPENCLIP_KEYS if k not in a]
            if missing:
                raise KeyError(f"output dict lacks {missing}; it has keys {sorted(a)}")
            if b is not None:
                raise ValueError("pass either an output dict or two tensors, not both")
            if not self.two_modality and not self._modalities_explicit:
                self.two_modality = True
                self.modalities = ("image", "text")
                self._meta.update(modalities=list(self.modalities), two_modality=True)
            scale = a.get("logit_scale")
            if temperature is None and scale is not None:
                temperature = 1.0 / (scale.detach().reshape(()) if isinstance(scale, torch.Tensor) else scale)
            a, b = a["image_features"], a["text_features"]
        a = self._check_embedding("a", a)
        if b is not None:
            b = self._check_embedding("b", b)
            if a.shape != b.shape:
                raise ValueError(
                    "a and b must have the same shape (a[i], b[i] are a positive pair), got "
                    f"{tuple(a.shape)} and {tuple(b.shape)}",
                )
            if a.device != b.device:
                raise ValueError(f"a and b are on different devices ({a.device} and {b.device})")
        return a, b, temperature

    # ---------------------------------------------------------------------------------------------------
    # the step
    def _skip(self, step: int) -> bool:
        if self._resume_after is not None and step <= self._resume_after:
            self._report(
                f"steps <= {self._resume_after} were logged before this run was resumed; they are skipped "
                "so no step is written twice",
            )
            return True
        return False

    def _set_dim(self, dim: int) -> None:
        if self._dim is not None and dim != self._dim:
            raise ValueError(f"embedding dim changed from {self._dim} to {dim}; one run holds one dim")
        self._dim = dim

    def _add(self, step: int, name: str, value: torch.Tensor | float) -> None:
        p = self._pending
        p.scalar_steps.append(step)
        p.scalar_names.append(name)
        p.scalar_values.append(value)

    def _log(
        self,
        step: int,
        a: torch.Tensor | Mapping[str, Any],
        b: torch.Tensor | None,
        labels: torch.Tensor | Sequence[int] | None,
        temperature: TensorOrNumber | None,
        loss: TensorOrNumber | None,
        ids: torch.Tensor | Sequence[int] | None,
        meta: Meta | None = None,
    ) -> None:
        if not isinstance(step, int | np.integer) or isinstance(step, bool):
            raise TypeError(f"step must be an int, got {type(step).__name__}")
        step = int(step)
        local_error: Exception | None = None
        try:
            a, b, temperature = self._unpack(a, b, temperature)
            n = a.shape[0]
            labels_t = self._check_vector("labels", labels, n)
            ids_t = self._check_vector("ids", ids, n)
            schema.check_meta(meta, n)
            meta_rows = n  # gathered rows come in rank order: the writer's own rows are the first n
        except (TypeError, ValueError, KeyError) as exc:
            local_error = exc
        if dist.is_distributed() and not dist.all_true(local_error is None):
            # Every rank skips the step together: one rank raising alone would leave the others waiting
            # in the gather below (a hang, not an error).
            raise local_error or ValueError("another rank's inputs for this step were rejected")
        if local_error is not None:
            raise local_error
        if labels_t is not None:
            labels_t = labels_t.to(a.device)
        if dist.is_distributed():
            a = dist.gather_rows(a)
            b = dist.gather_rows(b) if b is not None else None
            labels_t = dist.gather_rows(labels_t) if labels_t is not None else None
            ids_t = dist.gather_rows(ids_t.to(a.device)) if ids_t is not None else None
            n = a.shape[0]
        if not self._is_writer or self._skip(step):
            return
        if n == 0:
            raise ValueError("empty batch: a has 0 rows")
        self._set_dim(a.shape[1])
        mod_a, mod_b = self.modalities

        # Every step: O(B·d), no host sync.
        self._add(step, schema.M_BATCH, float(n))
        if b is not None:
            stats = F.step_statistics(a, b, two_modality=self.two_modality)
            names = {
                "alignment": schema.M_ALIGNMENT,
                "pos_sim": schema.M_POS_SIM,
                "norm_a": f"{schema.M_NORM}/{mod_a}",
                "norm_b": f"{schema.M_NORM}/{mod_b}",
                "nonfinite_fraction": schema.M_NONFINITE,
                "modality_gap": schema.M_GAP,
                "cone_a": f"{schema.M_CONE}/{mod_a}",
                "cone_b": f"{schema.M_CONE}/{mod_b}",
                "matched_distance": schema.M_MATCHED_DIST,
            }
            for key, metric in names.items():
                if key in stats:
                    self._add(step, metric, stats[key])
        if loss is not None:
            self._add(step, schema.M_LOSS, _scalar(loss))
        if temperature is not None:
            temperature = _scalar(temperature)
            self._add(step, schema.M_TEMPERATURE, temperature)

        due = _due(step, self.pairwise_every), _due(step, self.spectrum_every), _due(step, self.curves_every)
        if any(due):
            self._heavy(step, a, b, labels_t, temperature, *due)
        self._collect_snapshot(step, a, b, labels_t, ids_t, meta, meta_rows)
        self._pending.n_steps += 1
        self._maybe_flush()

    def _heavy(
        self,
        step: int,
        a: torch.Tensor,
        b: torch.Tensor | None,
        labels: torch.Tensor | None,
        temperature: torch.Tensor | float | None,
        pairwise: bool,
        spectra: bool,
        curves: bool,
    ) -> None:
        """O(B²) and O(d³) statistics on the finite rows (one host sync to drop non-finite rows)."""
        finite = torch.isfinite(a).all(dim=1)
        if b is not None:
            finite &= torch.isfinite(b).all(dim=1)
        if not bool(finite.all()):
            a = a[finite]
            b = b[finite] if b is not None else None
            labels = labels[finite] if labels is not None else None
        if a.shape[0] < 2:
            self._report(
                f"step {step}: fewer than 2 finite rows; pairwise statistics need at least 2",
                key="fewer than 2 finite rows",
            )
            return
        mod_a, mod_b = self.modalities
        sides = [(mod_a, a)] + ([(mod_b, b)] if (b is not None and self.two_modality) else [])
        if pairwise:
            unif = [F.uniformity(z) for _, z in sides]
            for (mod, _), u in zip(sides, unif, strict=False):
                if len(sides) > 1:
                    self._add(step, f"{schema.M_UNIFORMITY}/{mod}", u)
            if b is not None and not self.two_modality:
                unif.append(F.uniformity(b))  # Wang & Isola average the two views' uniformity
            self._add(step, schema.M_UNIFORMITY, torch.stack(unif).mean())
            self._add(step, schema.M_STD_L2, F.std_of_l2_normalized(a))
            if labels is not None:
                self._add(step, schema.M_TOLERANCE, F.tolerance(a, labels))
            if b is not None:
                h = F.score_histograms(a, b, bins=self.bins)
                self._pending.hist.append((step, schema.HIST_POS, h.pos, h.edges))
                self._pending.hist.append((step, schema.HIST_NEG, h.neg, h.edges))
                self._pending.hist.append((step, schema.HIST_HARD_NEG, h.hard_neg, h.edges))
                self._add(step, schema.M_OVERLAP, F.histogram_overlap(h.pos, h.neg))
                self._add(step, schema.M_NEG_SIM, F.negative_similarity(a, b))
                self._add(step, schema.M_HARD_NEG_SIM, h.hardest_neg.mean())
                self._add(step, schema.M_RETRIEVAL, F.retrieval_accuracy(a, b))
                if temperature is not None:
                    hard = F.hardness(a, b, temperature)
                    self._add(step, schema.M_ENTROPY, hard.entropy)
                    self._add(step, schema.M_EFF_NEG, hard.effective_negatives)
                    self._add(step, schema.M_COUPLING, 1.0 - hard.pos_prob)
        if spectra:
            for mod, z in sides:
                self._pending.spectra.append((step, mod, F.spectrum(z)))
                rank = F.effective_rank(z)
                self._add(step, f"{schema.M_RANK}/{mod}" if len(sides) > 1 else schema.M_RANK, rank)
            if len(sides) > 1:
                self._add(step, schema.M_RANK, F.effective_rank(torch.cat([a, b])))  # type: ignore[list-item]
        if curves and b is not None:
            c = F.temperature_curves(a, b, self.taus.to(a.device), labels=labels)
            taus = c.taus
            for curve, values in (
                (schema.CURVE_ENTROPY, c.entropy),
                (schema.CURVE_EFFECTIVE_NEGATIVES, c.effective_negatives),
                (schema.CURVE_POS_WEIGHT, c.pos_prob),
                (schema.CURVE_UNIFORMITY, c.uniformity),
                (schema.CURVE_SAME_CLASS_PENALTY, c.same_class_penalty),
            ):
                if values is not None:
                    self._pending.curves.append((step, taus, curve, values))

    def _collect_snapshot(
        self,
        step: int,
        a: torch.Tensor,
        b: torch.Tensor | None,
        labels: torch.Tensor | None,
        ids: torch.Tensor | None,
        meta: Meta | None = None,
        meta_rows: int = 0,
    ) -> None:
        """Fill a snapshot of ``snapshot_size`` rows from consecutive batches, tagged with its start step.

        Both sides of each pair are kept (two views too), under the same sample id; ``meta`` is encoded for
        the kept rows only, and only for the first ``meta_rows`` (the writer's own rows under DDP).
        """
        if self.snapshot_every and self._snap_step is None and _due(step, self.snapshot_every):
            self._snap_step, self._snap_rows = step, 0
        if self._snap_step is None:
            return
        n = a.shape[0]
        take = min(n, self.snapshot_size - self._snap_rows)
        if ids is None:
            ids = torch.arange(self._sample_counter, self._sample_counter + n, device=a.device)
        self._sample_counter += n
        rows = slice(0, take)
        lab = labels[rows] if labels is not None else None
        texts = None
        if meta is not None:
            own = min(take, meta_rows)
            texts = schema.encode_meta(meta, range(own)) + [None] * (take - own)
        sides = [(self.modalities[0], a)] if b is None else [(self.modalities[0], a), (self.modalities[1], b)]
        for modality, z in sides:
            self._pending.snapshots.append((self._snap_step, modality, z[rows], lab, ids[rows], texts))
        self._snap_rows += take
        if self._snap_rows >= self.snapshot_size:
            self._snap_step = None

    # ---------------------------------------------------------------------------------------------------
    # reporting
    def _report(self, message: str, key: str | None = None) -> None:
        """Report an error once (warning + log) without interrupting training.

        ``key`` names the kind of error (default: the message), so an error that recurs at every step or
        flush with another step number or file name in its message is reported the first time only.
        """
        key = message if key is None else key
        if key in self._reported:
            return
        self._reported.add(key)
        self.errors.append(message)
        text = f"cldiag: {message} (training continues; pass strict=True to raise instead)"
        logger.error(text)
        warnings.warn(text, RuntimeWarning, stacklevel=3)

    # ---------------------------------------------------------------------------------------------------
    # flushing
    def _maybe_flush(self) -> None:
        if (
            self._pending.n_steps >= self.flush_every
            or time.monotonic() - self._last_flush >= self.flush_secs
        ):
            self.flush()

    def flush(self, *, wait: bool = False) -> None:
        """Copy buffered values to the host and hand them to the writer thread.

        Args:
            wait: block until everything handed over so far is on disk.
        """
        if not self._is_writer:
            return
        self._raise_writer_error()
        with self._lock:
            pending, self._pending = self._pending, host_tables.Pending()
            self._last_flush = time.monotonic()
            if not pending.empty():
                try:
                    job = host_tables.to_host(pending, self._dim)
                except Exception as exc:
                    if self.strict:
                        raise
                    self._report(f"flush failed, {pending.n_steps} steps of diagnostics lost: {exc}")
                    job = None
                if job is not None:
                    self._ensure_writer()
                    self._queue.put(job)
        if wait:
            self._wait_for_writer()
            self._raise_writer_error()

    # ---------------------------------------------------------------------------------------------------
    # writer thread
    def _start_writer(self) -> None:
        self._writer = threading.Thread(
            target=self._writer_loop,
            args=(self._heartbeat_secs,),
            name="cldiag-writer",
            daemon=True,
        )
        self._writer.start()

    def _ensure_writer(self) -> None:
        """Restart the writer thread if it died; the flush it died on stays queued for a retry."""
        if not self._writer.is_alive():
            self._report("the writer thread stopped unexpectedly; restarted it")
            self._start_writer()

    def _wait_for_writer(self) -> None:
        """``queue.join()`` that cannot hang on a writer thread that dies while we wait."""
        q = self._queue
        with q.all_tasks_done:
            while q.unfinished_tasks:
                q.all_tasks_done.wait(timeout=0.5)
                if q.unfinished_tasks and not self._writer.is_alive():
                    self._ensure_writer()

    def _raise_writer_error(self) -> None:
        if self.strict and self._writer_error is not None:
            exc, self._writer_error = self._writer_error, None
            raise exc

    def _writer_loop(self, heartbeat_secs: float) -> None:
        failed = self._failed  # survives this thread: a restarted writer retries them
        while True:
            try:
                job = self._queue.get(timeout=heartbeat_secs)
            except queue.Empty:
                self._write_meta_safely()
                continue
            try:
                if job is not None:
                    failed.append(job)
                while failed:
                    self._write_job(failed[0])
                    failed.pop(0)
            except OSError as exc:  # full disk, lost mount, store down: transient, retried at the next flush
                self._writer_error = self._writer_error or exc
                self._report(
                    f"writing to {self.run_dir} failed: {type(exc).__name__}: {exc}; will retry",
                    key=f"write {type(exc).__name__} {exc.errno}",
                )
                if len(failed) > _MAX_RETRY_JOBS:
                    failed.pop()
                    self._report(f"{_MAX_RETRY_JOBS} flushes wait for a retry; newer diagnostics are dropped")
            except Exception as exc:  # noqa: BLE001 - a bug must not kill training; retrying cannot help
                self._writer_error = self._writer_error or exc
                self._report(f"cannot write diagnostics ({type(exc).__name__}: {exc}); that flush is dropped")
                failed.pop(0)
            finally:
                self._queue.task_done()
            if job is None:
                if failed:
                    self._report(f"closing with {len(failed)} flushes unwritten after repeated write errors")
                return

    def _write_meta_safely(self) -> None:
        try:
            self._meta["heartbeat"] = schema.now_iso()
            assert self._store is not None
            self._store.write_meta(self._meta)
        except Exception as exc:  # noqa: BLE001 - heartbeat failures are reported, never raised
            self._report(f"cannot update meta.json: {exc}", key=f"meta {type(exc).__name__}")

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _write_job(self, job: dict[str, Any]) -> None:
        store = self._store
        assert store is not None
        # Each table's part is removed from the job once written, so a retry after a later failure in
        # the same job never writes a part twice.
        for table in ("scalars", "histograms", "spectra", "temperature"):
            if table in job:
                store.write_part(table, host_tables.build(table, job[table]), self._next_seq())
                del job[table]
        if "snapshots" in job:
            for step, snapshot in host_tables.snapshot_tables(job["snapshots"]).items():
                store.write_part(snapshot_dir(step), snapshot, self._next_seq())
                job["snapshots"] = [snap for snap in job["snapshots"] if snap[0] != step]
            del job["snapshots"]
        if job.get("last_step") is not None:
            last = self._meta.get("last_step")
            self._meta["last_step"] = job["last_step"] if last is None else max(last, job["last_step"])
        if job.get("dim") is not None:
            self._meta["dim"] = job["dim"]
        self._meta["heartbeat"] = schema.now_iso()
        store.write_meta(self._meta)

    # ---------------------------------------------------------------------------------------------------
    # closing
    def close(
        self, status: Literal["finished", "failed"] = "finished", *, timeout: float | None = None
    ) -> None:
        """Flush everything, wait for the writer, and mark the run ``finished`` (or ``failed``).

        Args:
            status: what ``meta.json`` records.
            timeout: seconds to wait for the writer (None: as long as it takes). At interpreter exit the
                wait is capped at 60 s so that a hung filesystem cannot keep a finished training alive.
        """
        if self._closed:
            return
        self._closed = True
        _live_monitors.discard(self)
        if not self._is_writer:
            return
        try:
            self.flush()
            self._ensure_writer()
            self._queue.put(None)
            self._writer.join(timeout)
            if self._writer.is_alive():
                self._report(f"the writer is still busy after {timeout} s; closing without waiting for it")
                return
            self._raise_writer_error()
            self._meta["status"] = status
            self._meta["heartbeat"] = schema.now_iso()
            assert self._store is not None
            self._store.write_meta(self._meta)
        except Exception as exc:
            if self.strict:
                raise
            self._report(f"close failed: {exc}")
            return
        if self._compact_on_close:
            from cldiag.maintenance import compact_run

            try:
                compact_run(self._store.uri, storage_options=self._storage_options)
            except Exception as exc:  # noqa: BLE001 - the run is whole without it; a later compact finishes
                self._report(f"could not compact the run at close ({type(exc).__name__}: {exc})")

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self.close(status="failed" if exc_type is not None else "finished")


def _refuse_live_writer(uri: str, meta: Mapping[str, Any]) -> None:
    """Refuse to resume a run that another live process is still writing (two writers would interleave)."""
    if meta.get("status") != schema.STATUS_RUNNING:
        return
    pid, host = meta.get("pid"), meta.get("host")
    if host == socket.gethostname() and isinstance(pid, int):
        if pid == os.getpid():
            return  # this process re-opens its own run (e.g. a Lightning restore in the same process)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return  # the writer died (crash, SIGKILL): resuming is what the user wants
        except PermissionError:
            pass  # alive, owned by another user
        raise FileExistsError(
            f"{uri!r} is still being written by process {pid} on this host; stop it before resuming, or "
            "write to another run_dir",
        )
    interval = float(meta.get("heartbeat_secs") or 30.0)
    age = schema.heartbeat_age(dict(meta))
    if age is not None and age < 3 * interval:
        raise FileExistsError(
            f"{uri!r} is being written on host {host!r} (heartbeat {age:.0f} s ago); resume it once that "
            f"writer has stopped (no heartbeat for {3 * interval:.0f} s), or write to another run_dir",
        )


def _scalar(value: TensorOrNumber) -> torch.Tensor | float:
    """A 0-d float tensor (detached, still on its device) or a Python float."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"expected a scalar, got a tensor of shape {tuple(value.shape)}")
        return value.detach().reshape(()).float()
    value = float(value)
    if not math.isfinite(value):
        return float("nan")
    return value


def _due(step: int, every: int) -> bool:
    return every > 0 and step % every == 0


def _take(t: torch.Tensor | None, idx: torch.Tensor) -> torch.Tensor | None:
    return None if t is None else t[idx.to(t.device)]


_MAX_RETRY_JOBS = 100
_live_monitors: weakref.WeakSet[Monitor] = weakref.WeakSet()


@atexit.register
def _close_live_monitors() -> None:
    # A script that forgets close() still gets every logged step on disk.
    for mon in list(_live_monitors):
        mon.close(timeout=60.0)
