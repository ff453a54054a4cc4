"""What every view shares: the empty-chart messages and how many points a series draws."""

from __future__ import annotations

import dataclasses

from cldiag.monitor.config import Cadence

MAX_POINTS = 2000
"""Points per plotted series; longer series are min/max-downsampled (the CSV keeps every point)."""

_MESSAGES = {
    "histograms": "No score histograms in the selected steps yet. The Monitor logs them every "
    "`pairwise_every` steps (default {pairwise_every}); widen the step range or wait for the next flush.",
    "temperature": "No temperature curves in the selected steps yet. The Monitor computes them every "
    "`curves_every` steps (default {curves_every}) from that step's batch.",
    "spectra": "No spectra in the selected steps yet. The Monitor logs them every `spectrum_every` steps "
    "(default {spectrum_every}).",
    "snapshots": "No embedding snapshot in the selected steps yet. The Monitor stores one every "
    "`snapshot_every` steps (default {snapshot_every}), or call `Monitor.log_embeddings` with a fixed "
    "probe set.",
    "scalars": "No scalar metrics logged yet.",
    "one_modality": "This run has two views of one modality, so there is no modality gap to measure. "
    'Log a two-tower run with `Monitor(..., modalities=("image", "text"))` to see it.',
    "gap": "No gap metrics logged yet.",
    "gap_snapshot": "No embedding snapshot in the selected steps yet, so no 2-D view.",
    "plane": "The alignment–uniformity plane needs both metrics at common steps; none logged yet.",
    "tolerance": "No tolerance: this run logged no labels. Pass `labels=` to `Monitor.log` to see how "
    "close same-class samples stay (Wang & Liu, CVPR 2021).",
}
EMPTY = {key: message.format(**dataclasses.asdict(Cadence())) for key, message in _MESSAGES.items()}
"""Why a chart is missing, per table or chart: the dashboard shows it, notebooks raise it. The cadences
named are the Monitor's defaults, read from :class:`~cldiag.monitor.config.Cadence`."""
