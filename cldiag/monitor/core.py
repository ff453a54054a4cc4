"""The Monitor's policy: what each logging call validates, what it computes, and when.

:class:`Monitor` checks its inputs (:mod:`cldiag.monitor.inputs`), computes the step's diagnostics with
:mod:`cldiag.functional` at the cadences of its :class:`~cldiag.monitor.config.Cadence`, buffers them on the
tensors' devices (:class:`~cldiag.host_tables.Pending`) and hands each flush to its
:class:`~cldiag.monitor.writer.RunWriter`, which owns the thread and the files.
"""

from __future__ import annotations

import atexit
import math
import os
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch

from cldiag import dist, host_tables, schema
from cldiag import functional as F
from cldiag.integrations.outputs import HF_CLIP_KEYS, OPENCLIP_KEYS, model_outputs
from cldiag.monitor.budget import KINDS, STEP, FixedCadence, OverheadBudget, Schedule
from cldiag.monitor.config import Cadence
from cldiag.monitor.inputs import (
    StepNotIncreasing,
    check_embedding,
    check_step,
    check_temperature,
    check_vector,
    keyed,
    refuse_meta,
    scalar,
    step_repr,
    take,
)
from cldiag.monitor.report import Reporter
from cldiag.monitor.writer import RunWriter, open_run
from cldiag.store import IfExists, RunStoreError

__all__ = ["Monitor"]

Number = float | int
TensorOrNumber = torch.Tensor | float | int
Meta = schema.Meta

M_PAIRWISE_ROWS = "pairwise_rows"
"""Scalar logged at a step whose O(B²) statistics used a seeded subsample of rows: how many rows (the rows
are ``functional.subsample_rows(B, n, seed=step)``)."""

_STEP_STATISTICS = {  # key of F.step_statistics → metric name ({a}/{b}: the modality names)
    "alignment": schema.M_ALIGNMENT,
    "pos_sim": schema.M_POS_SIM,
    "norm_a": f"{schema.M_NORM}/{{a}}",
    "norm_b": f"{schema.M_NORM}/{{b}}",
    "nonfinite_fraction": schema.M_NONFINITE,
    "modality_gap": schema.M_GAP,
    "cone_a": f"{schema.M_CONE}/{{a}}",
    "cone_b": f"{schema.M_CONE}/{{b}}",
    "matched_distance": schema.M_MATCHED_DIST,
}

_CURVES = (
    (schema.CURVE_ENTROPY, "entropy"),
    (schema.CURVE_EFFECTIVE_NEGATIVES, "effective_negatives"),
    (schema.CURVE_POS_WEIGHT, "pos_prob"),
    (schema.CURVE_UNIFORMITY, "uniformity"),
    (schema.CURVE_SAME_CLASS_PENALTY, "same_class_penalty"),
)


def _is_modality_mapping(value: Mapping[str, Any]) -> bool:
    """Whether a mapping passed as ``a`` is ``{modality: embeddings}`` rather than a model's output dict."""
    known = set(OPENCLIP_KEYS) | set(HF_CLIP_KEYS)
    return not any(k in value for k in known) and all(isinstance(v, torch.Tensor) for v in value.values())


def _check_modality_mapping(mapping: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """``{modality: (B, d) embeddings}`` checked: ≥ 2 names valid for pair metrics, one shape, one device."""
    if len(mapping) < 2:
        raise ValueError(f"a mapping of modalities needs at least 2, got {list(mapping)}")
    out: dict[str, torch.Tensor] = {}
    for name, z in mapping.items():
        schema.pair_metric(schema.M_PAIR_GAP, name, name)  # raises for names a pair metric cannot hold
        out[name] = check_embedding(f"modality {name!r}", z)
    first, *rest = out.items()
    for name, z in rest:
        if z.shape != first[1].shape or z.device != first[1].device:
            raise ValueError(
                f"modality {name!r} has shape {tuple(z.shape)} on {z.device}, but {first[0]!r} has "
                f"{tuple(first[1].shape)} on {first[1].device}; row i of every modality is one sample",
            )
    return out


def _is_tau_vector(value: object) -> bool:
    """Whether ``temperature`` is meant as a per-sample τ: a tensor of more than one value."""
    return isinstance(value, torch.Tensor) and value.numel() > 1


def _check_tau_vector(tau: torch.Tensor, n: int, device: torch.device) -> torch.Tensor:
    """A per-sample τ ``(n,)`` detached as float32, after checking dtype, shape and device (no host sync).

    Its values are checked where the step already reads back from the device (at pairwise/spectrum steps).
    """
    if not tau.dtype.is_floating_point:
        raise keyed(
            TypeError(f"temperature must be floating point, got dtype {tau.dtype}"), "temperature type"
        )
    if tau.shape != (n,):
        message = (
            f"a per-sample temperature must have shape ({n},) to match the batch, got {tuple(tau.shape)}"
        )
        raise keyed(ValueError(message), "temperature shape")
    refuse_meta("temperature", tau)
    if tau.device != device:
        raise ValueError(f"temperature is on {tau.device} but the embeddings are on {device}")
    return tau.detach().float()


class Monitor:
    """Log contrastive-learning diagnostics of a training run to a cldiag run directory.

    Args:
        run_dir: where the run goes: a local path, ``file://`` or any fsspec URI (``s3://bucket/runs/x``).
        config: your run configuration (τ, batch size, loss …), saved in ``meta.json`` and shown in the
            dashboard.
        modalities: names of two modalities, e.g. ``("image", "text")``, for two-tower/CLIP runs: enables
            the modality gap, cones and matched distance, and logs spectra and snapshots of both sides.
            ``None`` (default) means ``a`` and ``b`` are two views of the same inputs (SimCLR/MoCo);
            snapshots keep both views.
        name: display name (default: the directory name).
        step_every: steps between the per-step statistics (alignment, positive cosine, norms, non-finite
            share; for two modalities gap, cones and matched distance), ≥ 1 (default 1: every step). The
            loss, τ and batch size are logged at every step whatever it is, and a step with pairwise,
            spectrum or curves work always has them. At a step without them a NaN/Inf loss is still flagged
            (``nonfinite/loss``); NaN/Inf embeddings are seen at the next step that has them.
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
        final_snapshot: at close, when the last logged step had no embedding snapshot (or no spectrum),
            snapshot the last logged batch (and take its spectrum) at that step, so a run shorter than
            ``snapshot_every`` shows its trained embeddings. ``False`` keeps to the cadences exactly.
        budget: the largest share of wall time the Monitor may take (default 0.03 = 3 %): it measures
            the training's time between :meth:`log` calls and its own time inside them (host clock only,
            no device sync) and spaces the per-step statistics and the pairwise, spectrum and curves work
            so its share stays within it; ``step_every`` / ``pairwise_every`` / ``spectrum_every`` /
            ``curves_every`` are then minimum spacings, stretched by one common factor (see
            :mod:`cldiag.monitor.budget`). ``None`` = fixed cadences. A
            :class:`~cldiag.monitor.budget.Schedule` (e.g. an ``OverheadBudget`` with its own clock) is
            used as given.
        compact_parts: while the run is written, a table holding more than this many part files is
            compacted in the background (safely under readers, see :mod:`cldiag.maintenance`), so a long
            live run opens fast; 0 = only at close.
        cadence: all cadence arguments at once, as a :class:`~cldiag.monitor.config.Cadence`; the
            individual arguments above (and a float ``budget``) are then left at their defaults.

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
        step_every: int = 1,
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
        final_snapshot: bool = True,
        budget: float | Schedule | None = 0.03,
        compact_parts: int = 64,
        cadence: Cadence | None = None,
    ) -> None:
        self.cadence = cadence or Cadence(
            step_every=step_every,
            pairwise_every=pairwise_every,
            spectrum_every=spectrum_every,
            curves_every=curves_every,
            snapshot_every=snapshot_every,
            snapshot_size=snapshot_size,
            bins=bins,
            taus=taus,  # type: ignore[arg-type] # None: the default grid
            flush_every=flush_every,
            flush_secs=flush_secs,
            heartbeat_secs=heartbeat_secs,
            budget=None if isinstance(budget, Schedule) else budget,
            compact_parts=compact_parts,
        )
        self._schedule = _schedule(self.cadence, budget)
        if if_exists not in ("error", "resume", "overwrite"):
            raise ValueError(f"if_exists must be 'error', 'resume' or 'overwrite', got {if_exists!r}")
        self.modalities: tuple[str, str] = _check_modalities(modalities) or ("view1", "view2")
        self.two_modality = modalities is not None
        self._modalities_explicit = modalities is not None
        self.taus = self.cadence.taus_tensor()
        self.strict = strict
        self._reporter = Reporter()
        self.errors: list[str] = self._reporter.errors
        """Messages of the errors reported so far (each reported once)."""
        self._init_state(final_snapshot)
        self._writer = self._open(run_dir, config, name, if_exists, storage_options, compact_on_close)
        _live_monitors.add(self)

    def _init_state(self, final_snapshot: bool) -> None:
        self._is_writer = dist.rank() == 0
        self._pending = host_tables.Pending()
        self._last_flush = time.monotonic()
        self._snap_step: int | None = None
        self._snap_rows = 0
        self._sample_counter = 0
        self._resume_after: int | None = None
        self._last_log_step: int | None = None  # steps of log() must increase: no (step, metric) twice
        self._last_by_name: dict[str, int] = {}  # and for each scalar name, log's and log_scalar's alike
        self._last_embedding_step: dict[str, int] = {}  # and for each log_embeddings modality
        # (step, a, b, labels, meta, meta_rows) of the last logged batch, for the final snapshot at close.
        self._last_batch: tuple[int, torch.Tensor, torch.Tensor | None, Any, Any, int] | None = None
        self._last_snapshot_step: int | None = None  # the last step whose batch went into a snapshot
        self._last_spectrum_step: int | None = None
        self._closed = False
        self._dim: int | None = None
        self._lock = threading.Lock()
        self._meta: dict[str, Any] = {}
        self._writer_cpu_seen = 0.0
        self._rows_step: int | None = None  # the last step whose pairwise_rows was logged
        c = self.cadence
        self._keep_last_batch = bool(final_snapshot) and bool(c.snapshot_every or c.spectrum_every)

    def _open(
        self,
        run_dir: str | os.PathLike[str],
        config: Mapping[str, Any] | None,
        name: str | None,
        if_exists: IfExists,
        storage_options: dict[str, Any] | None,
        compact_on_close: bool,
    ) -> RunWriter | None:
        """Open the run on rank 0 (the other ranks learn whether it worked) and start its writer."""
        opened, open_error = None, None
        if self._is_writer:
            try:
                opened = open_run(
                    run_dir,
                    config=config,
                    name=name,
                    if_exists=if_exists,
                    storage_options=storage_options,
                    modalities=self.modalities,
                    two_modality=self.two_modality,
                    heartbeat_secs=self.cadence.heartbeat_secs,
                )
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
        if opened is None:
            return None
        self._meta = opened.meta
        if opened.resumed:
            self._resume_after = opened.resume_after
            self._dim = self._meta.get("dim")
            if self._meta.get("two_modality") and not self._modalities_explicit:
                self.two_modality = True
                self.modalities = tuple(self._meta["modalities"])  # type: ignore[assignment]
        return RunWriter(
            opened,
            reporter=self._reporter,
            heartbeat_secs=self.cadence.heartbeat_secs,
            storage_options=storage_options,
            compact_on_close=compact_on_close,
            compact_parts=self.cadence.compact_parts,
        )

    @property
    def run_dir(self) -> str:
        """The run directory (rank 0; empty string on other ranks)."""
        return self._writer.uri if self._writer is not None else ""

    @property
    def pairwise_every(self) -> int:
        """Steps between O(B²) statistics (0 = off)."""
        return self.cadence.pairwise_every

    @property
    def spectrum_every(self) -> int:
        """Steps between spectra (0 = off)."""
        return self.cadence.spectrum_every

    @property
    def curves_every(self) -> int:
        """Steps between temperature curves (0 = off)."""
        return self.cadence.curves_every

    @property
    def snapshot_every(self) -> int:
        """Steps between embedding snapshots (0 = off)."""
        return self.cadence.snapshot_every

    @property
    def snapshot_size(self) -> int:
        """Rows per snapshot."""
        return self.cadence.snapshot_size

    @property
    def bins(self) -> int:
        """Score-histogram bins."""
        return self.cadence.bins

    @property
    def _run_gone(self) -> bool:
        return self._writer is not None and self._writer.run_gone

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
            step: the global step: an int, NumPy integer or 0-d integer tensor (keep it on the CPU: reading
                a device tensor is a host sync) within int64. Steps must increase: a repeated or earlier
                step is dropped and reported (log once per optimizer step, not per micro-batch).
            a: embeddings ``(B, d)`` of the first view/modality — or an open_clip-style output dict with
                ``image_features``, ``text_features`` and optionally ``logit_scale`` (already exponentiated,
                as open_clip returns it; τ = 1/logit_scale), or a transformers CLIP / SigLIP output
                (``image_embeds``, ``text_embeds``; τ fitted to ``logits_per_text``), see
                :mod:`cldiag.integrations.outputs`, or a mapping of ``N >= 2`` modalities
                ``{"image": zi, "text": zt, "audio": za}`` (each ``(B, d)``, row i one sample): the first
                two are ``a`` and ``b`` for every other statistic, and pairwise steps add every pair's gap
                and retrieval (``schema.pair_metric`` names, :func:`cldiag.functional.modality_gap_matrix`).
            b: embeddings ``(B, d)``; ``a[i]`` and ``b[i]`` are a positive pair. ``None`` logs single-view
                statistics only (uniformity, spectrum, snapshot).
            labels: class labels ``(B,)`` (integers) for tolerance and same-class curves.
            temperature: the loss's τ (float or tensor, e.g. a learnable one), or one τ per row, a
                ``(B,)`` floating-point tensor on ``a``'s device (per-sample temperatures as in iSogCLR):
                the step's ``temperature`` is then their mean and pairwise steps also log the quantiles
                ``schema.TAU_QUANTILES`` and use each anchor's own τ for the false-negative penalty share;
                with ``labels``, also each class's mean τ and rows (``tau_class/<label>``,
                ``tau_class_count/<label>``, at most ``schema.MAX_TAU_CLASSES`` classes, the most frequent).
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
        if self._run_gone:
            return  # reported once when the deletion was found; computing would only waste the step
        pending, sizes = self._pending, self._pending.sizes()
        self._schedule.begin()
        self._charge_writer()
        try:
            self._log(step, a, b, labels, temperature, loss, ids, meta)
        except Exception as exc:  # noqa: BLE001 - _reject raises it when strict, else reports it
            # A step is logged whole or not at all: half a step's values could hold the very tensors that
            # failed (e.g. on a broken device), and one of them would make the whole next flush fail.
            if self._pending is pending:
                pending.truncate(sizes)
            self._reject(exc, f"step {step_repr(step)}")
        finally:
            self._schedule.end()

    def _charge_writer(self) -> None:
        """Charge the writer thread's CPU time since the last call to the overhead budget."""
        if self._writer is not None:
            spent = self._writer.cpu_seconds
            self._schedule.charge(spent - self._writer_cpu_seen)
            self._writer_cpu_seen = spent

    def log_scalar(self, step: int, name: str, value: TensorOrNumber) -> None:
        """Log any scalar of your own (tensor or number); it is buffered and written like the others.

        Steps of one ``name`` must increase. A bad step, name or value (a string, a tensor of several
        elements or on the ``meta`` device, a repeated step) drops this call alone, reported once;
        ``strict=True`` raises instead.
        """
        if self._closed:
            self._report("log_scalar() called after close(); nothing is logged")
            return
        try:
            self._log_scalar(step, name, value)
        except Exception as exc:  # noqa: BLE001 - _reject raises it when strict, else reports it
            self._reject(exc, f"log_scalar(step {step_repr(step)}, {name!r})")

    def _log_scalar(self, step: int, name: str, value: TensorOrNumber) -> None:
        step = check_step(step)
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        value_t = scalar(value, f"scalar {name!r}")
        if not self._is_writer or self._run_gone or self._skip(step):
            return
        self._add(step, name, value_t)
        self._last_by_name[name] = step
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
        for two-modality probes, with the same ``ids`` for both sides of a pair; ``meta`` is what each row
        is, as in :meth:`log`. Steps of one modality must increase. Bad input (integer or ``meta``
        tensors, another dim than the run's, a repeated step) drops this call alone, reported once;
        ``strict=True`` raises instead.
        """
        if self._closed:
            self._report("log_embeddings() called after close(); nothing is logged")
            return
        try:
            self._log_embeddings(step, z, labels, modality, ids, meta)
        except Exception as exc:  # noqa: BLE001 - _reject raises it when strict, else reports it
            self._reject(exc, f"log_embeddings(step {step_repr(step)})")

    def _log_embeddings(
        self,
        step: int,
        z: torch.Tensor,
        labels: torch.Tensor | Sequence[int] | None,
        modality: str | None,
        ids: torch.Tensor | Sequence[int] | None,
        meta: Meta | None = None,
    ) -> None:
        step = check_step(step)
        z = check_embedding("z", z)
        refuse_meta("z", z)
        n = z.shape[0]
        labels_t = check_vector("labels", labels, n)
        ids_t = check_vector("ids", ids, n)
        schema.check_meta(meta, n)
        if modality is not None and (not isinstance(modality, str) or not modality):
            raise ValueError(f"modality must be a non-empty string, got {modality!r}")
        mod = modality or self.modalities[0]
        if not self._is_writer or self._run_gone or self._skip(step):
            return
        last = self._last_embedding_step.get(mod)
        if last is not None and step <= last:
            raise StepNotIncreasing(f"embeddings of {mod!r}: step {step} comes after step {last}")
        rows: list[int] | range = range(n)
        if n > self.snapshot_size:
            keep_host = torch.linspace(0, n - 1, self.snapshot_size).round().long()
            rows, keep = keep_host.tolist(), keep_host.to(z.device)
            z, labels_t, ids_t = z[keep], take(labels_t, keep), take(ids_t, keep)
            n = self.snapshot_size
        if ids_t is None:
            ids_t = torch.arange(n, device=z.device)
        self._set_dim(z.shape[1])
        texts = None if meta is None else schema.encode_meta(meta, rows)
        self._pending.snapshots.append((step, mod, z, labels_t, ids_t, texts))
        self._last_embedding_step[mod] = step
        self._maybe_flush()

    def _reject(self, exc: Exception, where: str) -> None:
        """Raise ``exc`` when strict; otherwise report it once per kind (the call's values are dropped)."""
        if self.strict:
            raise exc
        key = getattr(exc, "report_key", None) or f"{type(exc).__name__}: {exc}"
        self._report(f"{where}: {type(exc).__name__}: {exc}", key=key)

    # ---------------------------------------------------------------------------------------------------
    # validation
    def _unpack(
        self,
        a: torch.Tensor | Mapping[str, Any],
        b: torch.Tensor | None,
        temperature: TensorOrNumber | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, TensorOrNumber | None, dict[str, torch.Tensor] | None]:
        if isinstance(a, Mapping) and _is_modality_mapping(a):
            if b is not None:
                raise ValueError("pass either a mapping of modalities or two tensors, not both")
            mods = _check_modality_mapping(a)
            names = list(mods)
            if not self.two_modality and not self._modalities_explicit:
                self.two_modality = True
                self.modalities = (names[0], names[1])
                self._meta.update(modalities=list(self.modalities), two_modality=True)
            a, b = mods[names[0]], mods[names[1]]
            refuse_meta("a", a)
            return a, b, temperature, mods
        if isinstance(a, Mapping):
            out = model_outputs(a)  # open_clip dict or transformers CLIP/SigLIP output
            if b is not None:
                raise ValueError("pass either an output dict or two tensors, not both")
            if not self.two_modality and not self._modalities_explicit:
                self.two_modality = True
                self.modalities = out.modalities
                self._meta.update(modalities=list(self.modalities), two_modality=True)
            if temperature is None:
                temperature = out.temperature
            a, b = out.a, out.b
        a = check_embedding("a", a)
        if b is not None:
            b = check_embedding("b", b)
            if a.shape != b.shape:
                raise ValueError(
                    "a and b must have the same shape (a[i], b[i] are a positive pair), got "
                    f"{tuple(a.shape)} and {tuple(b.shape)}",
                )
            if a.device != b.device:
                raise ValueError(f"a and b are on different devices ({a.device} and {b.device})")
        refuse_meta("a", a)
        return a, b, temperature, None

    def _checked(
        self,
        step: int,
        a: torch.Tensor | Mapping[str, Any],
        b: torch.Tensor | None,
        labels: torch.Tensor | Sequence[int] | None,
        temperature: TensorOrNumber | None,
        loss: TensorOrNumber | None,
        ids: torch.Tensor | Sequence[int] | None,
        meta: Meta | None = None,
    ) -> tuple[int, torch.Tensor, torch.Tensor | None, Any, Any, Any, Any, dict[str, torch.Tensor] | None]:
        """``log``'s arguments checked on every rank together, then gathered (the global batch)."""
        local_error: Exception | None = None
        try:
            step = check_step(step)
            a, b, temperature, mods = self._unpack(a, b, temperature)
            n = a.shape[0]
            labels_t = check_vector("labels", labels, n)
            ids_t = check_vector("ids", ids, n)
            schema.check_meta(meta, n)
            loss = scalar(loss, "loss") if loss is not None else None
            if _is_tau_vector(temperature):
                temperature = _check_tau_vector(temperature, n, a.device)
            elif temperature is not None:
                temperature = check_temperature(temperature)
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
            if isinstance(temperature, torch.Tensor) and temperature.ndim == 1:
                temperature = dist.gather_rows(temperature)
            if mods is not None:
                mods = {name: dist.gather_rows(z) for name, z in mods.items()}
        return step, a, b, labels_t, ids_t, loss, temperature, mods

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
        last = self._last_by_name.get(name)
        if last is not None and step <= last:
            # e.g. log_scalar(3, "loss", …) and log(3, …, loss=…): one of them is dropped, whole.
            raise StepNotIncreasing(f"scalar {name!r}: step {step} comes after step {last}")
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
        step, a, b, labels_t, ids_t, loss, temperature, mods = self._checked(
            step, a, b, labels, temperature, loss, ids, meta
        )
        if not self._is_writer or self._skip(step):
            return
        if self._last_log_step is not None and step <= self._last_log_step:
            raise StepNotIncreasing(f"step {step} comes after step {self._last_log_step}")
        if a.shape[0] == 0:
            raise ValueError("empty batch: a has 0 rows")
        self._set_dim(a.shape[1])
        first = len(self._pending.scalar_names)
        due = tuple(self._schedule.due(kind, step) for kind in KINDS)
        # A heavy step always has its step statistics: its non-finite share tells which rows it dropped.
        self._per_step(step, a, b, loss, temperature, stats=any(due) or self._schedule.due(STEP, step))
        if any(due):
            self._heavy(step, a, b, labels_t, temperature, *due, mods=mods)
        # The writer's own rows come first in a gathered batch; only they have metadata here.
        meta_rows = schema.meta_length(meta)
        self._collect_snapshot(step, a, b, labels_t, ids_t, meta, meta_rows)
        self._pending.n_steps += 1
        self._last_log_step = step
        for name in self._pending.scalar_names[first:]:
            self._last_by_name[name] = step
        if due[1]:
            self._last_spectrum_step = step
        if self._keep_last_batch:
            # Kept (a reference, no copy) for the final snapshot and spectrum at close().
            self._last_batch = (step, a, b, labels_t, meta, meta_rows)
        self._maybe_flush()

    def _per_step(
        self,
        step: int,
        a: torch.Tensor,
        b: torch.Tensor | None,
        loss: torch.Tensor | float | None,
        temperature: torch.Tensor | float | None,
        stats: bool,
    ) -> None:
        """Every step: batch size, loss and τ; with ``stats``, the step statistics. O(B·d), no host sync.

        The step statistics are a scheduled kind (:data:`~cldiag.monitor.budget.STEP`), timed for the budget.
        """
        mod_a, mod_b = self.modalities
        self._add(step, schema.M_BATCH, float(a.shape[0]))
        if b is not None and stats:
            started = self._schedule.start()
            values = F.step_statistics(a, b, two_modality=self.two_modality)
            for key, metric in _STEP_STATISTICS.items():
                if key in values:
                    self._add(step, metric.format(a=mod_a, b=mod_b), values[key])
            self._schedule.done(STEP, step, started)
        if loss is not None:
            self._add(step, schema.M_LOSS, loss)
        if isinstance(temperature, torch.Tensor) and temperature.ndim == 1:
            self._add(step, schema.M_TEMPERATURE, temperature.mean())  # per-sample τ: no host sync
        elif temperature is not None:
            self._add(step, schema.M_TEMPERATURE, temperature)

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
        mods: dict[str, torch.Tensor] | None = None,
    ) -> None:
        """O(B²) and O(d³) statistics on the finite rows.

        On a GPU the host waits for the device once to drop non-finite rows, and once per eigen-solve
        (spectrum, effective rank: PyTorch's solvers check their status on the host); a per-sample τ's
        quantiles and the pairwise, curves and modality statistics add none (``tests/test_cuda_sync.py``).
        """
        if mods is not None and pairwise:
            finite = torch.stack([torch.isfinite(z).all(dim=1) for z in mods.values()]).all(dim=0)
            # A row non-finite in a third modality is dropped from every statistic of the step.
            a = torch.where(finite[:, None], a, float("nan"))
        rows = self._finite_rows(step, a, b, labels, temperature)
        if rows is None:
            return
        a, b, labels, temperature, kept = rows
        if mods is not None and pairwise and kept is not None:
            mods = {name: z[kept] for name, z in mods.items()}
        sched = self._schedule
        if pairwise:
            started = sched.start()
            self._pairwise(step, a, b, labels, temperature)
            if isinstance(temperature, torch.Tensor) and temperature.ndim == 1:
                self._tau_quantiles(step, temperature)
                self._tau_by_class(step, labels, temperature)
            if mods is not None:
                self._modality_pairs(step, mods)
            sched.done("pairwise", step, started)
        if spectra:
            started = sched.start()
            self._spectra(step, a, b)
            sched.done("spectrum", step, started)
        if curves and b is not None:
            started = sched.start()
            self._curves(step, a, b, labels)
            sched.done("curves", step, started)

    def _finite_rows(
        self,
        step: int,
        a: torch.Tensor,
        b: torch.Tensor | None,
        labels: torch.Tensor | None,
        temperature: torch.Tensor | float | None,
    ) -> (
        tuple[
            torch.Tensor,
            torch.Tensor | None,
            torch.Tensor | None,
            torch.Tensor | float | None,
            torch.Tensor | None,
        ]
        | None
    ):
        """The batch's finite rows (and their τ), τ checked, in one host sync; None when < 2 rows are left.

        The last item is the boolean mask of the rows kept, or None when every row is finite.

        A per-sample τ ``(B,)`` must be positive and finite in every row (a row's τ belongs to the loss,
        not to its embedding, so a bad one is an error, not a dropped row).
        """
        finite = torch.isfinite(a).all(dim=1)
        if b is not None:
            finite &= torch.isfinite(b).all(dim=1)
        checks = [finite.all()]
        if isinstance(temperature, torch.Tensor):
            # τ's value is checked in the one host sync this step already makes (none is added).
            ok = torch.isfinite(temperature) & (temperature > 0)
            checks.append(ok.all().to(finite.device) if temperature.ndim == 1 else ok.to(finite.device))
        all_finite, *tau_ok = torch.stack(checks).tolist()
        if tau_ok and not tau_ok[0]:
            if isinstance(temperature, torch.Tensor) and temperature.ndim == 1:
                message = "every per-sample temperature must be positive and finite"
            else:
                message = f"temperature must be positive and finite, got {float(temperature):.6g}"  # type: ignore[arg-type]
            raise keyed(ValueError(message), "bad temperature")
        kept = None
        if not all_finite:
            kept = finite
            a = a[finite]
            b = b[finite] if b is not None else None
            labels = labels[finite] if labels is not None else None
            if isinstance(temperature, torch.Tensor) and temperature.ndim == 1:
                temperature = temperature[finite]
        if a.shape[0] < 2:
            self._report(
                f"step {step}: fewer than 2 finite rows; pairwise statistics need at least 2",
                key="fewer than 2 finite rows",
            )
            return None
        return a, b, labels, temperature, kept

    def _sides(self, a: torch.Tensor, b: torch.Tensor | None) -> list[tuple[str, torch.Tensor]]:
        """The modalities whose own statistics are logged: both for a two-modality run, else view 1."""
        mod_a, mod_b = self.modalities
        return [(mod_a, a)] + ([(mod_b, b)] if (b is not None and self.two_modality) else [])

    def _pairwise(
        self,
        step: int,
        a: torch.Tensor,
        b: torch.Tensor | None,
        labels: torch.Tensor | None,
        temperature: torch.Tensor | float | None,
    ) -> None:
        """O(B²), all from one similarity matrix: :func:`cldiag.functional.pairwise_statistics`.

        Uniformity, spread, tolerance, score histograms, negatives, retrieval, hardness at τ, ranks,
        ordering violations and false-negative shares. Above :data:`cldiag.functional.ROW_CAP` rows they
        are those of a seeded subsample (seed = the step), whose size is logged as ``pairwise_rows``. A
        per-sample τ gives the hardness at its mean and the false-negative penalty share at each anchor's
        own τ.
        """
        if b is None:
            self._single_view_pairwise(step, a, labels)
            return
        st = F.pairwise_statistics(a, b, labels=labels, temperature=temperature, bins=self.bins, seed=step)
        if self.two_modality:
            self._add(step, f"{schema.M_UNIFORMITY}/{self.modalities[0]}", st.uniformity_a)
            self._add(step, f"{schema.M_UNIFORMITY}/{self.modalities[1]}", st.uniformity_b)
        # Both sides either way: Wang & Isola average the two views' uniformity.
        self._add(step, schema.M_UNIFORMITY, torch.stack([st.uniformity_a, st.uniformity_b]).mean())
        self._add(step, schema.M_STD_L2, st.std_a)
        if st.tolerance is not None:
            self._add(step, schema.M_TOLERANCE, st.tolerance)
        h = st.histograms
        self._pending.hist.append((step, schema.HIST_POS, h.pos, h.edges))
        self._pending.hist.append((step, schema.HIST_NEG, h.neg, h.edges))
        self._pending.hist.append((step, schema.HIST_HARD_NEG, h.hard_neg, h.edges))
        self._add(step, schema.M_OVERLAP, st.overlap)
        self._add(step, schema.M_NEG_SIM, st.negative_similarity)
        self._add(step, schema.M_HARD_NEG_SIM, st.hardest_negative)
        self._add(step, schema.M_RETRIEVAL, st.retrieval)
        if st.hardness is not None and st.coupling is not None:
            self._add(step, schema.M_ENTROPY, st.hardness.entropy)
            self._add(step, schema.M_EFF_NEG, st.hardness.effective_negatives)
            self._add(step, schema.M_COUPLING, st.coupling)
        self._record_rows(step, st.rows)
        self._ranks(step, st)

    def _ranks(self, step: int, st: F.PairwiseStatistics) -> None:
        """Log the fused call's ranks (MRR, R@1/5/10), ordering violations and false-negative shares."""
        summary = st.rank_summary
        self._add(step, schema.M_MRR, summary.mrr)
        self._add(step, schema.M_RECALL_AT_1, summary.recall_at_1)
        self._add(step, schema.M_RECALL_AT_5, summary.recall_at_5)
        self._add(step, schema.M_RECALL_AT_10, summary.recall_at_10)
        self._add(step, schema.M_ORDERING_VIOLATIONS, st.ordering_violations)
        if st.false_negatives is not None:
            self._add(step, schema.M_FALSE_NEG_SHARE, st.false_negatives.count_share)
            self._add(step, schema.M_FALSE_NEG_PENALTY_SHARE, st.false_negatives.penalty_share)

    def _modality_pairs(self, step: int, mods: dict[str, torch.Tensor]) -> None:
        """O(N²·B²·d): every pair's gap and cross-modal retrieval of N modalities (on the capped rows).

        With three or more, also Symile's MIP distributions (:meth:`_multilinear`).
        """
        n = next(iter(mods.values())).shape[0]
        rows = F.subsample_rows(n, F.ROW_CAP, seed=step, device=next(iter(mods.values())).device)
        if rows is not None:
            mods = {name: z[rows] for name, z in mods.items()}
        gm = F.modality_gap_matrix(mods)
        for p, first in enumerate(gm.names):
            for q, second in enumerate(gm.names):
                if p < q:
                    self._add(step, schema.pair_metric(schema.M_PAIR_GAP, first, second), gm.gap[p, q])
                if p != q:
                    name = schema.pair_metric(schema.M_PAIR_RETRIEVAL, first, second)
                    self._add(step, name, gm.retrieval[p, q])
        if len(mods) >= 3:
            self._multilinear(step, mods)

    def _multilinear(self, step: int, mods: dict[str, torch.Tensor]) -> None:
        """O(N·B²·d), N >= 3: Symile's MIP of matched vs mismatched tuples: histograms, means, overlap.

        On the rows :meth:`_modality_pairs` uses. For two modalities the MIP is the cosine, already in
        the score histograms.
        """
        h = F.multilinear_histograms(*mods.values(), bins=self.bins)
        self._pending.hist.append((step, schema.HIST_MIP_POS, h.pos, h.edges))
        self._pending.hist.append((step, schema.HIST_MIP_NEG, h.neg, h.edges))
        self._add(step, schema.M_MIP_POS, h.pos_mean)
        self._add(step, schema.M_MIP_NEG, h.neg_mean)
        self._add(step, schema.M_MIP_OVERLAP, F.histogram_overlap(h.pos, h.neg))

    def _tau_quantiles(self, step: int, tau: torch.Tensor) -> None:
        """O(B log B): quantiles ``schema.TAU_QUANTILES`` of a per-sample τ (its finite rows, all of them)."""
        dist_ = F.temperature_distribution(tau, probs=list(schema.TAU_QUANTILES.values()))
        for name, value in zip(schema.TAU_QUANTILES, dist_.quantiles, strict=True):
            self._add(step, name, value)

    def _tau_by_class(self, step: int, labels: torch.Tensor | None, tau: torch.Tensor) -> None:
        """Keep the step's (labels, τ) rows for the per-class τ scalars, made on the host at the flush.

        ``tau_class/<label>`` (mean τ) and ``tau_class_count/<label>`` (rows) of at most
        ``schema.MAX_TAU_CLASSES`` classes, the most frequent of the step (``host_tables.tau_by_class``). The
        rows are the step's finite rows, all of them; copies, so a τ parameter updated in place by the
        optimizer, or a reused label buffer, is buffered as it was at this step. Nothing without labels.
        """
        if labels is not None:
            self._pending.tau_rows.append((step, labels.clone(), tau.clone()))

    def _single_view_pairwise(self, step: int, a: torch.Tensor, labels: torch.Tensor | None) -> None:
        """Without ``b``: uniformity, spread and tolerance of ``a`` (on the capped rows)."""
        rows = F.subsample_rows(a.shape[0], F.ROW_CAP, seed=step, device=a.device)
        if rows is not None:
            a, labels = a[rows], (labels[rows] if labels is not None else None)
        self._add(step, schema.M_UNIFORMITY, F.uniformity(a))
        self._add(step, schema.M_STD_L2, F.std_of_l2_normalized(a))
        if labels is not None:
            self._add(step, schema.M_TOLERANCE, F.tolerance(a, labels))
        self._record_rows(step, rows)

    def _record_rows(self, step: int, rows: torch.Tensor | None) -> None:
        """Log how many rows a subsampled step used (once per step, for pairwise and curves alike)."""
        if rows is not None and self._rows_step != step:
            self._add(step, M_PAIRWISE_ROWS, float(rows.numel()))
            self._rows_step = step

    def _spectra(self, step: int, a: torch.Tensor, b: torch.Tensor | None) -> None:
        """O(B·d² + d³): covariance spectra and effective ranks (of each side and of both together)."""
        sides = self._sides(a, b)
        for mod, z in sides:
            self._pending.spectra.append((step, mod, F.spectrum(z)))
            rank = F.effective_rank(z)
            self._add(step, f"{schema.M_RANK}/{mod}" if len(sides) > 1 else schema.M_RANK, rank)
        if len(sides) > 1:
            self._add(step, schema.M_RANK, F.effective_rank(torch.cat([a, b])))  # type: ignore[list-item]

    def _curves(self, step: int, a: torch.Tensor, b: torch.Tensor, labels: torch.Tensor | None) -> None:
        """O(B²·(d + #τ)): the temperature curves over the τ grid."""
        taus = self.taus.to(a.device, non_blocking=True)  # a blocking copy would wait for the GPU
        c = F.temperature_curves(a, b, taus, labels=labels, seed=step)
        self._record_rows(step, c.rows)
        for curve, attr in _CURVES:
            values = getattr(c, attr)
            if values is not None:
                self._pending.curves.append((step, c.taus, curve, values))

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
        take_n = min(n, self.snapshot_size - self._snap_rows)
        if ids is None:
            ids = torch.arange(self._sample_counter, self._sample_counter + n, device=a.device)
        self._sample_counter += n
        rows = slice(0, take_n)
        lab = labels[rows] if labels is not None else None
        texts = None
        if meta is not None:
            own = min(take_n, meta_rows)
            texts = schema.encode_meta(meta, range(own)) + [None] * (take_n - own)
        sides = [(self.modalities[0], a)] if b is None else [(self.modalities[0], a), (self.modalities[1], b)]
        for modality, z in sides:
            self._pending.snapshots.append((self._snap_step, modality, z[rows], lab, ids[rows], texts))
        self._last_snapshot_step = step
        self._snap_rows += take_n
        if self._snap_rows >= self.snapshot_size:
            self._snap_step = None

    # ---------------------------------------------------------------------------------------------------
    # reporting
    def _report(self, message: str, key: str | None = None) -> None:
        """Report an error once (warning + log) without interrupting training; see :class:`Reporter`."""
        self._reporter.report(message, key, stacklevel=4)

    # ---------------------------------------------------------------------------------------------------
    # flushing
    def _maybe_flush(self) -> None:
        if (
            self._pending.n_steps >= self.cadence.flush_every
            or time.monotonic() - self._last_flush >= self.cadence.flush_secs
        ):
            self.flush()

    def flush(self, *, wait: bool = False) -> None:
        """Copy buffered values to the host and hand them to the writer thread.

        Args:
            wait: block until everything handed over so far is on disk.
        """
        if self._writer is None:
            return
        self._raise_writer_error()
        dropped: dict[int, str] = {}
        with self._lock:
            pending, self._pending = self._pending, host_tables.Pending()
            self._last_flush = time.monotonic()
            if not pending.empty() and not self._run_gone:
                try:
                    job = host_tables.to_host(pending, self._dim)
                except Exception as exc:
                    if self.strict:
                        raise
                    self._report(f"flush failed, {pending.n_steps} steps of diagnostics lost: {exc}")
                    job = None
                if job is not None:
                    dropped = job.dropped
                    self._writer.submit(job)
        if dropped:
            steps = sorted(dropped)
            message = (
                f"{len(steps)} step(s) dropped at flush (first: step {steps[0]}: {dropped[steps[0]]}); "
                "the flush's other steps are written"
            )
            if self.strict:
                raise ValueError(message)
            self._report(message, key="dropped at flush")
        if wait:
            self._writer.wait()
            self._raise_writer_error()

    def _raise_writer_error(self) -> None:
        if self.strict and self._writer is not None and (exc := self._writer.take_error()) is not None:
            raise exc

    # ---------------------------------------------------------------------------------------------------
    # closing
    def close(
        self, status: Literal["finished", "failed"] = "finished", *, timeout: float | None = None
    ) -> None:
        """Flush everything, wait for the writer, and mark the run ``finished`` (or ``failed``).

        When the last logged step had no embedding snapshot (or no spectrum) and those are on, the last
        logged batch is snapshotted (and its spectrum taken) at that step first, so a run shorter than
        ``snapshot_every`` still shows its trained embeddings.

        Args:
            status: what ``meta.json`` records.
            timeout: seconds to wait for the writer (None: as long as it takes). At interpreter exit the
                wait is capped at 60 s so that a hung filesystem cannot keep a finished training alive.
        """
        if self._closed:
            return
        self._closed = True
        _live_monitors.discard(self)
        writer = self._writer
        if writer is None:
            return
        writer.release()
        final_error = self._final_snapshot()
        self._record_overhead()
        try:
            self.flush()
            if not writer.finish(status, timeout, strict=self.strict):
                return
        except Exception as exc:
            if self.strict:
                raise
            self._report(f"close failed: {exc}")
            return
        writer.compact_at_close()
        if final_error is not None:
            raise final_error

    def _record_overhead(self) -> None:
        """Put what the overhead budget measured in ``meta.json`` (written at close)."""
        if isinstance(self._schedule, OverheadBudget):
            st = self._schedule.state
            self._meta["overhead"] = {
                "budget": self._schedule.fraction,
                "share": round(st.share, 6),
                "base_share": round(st.base_share, 6),
                "stretch": st.stretch if math.isfinite(st.stretch) else None,
            }

    def _final_snapshot(self) -> Exception | None:
        """Snapshot and spectrum of the last logged batch at its step, where that step had none.

        Returns the error to raise once the run is closed (strict), None otherwise (errors are reported).
        """
        if self._last_batch is None or self._run_gone:
            return None
        step, a, b, labels, meta, meta_rows = self._last_batch
        self._last_batch = None
        pending, sizes = self._pending, self._pending.sizes()
        try:
            if self.spectrum_every and self._last_spectrum_step != step:
                self._heavy(step, a, b, labels, None, pairwise=False, spectra=True, curves=False)
            explicit = max(self._last_embedding_step.values(), default=None)  # log_embeddings snapshots
            ends_with_snapshot = self._last_snapshot_step == step or (
                explicit is not None and explicit >= step
            )
            if self.snapshot_every and not ends_with_snapshot and self._snap_step is None:
                self._snap_step, self._snap_rows = step, 0
                self._collect_snapshot(step, a, b, labels, None, meta, meta_rows)
                self._snap_step = None
        except Exception as exc:  # noqa: BLE001 - raised after closing when strict, else reported
            pending.truncate(sizes)
            if self.strict:
                return exc
            self._report(f"final snapshot at step {step}: {type(exc).__name__}: {exc}")
        return None

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self.close(status="failed" if exc_type is not None else "finished")


def _check_modalities(modalities: Sequence[str] | None) -> tuple[str, str] | None:
    """Two distinct non-empty modality names, or None."""
    if modalities is None:
        return None
    names = tuple(str(m) for m in modalities)
    if len(names) != 2 or names[0] == names[1] or not all(names):
        raise ValueError(f"modalities must be two distinct non-empty names, got {names!r}")
    return names  # type: ignore[return-value]


def _schedule(cadence: Cadence, budget: float | Schedule | None) -> Schedule:
    """The Monitor's schedule of its statistics: a given one, an overhead budget, or fixed cadences."""
    if isinstance(budget, Schedule):
        return budget
    if cadence.budget is None:
        return FixedCadence(cadence.every())
    return OverheadBudget(cadence.budget, cadence.every())


def _due(step: int, every: int) -> bool:
    return every > 0 and step % every == 0


# Strong references: a Monitor that is never closed is still flushed at exit (before the writer thread
# moved to RunWriter, that thread kept its Monitor alive; this keeps the guarantee).
_live_monitors: set[Monitor] = set()


@atexit.register
def _close_live_monitors() -> None:
    # A script that forgets close() still gets every logged step on disk.
    for mon in list(_live_monitors):
        mon.close(timeout=60.0)
