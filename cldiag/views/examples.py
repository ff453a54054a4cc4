"""Examples (issue 16): nearest neighbours and worst pairs of a snapshot, for the Pairs page and notebooks."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from cldiag import functional as FN
from cldiag.reader import Run
from cldiag.views.data import RunData, RunLike

NEIGHBOUR_COLUMNS = [
    "rank",
    "sample_id",
    "modality",
    "label",
    "meta",
    "similarity",
    "positive",
    "same_label",
]
PAIR_COLUMNS = [
    "step",
    "anchor_id",
    "anchor_label",
    "anchor_meta",
    "rank",
    "role",
    "sample_id",
    "label",
    "meta",
    "similarity",
    "likely_false_negative",
]
"""One row per (anchor, candidate): the positive, then the hardest negatives, hardest first."""


def _as_view(run: RunLike | Run) -> RunLike:
    return RunData(run) if isinstance(run, Run) else run


@dataclass(frozen=True)
class SnapshotPairs:
    """The paired rows of a snapshot: row ``i`` of side ``a`` and of side ``b`` share one sample id.

    Attributes:
        step: the snapshot step.
        modalities: names of side ``a`` and side ``b``.
        a: ``(P, d)`` float32 rows of side ``a``.
        b: ``(P, d)`` float32 rows of side ``b``.
        info_a: side ``a``'s rows (``sample_id, modality, label, meta``), index 0..P-1.
        info_b: side ``b``'s rows, in the same order.
    """

    step: int
    modalities: tuple[str, str]
    a: np.ndarray
    b: np.ndarray
    info_a: pd.DataFrame
    info_b: pd.DataFrame


def snapshot_pairs(view: RunLike | Run, step: int) -> SnapshotPairs | str:
    """The paired rows of the snapshot at ``step``, or a message saying why it holds no pairs."""
    view = _as_view(view)
    matrix, info = view.embedding_matrix(int(step))
    present = list(dict.fromkeys(info["modality"]))
    named = [m for m in view.run.modalities if m in present]
    sides = named if len(named) == 2 else present[:2]
    if len(sides) < 2:
        return (
            f"The snapshot at step {step} holds one side only ({', '.join(map(str, present)) or 'no rows'}), "
            "so it has no pairs to rank. Snapshots the Monitor takes in `log(step, a, b)` keep both sides; "
            "with `log_embeddings`, log both sides with the same `ids`."
        )
    rows = []
    for side in sides:
        part = info.loc[info["modality"] == side].drop_duplicates("sample_id")
        rows.append(pd.Series(part.index, index=part["sample_id"].to_numpy()))
    common = rows[0].index.intersection(rows[1].index, sort=False)
    if len(common) < 2:
        return f"The snapshot at step {step} has {len(common)} sample(s) with both sides; ranking needs 2."
    ia, ib = rows[0].loc[common].to_numpy(), rows[1].loc[common].to_numpy()
    return SnapshotPairs(
        step=int(step),
        modalities=(str(sides[0]), str(sides[1])),
        a=matrix[ia],
        b=matrix[ib],
        info_a=info.loc[ia].reset_index(drop=True),
        info_b=info.loc[ib].reset_index(drop=True),
    )


def _same_label(x: pd.Series, y: Any) -> pd.Series:
    """Whether each label equals ``y`` (<NA> when either is missing)."""
    if pd.isna(y):
        return pd.Series(pd.NA, index=x.index, dtype="boolean")
    return (x.astype("Int64") == int(y)).astype("boolean")


def neighbours_table(
    view: RunLike | Run, step: int, sample_id: int, k: int = 10, modality: str | None = None
) -> pd.DataFrame:
    """The ``k`` nearest rows to one sample in the full-dimensional snapshot at ``step`` (cosine).

    Args:
        view: the run.
        step: a snapshot step.
        sample_id: the query sample.
        k: neighbours to list (fewer when the snapshot is smaller).
        modality: which side of the sample is the query (default: the first one stored).

    Returns:
        Columns :data:`NEIGHBOUR_COLUMNS`: ``rank`` (1 = nearest), the neighbour's ``sample_id``,
        ``modality``, ``label``, ``meta`` (plain text), cosine ``similarity``, ``positive`` (the other side
        of the query's own pair) and ``same_label`` (<NA> without labels).

    Raises:
        KeyError: no snapshot at ``step``, or the sample (on that side) is not in it.
        ValueError: the snapshot has fewer than 2 rows.
    """
    view = _as_view(view)
    matrix, info = view.embedding_matrix(int(step))
    hits = info.index[(info["sample_id"] == int(sample_id)).to_numpy()]
    if modality is not None:
        hits = hits[(info.loc[hits, "modality"] == modality).to_numpy()]
    if not len(hits):
        side = "" if modality is None else f" on side {modality!r}"
        raise KeyError(f"sample {sample_id}{side} is not in the snapshot at step {step}")
    if len(info) < 2:
        raise ValueError(f"the snapshot at step {step} has {len(info)} row; neighbours need 2")
    query = int(info.index.get_loc(hits[0]))
    z = torch.from_numpy(np.require(matrix, np.float32, "W"))  # the reader's arrays are read-only
    found = FN.nearest_neighbours(z, query, min(int(k), len(info) - 1))
    rows = info.iloc[found.indices[0].numpy()].reset_index(drop=True)
    me = info.iloc[query]
    return pd.DataFrame(
        {
            "rank": np.arange(1, len(rows) + 1),
            "sample_id": rows["sample_id"].to_numpy(),
            "modality": rows["modality"].to_numpy(),
            "label": rows["label"].astype("Int64").to_numpy(),
            "meta": rows["meta"].to_numpy(),
            "similarity": found.similarity[0].numpy().astype(np.float64),
            "positive": (
                (rows["sample_id"] == me["sample_id"]) & (rows["modality"] != me["modality"])
            ).to_numpy(),
            "same_label": _same_label(rows["label"], me["label"]).to_numpy(),
        },
        columns=NEIGHBOUR_COLUMNS,
    )


def worst_pairs_table(
    view: RunLike | Run,
    step: int,
    n: int = 20,
    label: int | None = None,
    k: int = 3,
    compare_step: int | None = None,
) -> pd.DataFrame | str:
    """The anchors whose positive ranks worst at ``step``, each with its positive and hardest negatives.

    Ranks are over every paired sample of the snapshot (anchors on side ``a``, candidates on side ``b``,
    :func:`cldiag.functional.pair_ranks`); the label filter picks which anchors are listed, not which
    candidates count. A hardest negative sharing the anchor's label is flagged ``likely_false_negative``.

    Args:
        view: the run.
        step: a snapshot step.
        n: anchors to list, worst first (ties: lower positive cosine first).
        label: list only anchors with this label (None: all).
        k: hardest negatives per anchor.
        compare_step: an earlier snapshot; adds ``rank_then``, the same anchor's rank there (<NA> when the
            sample is not in it, as with training batches; fixed probe sets keep their ids).

    Returns:
        Columns :data:`PAIR_COLUMNS` (+ ``rank_then``): per anchor a ``positive`` row and ``negative 1`` …
        ``negative k`` rows; or a message when the snapshot holds no pairs or no anchor has ``label``.
    """
    view = _as_view(view)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    pairs = snapshot_pairs(view, step)
    if isinstance(pairs, str):
        return pairs
    a, b = torch.from_numpy(pairs.a), torch.from_numpy(pairs.b)
    ranks = FN.pair_ranks(a, b).numpy()
    pos = FN.positive_similarity(a, b).numpy()
    hard = FN.hardest_negatives(a, b, min(int(k), len(a) - 1))
    ia, ib = pairs.info_a, pairs.info_b
    keep = np.ones(len(ia), bool) if label is None else (ia["label"] == label).fillna(False).to_numpy(bool)
    if not keep.any():
        return f"No anchor has label {label} in the snapshot at step {step}."
    chosen = np.flatnonzero(keep)
    order = np.lexsort((pos[chosen], -np.nan_to_num(ranks[chosen], nan=np.inf)))
    chosen = chosen[order][:n]
    then = _ranks_by_id(view, compare_step) if compare_step is not None else None
    rows = []
    for i in chosen:
        anchor = {
            "step": pairs.step,
            "anchor_id": int(ia.at[i, "sample_id"]),
            "anchor_label": ia.at[i, "label"],
            "anchor_meta": ia.at[i, "meta"],
            "rank": float(ranks[i]),
        }
        if then is not None:
            anchor["rank_then"] = then.get(anchor["anchor_id"], np.nan)
        rows.append({**anchor, "role": "positive", **_candidate(ib, i, pos[i], None)})
        for j, (col, sim) in enumerate(
            zip(hard.indices[i].tolist(), hard.similarity[i].tolist(), strict=True)
        ):
            same = _same_label(ib["label"].iloc[[col]], anchor["anchor_label"]).iloc[0]
            rows.append({**anchor, "role": f"negative {j + 1}", **_candidate(ib, col, sim, same)})
    columns = [*PAIR_COLUMNS, *(["rank_then"] if then is not None else [])]
    out = pd.DataFrame(rows, columns=columns)
    out["anchor_label"] = out["anchor_label"].astype("Int64")
    out["label"] = out["label"].astype("Int64")
    out["likely_false_negative"] = out["likely_false_negative"].astype("boolean")
    return out


def _candidate(info: pd.DataFrame, row: int, similarity: float, same_label: Any) -> dict[str, Any]:
    return {
        "sample_id": int(info.at[row, "sample_id"]),
        "label": info.at[row, "label"],
        "meta": info.at[row, "meta"],
        "similarity": float(similarity),
        "likely_false_negative": same_label,
    }


def _ranks_by_id(view: RunLike, step: int) -> dict[int, float]:
    pairs = snapshot_pairs(view, step)
    if isinstance(pairs, str):
        return {}
    ranks = FN.pair_ranks(torch.from_numpy(pairs.a), torch.from_numpy(pairs.b)).numpy()
    return dict(
        zip(pairs.info_a["sample_id"].astype(int).tolist(), ranks.astype(float).tolist(), strict=True)
    )


def pair_labels(view: RunLike | Run, step: int) -> list[int]:
    """The labels of the paired anchors at ``step`` (for the Pairs page's filter); empty without labels."""
    pairs = snapshot_pairs(_as_view(view), step)
    if isinstance(pairs, str):
        return []
    return sorted(int(v) for v in pairs.info_a["label"].dropna().unique())


def _plain(text: Any, width: int) -> str | None:
    """One line of plain text for a terminal (control characters become spaces, long text is cut)."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return None
    flat = "".join(c if c.isprintable() else " " for c in str(text))
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def format_worst_pairs(table: pd.DataFrame, *, width: int = 100) -> str:
    """A :func:`worst_pairs_table` as text for ``cldiag report --examples`` (metadata cut to ``width``)."""
    if table.empty:
        return "No pairs to show."
    lines = [f"Worst pairs at step {int(table['step'].iloc[0])} (positive rank among all paired samples):"]
    for n, (anchor, rows) in enumerate(table.groupby("anchor_id", sort=False), start=1):
        first = rows.iloc[0]
        label = "" if pd.isna(first["anchor_label"]) else f", label {int(first['anchor_label'])}"
        then = ""
        if "rank_then" in rows and not pd.isna(first["rank_then"]):
            then = f" (was {first['rank_then']:.0f})"
        lines.append(f"{n:>3}. sample {anchor}{label}: positive ranks {first['rank']:.0f}{then}")
        if (text := _plain(first["anchor_meta"], width)) is not None:
            lines.append(f"       anchor      {text}")
        for _, row in rows.iterrows():
            flag = "  [likely false negative]" if row["likely_false_negative"] is True else ""
            tag = "" if pd.isna(row["label"]) else f" (label {int(row['label'])})"
            lines.append(
                f"       {row['role']:<11} cos {row['similarity']:+.3f}  sample {row['sample_id']}{tag}{flag}"
            )
            if (text := _plain(row["meta"], width)) is not None:
                lines.append(f"                   {text}")
    return "\n".join(lines)


PAIRS_CAPTION = (
    "Anchors whose positive ranks worst among all paired samples of the snapshot (rank 1 = found first), "
    "each with its positive and its hardest negatives: metadata, cosine, and the rank at an earlier step.",
    "Read the texts: a positive that is a poor match for its anchor is noisy data; a hardest negative with "
    "the anchor's label (flagged) is likely a false negative (Chuang et al. 2020), one without is a real "
    "confusion. Ranks that grow worse over training point to collapse or a mismatch of rows.",
)
"""How to read the Pairs page's table (what it shows; what to look for, with the paper)."""


def selection_neighbours(
    view: RunLike, points: Sequence[Mapping[str, Any]], k: int = 10
) -> pd.DataFrame | str | None:
    """The neighbours of the point selected on the Embeddings map (None when nothing is selected).

    Args:
        view: the run.
        points: plotly's selected points; each carries ``customdata = [sample_id, label, modality, step, …]``
            (see :func:`cldiag.figures.fig_embedding_scatter`). The first one is the query.
        k: neighbours to list.

    Returns:
        :func:`neighbours_table` of the selected sample at its snapshot step, its ``attrs["caption"]`` naming
        the query; or a message when the point cannot be looked up.
    """
    if not points:
        return None
    data = points[0].get("customdata")
    if not isinstance(data, Sequence) or len(data) < 4:
        return "Click a point of the map (not a centroid or line) to list its nearest neighbours."
    sample_id, modality, step = int(data[0]), str(data[2]), int(data[3])
    try:
        table = neighbours_table(view, step, sample_id, k, modality)
    except KeyError:
        return f"Sample {sample_id} ({modality}) is not in the snapshot at step {step}."
    table.attrs["caption"] = (
        f"Nearest {len(table)} neighbours of sample {sample_id} ({modality}, step {step}) by cosine in the "
        f"full {view.dim or ''}-dimensional snapshot, not in the 2-D map. `positive`: the other side of its "
        "own pair; `same_label`: shares its label."
    )
    return table
