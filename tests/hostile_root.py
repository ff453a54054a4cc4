"""A run root with one hostile run per case beside healthy runs, for the reader, every page, the report
and the browser (issue 11). ``build_hostile_root(root)`` writes it and returns what each case is.

Cases that make a run unreadable (``BAD``) must show as a skipped run with a reason; cases whose run still
opens (``ODD``) must show that run with its odd field set aside; every healthy run must keep working.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from cldiag import Monitor, schema
from cldiag.store import RunStore

HEALTHY = ("healthy-a", "healthy-b")
BAD = {
    "deep-json": "nested too deeply",
    "dev-zero": "links outside the run directory",
    "fifo-meta": "not a regular file",
    "huge-meta": "limit for meta.json",
    "meta-links-out": "links outside the run directory",
}
"""Run directory → the words its reason contains."""
ODD = {
    "config-int": "config is of type int",
    "step-2e60": "last_step is not a step",
    "bad-types": "dim is not a positive integer",
    "many-config-keys": None,
    "many-metrics": None,
    "big-snapshot": None,
    "markdown-name": None,
}
"""Run directory → the note it gets in ``Run.problems`` (None: none; these test caps and escaping)."""
CONFIG_KEYS = 3000
METRIC_NAMES = 1500
SNAPSHOT_ROWS = 25_000
SNAPSHOT_DIM = 4


def markdown_name(url: str) -> str:
    """A run name that is live Markdown: an image that fetches ``url`` and a link to it."""
    return f"![x]({url}/leak.png) [Click here]({url}/click) **bold** <{url}/auto> :red[red]"


def _meta(name: str, **fields) -> dict:
    meta = schema.new_meta(
        name=name,
        config={"temperature": 0.2},
        modalities=("view1", "view2"),
        two_modality=False,
        dim=8,
        cldiag_version="0.1.0",
        torch_version=torch.__version__,
    )
    meta.update({"status": schema.STATUS_FINISHED, "last_step": 9, **fields})
    return meta


def _healthy(path: Path, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    cadence = dict(pairwise_every=2, spectrum_every=5, curves_every=5, snapshot_every=5, snapshot_size=32)
    with Monitor(path, config={"temperature": 0.2, "seed": seed}, flush_every=5, **cadence) as mon:
        for step in range(10):
            y = torch.randint(0, 3, (32,), generator=g)
            a = torch.randn(32, 8, generator=g) + y[:, None]
            mon.log(step, a, a + 0.3 * torch.randn(32, 8, generator=g), labels=y, temperature=0.2)


def _write_meta(path: Path, meta: dict) -> RunStore:
    store = RunStore(path)
    store.makedirs()
    store.write_meta(meta)
    return store


def build_hostile_root(root: Path, *, leak_url: str = "http://127.0.0.1:9") -> dict[str, Path]:
    """Write the healthy runs and one run per hostile case under ``root``; return name → path.

    Args:
        root: the run root (created).
        leak_url: where the Markdown run name's image and link point (a local server a browser test
            watches).
    """
    root.mkdir(parents=True, exist_ok=True)
    outside = root.parent / f"{root.name}-outside"
    outside.mkdir(exist_ok=True)
    for i, name in enumerate(HEALTHY):
        _healthy(root / name, seed=i)

    (root / "deep-json").mkdir()
    depth = 200_000  # far past the parser's recursion limit, well under the size cap
    (root / "deep-json" / "meta.json").write_text('{"a":' * depth + "1" + "}" * depth)
    (root / "dev-zero").mkdir()
    (root / "dev-zero" / "meta.json").symlink_to("/dev/zero")
    (root / "fifo-meta").mkdir()
    os.mkfifo(root / "fifo-meta" / "meta.json")
    (root / "huge-meta").mkdir()
    blob = _meta("huge-meta", padding="x" * (schema.MAX_META_BYTES + 10))
    (root / "huge-meta" / "meta.json").write_text(json.dumps(blob))
    (outside / "secret").mkdir(exist_ok=True)
    (outside / "secret" / "meta.json").write_text(json.dumps(_meta("SECRET-OUTSIDE-THE-ROOT")))
    (root / "meta-links-out").mkdir()
    (root / "meta-links-out" / "meta.json").symlink_to(outside / "secret" / "meta.json")

    _write_meta(root / "config-int", _meta("config-int", config=5))
    _write_meta(root / "step-2e60", _meta("step-2e60", last_step=2**60))
    _write_meta(
        root / "bad-types",
        _meta("bad-types", dim="eight", modalities=5, status=3, two_modality="yes", heartbeat=[1]),
    )
    _write_meta(
        root / "many-config-keys",
        _meta("many-config-keys", config={f"key{i:05d}": i for i in range(CONFIG_KEYS)}),
    )
    store = _write_meta(root / "many-metrics", _meta("many-metrics"))
    names = [f"user/metric{i:05d}" for i in range(METRIC_NAMES)]
    store.write_part(
        "scalars",
        pa.table(
            {"step": pa.array([1] * len(names), pa.int64()), "metric": names, "value": [0.5] * len(names)},
            schema=schema.SCALARS,
        ),
        0,
    )
    store = _write_meta(root / "big-snapshot", _meta("big-snapshot", dim=SNAPSHOT_DIM))
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((SNAPSHOT_ROWS, SNAPSHOT_DIM)).astype(np.float32)
    store.write_part(
        "embeddings/step=5",
        pa.table(
            {
                "step": pa.array(np.full(SNAPSHOT_ROWS, 5), pa.int64()),
                "sample_id": pa.array(np.arange(SNAPSHOT_ROWS), pa.int64()),
                "modality": pa.array(["view1"] * SNAPSHOT_ROWS, pa.string()),
                "label": pa.array(np.arange(SNAPSHOT_ROWS) % 3, pa.int64()),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), SNAPSHOT_DIM),
                "meta": pa.nulls(SNAPSHOT_ROWS, pa.string()),
            },
            schema=schema.embeddings_schema(SNAPSHOT_DIM),
        ),
        0,
    )
    _write_meta(root / "markdown-name", _meta(markdown_name(leak_url)))
    return {p.name: p for p in root.iterdir()}
