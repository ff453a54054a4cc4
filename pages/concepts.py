"""Concepts: play with each diagnostic on small synthetic data, no training needed.

Five explainers, one tab each. Every number comes from cldiag.functional / cldiag.losses through
cldiag.concepts; every chart from cldiag.figures (the dashboard's own builders where the chart is the same).
Only the open tab is computed, and each computation is cached per slider setting.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st
import torch
from streamlit.errors import StreamlitAPIException

from cldiag import concepts as C
from cldiag import functional as F
from cldiag.figures import concepts as FC
from cldiag.figures.scores import fig_score_overlay, overlap_coefficient
from cldiag.ui import open_runs, plot, resolve_root

# The dashboard's run root (``$CLDIAG_RUN_ROOT`` or the bundled samples): links name runs under it.
RUN_ROOT = resolve_root((), Path(__file__).resolve().parents[1] / "sample_runs")
CACHE = {"max_entries": 64, "ttl": 3600, "show_spinner": False}
TAUS = [0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2, 0.3, 0.5, 0.7, 1.0, 2.0, 5.0, 10.0]
CONCENTRATIONS = [0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 1000.0, float("inf")]

TABS = {
    "temperature": "Temperature & hardness",
    "align": "Alignment & uniformity",
    "gap": "Modality gap",
    "collapse": "Dimensional collapse",
    "scores": "Score distributions",
}
# The dashboard page that shows each diagnostic for a real run (file names as app.py registers them).
REAL_RUN_PAGES = {
    "temperature": ("pages/4_temperature.py", "Temperature"),
    "align": ("pages/3_geometry.py", "Geometry"),
    "gap": ("pages/5_modality_gap.py", "Modality gap"),
    "collapse": ("pages/6_spectrum.py", "Spectrum"),
    "scores": ("pages/2_scores.py", "Scores"),
}


def prose(text: str) -> str:
    """A paragraph written across source lines, joined back into one line of Markdown."""
    return " ".join(text.split())


def fmt_kappa(kappa: float) -> str:
    return "∞ (a point)" if np.isinf(kappa) else f"{kappa:g}"


# ------------------------------------------------------------------------------------- sample runs
@st.cache_data(max_entries=1, ttl=60, show_spinner=False)
def sample_runs(root: str) -> list[tuple[str, bool, bool]]:
    """(name, two_modality, has a snapshot) of each run under the run root; none if it cannot be listed."""
    return [(r.name, r.two_modality, bool(r.snapshot_steps())) for r in open_runs(root)]


@st.cache_data(max_entries=4, ttl=600, show_spinner=False)
def snapshot_scores(root: str, name: str) -> tuple[float | None, np.ndarray, str]:
    """One anchor's positive (None without a partner view) and negatives from a sample run's snapshot."""
    run = next(r for r in open_runs(root) if r.name == name)
    matrix, rows = run.embedding_matrix()
    a, b = C.split_snapshot(matrix, rows)
    pos, neg = C.snapshot_anchor_scores(a, b, max_negatives=64)
    if b is None:
        what = f"{name}: anchor 0 against other samples of the latest snapshot (no partner view stored)"
    else:
        what = f"{name}: anchor 0 against the other modality, latest snapshot"
    return pos, neg.numpy(), what


SHOWCASE_RUNS = {
    "temperature": "simclr-digits-tau0.2",
    "align": "simclr-digits-tau0.2",
    "gap": "clip-pairs-tau0.01",
    "collapse": "collapse-toy-strong",
    "scores": "simclr-digits-tau0.2",
}


def real_run_link(which: str) -> None:
    """A link to the dashboard page that shows this diagnostic, opened on a fitting sample run."""
    page, title = REAL_RUN_PAGES[which]
    runs = sample_runs(RUN_ROOT)
    want_two = which == "gap"
    fitting = [name for name, two, _ in runs if two == want_two] or [name for name, _, _ in runs]
    # Among the bundled samples (cldiag demo), the one made to show this diagnostic comes first.
    fitting.sort(key=lambda name: name != SHOWCASE_RUNS[which])
    params = {"run": fitting[0]} if fitting else None
    label = f"See it in a real run: the {title} page" + (f" on `{fitting[0]}`" if fitting else "")
    try:
        st.page_link(page, label=label, icon=":material/open_in_new:", query_params=params)
    except StreamlitAPIException:
        # The page is not registered when this file runs outside the dashboard's router.
        st.caption(f"See it in a real run: open the {title} page of the dashboard (`streamlit run app.py`).")
    if not fitting:
        st.caption(f"No runs under `{RUN_ROOT}` yet: `cldiag demo` writes the sample runs.")


# ------------------------------------------------------------------------------------- 1. temperature
@st.cache_data(**CACHE)
def temperature_data(pos: float, neg: tuple[float, ...], tau: float) -> tuple[C.AnchorAtTemperature, object]:
    scores = torch.tensor(neg, dtype=torch.float32)
    result = C.anchor_at_temperature(pos, scores, tau)
    curves = C.anchor_temperature_curves(pos, scores, np.logspace(-2, 1, 31).tolist())
    return result, curves


def anchor_scores() -> tuple[float, list[float]] | None:
    """The anchor's positive score and negatives: a synthetic distribution or a sample run's snapshot."""
    snapshots = [name for name, _, snap in sample_runs(RUN_ROOT) if snap]
    source = st.selectbox(
        "Negatives",
        ["synthetic", *snapshots],
        key="t_source",
        format_func=lambda s: "synthetic distribution" if s == "synthetic" else f"snapshot of {s}",
    )
    if source == "synthetic":
        pos = st.slider("positive score s₊", -1.0, 1.0, 0.8, 0.05, key="t_pos")
        shape = st.radio("shape", C.NEGATIVE_SHAPES, horizontal=True, key="t_shape")
        mean = st.slider("mean negative score", -0.5, 0.8, 0.2, 0.05, key="t_mean")
        spread = st.slider("spread", 0.0, 0.4, 0.15, 0.01, key="t_spread")
        k = st.select_slider("number of negatives K", [4, 8, 16, 32, 64, 128], 32, key="t_k")
        st.caption("Scores are the distribution's quantiles, so the set is smooth and repeatable.")
        return pos, C.negative_scores(k, shape=shape, mean=mean, spread=spread).tolist()
    try:
        snap_pos, neg_arr, what = snapshot_scores(RUN_ROOT, source)
    except (OSError, ValueError, KeyError, StopIteration) as exc:
        st.warning(f"Could not read the snapshot of {source}: {exc}")
        return None
    st.caption(what)
    if snap_pos is None:
        pos = st.slider("positive score s₊ (the snapshot has no partner view)", -1.0, 1.0, 0.8, 0.05)
    else:
        pos = snap_pos
        st.caption(f"Positive score from the snapshot: {pos:.3f}")
    return pos, neg_arr.tolist()


def explain_temperature() -> None:
    st.markdown(
        prose(
            """
            InfoNCE scores an anchor's positive against its negatives with a softmax of cosine scores
            divided by the temperature τ. Its gradient pushes each negative away in proportion to that
            negative's softmax weight, so τ decides **which** negatives matter: a small τ puts nearly
            all the weight on the hardest negative (like a triplet loss), a large τ treats every
            negative alike. The normalized entropy of the weights (0 = one negative, 1 = all alike) and
            its exponential, the effective number of negatives, summarize this, and the positive is
            pulled with strength 1 − p₊, which vanishes once the positive wins the softmax.

            With labels, some negatives are **false negatives**: they share the anchor's class. Their share
            of the weights rⱼ is the share of the push that separates samples which belong together; at a
            small τ the hardest negatives are often exactly these, so that share can far exceed their share
            of the count (Wang & Liu; DebCSE 2023). iSogCLR (Qiu et al. 2023) learns **one τ per sample**
            instead and reports larger temperatures for samples with frequent semantics (many similar
            neighbours to tolerate) and smaller ones for rare semantics; the Lab's
            `individual-temperature` preset measures it.
            """
        )
    )
    st.latex(
        r"r_j = \frac{e^{s_j/\tau}}{\sum_{k} e^{s_k/\tau}},\quad "
        r"\bar H = \frac{-\sum_j r_j \log r_j}{\log K},\quad "
        r"\frac{\partial \ell}{\partial s_+} = -\frac{1-p_+}{\tau},\quad "
        r"\frac{\partial \ell}{\partial s_j} = \frac{p_j}{\tau}"
    )
    st.caption(
        prose(
            """
            Wang & Liu, *Understanding the Behaviour of Contrastive Loss*, CVPR 2021: low τ buys
            uniformity at the cost of pushing apart semantically similar samples (tolerance).
            """
        )
    )
    left, right = st.columns([1, 2])
    with left:
        chosen = anchor_scores()
        if chosen is None:
            return
        pos, neg = chosen
        tau = st.select_slider("temperature τ", TAUS, 0.1, key="t_tau")
    result, curves = temperature_data(float(pos), tuple(float(v) for v in neg), float(tau))
    with right:
        # Two per row: four in one row cut labels and values short ("13.2 of …") at 1400 px.
        m = [*st.columns(2), *st.columns(2)]
        m[0].metric("normalized entropy", f"{result.entropy:.3f}", help="0 = hardest only, 1 = all alike")
        m[1].metric("effective negatives", f"{result.effective_negatives:.1f} of {len(neg)}")
        m[2].metric("pull on the positive 1 − p₊", f"{result.positive_pull:.3f}")
        m[3].metric("loss −log p₊", f"{result.loss:.3f}")
        plot(FC.fig_negative_weights(result, tau), "t_weights")
    plot(FC.fig_anchor_temperature_curves(curves, tau), "t_curves")
    real_run_link("temperature")


# ------------------------------------------------------------------------------------- 2. alignment
@st.cache_data(**CACHE)
def align_data(
    dim: int, clusters: int, kappa: float, noise: float
) -> tuple[C.ClusteredViews, C.AlignUniform]:
    views = C.clustered_views(dim=dim, clusters=clusters, concentration=kappa, view_noise=noise)
    return views, C.align_uniform(views)


@st.cache_data(**CACHE)
def align_sweep(dim: int, clusters: int, noise: float) -> object:
    return C.align_uniform_sweep(CONCENTRATIONS, dim=dim, clusters=clusters, view_noise=noise)


def explain_align() -> None:
    st.markdown(
        prose(
            """
            Wang & Isola split what a contrastive loss optimizes into two properties of embeddings on
            the unit sphere. **Alignment** is the mean squared distance between the two views of the
            same input: small when augmentations barely move the embedding. **Uniformity** is the log of
            the average Gaussian potential over all pairs: 0 when every point is the same (collapse),
            and as low as the dimension allows when points cover the sphere evenly. Good representations
            sit at the lower left of the plane; tighten the clusters (larger κ) and uniformity climbs
            toward collapse while alignment stays put, because alignment only depends on the view noise.
            """
        )
    )
    st.latex(
        r"\mathcal{L}_{\text{align}} = \mathbb{E}\,\lVert \hat a_i - \hat b_i \rVert^2,\qquad "
        r"\mathcal{L}_{\text{uniform}} = "
        r"\log \mathbb{E}_{i \ne j}\, e^{-2\lVert \hat a_i - \hat a_j \rVert^2}"
    )
    st.caption(
        prose(
            """
            Wang & Isola, *Understanding Contrastive Representation Learning through Alignment and
            Uniformity on the Hypersphere*, ICML 2020.
            """
        )
    )
    left, right = st.columns([1, 2])
    with left:
        space = st.radio("space", ["circle (2-D)", "sphere (3-D)"], horizontal=True, key="a_space")
        dim = 2 if space.startswith("circle") else 3
        clusters = st.slider("clusters", 1, 8, 4, key="a_clusters")
        kappa = st.select_slider(
            "concentration κ (0 = uniform)", CONCENTRATIONS, 20.0, key="a_kappa", format_func=fmt_kappa
        )
        noise = st.slider("view noise", 0.0, 1.0, 0.2, 0.05, key="a_noise")
        views, au = align_data(dim, clusters, float(kappa), float(noise))
        ref = C.uniform_sphere_uniformity(dim)
        m = st.columns(2)
        m[0].metric(
            "alignment", f"{au.alignment:.3f}", help="0 = views identical, 2 = unrelated, 4 = opposite"
        )
        m[1].metric(
            "uniformity", f"{au.uniformity:.3f}", help=f"0 = collapsed; uniform on this sphere: {ref:.3f}"
        )
    with right:
        plot(FC.fig_points_on_sphere(views), "a_points")
    plot(FC.fig_align_uniform_demo(au, align_sweep(dim, clusters, float(noise)), ref), "a_plane")
    real_run_link("align")


# ------------------------------------------------------------------------------------- 3. modality gap
@st.cache_data(**CACHE)
def gap_data(cone: float, axis: float, noise: float, tau: float) -> tuple[object, F.ModalityGap, C.GapShift]:
    a, b = C.two_cones(cone_angle=cone, axis_angle=axis, pair_noise=noise)
    return C.modality_points(a, b), F.modality_gap(a, b), C.gap_shift(a, b, tau)


def explain_gap() -> None:
    st.markdown(
        prose(
            """
            In two-tower models such as CLIP each encoder maps its inputs into a narrow cone from the
            start, so images and texts begin far apart on the sphere; the **modality gap** is the
            distance between the two modalities' mean embeddings. Liang et al. moved trained embeddings
            along the gap and found that at CLIP's low temperature closing the gap *raises* the
            contrastive loss: the loss itself keeps the modalities apart. In this toy the shift only
            changes how much of each vector is left for content: closing the gap sharpens the logits,
            which helps at a high τ but at a low τ punishes every pair whose partner is noisy (like
            mismatched captions), so the loss minimum keeps a gap.

            With three or more modalities the gap becomes a matrix, one entry per pair. Aligning every
            pair is not the same as capturing the whole tuple: when c = a XOR b, each pair is independent
            and pairwise CLIP has nothing to learn, while Symile's multilinear inner product Σₖ aₖbₖcₖ
            scores the triple (Saporta et al. 2024; the Lab's `three-modalities` preset).
            """
        )
    )
    st.latex(
        r"\Delta = \tfrac1N\textstyle\sum_i \hat a_i - \tfrac1N\sum_i \hat b_i,\quad "
        r"\text{gap} = \lVert\Delta\rVert,\quad "
        r"\hat a_i(\delta) = \tfrac{\hat a_i - \delta\Delta/2}{\lVert \hat a_i - \delta\Delta/2\rVert},\ "
        r"\hat b_i(\delta) = \tfrac{\hat b_i + \delta\Delta/2}{\lVert \hat b_i + \delta\Delta/2\rVert}"
    )
    st.caption(
        prose(
            """
            Liang et al., *Mind the Gap: Understanding the Modality Gap in Multi-modal Contrastive
            Representation Learning*, NeurIPS 2022 (CLIP on MSCOCO: gap 0.82 at τ = 0.01).
            """
        )
    )
    left, right = st.columns([1, 2])
    with left:
        cone = st.slider("cone angle θ (°): spread of each modality", 0, 90, 33, key="g_cone")
        axis = st.slider("angle between the cones φ (°)", 0, 180, 60, key="g_axis")
        noise = st.slider("pair noise σ (mismatched content)", 0.0, 2.0, 0.8, 0.1, key="g_noise")
        tau = st.select_slider("temperature τ of the loss", TAUS, 0.01, key="g_tau")
        points, mg, shift = gap_data(float(cone), float(axis), float(noise), float(tau))
        best = int(np.argmin(shift.loss))
        # One per row: the narrow left column cut two-per-row labels short ("cone: mean cosine wit…").
        st.metric("modality gap ‖Δ‖", f"{float(mg.gap):.3f}")
        st.metric("cone: mean cosine within", f"{float(mg.cone_a):.3f}")
        st.metric("loss minimum at gap", f"{shift.gap[best]:.3f}")
        st.metric("loss minimum at δ", f"{shift.deltas[best]:.2f}")
    with right:
        plot(FC.fig_gap_shift(shift), "g_shift")
    plot(FC.fig_two_cones(points, float(mg.gap)), "g_cones")
    real_run_link("gap")


# ------------------------------------------------------------------------------------- 4. collapse
@st.cache_data(**CACHE)
def collapse_data(dim: int, active: int, residual: float, rotate: bool) -> tuple[C.CollapseStats, object]:
    stats = C.collapse_stats(C.low_rank_embeddings(dim=dim, active=active, residual=residual, rotate=rotate))
    return stats, C.spectrum_frame(stats.eigenvalues)


def explain_collapse() -> None:
    st.markdown(
        prose(
            """
            **Dimensional collapse** means the embeddings use only a few directions of their space while
            the others carry almost no variance, so the representation holds less than its width
            suggests. Jing et al. showed it happens in contrastive learning too and that the covariance
            spectrum shows it as a cliff; RankMe condenses the spectrum into one number, the effective
            rank. Uniformity and the std of normalized embeddings barely notice: points spread evenly
            over a smaller sphere still look uniform, and once the subspace is rotated every coordinate
            has the std of healthy data.
            """
        )
    )
    st.latex(
        r"C = \tfrac{1}{N-1}\textstyle\sum_i (\hat z_i - \bar z)(\hat z_i - \bar z)^\top,\quad "
        r"p_k = \tfrac{\sigma_k}{\lVert\sigma\rVert_1} + \epsilon,\quad "
        r"\text{RankMe} = e^{-\sum_k p_k \log p_k},\quad "
        r"\text{std} = \tfrac1d \textstyle\sum_k \operatorname{std}_i(\hat z_{ik})"
    )
    st.caption(
        prose(
            """
            Jing et al., *Understanding Dimensional Collapse in Contrastive Self-supervised Learning*,
            ICLR 2022; Garrido et al., *RankMe*, ICML 2023; Chen & He, *SimSiam*, CVPR 2021 (std of
            normalized output).
            """
        )
    )
    left, right = st.columns([1, 2])
    with left:
        dim = st.select_slider("dimension d", [8, 16, 32, 64, 128], 64, key="c_dim")
        active = st.slider("dimensions with variance k", 1, dim, min(8, dim), key="c_active")
        residual = st.select_slider(
            "std of the other dimensions", [0.0, 1e-4, 1e-3, 1e-2, 0.1, 0.3], 1e-3, key="c_residual"
        )
        rotate = st.checkbox("rotate the subspace (as a network would)", True, key="c_rotate")
        stats, spectrum = collapse_data(int(dim), int(active), float(residual), bool(rotate))
        st.metric("effective rank (RankMe)", f"{stats.effective_rank:.1f} of {stats.dim}")
        st.metric(
            "uniformity", f"{stats.uniformity:.3f}", help=f"isotropic: {stats.uniformity_reference:.3f}"
        )
        st.metric(
            "std of L2-normalized embeddings",
            f"{stats.std:.4f}",
            help=f"isotropic: 1/√d = {stats.std_reference:.4f}",
        )
    with right:
        plot(FC.fig_collapse_spectrum(stats, spectrum, int(active)), "c_spectrum")
        plot(FC.fig_collapse_scorecard(stats), "c_scorecard")
    real_run_link("collapse")


# ------------------------------------------------------------------------------------- 5. scores
@st.cache_data(**CACHE)
def score_data(overlap: float, batch: int, tau: float) -> tuple[C.ScoreStats, float]:
    a, b = C.scored_pairs(batch, overlap=overlap)
    stats = C.score_stats(a, b, tau)
    return stats, overlap_coefficient(stats.histograms.loc[stats.histograms["kind"] != "hard_neg"])


def explain_scores() -> None:
    st.markdown(
        prose(
            """
            For every anchor the **positive score** is the cosine to its own partner and the **negative
            scores** are its cosines to everything else in the batch. Zhu et al. watched these
            distributions during training: learning pulls them apart, and their overlap says how often a
            pair looks no closer than two strangers. In-batch retrieval is decided by each anchor's
            single hardest negative, not by the bulk, so the hardest-negative histogram can sit right on
            the positives while the bulks barely overlap; the loss reacts smoothly to both.

            **Ranks versus scores.** Retrieval only asks *where* the positive lands among the B candidates,
            not by how much it wins: the mean reciprocal rank, recall@k and the share of (positive,
            negative) pairs in the wrong order (1 − AUROC; GroCo, 2023) stay put while the loss keeps
            buying margin on pairs that are already ordered, and they move when a few hard negatives
            overtake the positive even if the score histograms hardly change.
            """
        )
    )
    st.latex(
        r"s_{ii} = \hat a_i^\top \hat b_i,\quad s_{ij} = \hat a_i^\top \hat b_j\ (j\ne i),\quad "
        r"\text{acc} = \tfrac1B\textstyle\sum_i \mathbb{1}\!\left[s_{ii} > \max_{j\ne i} s_{ij}\right],\quad "
        r"\ell_i = -\log \tfrac{e^{s_{ii}/\tau}}{\sum_j e^{s_{ij}/\tau}}"
    )
    st.caption(
        prose(
            """
            Zhu et al., *Improving Contrastive Learning by Visualizing Feature Transformation*, ICCV
            2021.
            """
        )
    )
    left, right = st.columns([1, 2])
    with left:
        overlap = st.slider("overlap of positives with negatives", 0.0, 1.0, 0.2, 0.05, key="s_overlap")
        batch = st.select_slider("batch size B", [16, 32, 64, 128, 256, 512], 128, key="s_batch")
        tau = st.select_slider("temperature τ of the loss", TAUS, 0.1, key="s_tau")
        stats, measured = score_data(float(overlap), int(batch), float(tau))
        st.metric("measured pos/neg overlap", f"{measured:.2f}")
        st.metric("in-batch retrieval", f"{stats.retrieval:.1%}", help=f"chance: 1/B = {1 / batch:.1%}")
        st.metric("InfoNCE loss", f"{stats.loss:.3f}", help=f"log B = {np.log(batch):.3f} for random scores")
    with right:
        title = f"Positive, negative and hardest-negative scores — pos/neg overlap {measured:.2f}"
        plot(fig_score_overlay(stats.histograms, title=title), "s_hist")
    real_run_link("scores")


# ------------------------------------------------------------------------------------- the page
st.title("Concepts")
st.caption(
    "Each diagnostic on small synthetic data: move a slider and watch the number and the picture change. "
    "The math is cldiag's own (the same functions the training hook logs), so what you learn here reads "
    "directly on the dashboard pages of a real run."
)
tabs = st.tabs(list(TABS.values()), key="concept", on_change="rerun")
for tab, render in zip(
    tabs, (explain_temperature, explain_align, explain_gap, explain_collapse, explain_scores), strict=True
):
    # Only the open tab runs: each interaction recomputes one explainer, not five.
    if tab.open:
        with tab:
            render()
