"""The Embeddings page's views: what a 2-D projection of snapshots is computed from, and its scatter."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cldiag import figures as F
from cldiag import projection
from cldiag.figures.captions import caption
from cldiag.views.data import RunLike
from cldiag.views.panel import Panel


@dataclass(frozen=True)
class ProjectionInput:
    """The snapshot rows to project and everything that fixes their projection.

    Attributes:
        x: the stacked snapshot embeddings (N×d).
        info: one row per embedding: ``step, sample_id, modality, label``.
        strata: ``modality/label`` per row, so the point cap samples every group.
        steps: the snapshot steps, ascending.
        run_path: the run's location (the disk cache lives beside it).
    """

    x: np.ndarray
    info: pd.DataFrame
    strata: np.ndarray
    steps: tuple[int, ...]
    run_path: str

    @property
    def finite_rows(self) -> int:
        """Rows without NaN or Inf (what UMAP and t-SNE can use)."""
        return int(np.isfinite(self.x).all(axis=1).sum())

    def pca(self, cap: int) -> projection.Projection:
        """PCA at once (no disk cache)."""
        return projection.compute_projection(self.x, method="pca", cap=cap, strata=self.strata)

    def spec(self, method: str, cap: int) -> dict[str, Any]:
        """The keyword arguments that fix a projection (for :func:`projection.find_cached` and compute)."""
        return {
            "method": method,
            "cap": cap,
            "strata": self.strata,
            "run_path": self.run_path,
            "step": list(self.steps),
        }

    def cache(self) -> projection.ProjectionCache:
        """The run's projection cache on disk."""
        return projection.ProjectionCache(projection.cache_dir_for(self.run_path))

    def cached(self, method: str, cap: int) -> tuple[Hashable, projection.Projection | None]:
        """The cache key of a projection and the cached result, None when it is not on disk yet."""
        return projection.find_cached(self.x, cache=self.cache(), **self.spec(method, cap))

    def compute(self, method: str, cap: int) -> projection.Projection:
        """Compute (and cache on disk) the projection; UMAP and t-SNE take seconds to minutes."""
        return projection.compute_projection(self.x, cache=self.cache(), **self.spec(method, cap))


def projection_input(view: RunLike, steps: Sequence[int]) -> ProjectionInput:
    """The chosen snapshots stacked into one matrix, with their stratification for the point cap.

    Raises:
        ValueError: no steps are given.
    """
    if not steps:
        raise ValueError("projection_input needs at least one snapshot step")
    chosen = tuple(sorted(int(s) for s in steps))
    parts = [view.embedding_matrix(s) for s in chosen]
    x = np.concatenate([m for m, _ in parts]) if len(parts) > 1 else parts[0][0]
    info = pd.concat([i for _, i in parts], ignore_index=True) if len(parts) > 1 else parts[0][1]
    strata = view.cached(
        "strata",
        lambda: (
            info["modality"].astype(str) + "/" + info["label"].astype("string").fillna("none")
        ).to_numpy(),
        chosen,
    )
    return ProjectionInput(x=x, info=info, strata=strata, steps=chosen, run_path=view.path)


def computing_message(label: str, points: int) -> str:
    """What the Embeddings page says while a UMAP or t-SNE of ``points`` rows runs in the background."""
    return (
        f"{label} of {points:,} points is computing in the background (the first UMAP in a new process also "
        "compiles numba: 20–60 s). PCA is shown meanwhile and the page switches when the result is ready; it "
        "is cached on disk, so the next visit is instant."
    )


def embedding_scatter(
    view: RunLike, proj: projection.Projection, info: pd.DataFrame, label: str, color_by: str
) -> Panel:
    """The 2-D map of a projection, coloured by ``label``, ``modality`` or ``step``.

    Args:
        view: the run.
        proj: the projection of the snapshot rows in ``info``.
        info: the snapshot rows (``step, sample_id, modality, label``).
        label: the method's name for people (``PCA``, ``UMAP``, ``t-SNE``).
        color_by: ``label``, ``modality`` or ``step``.
    """
    points = projection.to_points(proj, info)
    if proj.explained is not None:
        x_title, y_title = (f"PC {i + 1} ({s:.0%} of variance)" for i, s in enumerate(proj.explained))
    else:
        x_title, y_title = f"{label} 1", f"{label} 2"
    steps = sorted(int(s) for s in points["step"].unique())
    title = f"{label} of snapshot {', '.join(map(str, steps))} — {len(points):,} of {len(info):,} points"
    return Panel(
        key="embedding",
        build=lambda: F.fig_embedding_scatter(
            points, color_by=color_by, title=title, x_title=x_title, y_title=y_title
        ),
        data=points,
        caption=caption("embedding", method=label),
        file_name=f"{view.name}-{proj.method}-{'-'.join(map(str, steps))}",
        # With the steps, the point count fixes the stratified sample (the seed is fixed).
        params=("embedding_scatter", proj.method, color_by, tuple(steps), proj.coords.shape[0]),
    )
