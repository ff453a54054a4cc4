"""The Modality gap page's views: gap, cones, and the 2-D view of both modalities."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from cldiag import figures as F
from cldiag import projection, schema
from cldiag.figures.captions import caption
from cldiag.views.base import EMPTY
from cldiag.views.data import RunLike, Series
from cldiag.views.panel import Panel, series_panel


def modality_gap(view: RunLike) -> Panel | str:
    """The gap between the modalities' centroids and the matched-pair distance over training."""
    metrics = [schema.M_GAP, schema.M_MATCHED_DIST]

    def build(s: Series) -> go.Figure:
        title = "Modality gap and matched distance"
        return F.fig_metric_series(s.plot, metrics, title=title, y_title="distance on the unit sphere")

    return series_panel(view, metrics, "gap", "gap", build) or EMPTY["gap"]


def cones(view: RunLike) -> Panel | None:
    """Each modality's cone (mean within-modality cosine) over training."""
    metrics = [f"{schema.M_CONE}/{m}" for m in view.run.modalities[:2]]

    def build(s: Series) -> go.Figure:
        return F.fig_metric_series(s.plot, metrics, title="Cone: mean cosine within each modality")

    return series_panel(view, metrics, "cones", "cones", build)


def modality_gap_view(view: RunLike, step: int) -> Panel | str:
    """PCA of both modalities' snapshot embeddings at ``step``, centroids and matched pairs drawn."""
    matrix, info = view.embedding_matrix(step)
    if info["modality"].nunique() < 2:
        return f"The snapshot at step {step} holds only {sorted(info['modality'].unique())}; no 2-D gap view."

    def pca() -> projection.Projection:
        strata = info["modality"].to_numpy()
        return view.cached(
            "gap_pca",
            lambda: projection.compute_projection(matrix, method="pca", cap=4000, strata=strata),
            step,
        )

    def build() -> go.Figure:
        proj = pca()
        x_title, y_title = (f"PC {i + 1} ({share:.0%} of variance)" for i, share in enumerate(proj.explained))
        gap = view.value_at(schema.M_GAP, step)
        return F.fig_modality_gap_view(data(), gap=gap, x_title=x_title, y_title=y_title)

    def data() -> pd.DataFrame:
        return projection.to_points(pca(), info)

    return Panel(
        key="gap_view",
        build=build,
        data=data,
        caption=caption("gap_view"),
        file_name=f"{view.name}-gap-view-step{step}",
        params=("gap_view", step),
    )
