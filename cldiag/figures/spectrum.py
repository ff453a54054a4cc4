"""Covariance spectra of the embedding (Jing et al., ICLR 2022): dimensional collapse made visible.

The ``spectra`` table holds, per logged step and modality, the eigenvalues of the covariance of unit,
centered embeddings, index 0 the largest. Collapsed directions fall towards the float floor.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import sequential

from cldiag.figures._common import bucket_reduce, color_map, finish, require_columns, require_rows

__all__ = ["EIGEN_FLOOR", "WATERFALL_COLORS", "fig_spectrum", "fig_spectrum_waterfall", "log_eigenvalues"]

_SPEC_COLUMNS = ("step", "modality", "index", "eigenvalue")

EIGEN_FLOOR = 1e-12
"""Eigenvalues at or below this (including tiny negative round-off) are drawn at ``log10(EIGEN_FLOOR)``."""


WATERFALL_COLORS: list[list[float | str]] = [
    [i / (len(sequential.Viridis) - 1), c] for i, c in enumerate(sequential.Viridis)
]
"""Dark (smallest eigenvalues) to bright (largest), with no pale band at either end: the smallest values
must look small. Given as a list so the dashboard's theme cannot swap in a scale of its own."""


def log_eigenvalues(eigenvalues: np.ndarray | pd.Series) -> np.ndarray:
    """``log10`` of eigenvalues clipped at :data:`EIGEN_FLOOR` (round-off can make them ≤ 0)."""
    return np.log10(np.maximum(np.asarray(eigenvalues, dtype=np.float64), EIGEN_FLOOR))


def fig_spectrum(spec_at_step: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Log-eigenvalue spectrum at one step, one line per modality.

    Args:
        spec_at_step: spectra frame of a single step.
        title: chart title (default names the step).

    Returns:
        One trace per modality, y = log10 eigenvalue against the eigenvalue index.
    """
    require_columns(spec_at_step, _SPEC_COLUMNS, "spectra frame")
    require_rows(spec_at_step, "spectra frame")
    steps = spec_at_step["step"].unique()
    if steps.size != 1:
        raise ValueError(f"expected the spectra of one step, got {steps.size} steps")
    modalities = list(dict.fromkeys(spec_at_step["modality"]))
    colors = color_map(modalities)
    fig = go.Figure()
    for modality in modalities:
        part = spec_at_step.loc[spec_at_step["modality"] == modality].sort_values("index")
        fig.add_trace(
            go.Scatter(
                x=part["index"],
                y=log_eigenvalues(part["eigenvalue"]),
                mode="lines+markers",
                marker={"size": 4},
                name=str(modality),
                line={"color": colors[modality], "width": 1.8},
                customdata=part["eigenvalue"],
                hovertemplate=f"{modality}<br>index %{{x}}<br>eigenvalue %{{customdata:.3e}}<extra></extra>",
            ),
        )
    if title is None:
        title = f"Embedding spectrum at step {int(steps[0])}"
    fig.update_yaxes(autorangeoptions={"clipmin": float(np.log10(EIGEN_FLOOR))})
    return finish(fig, title=title, x_title="eigenvalue index (0 = largest)", y_title="log₁₀ eigenvalue")


def fig_spectrum_waterfall(
    spectra: pd.DataFrame,
    modality: str,
    *,
    max_rows: int = 200,
    max_cols: int = 256,
    title: str | None = None,
) -> go.Figure:
    """Heatmap of the log-eigenvalue spectrum over training (step × index) for one modality.

    Args:
        spectra: spectra frame over many steps.
        modality: which modality's spectra to draw.
        max_rows: more logged steps than this are averaged in consecutive groups (said in the title).
        max_cols: more eigenvalue indices than this are averaged in consecutive groups (said in the title).
        title: chart title (default names the modality).

    Returns:
        One heatmap trace; an index not logged at a step (a smaller batch has fewer eigenvalues) is blank.
    """
    require_columns(spectra, _SPEC_COLUMNS, "spectra frame")
    part = spectra.loc[spectra["modality"] == modality]
    if part.empty:
        have = sorted(spectra["modality"].unique()) if not spectra.empty else []
        raise ValueError(f"no spectra for modality {modality!r}; modalities present: {have}")
    steps, step_of_row = np.unique(part["step"].to_numpy(np.int64), return_inverse=True)
    index = part["index"].to_numpy(np.int64)
    logs = np.full((steps.size, int(index.max()) + 1), np.nan)
    logs[step_of_row, index] = log_eigenvalues(part["eigenvalue"])
    notes = []
    logs, steps_shown, merged_rows = bucket_reduce(logs, steps, max_rows, "mean")
    if merged_rows:
        notes.append(f"{steps.size} logged steps averaged into {steps_shown.size} rows")
    columns = np.arange(logs.shape[1])
    cols_t, columns_shown, merged_cols = bucket_reduce(logs.T, columns, max_cols, "mean")
    if merged_cols:
        notes.append(f"{columns.size} indices averaged into {columns_shown.size} columns")
    if title is None:
        title = f"Spectrum over training — {modality}"
    if notes:
        title += f" ({'; '.join(notes)})"
    fig = go.Figure(
        go.Heatmap(
            x=columns_shown,
            # One row per logged step, labelled by step: a numeric axis would centre each row on its step
            # and, with two logged steps 0 and 250, start the axis at -125.
            y=[str(int(s)) for s in steps_shown],
            z=cols_t.T,
            colorscale=WATERFALL_COLORS,
            colorbar={"title": {"text": "log₁₀ λ"}},
            hovertemplate="step ≤ %{y}<br>index ≤ %{x}<br>log₁₀ eigenvalue %{z:.2f}<extra></extra>",
        ),
    )
    fig.update_yaxes(type="category", nticks=12)
    return finish(
        fig, title=title, x_title="eigenvalue index (0 = largest)", y_title="training step", height=420
    )
