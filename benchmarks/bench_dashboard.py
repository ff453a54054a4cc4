"""How fast the dashboard is on a long run: loads, figure builds, every page cold and warm, projections.

The synthetic run is written through ``cldiag.store`` the way a Monitor with ``flush_every=200`` would
leave it (one part per table per flush, so 500 parts per table), and optionally also compacted into one
part per table (``cldiag.maintenance.compact_run``):

- scalars: 100k steps; 8 metrics every step, 10 every 10th step, effective rank every 100th (≈0.9M rows)
- histograms: every 10th step → 10k steps × 3 kinds × 50 bins (1.5M rows)
- spectra: every 100th step → 1k spectra × d = 128
- temperature curves: every 100th step → 1k × 5 curves × 13 τ
- one embedding snapshot of 10k points × d = 128 with 10 labels

Pages are timed through Streamlit's AppTest, so a page's time includes loading, figure building and the
serialization Streamlit does before sending a figure to the browser. "cold": every Streamlit cache cleared
(new Run objects, so every part file is parsed again); "+ health banner": how much longer until the health
rules, which run on a background thread, have filled in the banner (Overview: the verdicts); "warm": the
same page run again, as on a widget change or a live refresh with no new data.

Usage::

    python benchmarks/bench_dashboard.py                 # both layouts, UMAP included (slow: JIT)
    python benchmarks/bench_dashboard.py --skip-umap --layout parts
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cldiag import figures as F  # noqa: E402
from cldiag import projection, schema  # noqa: E402
from cldiag.reader import downsample, read_run  # noqa: E402
from cldiag.store import RunStore, snapshot_dir  # noqa: E402

STEPS = 100_000
FLUSH = 200
PAIRWISE = 10
SPECTRUM = 100
DIM = 128
SNAPSHOT = 10_000
BINS = 50
TAUS = np.logspace(-2, 0, 13)
PAGES = [
    "pages/1_overview.py",
    "pages/2_scores.py",
    "pages/3_geometry.py",
    "pages/4_temperature.py",
    "pages/5_modality_gap.py",
    "pages/6_spectrum.py",
    "pages/7_embeddings.py",
    "pages/8_compare.py",
]
EVERY_STEP = [
    schema.M_ALIGNMENT,
    schema.M_POS_SIM,
    f"{schema.M_NORM}/view1",
    f"{schema.M_NORM}/view2",
    schema.M_LOSS,
    schema.M_TEMPERATURE,
    schema.M_NONFINITE,
    schema.M_BATCH,
]
PAIRWISE_METRICS = [
    schema.M_UNIFORMITY,
    schema.M_NEG_SIM,
    schema.M_HARD_NEG_SIM,
    schema.M_RETRIEVAL,
    schema.M_OVERLAP,
    schema.M_TOLERANCE,
    schema.M_STD_L2,
    schema.M_ENTROPY,
    schema.M_EFF_NEG,
    schema.M_COUPLING,
]


# -- the synthetic run -----------------------------------------------------------------------------------
def _scalars(steps: np.ndarray, rng: np.random.Generator) -> pa.Table:
    frac = steps / STEPS
    cols_step, cols_metric, cols_value = [], [], []

    def add(metric: str, at: np.ndarray, value: np.ndarray) -> None:
        cols_step.append(at)
        cols_metric.append(np.full(at.size, metric, dtype=object))
        cols_value.append(value)

    for i, metric in enumerate(EVERY_STEP):
        add(metric, steps, np.exp(-3 * frac) * (i + 1) + 0.05 * rng.standard_normal(steps.size))
    pair = steps[steps % PAIRWISE == 0]
    for i, metric in enumerate(PAIRWISE_METRICS):
        add(metric, pair, -2 - 1.5 * pair / STEPS + 0.02 * i + 0.05 * rng.random(pair.size))
    rank = steps[steps % SPECTRUM == 0]
    add(schema.M_RANK, rank, DIM * (1 - 0.5 * rank / STEPS))
    return pa.table(
        {
            "step": pa.array(np.concatenate(cols_step), pa.int64()),
            "metric": pa.array(np.concatenate(cols_metric), pa.string()),
            "value": pa.array(np.concatenate(cols_value), pa.float64()),
        },
        schema=schema.SCALARS,
    )


def _histograms(steps: np.ndarray, rng: np.random.Generator) -> pa.Table:
    hist_steps = steps[steps % PAIRWISE == 0]
    edges = np.linspace(-1, 1, BINS + 1)
    centers = (edges[:-1] + edges[1:]) / 2
    rows_step, rows_kind, rows_count = [], [], []
    for kind, mean in (("pos", 0.7), ("neg", 0.0), ("hard_neg", 0.5)):
        mu = mean * (0.3 + 0.7 * hist_steps / STEPS)
        dens = np.exp(-((centers[None, :] - mu[:, None]) ** 2) / 0.02)
        counts = rng.poisson(200 * dens / dens.sum(axis=1, keepdims=True) * 10)
        rows_step.append(np.repeat(hist_steps, BINS))
        rows_kind.append(np.full(hist_steps.size * BINS, kind, dtype=object))
        rows_count.append(counts.ravel())
    n = sum(a.size for a in rows_step)
    return pa.table(
        {
            "step": pa.array(np.concatenate(rows_step), pa.int64()),
            "kind": pa.array(np.concatenate(rows_kind), pa.string()),
            "bin_left": pa.array(np.tile(edges[:-1], n // BINS), pa.float32()),
            "bin_right": pa.array(np.tile(edges[1:], n // BINS), pa.float32()),
            "count": pa.array(np.concatenate(rows_count), pa.int64()),
        },
        schema=schema.HISTOGRAMS,
    )


def _spectra(steps: np.ndarray) -> pa.Table:
    at = steps[steps % SPECTRUM == 0]
    index = np.arange(DIM)
    decay = 1 + 3 * at[:, None] / STEPS
    ev = np.exp(-decay * index[None, :] / 20) / DIM
    return pa.table(
        {
            "step": pa.array(np.repeat(at, DIM), pa.int64()),
            "modality": pa.array(np.full(at.size * DIM, "view1", dtype=object), pa.string()),
            "index": pa.array(np.tile(index, at.size), pa.int32()),
            "eigenvalue": pa.array(ev.ravel(), pa.float64()),
        },
        schema=schema.SPECTRA,
    )


def _temperature(steps: np.ndarray) -> pa.Table:
    at = steps[steps % SPECTRUM == 0]
    curves = ["entropy", "effective_negatives", "uniformity", "same_class_penalty", "pos_prob"]
    n = at.size * len(curves) * TAUS.size
    value = np.tile(np.linspace(0, 1, TAUS.size), at.size * len(curves))
    return pa.table(
        {
            "step": pa.array(np.repeat(at, len(curves) * TAUS.size), pa.int64()),
            "tau": pa.array(np.tile(TAUS, at.size * len(curves)), pa.float64()),
            "curve": pa.array(
                np.tile(np.repeat(np.array(curves, dtype=object), TAUS.size), at.size), pa.string()
            ),
            "value": pa.array(value[:n], pa.float64()),
        },
        schema=schema.TEMPERATURE,
    )


def _snapshot(step: int, rng: np.random.Generator) -> pa.Table:
    labels = rng.integers(0, 10, SNAPSHOT)
    centers = rng.standard_normal((10, DIM))
    x = (centers[labels] + 0.8 * rng.standard_normal((SNAPSHOT, DIM))).astype(np.float32)
    return pa.table(
        {
            "step": pa.array(np.full(SNAPSHOT, step), pa.int64()),
            "sample_id": pa.array(np.arange(SNAPSHOT), pa.int64()),
            "modality": pa.array(np.full(SNAPSHOT, "view1", dtype=object), pa.string()),
            "label": pa.array(labels, pa.int64()),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel(), pa.float32()), DIM),
            **(
                {"meta": pa.nulls(SNAPSHOT, pa.string())}
                if "meta" in schema.embeddings_schema(DIM).names
                else {}
            ),
        },
        schema=schema.embeddings_schema(DIM),
    )


def build_run(path: Path, seed: int = 0, status: str = schema.STATUS_FINISHED) -> None:
    """Write the benchmark run at ``path`` as a Monitor flushing every 200 steps would."""
    rng = np.random.default_rng(seed)
    store = RunStore(path)
    store.makedirs()
    meta = schema.new_meta(
        name=path.name,
        config={"temperature": 0.2, "batch_size": 256},
        modalities=("view1", "view2"),
        two_modality=False,
        dim=DIM,
        cldiag_version="bench",
        torch_version="none",
    )
    for seq, start in enumerate(range(0, STEPS, FLUSH)):
        steps = np.arange(start, start + FLUSH, dtype=np.int64)
        store.write_part("scalars", _scalars(steps, rng), seq)
        store.write_part("histograms", _histograms(steps, rng), seq)
        store.write_part("spectra", _spectra(steps), seq)
        store.write_part("temperature", _temperature(steps), seq)
    store.write_part(snapshot_dir(STEPS - 1), _snapshot(STEPS - 1, rng), 0)
    meta.update(status=status, last_step=STEPS - 1)
    store.write_meta(meta)
    _write_summary(store, meta)


def _write_summary(store: RunStore, meta: dict, previous: dict | None = None) -> dict | None:
    """What the writer leaves after a flush: summary.json (skipped on checkouts older than summaries)."""
    try:
        from cldiag import summary
    except ImportError:  # the same benchmark measures the code before summaries existed
        return None
    return summary.after_flush(store, meta, previous)


class LiveWriter(threading.Thread):
    """Keeps a run live while pages are timed: a flush of 200 more steps every ``every`` seconds.

    Each flush writes one part per table, then meta.json (heartbeat, last step), then the summary, in the
    order the Monitor's writer does.
    """

    def __init__(self, path: Path, every: float = 2.0) -> None:
        super().__init__(daemon=True, name="bench-live-writer")
        self.store, self.every, self.stop = RunStore(path), every, threading.Event()
        self.flushes = 0
        # The writer's first summary reads the whole run: done here, before anything is timed.
        self.previous = _write_summary(self.store, self.store.read_meta())

    def run(self) -> None:
        rng = np.random.default_rng(1)
        meta = self.store.read_meta()
        previous = self.previous
        seq = 10_000
        while not self.stop.wait(self.every):
            start = int(meta["last_step"]) + 1
            steps = np.arange(start, start + FLUSH, dtype=np.int64)
            tables = {"scalars": _scalars(steps, rng), "histograms": _histograms(steps, rng)}
            for name, table in tables.items():
                self.store.write_part(name, table, seq)
            seq += 1
            meta.update(last_step=int(steps[-1]), heartbeat=schema.now_iso())
            self.store.write_meta(meta)
            previous = _write_summary(self.store, meta, previous)
            self.flushes += 1


SWEEP_STEPS = 1000
SWEEP_FLUSH = 250


def build_sweep(root: Path, runs: int, *, with_summary: bool = True, seed: int = 0) -> None:
    """A sweep: ``runs`` short finished runs (1k steps, every-step scalars, histograms every 10th step).

    Each run is written as a Monitor flushing every 250 steps leaves it (4 parts per table);
    ``with_summary=False`` leaves out ``summary.json``, as runs written before it existed.
    """
    rng = np.random.default_rng(seed)
    for i in range(runs):
        store = RunStore(root / f"sweep-{i:05d}")
        store.makedirs()
        meta = schema.new_meta(
            name=f"sweep-{i:05d}",
            config={
                "temperature": float(rng.choice([0.05, 0.1, 0.2, 0.5])),
                "lr": float(rng.random()),
                "seed": i,
            },
            modalities=("view1", "view2"),
            two_modality=False,
            dim=DIM,
            cldiag_version="bench",
            torch_version="none",
        )
        for seq, start in enumerate(range(0, SWEEP_STEPS, SWEEP_FLUSH)):
            steps = np.arange(start, start + SWEEP_FLUSH, dtype=np.int64)
            store.write_part("scalars", _scalars(steps, rng), seq)
            store.write_part("histograms", _histograms(steps[:: PAIRWISE * 5], rng), seq)
        meta.update(status=schema.STATUS_FINISHED, last_step=SWEEP_STEPS - 1)
        store.write_meta(meta)
        if with_summary:
            _write_summary(store, meta)


# -- timing helpers --------------------------------------------------------------------------------------
def timed(fn: Callable[[], object], repeat: int = 1) -> tuple[float, object]:
    """Median wall time of ``repeat`` calls and the last result."""
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def bench_reader(path: Path) -> list[tuple[str, float, float]]:
    """Cold (new Run) and warm (same Run, per-part cache) time of each reader call."""
    rows = []
    cold_run = read_run(path)
    for name, call in [
        ("version_token()", lambda r: r.version_token()),
        ("scalars()", lambda r: r.scalars()),
        ("histograms()", lambda r: r.histograms()),
        ("spectra()", lambda r: r.spectra()),
        ("temperature()", lambda r: r.temperature()),
        ("embedding_matrix()", lambda r: r.embedding_matrix()),
    ]:
        cold, _ = timed(lambda c=call: c(cold_run))
        warm, _ = timed(lambda c=call: c(cold_run), repeat=3)
        rows.append((name, cold, warm))
    return rows


def bench_figures(path: Path) -> list[tuple[str, float]]:
    """Build time of each page's main figures from already-loaded frames."""
    run = read_run(path)
    scalars = run.scalars()
    hist, spectra, temp = run.histograms(), run.spectra(), run.temperature()
    key = downsample(scalars.loc[scalars["metric"].isin(EVERY_STEP[:2] + PAIRWISE_METRICS[:1])])
    last_hist = hist.loc[hist["step"] == hist["step"].max()]
    last_spec = spectra.loc[spectra["step"] == spectra["step"].max()]
    last_temp = temp.loc[temp["step"] == temp["step"].max()]
    matrices = F.histogram_matrices(hist)
    matrix, info = run.embedding_matrix()
    proj = projection.compute_projection(matrix, method="pca", cap=5000, strata=info["label"].to_numpy())
    points = projection.to_points(proj, info)
    cases = [
        (
            "downsample 3 metrics (100k + 10k points)",
            lambda: downsample(scalars.loc[scalars["metric"].isin(EVERY_STEP[:2] + PAIRWISE_METRICS[:1])]),
        ),
        (
            "fig_metric_grid (3 downsampled series)",
            lambda: F.fig_metric_grid(key, list(key["metric"].unique()), title="t"),
        ),
        ("fig_score_overlay (one step)", lambda: F.fig_score_overlay(last_hist)),
        ("histogram_matrices (1.5M rows → 3 kinds)", lambda: F.histogram_matrices(hist)),
        ("fig_score_heatmap (10k steps → 300 rows)", lambda: F.fig_score_heatmap(matrices)),
        ("fig_hard_negative_quantiles (10k steps)", lambda: F.fig_hard_negative_quantiles(matrices)),
        ("align_uniform_pairs + plane", lambda: F.fig_align_uniform_plane(F.align_uniform_pairs(scalars))),
        ("fig_temperature_curves", lambda: F.fig_temperature_curves(last_temp, run_tau=0.2)),
        ("fig_spectrum", lambda: F.fig_spectrum(last_spec)),
        ("fig_spectrum_waterfall (1k × 128)", lambda: F.fig_spectrum_waterfall(spectra, "view1")),
        ("fig_embedding_scatter (5k points)", lambda: F.fig_embedding_scatter(points, title="t")),
    ]
    return [(name, timed(fn, repeat=3)[0]) for name, fn in cases]


def _settle(at: object, limit: float = 600.0) -> float:
    """Rerun until no background job is announced on the page; the seconds that took."""
    t0 = time.perf_counter()
    while any("in the background" in str(e.value) for e in [*at.info, *at.caption]):
        if time.perf_counter() - t0 > limit:
            raise TimeoutError("background job did not finish")
        time.sleep(0.1)
        at.run()
    return time.perf_counter() - t0


def _settle_live(at: object, live: bool) -> float:
    """``_settle``; on a live run the checks restart with every flush, so wait at most 30 s (then NaN)."""
    if not live:
        return _settle(at)
    try:
        return _settle(at, limit=30.0)
    except TimeoutError:
        return float("nan")


def bench_pages(root: Path, run_name: str, live: bool = False) -> list[tuple[str, float, float, float]]:
    """Per page: cold time, then how much longer until background health checks have filled in, warm time."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    os.environ["CLDIAG_RUN_ROOT"] = str(root)
    rows = []
    for page in PAGES:
        st.cache_resource.clear()
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=600)
        at.query_params["run"] = run_name
        if page == PAGES[0]:
            cold, _ = timed(at.run)  # the first run is the router + sidebar + Overview
        else:
            at.run()
            _settle_live(at, live)
            st.cache_resource.clear()
            at.switch_page(page)
            cold, _ = timed(at.run)
        background = _settle_live(at, live)
        warm, _ = timed(at.run, repeat=3)
        if at.exception:
            raise RuntimeError(f"{page} raised: {at.exception[0].message}")
        rows.append((page, cold, background, warm))
    return rows


def bench_sweep(root: Path, runs: int) -> list[tuple[str, float]]:
    """A root of ``runs`` runs: list_runs, and the Overview cold (caches cleared) and warm, in AppTest."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from cldiag.reader import list_runs

    rows = [(f"list_runs ({runs} runs)", timed(lambda: list_runs(root), repeat=3)[0])]
    os.environ["CLDIAG_RUN_ROOT"] = str(root)
    colds, warms, settles = [], [], []
    for _ in range(3):
        st.cache_resource.clear()
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=600)
        cold, _ = timed(at.run)
        settles.append(_settle(at))
        warms.append(timed(at.run)[0])
        colds.append(cold)
        if at.exception:
            raise RuntimeError(f"Overview raised: {at.exception[0].message}")
        shown = [d.value for d in at.dataframe if "run" in d.value.columns]
        if not shown or len(shown[0]) != runs:
            raise RuntimeError(f"the runs table shows {len(shown[0]) if shown else 0} of {runs} runs")
    rows.append(("Overview first open (caches and file cache as left by earlier runs)", colds[0]))
    rows.append(("Overview first open: + background (summaries of old runs, health)", settles[0]))
    rows.append(("Overview cold (median of 3)", statistics.median(colds)))
    rows.append(("Overview: + background (summaries of old runs, health)", statistics.median(settles)))
    rows.append(("Overview warm", statistics.median(warms)))
    return rows


def bench_projection(path: Path, skip_umap: bool, cap: int) -> list[tuple[str, float]]:
    run = read_run(path)
    matrix, info = run.embedding_matrix()
    strata = info["label"].to_numpy()
    cache = projection.ProjectionCache(Path(tempfile.mkdtemp(prefix="cldiag-bench-cache-")))
    spec = dict(cap=cap, strata=strata, run_path=str(path), step=STEPS - 1, cache=cache)
    rows = [
        (
            f"PCA cold, {cap} of {SNAPSHOT} points",
            timed(lambda: projection.compute_projection(matrix, method="pca", **spec))[0],
        )
    ]
    rows.append(
        ("PCA cached lookup", timed(lambda: projection.find_cached(matrix, method="pca", **spec), 3)[0])
    )
    if not skip_umap:
        rows.append(
            (
                f"UMAP cold incl. numba JIT, {cap} points",
                timed(lambda: projection.compute_projection(matrix, method="umap", **spec))[0],
            )
        )
        rows.append(
            (
                "UMAP cached lookup (hash 10k×128 + load .npz)",
                timed(lambda: projection.find_cached(matrix, method="umap", **spec), 3)[0],
            )
        )
    shutil.rmtree(cache.directory, ignore_errors=True)
    return rows


def bench_browser_overview(root: Path, chromium: str = "/usr/bin/chromium") -> list[tuple[str, float]]:
    """The Overview of ``root`` in a real browser: a served dashboard, time until the runs table is drawn.

    First load: a fresh server (includes the process's imports). Later loads: a new browser session after
    the listing caches have expired (6 s: every run's meta.json and summary.json are read again).
    """
    import socket
    import subprocess
    import urllib.request

    from playwright.sync_api import sync_playwright

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "CLDIAG_RUN_ROOT": str(root), "CLDIAG_WARM_UMAP": "0"}
    args = ["--server.headless", "true", "--server.address", "127.0.0.1", "--server.port", str(port)]
    args += ["--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"]
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    rows = []
    try:
        for _ in range(600):
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
            for label in ("first load (fresh server)", "new session, caches expired", "new session again"):
                page = browser.new_page(viewport={"width": 1400, "height": 1200})
                t0 = time.perf_counter()
                page.goto(url)
                page.wait_for_selector('[data-testid="stDataFrame"]', timeout=600_000)
                rows.append((f"browser: Overview runs table drawn, {label}", time.perf_counter() - t0))
                page.close()
                time.sleep(6)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    return rows


def umap_first_child(mode: str, wait: float) -> None:
    """In a fresh process: optionally warm up as the dashboard does, wait, then time a 10k-point UMAP."""
    t_start = time.perf_counter()
    if mode == "warm":
        projection.warm_up()  # what app.py does when served
    time.sleep(max(0.0, wait - (time.perf_counter() - t_start)))
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 10, SNAPSHOT)
    x = (rng.standard_normal((10, DIM))[labels] + 0.8 * rng.standard_normal((SNAPSHOT, DIM))).astype(
        np.float32
    )
    t0 = time.perf_counter()
    projection.compute_projection(x, method="umap", cap=SNAPSHOT, strata=labels)
    print(f"RESULT {time.perf_counter() - t0:.2f}")


def bench_umap_first(wait: float) -> list[tuple[str, float]]:
    """The first UMAP of 10k points in a fresh process: without warm-up, and ``wait`` s after warm_up()."""
    import subprocess

    rows = []
    for mode, label in (
        ("cold", "no warm-up, first call"),
        ("warm", f"warm_up() at start, called after {wait:g} s"),
    ):
        out = subprocess.run(
            [sys.executable, __file__, "--umap-child", mode, str(wait if mode == "warm" else 0)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")},
        ).stdout
        rows.append((f"first UMAP of {SNAPSHOT} points: {label}", float(out.split("RESULT")[-1])))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layout", choices=["parts", "compacted", "live", "both", "none"], default="both")
    parser.add_argument(
        "--umap-first",
        type=float,
        default=None,
        metavar="WAIT",
        help="time the first UMAP WAIT s after start",
    )
    parser.add_argument("--umap-child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--sweep", type=int, default=0, help="also time a root of this many runs (e.g. 1000)")
    parser.add_argument("--browser", action="store_true", help="also open the sweep's Overview in Chromium")
    parser.add_argument(
        "--sweep-without-summaries", action="store_true", help="the sweep's runs predate summary.json"
    )
    parser.add_argument(
        "--skip-umap", action="store_true", help="leave out the cold UMAP (minutes on 2 cores)"
    )
    parser.add_argument("--cap", type=int, default=5000, help="projection point cap")
    parser.add_argument("--keep", type=Path, default=None, help="write the run here and keep it")
    args = parser.parse_args()
    if args.umap_child:
        umap_first_child(args.umap_child[0], float(args.umap_child[1]))
        return
    if args.umap_first is not None:
        print("\n| fresh process | s |\n|---|---|")
        for name, t in bench_umap_first(args.umap_first):
            print(f"| {name} | {t:.1f} |")

    base = args.keep or Path(tempfile.mkdtemp(prefix="cldiag-bench-"))
    layouts = {"both": ["parts", "compacted"], "none": []}.get(args.layout, [args.layout])
    if args.sweep:
        root = base / f"sweep-{args.sweep}-{'old' if args.sweep_without_summaries else 'new'}"
        if not root.exists():
            t0 = time.perf_counter()
            build_sweep(root, args.sweep, with_summary=not args.sweep_without_summaries)
            print(f"\nwrote {args.sweep} runs in {time.perf_counter() - t0:.1f} s")
        print(f"\n## A root of {args.sweep} runs\n\n| sweep | s |\n|---|---|")
        for name, t in bench_sweep(root, args.sweep):
            print(f"| {name} | {t:.2f} |")
        if args.browser:
            for name, t in bench_browser_overview(root):
                print(f"| {name} | {t:.2f} |")
    for layout in layouts:
        root = base / layout
        path = root / "long-run"
        if not (path / schema.META_FILE).exists():
            t0 = time.perf_counter()
            build_run(path, status=schema.STATUS_RUNNING if layout == "live" else schema.STATUS_FINISHED)
            if layout == "compacted":
                from cldiag.maintenance import compact_run

                compact_run(path)
            print(f"\nwrote {layout} run in {time.perf_counter() - t0:.1f} s")
        live = LiveWriter(path) if layout == "live" else None
        if live is not None:  # running, with a fresh heartbeat and a flush every 2 s while pages are timed
            live.start()
        n_parts = sum(1 for _ in path.rglob("part-*.parquet"))
        print(f"\n## Layout: {layout} ({n_parts} part files)\n")
        print("| reader call | cold (s) | warm (s) |\n|---|---|---|")
        for name, cold, warm in bench_reader(path):
            print(f"| {name} | {cold:.3f} | {warm:.3f} |")
        print("\n| figure build (data already loaded) | s |\n|---|---|")
        for name, t in bench_figures(path):
            print(f"| {name} | {t:.3f} |")
        print(
            "\n| page (AppTest: load + figures + serialization) | cold (s) | + health banner (s) | warm (s) |"
            "\n|---|---|---|---|"
        )
        for page, cold, background, warm in bench_pages(root, "long-run", live=live is not None):
            print(f"| {page} | {cold:.2f} | {background:.2f} | {warm:.2f} |")
        if live is not None:
            live.stop.set()
            live.join()
            print(f"\n(the live run got {live.flushes} flushes of {FLUSH} steps while it was timed)")
        if layout == layouts[-1]:
            print("\n| projection | s |\n|---|---|")
            for name, t in bench_projection(path, args.skip_umap, args.cap):
                print(f"| {name} | {t:.3f} |")
    if args.keep is None:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
