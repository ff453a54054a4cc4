"""Small synthetic runs written through the real Monitor, for the dashboard tests (and the e2e test)."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from cldiag import Monitor, schema
from cldiag.store import RunStore

STEPS = 60
CADENCE = dict(
    pairwise_every=5,
    spectrum_every=10,
    curves_every=20,
    snapshot_every=30,
    snapshot_size=128,
    flush_every=20,
)


def _train(monitor: Monitor, *, labels: bool, seed: int, tau: float) -> None:
    g = torch.Generator().manual_seed(seed)
    proto = torch.randn(5, 16, generator=g)
    for step in range(STEPS):
        y = torch.randint(0, 5, (64,), generator=g)
        noise = 1.5 * (1 - step / STEPS) + 0.2
        a = proto[y] + noise * torch.randn(64, 16, generator=g)
        b = a + 0.3 * torch.randn(64, 16, generator=g)
        monitor.log(
            step, a, b, labels=y if labels else None, temperature=tau, loss=torch.tensor(3.0 - step / 30)
        )


def make_runs(root: Path) -> dict[str, Path]:
    """Write the standard set of runs under ``root`` and return name → path.

    - ``simclr``: two views of one modality, with labels (every page has data).
    - ``clip``: two modalities (image/text), no labels (no tolerance, gap page has data).
    - ``empty``: meta.json only, no part files yet (a run that just started).
    - ``corrupt``: a copy of ``simclr`` with one unreadable scalars part.
    """
    root.mkdir(parents=True, exist_ok=True)
    paths = {}
    with Monitor(root / "simclr", config={"temperature": 0.2, "loss": "infonce"}, **CADENCE) as mon:
        _train(mon, labels=True, seed=0, tau=0.2)
    with Monitor(root / "clip", modalities=("image", "text"), config={"loss": "clip"}, **CADENCE) as mon:
        _train(mon, labels=False, seed=1, tau=0.07)
    store = RunStore(root / "empty")
    store.makedirs()
    store.write_meta(
        schema.new_meta(
            name="empty",
            config={},
            modalities=("view1", "view2"),
            two_modality=False,
            dim=None,
            cldiag_version="0.1.0",
            torch_version=torch.__version__,
        ),
    )
    shutil.copytree(root / "simclr", root / "corrupt")
    meta = (root / "corrupt" / "meta.json").read_text().replace('"name": "simclr"', '"name": "corrupt"')
    (root / "corrupt" / "meta.json").write_text(meta)
    (root / "corrupt" / "scalars" / "part-999999999-deadbeef.parquet").write_bytes(
        b"PAR1 this is not parquet"
    )
    (root / "not-a-run").mkdir()
    for name in ("simclr", "clip", "empty", "corrupt"):
        paths[name] = root / name
    return paths
