"""The on-disk contract of a cldiag run: layout, table schemas, metric names.

A run is a directory (local path or ``s3://`` / ``file://`` URI)::

    meta.json                          run metadata, see :func:`new_meta`
    scalars/part-*.parquet             step, metric, value            (long format)
    histograms/part-*.parquet          step, kind, bin_left, bin_right, count
    spectra/part-*.parquet             step, modality, index, eigenvalue
    temperature/part-*.parquet         step, tau, curve, value
    embeddings/step=N/part-*.parquet   step, sample_id, modality, label, vector, meta

Every table is long ("tidy") and append-only: a new metric is a new row value, never a schema change,
so any parquet reader (pandas, polars, DuckDB, Spark) can read a run without cldiag. Each flush writes
new part files under a temporary name and renames them into place, so a reader never sees a partial file.
"""

from __future__ import annotations

import datetime as _dt
import getpass
import json
import platform
import socket
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import pyarrow as pa

SCHEMA_VERSION: Final[int] = 2
"""Bumped whenever a table or ``meta.json`` changes. Version 2 added the snapshots' ``meta`` column."""

READABLE_SCHEMA_VERSIONS: Final[tuple[int, ...]] = (1, 2)
"""Versions this cldiag reads; readers refuse others. A version-1 snapshot reads with ``meta`` all null."""

META_FILE: Final[str] = "meta.json"
PART_PREFIX: Final[str] = "part-"
PART_SUFFIX: Final[str] = ".parquet"

MAX_META_BYTES: Final[int] = 2 * 1024 * 1024
"""Readers refuse a larger ``meta.json`` (a config of tens of thousands of keys is not a run's settings)."""
MAX_SAFE_STEP: Final[int] = 2**53 - 1
"""The largest step a browser's numbers hold exactly (JavaScript's ``Number.MAX_SAFE_INTEGER``)."""
MAX_NAME_CHARS: Final[int] = 200
"""A run name read from ``meta.json`` is cut to this many characters."""

TABLES: Final[tuple[str, ...]] = ("scalars", "histograms", "spectra", "temperature", "embeddings")

SCALARS = pa.schema(
    [("step", pa.int64()), ("metric", pa.string()), ("value", pa.float64())],
)
HISTOGRAMS = pa.schema(
    [
        ("step", pa.int64()),
        ("kind", pa.string()),
        ("bin_left", pa.float32()),
        ("bin_right", pa.float32()),
        ("count", pa.int64()),
    ],
)
SPECTRA = pa.schema(
    [("step", pa.int64()), ("modality", pa.string()), ("index", pa.int32()), ("eigenvalue", pa.float64())],
)
TEMPERATURE = pa.schema(
    [("step", pa.int64()), ("tau", pa.float64()), ("curve", pa.string()), ("value", pa.float64())],
)


def embeddings_schema(dim: int) -> pa.Schema:
    """Schema of an embedding snapshot: one row per sample and side, the vector as a fixed-size float32 list.

    ``meta`` (nullable, schema version 2) is what the sample is: the text given for it, or a JSON object for
    a mapping of columns; see :func:`encode_meta`. Two-view and two-modality snapshots hold both sides of
    each pair under the same ``sample_id``; ``modality`` says which side a row is.
    """
    return pa.schema(
        [
            ("step", pa.int64()),
            ("sample_id", pa.int64()),
            ("modality", pa.string()),
            ("label", pa.int64()),
            ("vector", pa.list_(pa.float32(), dim)),
            ("meta", pa.string()),
        ],
    )


OPTIONAL_COLUMNS: Final[dict[str, pa.DataType]] = {"meta": pa.string()}
"""Columns that parts of older schema versions lack; readers fill them with nulls."""

META_MAX_CHARS: Final[int] = 500
"""Longest metadata text kept per row (per column for a mapping); longer text is cut and ends in ``…``."""

META_MAX_COLUMNS: Final[int] = 16
"""Most columns a metadata mapping may have."""

META_ELLIPSIS: Final[str] = "…"

Meta = Sequence[Any] | Mapping[str, Sequence[Any]]
"""Per-row metadata as the Monitor takes it: one string per row, or a mapping of column → strings."""


def _meta_text(value: Any, where: str) -> str | None:
    """One metadata cell as capped text (None stays None); numbers are written as text."""
    if value is None:
        return None
    if isinstance(value, bytes | bytearray):
        raise TypeError(f"{where} must be str (decode bytes first), got {type(value).__name__}")
    if isinstance(value, float) and value != value:  # NaN: a missing cell in pandas
        return None
    if isinstance(value, np.str_ | np.integer | np.floating):
        return _meta_text(value.item(), where)
    if not isinstance(value, str | int | float):
        raise TypeError(f"{where} must be a str (or a number), got {type(value).__name__}")
    text = str(value)
    if len(text) > META_MAX_CHARS:
        text = text[: META_MAX_CHARS - len(META_ELLIPSIS)] + META_ELLIPSIS
    return text


def _meta_length(values: Any, n: int, where: str) -> None:
    if isinstance(values, str | bytes | bytearray) or not hasattr(values, "__len__"):
        raise TypeError(
            f"{where} must be a sequence with one entry per row (a list of strings), "
            f"got {type(values).__name__}",
        )
    if len(values) != n:
        raise ValueError(f"{where} must have {n} entries to match the batch, got {len(values)}")


def check_meta(meta: Meta | None, n: int) -> None:
    """Check the shape of per-row metadata for ``n`` rows without touching every cell (cheap per step).

    Raises:
        TypeError: ``meta`` is neither a sequence nor a mapping of sequences, or a key is not a string.
        ValueError: a sequence does not hold ``n`` entries, or a mapping has too many columns.
    """
    if meta is None:
        return
    if isinstance(meta, Mapping):
        if not meta:
            raise ValueError("meta mapping has no columns")
        if len(meta) > META_MAX_COLUMNS:
            raise ValueError(f"meta mapping may have at most {META_MAX_COLUMNS} columns, got {len(meta)}")
        for key, values in meta.items():
            if not isinstance(key, str) or not key:
                raise TypeError(f"meta mapping keys must be non-empty strings, got {key!r}")
            _meta_length(values, n, f"meta[{key!r}]")
        return
    _meta_length(meta, n, "meta")


def meta_length(meta: Meta | None) -> int:
    """Rows of per-row metadata checked by :func:`check_meta` (0 for None)."""
    if meta is None:
        return 0
    return len(next(iter(meta.values())) if isinstance(meta, Mapping) else meta)


def encode_meta(meta: Meta, rows: Sequence[int] | range) -> list[str | None]:
    """The stored ``meta`` text of the chosen rows: the row's string, or a JSON object for a mapping.

    Every cell is cut to :data:`META_MAX_CHARS` characters. The text is stored and shown as plain text:
    never parsed, executed, or rendered as Markdown/HTML. A mapping row whose cells are all missing is None.

    Args:
        meta: one string per row (``None`` = no metadata for that row), or a mapping of column name → such
            a sequence (e.g. ``{"caption": [...], "file": [...]}``). Numbers are written as text.
        rows: the row indices to encode (a snapshot keeps only some rows of a batch).

    Raises:
        TypeError: a cell is not a string, number or None.

    Example:
        >>> encode_meta(["a cat", None, "x" * 600], range(3))[:2]
        ['a cat', None]
        >>> encode_meta({"caption": ["a dog"], "index": [7]}, [0])
        ['{"caption": "a dog", "index": "7"}']
    """
    if isinstance(meta, Mapping):
        # Positional access: a pandas Series is read by position (.iloc), never by its index labels.
        columns = {k: getattr(v, "iloc", v) for k, v in meta.items()}
        out: list[str | None] = []
        for i in rows:
            cells = {k: _meta_text(v[i], f"meta[{k!r}][{i}]") for k, v in columns.items()}
            kept = {k: v for k, v in cells.items() if v is not None}
            out.append(json.dumps(kept, ensure_ascii=False) if kept else None)
        return out
    values = getattr(meta, "iloc", meta)
    return [_meta_text(values[i], f"meta[{i}]") for i in rows]


SCHEMAS: Final[dict[str, pa.Schema]] = {
    "scalars": SCALARS,
    "histograms": HISTOGRAMS,
    "spectra": SPECTRA,
    "temperature": TEMPERATURE,
}

# ---------------------------------------------------------------------------------------------------------
# Histogram kinds and temperature-curve names.
HIST_POS: Final[str] = "pos"
HIST_NEG: Final[str] = "neg"
HIST_HARD_NEG: Final[str] = "hard_neg"
# N >= 3 modalities (Symile): multilinear inner product of matched tuples and of mismatched ones.
HIST_MIP_POS: Final[str] = "mip_pos"
HIST_MIP_NEG: Final[str] = "mip_neg"

CURVE_ENTROPY: Final[str] = "entropy"  # normalized entropy of the negative weighting, [0, 1]
CURVE_EFFECTIVE_NEGATIVES: Final[str] = "effective_negatives"  # exp(entropy), [1, #negatives]
CURVE_UNIFORMITY: Final[str] = "uniformity"  # uniformity at t = 1/(2 tau), <= 0
CURVE_SAME_CLASS_PENALTY: Final[str] = "same_class_penalty"  # share of penalty on same-class negatives
CURVE_POS_WEIGHT: Final[str] = "pos_prob"  # softmax probability of the positive at tau

# ---------------------------------------------------------------------------------------------------------
# Scalar metric names. A metric computed per modality is "<name>/<modality>".
# Every logged step (O(B·d)):
M_ALIGNMENT: Final[str] = "alignment"  # mean ||â-b̂||², [0, 4]
M_POS_SIM: Final[str] = "pos_sim"  # mean cosine of positive pairs, [-1, 1]
M_NORM: Final[str] = "norm"  # mean raw L2 norm of rows, per modality: "norm/<modality>"
M_LOSS: Final[str] = "loss"
M_TEMPERATURE: Final[str] = "temperature"
M_NONFINITE: Final[str] = "nonfinite_fraction"  # share of rows with NaN/Inf, dropped from metrics
NONFINITE_PREFIX: Final[str] = "nonfinite/"  # "nonfinite/<metric>" = 1: that metric was NaN/Inf at that step
M_BATCH: Final[str] = "batch_size"
M_GAP: Final[str] = "modality_gap"  # ||mean(â) - mean(b̂)||, [0, 2]
M_CONE: Final[str] = "cone"  # mean within-modality cosine, i≠j, per modality: "cone/<modality>"
M_MATCHED_DIST: Final[str] = "matched_distance"  # mean ||â_i - b̂_i||, [0, 2]
# Every ``pairwise_every`` steps (O(B²·d)):
M_UNIFORMITY: Final[str] = "uniformity"  # per modality too
M_NEG_SIM: Final[str] = "neg_sim"  # mean cosine of negative pairs
M_HARD_NEG_SIM: Final[str] = "hard_neg_sim"  # mean over anchors of the hardest negative's cosine
M_RETRIEVAL: Final[str] = "retrieval_acc"  # in-batch top-1: positive beats every negative
M_OVERLAP: Final[str] = "pos_neg_overlap"  # overlap coefficient of the pos/neg histograms, [0, 1]
M_TOLERANCE: Final[str] = "tolerance"  # mean same-class cosine, i≠j (labels needed)
M_STD_L2: Final[str] = "std_l2"  # std_of_l2_normalized, [0, 1/sqrt(d)]
M_ENTROPY: Final[str] = "neg_entropy"  # normalized entropy of the negative weighting at the run's τ
M_EFF_NEG: Final[str] = "effective_negatives"  # exp(entropy) at the run's τ
M_COUPLING: Final[str] = "dcl_coupling"  # mean (1 - p_pos) at the run's τ (Yeh et al.)
# Every ``spectrum_every`` steps:
M_RANK: Final[str] = "effective_rank"  # RankMe, [1, min(B, d)], per modality too
# Literature diagnostics (issue 15), every ``pairwise_every`` steps (O(B²·d)):
M_MRR: Final[str] = "mrr"  # mean reciprocal rank of the positive among the B candidates, (0, 1]
M_RECALL_AT_1: Final[str] = "recall_at_1"  # share of anchors whose positive ranks first, [0, 1]
M_RECALL_AT_5: Final[str] = "recall_at_5"  # share with rank <= 5, [0, 1]
M_RECALL_AT_10: Final[str] = "recall_at_10"  # share with rank <= 10, [0, 1]
M_ORDERING_VIOLATIONS: Final[str] = "ordering_violations"  # 1 - AUROC of pos vs neg scores, [0, 1] (GroCo)
M_FALSE_NEG_SHARE: Final[str] = "false_neg_share"  # share of negatives with the anchor's label (labels)
M_FALSE_NEG_PENALTY_SHARE: Final[str] = "false_neg_penalty_share"  # their share of the penalty at τ
M_PAIR_GAP: Final[str] = "gap"  # N modalities: "gap/<m1>-<m2>", see pair_metric; [0, 2]
M_PAIR_RETRIEVAL: Final[str] = "retrieval"  # "retrieval/<m1>-<m2>": top-1 of m2's row i from m1's row i
M_MIP_POS: Final[str] = "mip_pos"  # N >= 3: mean multilinear inner product of matched tuples (Symile)
M_MIP_NEG: Final[str] = "mip_neg"  # N >= 3: mean MIP of tuples with one modality's row swapped
M_MIP_OVERLAP: Final[str] = "mip_overlap"  # N >= 3: overlap coefficient of the mip_pos/mip_neg histograms
M_TAU_Q10: Final[str] = "tau_q10"  # per-sample τ (iSogCLR): 10 % quantile of the batch's τ
M_TAU_Q50: Final[str] = "tau_q50"  # median
M_TAU_Q90: Final[str] = "tau_q90"  # 90 % quantile
TAU_QUANTILES: Final[dict[str, float]] = {M_TAU_Q10: 0.1, M_TAU_Q50: 0.5, M_TAU_Q90: 0.9}
"""The per-sample τ quantiles that are logged, name → level."""
# Per-sample τ with labels (iSogCLR's frequent vs rare semantics), at pairwise steps, one pair of scalars per
# class present in the batch: "tau_class/<label>" = mean τ of the class's rows, "tau_class_count/<label>" =
# how many rows that mean is over. Not "M_" names: they sort after cldiag's own metrics in listings (a run
# may have hundreds of classes), like user metrics.
TAU_CLASS_PREFIX: Final[str] = "tau_class/"
TAU_CLASS_COUNT_PREFIX: Final[str] = "tau_class_count/"
MAX_TAU_CLASSES: Final[int] = 64
"""Most classes whose τ is written per step: the most frequent in the batch, ties to the smaller label."""


def pair_metric(base: str, first: str, second: str) -> str:
    """The name of a per-pair metric of N modalities, e.g. ``pair_metric(M_PAIR_GAP, "image", "audio")``.

    Returns ``"<base>/<first>-<second>"``; the order matters for retrieval (``first`` is the query side).

    Raises:
        ValueError: If a modality name is empty or holds ``/`` or ``-``, which would make the name ambiguous.
    """
    for name in (first, second):
        if not isinstance(name, str) or not name or "/" in name or "-" in name:
            raise ValueError(f"pair-metric modality names must be non-empty, no '/' or '-': {name!r}")
    return f"{base}/{first}-{second}"


STATUS_RUNNING: Final[str] = "running"
STATUS_FINISHED: Final[str] = "finished"
STATUS_FAILED: Final[str] = "failed"


class SchemaVersionError(ValueError):
    """A run directory was written by another, incompatible schema version."""


def heartbeat_age(meta: dict[str, Any], now: _dt.datetime | None = None) -> float | None:
    """Seconds since the run's last heartbeat (``created`` if none yet); None if it cannot be parsed.

    A timestamp without a time zone is read as UTC. ``now`` defaults to the current UTC time.
    """
    beat = meta.get("heartbeat") or meta.get("created")
    try:
        when = _dt.datetime.fromisoformat(str(beat))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.timezone.utc)
    now = now or _dt.datetime.now(_dt.timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=_dt.timezone.utc)
    try:
        return (now - when).total_seconds()
    except OverflowError:  # e.g. year 1 with a positive UTC offset
        return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def sanitize_meta(meta: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``meta.json`` as read, with each field a reader relies on checked: ``(clean copy, notes)``.

    A field of the wrong type or out of range is replaced by its "unknown" value (None, ``{}``, the
    default) and named in a note, so one odd field never breaks a page: ``config`` must be an object,
    ``last_step`` an integer in ``[0, MAX_SAFE_STEP]``, ``dim`` a positive integer below 2**31, ``name``
    and ``status`` strings (a name is cut to :data:`MAX_NAME_CHARS`), ``modalities`` two strings.
    """
    clean = dict(meta)
    notes: list[str] = []

    def drop(key: str, why: str, value: Any = None) -> None:
        clean[key] = value
        notes.append(f"meta.json: {key} {why}; ignored")

    if "config" in meta and not isinstance(meta["config"], dict):
        drop("config", f"is of type {type(meta['config']).__name__}, not an object", {})
    step = meta.get("last_step")
    if step is not None and not (_is_int(step) and 0 <= step <= MAX_SAFE_STEP):
        drop("last_step", "is not a step between 0 and 2**53-1")
    dim = meta.get("dim")
    if dim is not None and not (_is_int(dim) and 0 < dim < 2**31):
        drop("dim", "is not a positive integer below 2**31")
    name = meta.get("name")
    if name is not None and not isinstance(name, str):
        drop("name", "is not a string")
    elif isinstance(name, str) and len(name) > MAX_NAME_CHARS:
        clean["name"] = name[:MAX_NAME_CHARS] + "…"
        notes.append(f"meta.json: name is {len(name):,} characters; cut to {MAX_NAME_CHARS}")
    if "status" in meta and not isinstance(meta["status"], str):
        drop("status", "is not a string", "unknown")
    mods = meta.get("modalities")
    if mods is not None and not (
        isinstance(mods, list) and len(mods) == 2 and all(isinstance(m, str) for m in mods)
    ):
        drop("modalities", "is not a list of two names")
    if "two_modality" in meta and not isinstance(meta["two_modality"], bool):
        drop("two_modality", "is not true or false", False)
    return clean, notes


def now_iso() -> str:
    """The current UTC time as an ISO-8601 string (seconds)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def new_meta(
    *,
    name: str,
    config: dict[str, Any] | None,
    modalities: tuple[str, str],
    two_modality: bool,
    dim: int | None,
    cldiag_version: str,
    torch_version: str,
) -> dict[str, Any]:
    """Build the ``meta.json`` dict of a new run (status ``running``)."""
    created = now_iso()
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - getuser raises different errors on different platforms
        user = "unknown"
    return {
        "schema_version": SCHEMA_VERSION,
        "cldiag_version": cldiag_version,
        "name": name,
        "created": created,
        "heartbeat": created,
        "status": STATUS_RUNNING,
        "config": dict(config or {}),
        "modalities": list(modalities),
        "two_modality": two_modality,
        "dim": dim,
        "last_step": None,
        "host": socket.gethostname(),
        "user": user,
        "versions": {"torch": torch_version, "python": platform.python_version()},
    }
