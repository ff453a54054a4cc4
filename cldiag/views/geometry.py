"""The Geometry page's views: alignment, uniformity, their plane, tolerance and spread."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go

from cldiag import figures as F
from cldiag import schema
from cldiag.figures.captions import caption
from cldiag.views.base import EMPTY
from cldiag.views.data import RunLike, Series
from cldiag.views.panel import Panel, metric_panel, series_panel


def uniformity_metric(metrics: Sequence[str]) -> str | None:
    """The uniformity series to plot: the joint one, else the first per-modality one, else None."""
    if schema.M_UNIFORMITY in metrics:
        return schema.M_UNIFORMITY
    per_modality = sorted(m for m in metrics if m.startswith(f"{schema.M_UNIFORMITY}/"))
    return per_modality[0] if per_modality else None


def alignment_uniformity(view: RunLike) -> Panel | None:
    """Alignment and every uniformity series of the run over training, one panel each."""
    metrics = view.metrics()
    uniform = uniformity_metric(metrics)
    shown = [m for m in [schema.M_ALIGNMENT, uniform] if m is not None]
    shown += sorted(m for m in metrics if m.startswith(f"{schema.M_UNIFORMITY}/") and m != uniform)

    def build(s: Series) -> go.Figure:
        return F.fig_metric_grid(s.plot, shown, title="Alignment and uniformity")

    return series_panel(view, shown, "au_series", "alignment-uniformity", build) if shown else None


def align_uniform_pairs(views: Sequence[RunLike], names: Sequence[str]) -> pd.DataFrame:
    """(uniformity, alignment) at the steps logging both, for each run, with a ``run`` column."""
    parts = []
    for view, name in zip(views, names, strict=True):
        u = uniformity_metric(view.metrics())
        if u is None:
            continue
        full = view.series([schema.M_ALIGNMENT, u]).full
        parts.append(F.align_uniform_pairs(full, uniformity=u).assign(run=name))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def align_uniform_plane(views: Sequence[RunLike], names: Sequence[str]) -> Panel | str:
    """Each run's path through the alignment–uniformity plane."""
    pairs = align_uniform_pairs(views, names)
    if pairs.empty:
        return EMPTY["plane"]
    return Panel(
        key="plane",
        build=lambda: F.fig_align_uniform_plane(pairs),
        data=pairs,
        caption=caption("plane"),
        file_name=f"{views[0].name}-alignment-uniformity-plane",
    )


def tolerance(view: RunLike) -> Panel | str:
    """Same-class cosine over training (needs labels)."""
    if schema.M_TOLERANCE not in view.metrics():
        return EMPTY["tolerance"]
    return metric_panel(
        view,
        schema.M_TOLERANCE,
        key="tolerance",
        title="Tolerance (same-class cosine)",
        file_name="tolerance",
    )


def std_l2(view: RunLike) -> Panel | None:
    """Std of L2-normalized embeddings over training, with the isotropic 1/√d marked."""
    if schema.M_STD_L2 not in view.metrics():
        return None
    dim = view.dim
    refs = [(1 / math.sqrt(dim), f"1/√d = {1 / math.sqrt(dim):.3f} (isotropic)")] if dim else []
    panel = metric_panel(
        view,
        schema.M_STD_L2,
        key="std_l2",
        title="Std of L2-normalized embeddings",
        file_name="std-l2",
        references=refs,
    )
    return panel if isinstance(panel, Panel) else None
