"""What each scalar metric means for a chart: label, direction, natural bounds.

The dashboard reads axis titles, "higher is better" arrows and axis limits from here instead of hard-coding
them per page (the torchmetrics idea of ``higher_is_better`` / ``plot_lower_bound`` living beside the
metric). A per-modality variant ``"<metric>/<modality>"`` inherits the entry of its base metric.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from cldiag import schema

__all__ = ["METRICS", "MetricInfo", "metric_info"]


@dataclass(frozen=True)
class MetricInfo:
    """Plotting metadata of one scalar metric.

    Attributes:
        name: the metric name as stored in the ``scalars`` table.
        label: short human-readable axis label.
        higher_is_better: True / False, or None where both extremes are bad (e.g. hardness entropy).
        lower: the smallest value the metric can take (axis floor), None when unbounded.
        upper: the largest value the metric can take (axis ceiling), None when unbounded.
        source: the paper or convention that defines it.
        unit: what the value measures in (``cosine``, ``distance on the unit sphere``; empty when unitless).
        caption: how to read the metric's own chart over training, in two lines (what it shows; what
            healthy looks like, with the paper); None for metrics drawn only beside others.
        short: a narrow name for table headers (empty: use ``label``).
    """

    name: str
    label: str
    higher_is_better: bool | None
    lower: float | None
    upper: float | None
    source: str
    unit: str = ""
    caption: tuple[str, str] | None = None
    short: str = ""

    @property
    def arrow(self) -> str:
        """`` ↑`` (higher is better), `` ↓`` (lower is better) or nothing."""
        return {True: " ↑", False: " ↓", None: ""}[self.higher_is_better]

    @property
    def axis_title(self) -> str:
        """The label with an arrow saying which way is better (``↑`` higher, ``↓`` lower)."""
        return f"{self.label}{self.arrow}"

    @property
    def column_title(self) -> str:
        """A table header: the short name (the label when there is none) with the arrow."""
        return f"{self.short or self.label}{self.arrow}"


def _info(
    name: str,
    label: str,
    higher: bool | None,
    lower: float | None,
    upper: float | None,
    source: str,
    unit: str = "",
    caption: tuple[str, str] | None = None,
) -> MetricInfo:
    return MetricInfo(name, label, higher, lower, upper, source, unit, caption, SHORT.get(name, ""))


SHORT = {
    schema.M_POS_SIM: "pos. cos",
    schema.M_RANK: "rank",
    schema.M_RETRIEVAL: "retrieval",
    schema.M_GAP: "gap",
    schema.M_STD_L2: "std",
    schema.M_UNIFORMITY: "uniformity",
}
"""Narrow names for the Overview's runs table, where eight metric columns must fit beside the run's name at
1400 px (the table's header tooltips give the full :attr:`MetricInfo.axis_title`)."""
COSINE = "cosine similarity"
SPHERE = "distance on the unit sphere"


METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        _info(schema.M_LOSS, "loss", False, None, None, "the training objective"),
        _info(schema.M_TEMPERATURE, "temperature τ", None, 0.0, None, "the loss's temperature"),
        _info(schema.M_ALIGNMENT, "alignment", False, 0.0, 4.0, "Wang & Isola 2020"),
        _info(schema.M_UNIFORMITY, "uniformity (t=2)", False, None, 0.0, "Wang & Isola 2020"),
        _info(schema.M_POS_SIM, "positive cosine", True, -1.0, 1.0, "Zhu et al. 2021", COSINE),
        _info(schema.M_NEG_SIM, "negative cosine", False, -1.0, 1.0, "Zhu et al. 2021", COSINE),
        _info(schema.M_HARD_NEG_SIM, "hardest-negative cosine", None, -1.0, 1.0, "Zhu et al. 2021", COSINE),
        _info(schema.M_RETRIEVAL, "in-batch top-1 retrieval", True, 0.0, 1.0, "in-batch retrieval"),
        _info(
            schema.M_OVERLAP,
            "pos/neg overlap",
            False,
            0.0,
            1.0,
            "overlap coefficient of histograms",
            caption=(
                "Overlap coefficient Σ min(p_pos, p_neg) of the two histograms: 1 = identical, 0 = disjoint.",
                "It should fall as training separates positives from negatives (Zhu et al., ICCV 2021).",
            ),
        ),
        _info(
            schema.M_TOLERANCE,
            "tolerance",
            None,
            -1.0,
            1.0,
            "Wang & Liu 2021",
            COSINE,
            caption=(
                "Mean cosine between different samples of the same class.",
                "Higher tolerance keeps semantically similar samples together; very low τ trades it for "
                "uniformity (Wang & Liu, CVPR 2021).",
            ),
        ),
        _info(
            schema.M_STD_L2,
            "std of L2-normalized embeddings",
            True,
            0.0,
            None,
            "Chen & He 2021 (SimSiam)",
            caption=(
                "Mean over dimensions of the standard deviation of unit embeddings; dotted: 1/√d.",
                "Near 1/√d is healthy and 0 is complete collapse (SimSiam, Chen & He 2021); it misses "
                "low-rank collapse, so read it with the Spectrum page.",
            ),
        ),
        _info(schema.M_ENTROPY, "hardness entropy", None, 0.0, 1.0, "Wang & Liu 2021"),
        _info(schema.M_EFF_NEG, "effective negatives", None, 1.0, None, "Wang & Liu 2021"),
        _info(schema.M_COUPLING, "DCL coupling 1−p_pos", None, 0.0, 1.0, "Yeh et al. 2022"),
        _info(schema.M_RANK, "effective rank (RankMe)", True, 1.0, None, "Garrido et al. 2023"),
        _info(schema.M_NORM, "mean L2 norm", None, 0.0, None, "raw embedding norm"),
        _info(schema.M_NONFINITE, "non-finite rows", False, 0.0, 1.0, "NaN/Inf share"),
        _info(schema.M_BATCH, "batch size", None, 0.0, None, "rows per step"),
        _info(schema.M_GAP, "modality gap ‖Δ‖", False, 0.0, 2.0, "Liang et al. 2022", SPHERE),
        _info(schema.M_CONE, "cone: within-modality cosine", False, -1.0, 1.0, "Liang et al. 2022", COSINE),
        _info(schema.M_MATCHED_DIST, "matched-pair distance", False, 0.0, 2.0, "Liang et al. 2022", SPHERE),
        _info(
            schema.M_MRR,
            "mean reciprocal rank",
            True,
            0.0,
            1.0,
            "retrieval rank of the positive (GroCo, Shvetsova et al. 2023)",
            caption=(
                "Mean of 1/rank of each anchor's positive among the batch's B candidates (1 = always first).",
                "It should rise towards 1; chance is about ln(B)/B. Ranks, unlike scores, ignore how far "
                "ahead the positive is: only the order counts (GroCo, 2023).",
            ),
        ),
        _info(schema.M_RECALL_AT_1, "recall@1", True, 0.0, 1.0, "retrieval rank of the positive"),
        _info(schema.M_RECALL_AT_5, "recall@5", True, 0.0, 1.0, "retrieval rank of the positive"),
        _info(schema.M_RECALL_AT_10, "recall@10", True, 0.0, 1.0, "retrieval rank of the positive"),
        _info(
            schema.M_ORDERING_VIOLATIONS,
            "ordering violations (1 − AUROC)",
            False,
            0.0,
            1.0,
            "GroCo, Shvetsova et al. 2023",
            caption=(
                "Share of (positive, negative) pairs where the negative scores higher: 1 − AUROC per anchor.",
                "0 = every positive ahead of all its negatives, 0.5 = chance or collapse; GroCo (2023) "
                "trains on exactly this count.",
            ),
        ),
        _info(
            schema.M_FALSE_NEG_SHARE,
            "false-negative share",
            None,
            0.0,
            1.0,
            "DebCSE 2023; same-label negatives",
            caption=(
                "Share of in-batch negatives that carry the anchor's label (false negatives).",
                "Set by the sampler, about 1/C for C balanced classes; read it against the penalty share.",
            ),
        ),
        _info(
            schema.M_FALSE_NEG_PENALTY_SHARE,
            "false-negative penalty share",
            False,
            0.0,
            1.0,
            "Wang & Liu 2021; DebCSE 2023",
            caption=(
                "Share of the negative penalty (softmax weight at the run's τ) on same-label negatives.",
                "Well above the false-negative share, the loss pushes same-class samples apart (Wang & Liu, "
                "CVPR 2021); DebCSE (2023) down-weights them.",
            ),
        ),
        _info(schema.M_PAIR_GAP, "pair gap ‖Δ‖", False, 0.0, 2.0, "Liang et al. 2022, per pair", SPHERE),
        _info(schema.M_PAIR_RETRIEVAL, "pair top-1 retrieval", True, 0.0, 1.0, "cross-modal retrieval"),
        _info(
            schema.M_MIP_POS,
            "matched-tuple MIP",
            True,
            -1.0,
            1.0,
            "Symile, Saporta et al. 2024",
            caption=(
                "Mean multilinear inner product Σ_k Π_m z_m,k of matched tuples (unit rows).",
                "Symile training lifts it above mismatched tuples; pairwise CLIP may not when only the "
                "whole tuple carries the information (Saporta et al., NeurIPS 2024).",
            ),
        ),
        _info(schema.M_MIP_NEG, "mismatched-tuple MIP", False, -1.0, 1.0, "Symile, Saporta et al. 2024"),
        _info(
            schema.M_MIP_OVERLAP,
            "matched/mismatched MIP overlap",
            False,
            0.0,
            1.0,
            "Symile, Saporta et al. 2024",
            caption=(
                "Overlap coefficient Σ min(p, q) of the matched- and mismatched-tuple MIP histograms: "
                "1 = identical, 0 = disjoint.",
                "Symile training drives it down; pairwise CLIP can leave it near 1 when only the whole "
                "tuple carries the information (Saporta et al., NeurIPS 2024).",
            ),
        ),
        *(
            _info(name, f"τ {round(100 * q)} % quantile", None, 0.0, None, "iSogCLR, Qiu et al. 2023")
            for name, q in schema.TAU_QUANTILES.items()
        ),
    )
}


def metric_info(name: str, *, dim: int | None = None) -> MetricInfo:
    """Metadata of a metric; ``"<metric>/<modality>"`` inherits from ``<metric>``.

    Args:
        name: a metric name from the ``scalars`` table (user metrics get a neutral entry).
        dim: embedding dimension, when known; tightens the bounds that depend on it (effective rank ≤ d,
            std of L2-normalized ≤ 1/√d).

    Returns:
        The :class:`MetricInfo`, with ``name`` and ``label`` naming the modality for a variant.
    """
    base, _, modality = name.partition("/")
    info = METRICS.get(base)
    if info is None:
        return MetricInfo(name, name, None, None, None, "user metric")
    if dim is not None and dim > 0:
        if base == schema.M_RANK:
            info = replace(info, upper=float(dim))
        elif base == schema.M_STD_L2:
            info = replace(info, upper=1.0 / math.sqrt(dim))
    if modality:
        info = replace(info, name=name, label=f"{info.label} ({modality})")
    return info
