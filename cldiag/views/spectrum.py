"""The Spectrum page's views: covariance spectra, their waterfall and the effective rank."""

from __future__ import annotations

import plotly.graph_objects as go

from cldiag import figures as F
from cldiag import schema
from cldiag.figures.captions import caption
from cldiag.views.data import RunLike, Series
from cldiag.views.panel import Panel, series_panel


def spectrum(view: RunLike, step: int) -> Panel:
    """The covariance eigenvalues at one step, largest first."""
    at_step = view.at_step("spectra", step)
    return Panel(
        key="spectrum",
        build=lambda: F.fig_spectrum(at_step),
        data=at_step,
        caption=caption("spectrum"),
        file_name=f"{view.name}-spectrum-step{step}",
        params=("spectrum", step),
    )


def spectrum_waterfalls(view: RunLike) -> list[tuple[str, Panel]]:
    """One waterfall (spectrum at every logged step) per modality, in the order logged."""
    spectra = view.table("spectra")
    panels = []
    for modality in dict.fromkeys(spectra["modality"]):
        part = spectra.loc[spectra["modality"] == modality]
        panel = Panel(
            key=f"waterfall_{modality}",
            build=lambda p=part, m=modality: F.fig_spectrum_waterfall(p, m),
            data=part,
            caption=caption("waterfall"),
            file_name=f"{view.name}-spectra-{modality}",
            params=("waterfall", modality),
        )
        panels.append((str(modality), panel))
    return panels


def effective_rank(view: RunLike) -> Panel | None:
    """RankMe effective rank (each series) beside uniformity over training."""
    ranks = [m for m in view.metrics() if m == schema.M_RANK or m.startswith(f"{schema.M_RANK}/")]
    dim = view.dim

    def build(s: Series) -> go.Figure:
        title = "Effective rank beside uniformity"
        return F.fig_dual_axis(s.plot, ranks, [schema.M_UNIFORMITY], title=title, dim=dim)

    return series_panel(view, [*ranks, schema.M_UNIFORMITY], "rank", "effective-rank", build)
