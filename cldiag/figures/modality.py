"""N modalities: the pair matrices (gap, cross-modal retrieval) and Symile's MIP distribution.

Inputs are tidy frames: the pair metrics of one step as ``query, candidate, value`` rows, and the ``mip_pos``
/ ``mip_neg`` rows of one step of the ``histograms`` table.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from cldiag import schema
from cldiag.figures._common import finish, require_columns
from cldiag.figures.scores import density_overlay, overlap_coefficient

__all__ = ["fig_mip_overlay", "fig_pair_matrix", "pair_matrix"]

_CELL_COLUMNS = ("query", "candidate", "value")
_MIP_KINDS = {
    schema.HIST_MIP_POS: ("matched tuples", "#1b9e77"),
    schema.HIST_MIP_NEG: ("mismatched tuples", "#d95f02"),
}


def pair_matrix(cells: pd.DataFrame, names: Sequence[str], *, symmetric: bool = False) -> np.ndarray:
    """The N×N matrix of per-pair values, rows = query modality, columns = candidate; NaN where not logged.

    Args:
        cells: ``query, candidate, value`` rows (one per logged pair; a repeated pair keeps its last value).
        names: the modalities, in the order of the rows and columns.
        symmetric: also fill ``(candidate, query)`` from ``(query, candidate)`` (the gap is symmetric and
            logged once per unordered pair).

    Returns:
        ``len(names) × len(names)`` float64; the diagonal is NaN (a modality against itself is not a pair).

    Raises:
        ValueError: a cell names a modality outside ``names``.
    """
    require_columns(cells, _CELL_COLUMNS, "pair cells")
    index = {name: i for i, name in enumerate(names)}
    unknown = sorted((set(cells["query"]) | set(cells["candidate"])) - set(index))
    if unknown:
        raise ValueError(f"pair cells name modalities {unknown} outside {list(names)}")
    out = np.full((len(names), len(names)), np.nan)
    for query, candidate, value in cells[list(_CELL_COLUMNS)].itertuples(index=False):
        p, q = index[query], index[candidate]
        if p != q:
            out[p, q] = value
            if symmetric:
                out[q, p] = value
    return out


def fig_pair_matrix(
    matrix: np.ndarray,
    names: Sequence[str],
    *,
    title: str,
    value_title: str,
    zmin: float,
    zmax: float | None = None,
    colorscale: str = "Blues",
) -> go.Figure:
    """A heatmap of an N×N pair matrix, each cell's value written in it, the diagonal left blank.

    Args:
        matrix: ``N × N`` values (NaN cells are blank), rows = query modality, columns = candidate.
        names: the modalities, in the order of the rows and columns.
        title: chart title.
        value_title: colour bar title (what the value measures).
        zmin: the colour scale's floor (the metric's natural lower bound).
        zmax: its ceiling; None: the largest value shown (so small values still differ in colour).
        colorscale: a plotly sequential colour scale.

    Returns:
        One heatmap trace; the first modality's row is at the top.
    """
    values = np.asarray(matrix, dtype=np.float64)
    if values.shape != (len(names), len(names)):
        raise ValueError(
            f"matrix must be {len(names)}×{len(names)} for modalities {list(names)}, got {values.shape}"
        )
    if np.isnan(values).all():
        raise ValueError("pair matrix has no logged value: nothing to plot")
    top = float(np.nanmax(values)) if zmax is None else zmax
    fig = go.Figure(
        go.Heatmap(
            z=values,
            x=list(names),
            y=list(names),
            zmin=zmin,
            zmax=max(top, zmin + 1e-9),
            colorscale=colorscale,
            colorbar={"title": {"text": value_title}},
            text=np.where(np.isnan(values), "", np.char.mod("%.3f", np.nan_to_num(values))),
            texttemplate="%{text}",
            hovertemplate="query %{y}<br>candidate %{x}<br>value %{z:.4f}<extra></extra>",
            hoverongaps=False,
        )
    )
    fig.update_yaxes(autorange="reversed", title_text="query modality", type="category")
    fig.update_xaxes(title_text="candidate modality", type="category", side="bottom")
    return finish(fig, title=title, height=max(300, 120 + 70 * len(names)))


def fig_mip_overlay(hist_at_step: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Densities of Symile's MIP for matched and mismatched tuples at one step, overlaid.

    Args:
        hist_at_step: the ``mip_pos`` / ``mip_neg`` rows (``step, kind, bin_left, bin_right, count``) of one
            step; other kinds are ignored.
        title: chart title (default names the step and the overlap coefficient).

    Returns:
        One bar trace per present kind over the MIP axis [−1, 1].
    """
    fig, step, present = density_overlay(hist_at_step, _MIP_KINDS, x_name="MIP")
    if title is None:
        title = f"Multilinear inner product at step {step}"
        if len(present) == len(_MIP_KINDS):
            overlap = overlap_coefficient(hist_at_step, schema.HIST_MIP_POS, schema.HIST_MIP_NEG)
            title += f" — matched/mismatched overlap {overlap:.2f}"
    return finish(fig, title=title, x_title="Σ_k Π_m z_m,k (unit rows)", y_title="density")
