"""cldiag in notebooks: one call per diagnostic returns the plotly figure the dashboard draws.

::

    import cldiag

    run = cldiag.read_run("sample_runs/simclr-digits-tau0.2")
    run                                   # a summary table in Jupyter (Run._repr_html_)
    run.plot.scores()                     # score distributions at the newest logged step
    run.plot.spectrum(step=100)
    run.plot.series(["alignment", "uniformity"])
    run.plot.embeddings(method="pca", color_by="label")
    cldiag.plot.compare([run, cldiag.read_run("sample_runs/simclr-digits-tau1")], "uniformity")

Every method goes through :mod:`cldiag.views`, the functions the dashboard's pages call, so the figure is
the page's figure (title, axes, bounds, colours); it is a ``plotly.graph_objects.Figure`` to show, change or
``write_image``. A diagnostic the run did not log raises ``ValueError`` saying why and how to log it. Nothing
on this path imports Streamlit.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import plotly.graph_objects as go

from cldiag import figures as F
from cldiag import views
from cldiag.reader import Run

__all__ = ["RunPlots", "compare", "run_html"]

_TABLE_OF = {"scores": "histograms", "spectrum": "spectra", "temperature": "temperature"}


def _figure(item: views.Panel | str | None, what: str) -> go.Figure:
    if isinstance(item, views.Panel):
        return item.build()
    raise ValueError(item if isinstance(item, str) else f"{what}: the run logged nothing to draw it from.")


def _pick(steps: Sequence[int], step: int | None, empty: str, missing: str) -> int:
    """``step`` if it is one of ``steps``, the newest for None; else ``ValueError(empty or missing)``."""
    if not steps:
        raise ValueError(empty)
    if step is None:
        return steps[-1]
    if step not in steps:
        raise ValueError(missing)
    return int(step)


class RunPlots:
    """The dashboard's figures of one run, one method per chart (reach it as ``run.plot``).

    Args:
        run: the run.
        step_range: ``(first, last)`` step to draw (``last`` None: up to the newest step).
        max_points: points per plotted series (longer series are min/max-downsampled, as on the dashboard).
    """

    def __init__(
        self, run: Run, *, step_range: tuple[int, int | None] = (0, None), max_points: int = views.MAX_POINTS
    ) -> None:
        if not isinstance(run, Run):
            raise TypeError(f"RunPlots needs a cldiag Run (cldiag.read_run(path)), got {type(run).__name__}")
        self.data = views.RunData(run, step_range=step_range, max_points=max_points)

    def __repr__(self) -> str:
        return f"RunPlots({self.data.run.name!r})"

    def _step(self, kind: str, step: int | None) -> int:
        table = _TABLE_OF[kind]
        steps = self.data.steps(table)
        return _pick(steps, step, views.EMPTY[table], f"no {table} at step {step}; logged steps: {steps}")

    # -- Overview and any metric --------------------------------------------------------------------------
    def key_metrics(self) -> go.Figure:
        """The Overview's key curves (loss, alignment, uniformity, …), one panel each."""
        return _figure(views.key_metrics([self.data], [self.data.name]), "key metrics")

    def series(self, metrics: str | Sequence[str], *, title: str = "Metrics over training") -> go.Figure:
        """Any scalar metrics over training, one panel each (bounds and arrows from the metric metadata).

        Raises:
            ValueError: none of ``metrics`` is logged; the message lists the run's metrics.
        """
        wanted = [metrics] if isinstance(metrics, str) else list(metrics)
        series = self.data.series(wanted)
        if series.full.empty:
            raise ValueError(f"none of {wanted} is logged; the run has {self.data.metrics()}")
        return F.fig_metric_grid(series.plot, wanted, title=title, dim=self.data.dim)

    # -- Scores -------------------------------------------------------------------------------------------
    def scores(self, step: int | None = None) -> go.Figure:
        """Positive, negative and hardest-negative score densities at ``step`` (default: the newest)."""
        return views.score_overlay(self.data, self._step("scores", step)).build()

    def score_heatmap(self) -> go.Figure:
        """Every logged step's score distribution as a heatmap over training."""
        return _figure(views.score_heatmap(self.data), "score heatmap")

    def hard_negatives(self) -> go.Figure:
        """Median, 90th and 99th percentile of each anchor's hardest-negative cosine over training."""
        return _figure(views.hard_negative_quantiles(self.data), "hardest-negative quantiles")

    def score_means(self) -> go.Figure:
        """Mean positive, negative and hardest-negative cosine over training."""
        return _figure(views.score_means(self.data), "mean scores")

    def overlap(self) -> go.Figure:
        """The positive/negative histogram overlap over training."""
        return _figure(views.overlap(self.data), "pos/neg overlap")

    def ranks(self) -> go.Figure:
        """MRR and recall@1/5/10 of each anchor's positive over training (GroCo's retrieval view)."""
        return _figure(views.rank_metrics(self.data), "positive ranks")

    def ordering_violations(self) -> go.Figure:
        """Share of (positive, negative) pairs ordered wrongly, 1 − AUROC, over training (GroCo)."""
        return _figure(views.ordering_violations(self.data), "ordering violations")

    def false_negatives(self) -> go.Figure:
        """Same-label negatives' share of the negatives and of the penalty over training (needs labels, τ)."""
        return _figure(views.false_negatives(self.data), "false negatives")

    # -- Geometry -----------------------------------------------------------------------------------------
    def alignment_uniformity(self) -> go.Figure:
        """Alignment and uniformity over training."""
        return _figure(views.alignment_uniformity(self.data), "alignment and uniformity")

    def plane(self) -> go.Figure:
        """The run's path through the alignment–uniformity plane (:func:`compare` draws several runs)."""
        return _figure(views.align_uniform_plane([self.data], [self.data.name]), "alignment–uniformity plane")

    def tolerance(self) -> go.Figure:
        """Same-class cosine over training (needs labels)."""
        return _figure(views.tolerance(self.data), "tolerance")

    def std_l2(self) -> go.Figure:
        """Std of L2-normalized embeddings over training, 1/√d marked."""
        return _figure(views.std_l2(self.data), "std of L2-normalized embeddings")

    # -- Temperature --------------------------------------------------------------------------------------
    def temperature(self, step: int | None = None) -> go.Figure:
        """What the loss would do at each τ on the batch of ``step`` (default: newest); the run's τ marked."""
        return views.temperature_curves(self.data, self._step("temperature", step)).build()

    def temperature_trend(self) -> go.Figure:
        """τ, hardness entropy, effective negatives and DCL coupling over training."""
        return _figure(views.temperature_trend(self.data), "temperature over training")

    def tau_quantiles(self) -> go.Figure:
        """10/50/90 % quantiles of a per-sample τ over training (iSogCLR)."""
        return _figure(views.tau_quantiles(self.data), "per-sample τ quantiles")

    def tau_by_class(self) -> go.Figure:
        """Each class's mean per-sample τ over training (needs labels and a per-sample τ)."""
        return _figure(views.tau_by_class(self.data), "τ per class")

    def tau_vs_class_frequency(self) -> go.Figure:
        """Each class's recent mean τ against its share of the rows, with Spearman ρ (iSogCLR's claim)."""
        return _figure(views.tau_vs_class_frequency(self.data), "τ against class frequency")

    # -- Modality gap -------------------------------------------------------------------------------------
    def modality_gap(self) -> go.Figure:
        """Modality gap and matched-pair distance over training (two-modality runs)."""
        if not self.data.run.two_modality:
            raise ValueError(views.EMPTY["one_modality"])
        return _figure(views.modality_gap(self.data), "modality gap")

    def cones(self) -> go.Figure:
        """Each modality's cone (mean within-modality cosine) over training."""
        if not self.data.run.two_modality:
            raise ValueError(views.EMPTY["one_modality"])
        return _figure(views.cones(self.data), "cones")

    def gap_view(self, step: int | None = None) -> go.Figure:
        """PCA of both modalities' snapshot at ``step`` (default: the newest), centroids and pairs drawn."""
        if not self.data.run.two_modality:
            raise ValueError(views.EMPTY["one_modality"])
        return _figure(views.modality_gap_view(self.data, self._snapshot(step)), "2-D gap view")

    def _pair_step(self, step: int | None) -> int:
        steps = views.pair_steps(self.data)
        empty = (
            "no per-pair metrics: pass three or more modalities to `Monitor.log` as one mapping, "
            '`mon.log(step, {"image": zi, "text": zt, "audio": za})`'
        )
        return _pick(steps, step, empty, f"no per-pair metrics at step {step}; logged steps: {steps}")

    def modality_matrix(self, base: str = "gap", step: int | None = None) -> go.Figure:
        """The N×N ``"gap"`` or ``"retrieval"`` matrix of a mapping run at ``step`` (default: newest)."""
        return _figure(views.modality_matrix(self.data, self._pair_step(step), base), f"{base} matrix")

    def pair_evolution(self, base: str = "gap") -> go.Figure:
        """One line per pair of modalities over training, of ``"gap"`` or ``"retrieval"``."""
        return _figure(views.pair_evolution(self.data, base), f"{base} of each pair")

    def mip(self, step: int | None = None) -> go.Figure:
        """Symile's MIP of matched against mismatched tuples at ``step`` (default: newest; N ≥ 3)."""
        return _figure(
            views.mip_distribution(self.data, self._step("scores", step)), "multilinear inner product"
        )

    # -- Spectrum -----------------------------------------------------------------------------------------
    def spectrum(self, step: int | None = None) -> go.Figure:
        """Covariance eigenvalues at ``step`` (default: the newest), largest first, log scale."""
        return views.spectrum(self.data, self._step("spectrum", step)).build()

    def waterfall(self, modality: str | None = None) -> go.Figure:
        """The spectrum at every logged step for one modality (default: the first logged)."""
        panels = dict(views.spectrum_waterfalls(self.data))
        if not panels:
            raise ValueError(views.EMPTY["spectra"])
        if modality is None:
            modality = next(iter(panels))
        if modality not in panels:
            raise ValueError(f"no spectra of modality {modality!r}; logged: {list(panels)}")
        return panels[modality].build()

    def effective_rank(self) -> go.Figure:
        """RankMe effective rank beside uniformity over training."""
        return _figure(views.effective_rank(self.data), "effective rank")

    # -- Embeddings ---------------------------------------------------------------------------------------
    def _snapshot(self, step: int | None) -> int:
        steps = self.data.snapshot_steps()
        missing = f"no embedding snapshot at step {step}; snapshots: {steps}"
        return _pick(steps, step, views.EMPTY["snapshots"], missing)

    def embeddings(
        self,
        step: int | Sequence[int] | None = None,
        *,
        method: str = "pca",
        color_by: str = "label",
        cap: int = 5000,
    ) -> go.Figure:
        """A 2-D map of one or more snapshots (default: the newest), as on the Embeddings page.

        Args:
            step: a snapshot step or several (their rows are projected together).
            method: ``pca``, ``umap`` or ``tsne`` (the last two need ``umap-learn`` / scikit-learn, take
                seconds to minutes, and are cached on disk beside the run like the dashboard's).
            color_by: ``label``, ``modality`` or ``step``.
            cap: most points drawn (a stratified sample by modality and label).

        Raises:
            ValueError: unknown method or colouring, or no snapshot at ``step``.
        """
        names = {"pca": "PCA", "umap": "UMAP", "tsne": "t-SNE"}
        if method not in names:
            raise ValueError(f"method must be one of {sorted(names)}, got {method!r}")
        if color_by not in ("label", "modality", "step"):
            raise ValueError(f"color_by must be 'label', 'modality' or 'step', got {color_by!r}")
        steps = [self._snapshot(s) for s in step] if isinstance(step, Sequence) else [self._snapshot(step)]
        inp = views.projection_input(self.data, steps)
        proj = inp.pca(cap) if method == "pca" else inp.compute(method, cap)
        return views.embedding_scatter(self.data, proj, inp.info, names[method], color_by).build()


def compare(runs: Sequence[Run], metrics: str | Sequence[str]) -> go.Figure:
    """Several runs' metrics on the same axes, aligned by step (the dashboard's Compare page).

    Args:
        runs: the runs (``cldiag.read_run`` each); they are named by :attr:`Run.name`.
        metrics: one metric name (``"uniformity"``) or several (one panel each).

    Raises:
        TypeError: an item of ``runs`` is not a :class:`~cldiag.reader.Run`.
        ValueError: no runs, or none of the metrics is logged by any of them.
    """
    if not runs:
        raise ValueError("compare needs at least one run")
    bad = [type(r).__name__ for r in runs if not isinstance(r, Run)]
    if bad:
        raise TypeError(f"compare needs cldiag Runs (cldiag.read_run(path)), got {bad}")
    data = [views.RunData(r) for r in runs]
    wanted = [metrics] if isinstance(metrics, str) else list(metrics)
    return _figure(views.metrics_compared(data, [r.name for r in runs], wanted), "compare")


def run_html(run: Run) -> str:
    """An HTML summary of a run for Jupyter: name, status, steps, dim, modalities, metric count.

    Every value read from the run is HTML-escaped (a run name or config is user text).
    """
    meta = run.meta
    metrics = run.metrics()
    modalities = ", ".join(run.modalities) if run.two_modality else "one modality (two views)"
    rows = [
        ("status", run.status),
        ("last step", meta.get("last_step", "none yet")),
        ("dim", meta.get("dim", "unknown")),
        ("modalities", modalities),
        ("metrics", f"{len(metrics)}: {', '.join(metrics[:8])}{' …' if len(metrics) > 8 else ''}"),
        ("snapshots", len(run.snapshot_steps())),
        ("path", run.path),
    ]
    body = "".join(
        f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>"
        f"{html.escape(str(v))}</td></tr>"
        for k, v in rows
    )
    return (
        f"<div><strong>cldiag run {html.escape(run.name)}</strong>"
        f"<table>{body}</table>"
        "<small>run.plot.&lt;diagnostic&gt;() draws the dashboard's charts</small></div>"
    )
