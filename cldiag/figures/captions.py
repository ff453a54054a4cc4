"""How to read each dashboard chart: two lines per chart, kept beside the figure builders, not in pages.

Line one says what the chart shows; line two what healthy looks like, with the paper. Charts of a single
scalar metric take their caption from that metric's :class:`~cldiag.figures.metrics.MetricInfo`; this table
holds the charts that combine several metrics or draw a table other than ``scalars``.
"""

from __future__ import annotations

__all__ = ["CAPTIONS", "caption"]

Caption = tuple[str, str]

CAPTIONS: dict[str, Caption] = {
    "key_metrics": (
        "One panel per metric, one colour per run; the arrow in each title says which way is better.",
        "Alignment and uniformity should both fall (Wang & Isola 2020); a falling effective rank means "
        "dimensional collapse (RankMe, Garrido et al. 2023); the gap exists only with two modalities.",
    ),
    "score_overlay": (
        "Densities of positive-pair cosines, cosines to negatives and each anchor's hardest negative.",
        "Healthy training pulls positives right and keeps negatives near 0 with little overlap "
        "(Zhu et al., ICCV 2021); the title gives the pos/neg overlap coefficient.",
    ),
    "score_heatmap": (
        "Each row is one logged step's distribution (brighter = denser), training time going up.",
        "The positive band should drift right and narrow while the negative band stays put "
        "(Zhu et al., ICCV 2021); bands merging means the task got too easy or collapsed.",
    ),
    "hard_quantiles": (
        "Median, 90th and 99th percentile of each anchor's hardest-negative cosine.",
        "Upper quantiles above the median positive: many anchors have a negative closer than their "
        "positive — false negatives or a too-low τ (Wang & Liu, CVPR 2021).",
    ),
    "score_means": (
        "Mean cosine of positive pairs, of all negatives and of each anchor's hardest negative.",
        "The gap between positive and negative means is the separation the loss buys "
        "(Zhu et al., ICCV 2021).",
    ),
    "au_series": (
        "Alignment = mean ‖â − b̂‖² over positive pairs (0 … 4); uniformity = log mean exp(−2‖ẑ_i − ẑ_j‖²).",
        "Both should fall: positives close together, the rest spread over the sphere "
        "(Wang & Isola, ICML 2020).",
    ),
    "plane": (
        "Each run's path through (uniformity, alignment) over training, ○ start, ★ end, at the steps that "
        "log both (uniformity every `pairwise_every` steps); add runs under “Compare with”. The first "
        "segment is long: the untrained encoder puts everything close together, and the first logged "
        "steps move it most.",
        "Better representations sit lower-left; Wang & Isola (ICML 2020) found downstream accuracy "
        "rising towards that corner.",
    ),
    "tau_curves": (
        "What the loss would do at each τ on this step's batch; dashed red: the run's own τ.",
        "Low τ weighs only the hardest negatives (entropy → 0), high τ all alike (→ 1); uniformity "
        "and same-class penalty show the uniformity–tolerance trade-off (Wang & Liu, CVPR 2021).",
    ),
    "tau_trend": (
        "τ itself (learned in CLIP-style runs), hardness entropy and effective negatives at the "
        "run's τ, and the DCL coupling 1 − p_pos.",
        "Entropy pinned near 0 or 1 means τ is extreme (Wang & Liu, CVPR 2021); coupling near 1 at "
        "small batches is the case DCL removes (Yeh et al., ECCV 2022).",
    ),
    "gap": (
        "Gap = ‖mean(â) − mean(b̂)‖ between the modalities' centroids; "
        "matched distance = mean ‖â_i − b̂_i‖ over pairs.",
        "A gap exists from random init and low τ keeps it large (Liang et al., NeurIPS 2022); "
        "matched distance should fall as pairs align.",
    ),
    "cones": (
        "Mean cosine between different samples of the same modality.",
        "Well above 0 means the modality occupies a narrow cone, which causes the gap "
        "(Liang et al., NeurIPS 2022: 0.67–0.72 for random-init CLIP).",
    ),
    "gap_view": (
        "PCA of both modalities' unit embeddings together; × centroids, grey lines join matched pairs; "
        "the title gives the logged gap at that step.",
        "Two clouds apart, joined by parallel pair lines, is the modality gap "
        "(Liang et al., NeurIPS 2022); one mixed cloud means the modalities share the sphere.",
    ),
    "pair_gap_matrix": (
        "Gap ‖mean(â) − mean(b̂)‖ between each pair of modalities' centroids at the chosen step "
        "(symmetric; the diagonal is blank).",
        "Every pair starts apart from random init and low τ keeps the gaps large (Liang et al., NeurIPS "
        "2022); one pair far above the others is the modality the rest do not reach.",
    ),
    "pair_retrieval_matrix": (
        "Top-1 cross-modal retrieval: share of the query modality's rows whose matched row of the "
        "candidate modality is its nearest candidate (in-batch, chance 1/B).",
        "Healthy training lifts every off-diagonal cell above chance (cross-modal retrieval as in CLIP, "
        "Radford et al. 2021); a row or column stuck near chance is a modality the others do not find, or "
        "one whose information sits only in the whole tuple (Saporta et al. 2024).",
    ),
    "gap_pairs": (
        "One line per pair of modalities over training: the distance between their centroids.",
        "Gaps should shrink together as training aligns the modalities; a pair left behind shows which "
        "modality lags (the gap per pair: Liang et al., NeurIPS 2022).",
    ),
    "retrieval_pairs": (
        "One line per (query, candidate) pair of modalities over training, both directions: the in-batch "
        "top-1 retrieval (chance 1/B).",
        "Each direction should rise above chance; one stuck at chance is a modality the others do not find, "
        "or one whose information sits only in the whole tuple (Saporta et al. 2024).",
    ),
    "mip_overlay": (
        "Densities of Symile's multilinear inner product Σ_k Π_m z_m,k for matched tuples and for tuples "
        "with one modality's row swapped (all M·B·(B−1) of them); the title gives their overlap.",
        "Symile training separates them; pairwise CLIP can leave them overlapping when only the whole "
        "tuple carries the information (Saporta et al., NeurIPS 2024).",
    ),
    "spectrum": (
        "Eigenvalues of the covariance of unit, centered embeddings, largest first, on a log scale.",
        "A cliff where the tail drops to the float floor is dimensional collapse "
        "(Jing et al., ICLR 2022); a flat, slowly falling curve uses every dimension.",
    ),
    "waterfall": (
        "The spectrum at every logged step (rows), colour = log₁₀ eigenvalue.",
        "Dark columns spreading in from the right mean more dimensions collapsing over "
        "training (Jing et al., ICLR 2022).",
    ),
    "rank": (
        "RankMe effective rank (left axis, solid; at most d) and uniformity (right axis, dashed).",
        "Rank falling while uniformity still improves is collapse hiding behind a good uniformity "
        "(RankMe: Garrido et al., ICML 2023).",
    ),
    "embedding": (
        "Each dot is one sample's unit embedding mapped to 2-D by {method}; hover for sample id and "
        "label. Large snapshots are capped per modality and label (stratified).",
        "Compact same-label clusters spread over the plot are the alignment/uniformity ideal "
        "(Wang & Isola 2020); UMAP (McInnes et al. 2018) and t-SNE distort distances, PCA does not.",
    ),
    "compare": (
        "One panel per metric, one colour per run, steps aligned; click a run in the legend to hide it.",
        "Compare runs that differ in one setting (table below) — e.g. τ: lower τ gives lower uniformity "
        "and lower tolerance (Wang & Liu, CVPR 2021).",
    ),
}


def caption(chart: str, **fields: str) -> Caption:
    """The two caption lines of a chart, with ``{placeholders}`` filled from ``fields``.

    Args:
        chart: a key of :data:`CAPTIONS`.
        **fields: values for the placeholders (the embedding map names its method).

    Raises:
        KeyError: no caption is registered for ``chart``.
    """
    if chart not in CAPTIONS:
        raise KeyError(f"no caption for chart {chart!r}; known: {sorted(CAPTIONS)}")
    first, second = CAPTIONS[chart]
    return (first.format(**fields), second.format(**fields)) if fields else (first, second)
