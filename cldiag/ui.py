"""Streamlit glue for the dashboard: the run root, the run picker, cached loaders and shared widgets.

This is the only module of the package that imports Streamlit. Pages stay short: they take the sidebar's
:class:`Selection`, load tables through a :class:`RunView` (cached, keyed on the run's version token, so a
live run's new part files invalidate exactly its own entries), build figures with :mod:`cldiag.figures`
and show them with :func:`chart`.

Caches are ``st.cache_resource`` (shared, bounded by ``max_entries`` and ``ttl``): they hand out the same
DataFrame to every session without pickling or copying, so callers must treat returned frames as
read-only. The dashboard only opens runs under its configured root: the picker lists that root, and a
typed path or a ``?run=`` query parameter is accepted only if it stays inside it.
"""

from __future__ import annotations

import inspect
import logging
import os
import posixpath
import re
import sys
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from streamlit.errors import StreamlitAPIException

from cldiag import health, schema, views
from cldiag.jobs import BackgroundJobs
from cldiag.lab.paths import lab_runs_dir
from cldiag.paths import resolve_under_root
from cldiag.reader import Run, list_runs, read_run
from cldiag.text import escape_markdown
from cldiag.views import MAX_CONFIG_KEYS, Panel, Series, shown_config

__all__ = [
    "MAX_POINTS",
    "PLOTLY_CONFIG",
    "BackgroundJobs",
    "RunView",
    "Selection",
    "Series",
    "background_jobs",
    "cached",
    "chart",
    "discovered",
    "escape_markdown",
    "finished_verdicts",
    "guarded",
    "health_banner",
    "launch_args",
    "open_runs",
    "page_intro",
    "plot",
    "rerun_when_done",
    "resolve_root",
    "resolve_under_root",
    "run_multi_page",
    "run_page",
    "runs_series",
    "selection",
    "show",
    "sidebar",
    "step_picker",
    "view_of",
]

logger = logging.getLogger("cldiag.ui")
T = TypeVar("T")

ENV_ROOT = "CLDIAG_RUN_ROOT"
APP_DIR = Path(__file__).resolve().parents[1]
"""The source checkout's root, holding ``app.py`` and ``sample_runs/``."""
MAX_POINTS = 2000
"""Points per plotted series; longer series are min/max-downsampled (the CSV keeps every point)."""
REFRESH_SECS = 5.0
"""How often pages of a run that is still being written redraw."""
STALE_SECS = 300.0
"""A running run whose heartbeat is older than this is shown as stale, and not refreshed."""
HEALTH_WAIT_SECS = 3.0
"""How long a page waits for the run's health verdicts before showing a placeholder and polling.

The rules take under a second on typical runs (0.03-0.86 s per sample run: ``health.evaluate`` over
``list_runs("sample_runs")``, 2-core VM at load average 15), and the job starts before the page draws its
charts, so the verdicts are nearly always ready by the time the banner is drawn. Polling instead cost 6-9 s
of "Checking ...": the frontend's first timer-driven rerun comes only after the page's own run and charts."""
PLOTLY_CONFIG: dict[str, Any] = {
    "displaylogo": False,
    "displayModeBar": True,
    "toImageButtonOptions": {"format": "png", "scale": 2},
}
"""Config keys shown per run (Overview table, Compare's differences); the page says when more exist."""
MAX_METRICS = 1000
"""Metric names a run offers to pages (built-in names first); the page says when more exist."""
MAX_SNAPSHOT_ROWS = 20_000
"""Rows read from one embedding snapshot (a uniform sample of larger ones, streamed, never loaded whole)."""
_BUILTIN_METRICS = frozenset(v for k, v in vars(schema).items() if k.startswith("M_") and isinstance(v, str))
_SELECTION_KEY = "_cldiag_selection"
DEEP_LINK_KEY = "_cldiag_deep_link"
"""Session key: the ``pages/`` file a page URL asked for before the router ran (see :func:`selection`)."""
_RANGE_KEY = "_cldiag_step_range"


# ---------------------------------------------------------------------------------------------------------
# The run root and paths inside it
def launch_args() -> list[str]:
    """Arguments given to the dashboard (``streamlit run app.py -- ROOT``); none when embedded or tested.

    Only ``streamlit run app.py`` hands its script arguments over in ``sys.argv``; elsewhere (pytest,
    another host program) ``sys.argv`` belongs to someone else.
    """
    return sys.argv[1:] if Path(sys.argv[0]).name == "app.py" else []


def resolve_root(args: Sequence[str], default: str | os.PathLike[str]) -> str:
    """The run root: the first argument after ``--``, else ``$CLDIAG_RUN_ROOT``, else ``default``.

    Args:
        args: the script's arguments (``sys.argv[1:]``; ``streamlit run app.py -- RUNS`` passes ``RUNS``).
        default: the bundled ``sample_runs/`` next to ``app.py``.
    """
    positional = [a for a in args if a and not a.startswith("-")]
    if positional:
        return positional[0]
    return os.environ.get(ENV_ROOT) or os.fspath(default)


# ---------------------------------------------------------------------------------------------------------
# Cached loaders. Arguments starting with "_" are not hashed; the path and version token are the key.
@st.cache_resource(ttl=5, max_entries=8, show_spinner=False)
def _discover(root: str) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...], dict[str, Run]]:
    problems: list[str] = []
    try:
        runs = list_runs(root, problems=problems)
    except (OSError, ValueError, RuntimeError) as exc:
        return (), (f"cannot list {root}: {type(exc).__name__}: {exc}",), {}
    return tuple((r.name, r.path) for r in runs), tuple(problems), {r.path: r for r in runs}


def discovered(root: str) -> dict[str, Run]:
    """The sidebar's listing of ``root`` as Run objects by path (each meta.json read once per listing)."""
    return _discover(root)[2]


@st.cache_resource(max_entries=64, show_spinner=False)
def _open_run(path: str) -> Run:
    # One Run object per path, so the reader's per-part cache makes live polling read only new parts.
    return read_run(path)


def _is_builtin(metric: str) -> bool:
    return metric.split("/")[0] in _BUILTIN_METRICS


def _is_per_class(metric: str) -> bool:
    """A per-class τ series: a run with many classes has thousands; the user's own metrics go first."""
    return metric.startswith((schema.TAU_CLASS_PREFIX, schema.TAU_CLASS_COUNT_PREFIX))


@st.cache_resource(max_entries=24, ttl=3600, show_spinner=False)
def _scalars_by_metric(path: str, token: str, _run: Run) -> tuple[dict[str, pd.DataFrame], int]:
    """Each metric's rows in step order, for at most :data:`MAX_METRICS` names; and how many names exist."""
    return views.split_by_metric(_run.scalars(), limit=MAX_METRICS, first=_is_builtin, last=_is_per_class)


@st.cache_resource(max_entries=24, ttl=3600, show_spinner=False)
def _table(path: str, token: str, table: str, _run: Run) -> pd.DataFrame:
    return getattr(_run, table)()


@st.cache_resource(max_entries=24, ttl=3600, show_spinner=False)
def _steps_of(path: str, token: str, table: str, _run: Run) -> tuple[int, ...]:
    return views.unique_steps(_table(path, token, table, _run))


@st.cache_resource(max_entries=24, ttl=3600, show_spinner=False)
def _at_step(path: str, token: str, table: str, step: int, _run: Run) -> pd.DataFrame:
    return views.rows_at_step(_table(path, token, table, _run), step)


@st.cache_resource(max_entries=64, ttl=3600, show_spinner=False)
def _series(
    path: str,
    token: str,
    metrics: tuple[str, ...],
    step_range: tuple[int, int | None],
    max_points: int,
    _run: Run,
) -> Series:
    by_metric = _scalars_by_metric(path, token, _run)[0]
    return views.series_in_range(by_metric, metrics, step_range, max_points, _run.scalars(metrics=[]))


@st.cache_resource(max_entries=8, ttl=3600, show_spinner=False)
def _snapshot_steps(path: str, token: str, _run: Run) -> tuple[int, ...]:
    return tuple(_run.snapshot_steps())


@st.cache_resource(max_entries=8, ttl=3600, show_spinner=False)
def _embedding_matrix(path: str, token: str, step: int, _run: Run) -> tuple[np.ndarray, pd.DataFrame]:
    return _run.embedding_matrix(step, max_rows=MAX_SNAPSHOT_ROWS)


@st.cache_resource(max_entries=64, ttl=3600, show_spinner=False)
def _snapshot_rows(path: str, token: str, step: int, _run: Run) -> int:
    return _run.snapshot_rows(step)


@st.cache_resource(max_entries=128, ttl=3600, show_spinner=False)
def _derived(key: tuple[Hashable, ...], _build: Callable[[], Any]) -> Any:
    return _build()


def cached(key: tuple[Hashable, ...], build: Callable[[], T]) -> T:
    """``build()`` once per ``key`` (which must name every input: run versions, step range, options).

    For figures and other values derived from tables. The result is shared between sessions: do not
    modify it after it is returned.
    """
    return _derived(key, build)


@st.cache_resource(show_spinner=False)
def background_jobs(kind: str) -> BackgroundJobs[Any]:
    """The process-wide runner of one kind of job (``projection``, ``health``).

    Each kind has its own thread, so a quick health check never waits behind a minute of UMAP.
    """
    return BackgroundJobs(workers=1)


def rerun_when_done(job: Future[Any], every: float = 2.0) -> None:
    """Poll ``job`` every ``every`` seconds and rerun the app once it has finished."""

    def poll() -> None:
        if job.done():
            st.rerun()

    st.fragment(run_every=every)(poll)()


# ---------------------------------------------------------------------------------------------------------
# A run as pages see it
@dataclass
class RunView:
    """One run at one version: cached table access for pages.

    Args:
        run: the run.
        token: its :meth:`Run.version_token` when the view was made (the cache key).
        step_range: ``(first, last)`` step to show; ``last`` None follows the newest step.
    """

    run: Run
    token: str
    step_range: tuple[int, int | None] = (0, None)

    @property
    def name(self) -> str:
        """The run's display name."""
        return self.run.name

    @property
    def path(self) -> str:
        """The run's location."""
        return self.run.path

    @property
    def dim(self) -> int | None:
        """Embedding dimension from meta.json."""
        dim = self.run.meta.get("dim")
        return int(dim) if isinstance(dim, int) else None

    @property
    def live(self) -> bool:
        """Status ``running`` with a recent heartbeat: the pages refresh on a timer."""
        return _is_live(self.run)

    @property
    def status_text(self) -> str:
        """Status for people: ``running``, ``stale (no heartbeat for …)``, ``finished``, ``failed``."""
        if self.run.is_stale(STALE_SECS):  # only ever true for status "running"
            return f"stale (running, but no heartbeat for over {STALE_SECS / 60:.0f} min)"
        return self.run.status

    def in_range(self, steps: Sequence[int]) -> list[int]:
        """The given steps that fall inside the selected step range."""
        lo, hi = self.step_range
        return [s for s in steps if s >= lo and (hi is None or s <= hi)]

    def metrics(self) -> list[str]:
        """Scalar metric names of the run."""
        return list(_scalars_by_metric(self.path, self.token, self.run)[0])

    @property
    def config(self) -> dict[str, Any]:
        """The run's config, at most :data:`MAX_CONFIG_KEYS` keys (sorted); :meth:`caps` says if cut."""
        return shown_config(self.run.config)

    def caps(self) -> list[str]:
        """What this view shows less of than the run holds (config keys, metric names, snapshot rows)."""
        notes = []
        n_keys = len(self.run.config)
        if n_keys > MAX_CONFIG_KEYS:
            notes.append(f"config: showing {MAX_CONFIG_KEYS} of {n_keys:,} keys (sorted by name)")
        n_metrics = _scalars_by_metric(self.path, self.token, self.run)[1]
        if n_metrics > MAX_METRICS:
            notes.append(
                f"metrics: offering {MAX_METRICS:,} of {n_metrics:,} metric names (cldiag's own first, then "
                "by name, per-class τ last)"
            )
        # The newest snapshots in the step range (each count is one footer read per part, cached per version).
        for step in self.snapshot_steps()[-20:]:
            rows = _snapshot_rows(self.path, self.token, step, self.run)
            if rows > MAX_SNAPSHOT_ROWS:
                notes.append(
                    f"snapshot at step {step}: using a uniform sample of {MAX_SNAPSHOT_ROWS:,} of its "
                    f"{rows:,} rows"
                )
        return notes

    def series(self, metrics: Sequence[str], *, max_points: int = MAX_POINTS) -> Series:
        """The given metrics in the selected step range (absent metrics are left out)."""
        return _series(self.path, self.token, tuple(metrics), self.step_range, max_points, self.run)

    def table(self, name: str) -> pd.DataFrame:
        """A whole table (``histograms``, ``spectra``, ``temperature``), filtered to the step range."""
        df = _table(self.path, self.token, name, self.run)
        lo, hi = self.step_range
        return df if lo <= 0 and hi is None else views.rows_in_range(df, lo, hi)

    def steps(self, name: str) -> list[int]:
        """Logged steps of a table inside the step range."""
        return self.in_range(_steps_of(self.path, self.token, name, self.run))

    def at_step(self, name: str, step: int) -> pd.DataFrame:
        """The rows of one step of a table."""
        return _at_step(self.path, self.token, name, int(step), self.run)

    def snapshot_steps(self) -> list[int]:
        """Steps with an embedding snapshot inside the step range."""
        return self.in_range(_snapshot_steps(self.path, self.token, self.run))

    def embedding_matrix(self, step: int) -> tuple[np.ndarray, pd.DataFrame]:
        """One snapshot as (N×d float32, info frame); treat both as read-only."""
        return _embedding_matrix(self.path, self.token, int(step), self.run)

    def verdicts(self) -> Future[tuple[health.Verdict, ...]]:
        """The health verdicts of this run version, computed in the background (a future; cached)."""
        return background_jobs("health").submit(
            ("health", self.path, self.token), lambda: tuple(health.evaluate(self.run))
        )

    def cached(self, name: str, build: Callable[[], T], *params: Hashable) -> T:
        """A figure or value of this run built once per (version, step range, ``name``, ``params``)."""
        return cached((self.path, self.token, self.step_range, name, params), build)

    def value_at(self, metric: str, step: int) -> float | None:
        """The metric's last logged value at or before ``step`` (None if never logged by then)."""
        return views.value_at_step(_scalars_by_metric(self.path, self.token, self.run)[0].get(metric), step)


def _view(run: Run, step_range: tuple[int, int | None]) -> RunView:
    try:
        run.refresh()  # status, heartbeat and last step change while a run is written
    except (OSError, ValueError) as exc:
        st.warning(
            f"Run {escape_markdown(run.name)}: meta.json could not be re-read ({escape_markdown(exc)}); "
            "showing what was read before."
        )
    return RunView(run=run, token=run.version_token(), step_range=step_range)


# ---------------------------------------------------------------------------------------------------------
# Sidebar: root, run picker, step range
@dataclass
class Selection:
    """What the sidebar chose.

    Attributes:
        root: the configured run root.
        runs: (name, path) of every run under the root.
        focus: path of the run most pages show (None when there is none).
        compare: paths of the runs shown together on Overview, Geometry and Compare (focus first).
        step_range: ``(first, last)``; ``last`` None follows the newest step.
        problems: messages about runs that could not be listed or opened.
    """

    root: str
    runs: list[tuple[str, str]]
    focus: str | None
    compare: list[str]
    step_range: tuple[int, int | None]
    problems: list[str] = field(default_factory=list)
    _labels: tuple[tuple[int, int], dict[str, str]] | None = field(default=None, repr=False, compare=False)

    def label(self, path: str) -> str:
        """The display name of a run path (the directory name is added when names collide)."""
        return self.labels().get(path) or posixpath.basename(path.rstrip("/"))

    def labels(self) -> dict[str, str]:
        """Every listed run's display name by path, built once (``label`` per option was O(runs²))."""
        key = (id(self.runs), len(self.runs))  # the sidebar appends a typed run to the same list
        if self._labels is None or self._labels[0] != key:
            counts = Counter(n for n, _ in self.runs)
            base = {p: posixpath.basename(p.rstrip("/")) for _, p in self.runs}
            self._labels = (key, {p: f"{n} ({base[p]})" if counts[n] > 1 else n for n, p in self.runs})
        return self._labels[1]


def _query_focus(runs: list[tuple[str, str]]) -> tuple[str | None, str | None]:
    """The run named by ``?run=`` (matched against names, never used as a path) and a warning if unknown."""
    wanted = st.query_params.get("run")
    if not wanted:
        return None, None
    for name, path in runs:
        if wanted in (name, posixpath.basename(path.rstrip("/"))):
            return path, None
    return None, (
        f"The link asks for run “{escape_markdown(wanted)}”, which is not under the run root; showing "
        "another run."
    )


def _step_range(paths: Sequence[str]) -> tuple[int, int | None]:
    last_steps = []
    for path in paths:
        try:
            step = _open_run(path).meta.get("last_step")
        except (OSError, ValueError):
            continue
        if isinstance(step, int) and not isinstance(step, bool):
            last_steps.append(min(max(step, 0), schema.MAX_SAFE_STEP))  # a browser number holds no more
    if not last_steps or max(last_steps) <= 0:
        return (0, None)
    top = max(last_steps)
    lo, hi = views.follow_range(st.session_state.get(_RANGE_KEY), top)
    chosen = st.sidebar.slider("Steps", 0, top, (lo, hi), key=f"_cldiag_steps_{top}")
    st.session_state[_RANGE_KEY] = (chosen[0], chosen[1], top)
    return (chosen[0], None if chosen[1] >= top else chosen[1])


def _keep_controls(sel: Selection) -> Selection:
    """On a page without the run controls: keep their state (and the last selection) for the next run page.

    Streamlit forgets the state of a widget that a script run does not draw; writing it back keeps it.
    """
    for key in ("_cldiag_run", "_cldiag_compare", "_cldiag_typed"):
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]
    prev = st.session_state.get(_SELECTION_KEY)
    if isinstance(prev, Selection) and prev.root == sel.root and prev.focus in [p for _, p in sel.runs]:
        sel.focus, sel.compare, sel.step_range = prev.focus, prev.compare, prev.step_range
    st.session_state[_SELECTION_KEY] = sel
    return sel


def _listed_runs(root: str) -> tuple[list[tuple[str, str]], list[str]]:
    """(name, path) of the runs under the root, then of the Lab's runs folder; and listing problems."""
    runs_t, problems_t, _ = _discover(root)
    runs, problems = list(runs_t), list(problems_t)
    lab_dir = lab_runs_dir()  # Lab runs live in their own folder; list them after the root's runs
    if os.path.isdir(lab_dir) and os.path.realpath(lab_dir) != os.path.realpath(root):
        lab_runs, lab_problems, _ = _discover(lab_dir)
        runs += [r for r in lab_runs if r not in runs]
        problems += lab_problems
    return runs, problems


def _typed_run(root: str) -> str | None:
    """The run typed into "Open a run in a subfolder", if it is a run under the root (else a warning)."""
    with st.sidebar.expander("Open a run in a subfolder"):
        typed = st.text_input("Path relative to the run root", key="_cldiag_typed", placeholder="group/run-3")
    if not typed:
        return None
    try:
        extra = resolve_under_root(root, typed)
        _open_run(extra)
    except ValueError as exc:
        st.sidebar.warning(
            f"Not opened: {escape_markdown(exc)}. Only runs under {escape_markdown(root)} can be opened."
        )
        return None
    except OSError as exc:
        st.sidebar.warning(
            f"Not opened: “{escape_markdown(typed)}” is not a cldiag run ({escape_markdown(exc)})."
        )
        return None
    return extra


_LINK_WARNING = "_cldiag_link_warning"


def _focus(sel: Selection, paths: list[str], extra: str | None) -> str:
    """The "Run" picker: a newly typed path or a changed ``?run=`` link moves it once; the URL follows it."""
    wanted, warning = _query_focus(sel.runs)
    slot = st.sidebar.empty()  # the warning about a bad ?run= link, filled once the focus is known
    if extra is not None and st.session_state.get("_cldiag_opened") != extra:
        # A newly typed path becomes the focus once; the picker decides afterwards.
        st.session_state["_cldiag_run"] = st.session_state["_cldiag_opened"] = extra
    elif wanted is not None and st.query_params.get("run") != st.session_state.get("_cldiag_linked"):
        # ?run= changed since the sidebar last wrote it: a link (st.page_link(..., query_params={"run": ...}))
        # or a fresh session. It moves the focus once; afterwards the picker decides.
        st.session_state["_cldiag_run"] = wanted
    if st.session_state.get("_cldiag_run") not in paths:
        st.session_state["_cldiag_run"] = paths[0]
    focus = st.sidebar.selectbox("Run", paths, format_func=sel.label, key="_cldiag_run")
    if focus != extra:
        st.query_params["run"] = posixpath.basename(focus.rstrip("/"))
    st.session_state["_cldiag_linked"] = st.query_params.get("run")
    # The URL now names the run shown, so later reruns no longer see the bad link: keep its warning until
    # the user picks another run.
    if warning:
        st.session_state[_LINK_WARNING] = (warning, focus)
    kept = st.session_state.get(_LINK_WARNING)
    if kept is not None and kept[1] == focus:
        slot.warning(kept[0])
    else:
        st.session_state.pop(_LINK_WARNING, None)
    return focus


def sidebar(
    default_root: str | os.PathLike[str], args: Sequence[str] = (), *, controls: bool = True
) -> Selection:
    """Draw the sidebar (root, run picker, comparison runs, step range) and remember the selection.

    Args:
        default_root: the run root when neither a command-line argument nor ``$CLDIAG_RUN_ROOT`` is given.
        args: the script's command-line arguments.
        controls: draw the run controls (Run, Compare with, Steps); pages that are not about a run (Lab,
            Concepts) show only the run root, and the controls keep their state for the next run page.

    Returns:
        The :class:`Selection`, also stored for :func:`selection` in the pages.
    """
    root = resolve_root(args, default_root)
    st.sidebar.caption(f"Run root: {escape_markdown(root)}")
    runs, problems = _listed_runs(root)
    sel = Selection(root=root, runs=runs, focus=None, compare=[], step_range=(0, None), problems=problems)
    if not controls:
        return _keep_controls(sel)
    paths = [p for _, p in runs]
    extra = _typed_run(root)
    if extra is not None and extra not in paths:
        runs.append((_open_run(extra).name, extra))
        paths.append(extra)
    if paths:
        focus = _focus(sel, paths, extra)
        # Empty until the user picks: any guess (the next runs in the list, or a "family" read from configs)
        # mixes in runs nobody asked for, and the first charts would overlay unrelated experiments.
        compare = st.sidebar.multiselect(
            "Compare with",
            [p for p in paths if p != focus],
            default=[],
            format_func=sel.label,
            key="_cldiag_compare",
            help="Overlaid on Overview, Geometry and Compare.",
        )
        sel.focus, sel.compare = focus, [focus, *compare]
        sel.step_range = _step_range(sel.compare)
    st.session_state[_SELECTION_KEY] = sel
    return sel


def _page_file() -> str | None:
    """The file name in ``pages/`` of the page script running this call (None outside a page script)."""
    pages = APP_DIR / "pages"
    for frame in inspect.stack(0):
        path = Path(frame.filename)
        if path.suffix == ".py" and path.parent.resolve() == pages:
            return path.name
    return None


def _to_router() -> None:
    """Hand a page that runs without ``app.py`` over to the router, which then opens that page.

    The very first request of a fresh server to a page URL (a bookmark of /spectrum) runs the page script
    alone: Streamlit's fallback for apps with a ``pages/`` folder, before any ``st.navigation`` call. The
    page then had no router, no sidebar navigation and no wide layout. Switching to ``app.py`` (with the
    link's query parameters) runs the router; it finds the page in :data:`DEEP_LINK_KEY` and switches to
    it. Where ``app.py`` is not this app's entry point (AppTest of a single page) nothing happens.
    """
    page = _page_file()
    if page is None:
        return
    st.session_state[DEEP_LINK_KEY] = page
    try:
        st.switch_page(APP_DIR / "app.py", query_params=st.query_params.to_dict())
    except StreamlitAPIException:
        st.session_state.pop(DEEP_LINK_KEY, None)


def selection() -> Selection:
    """The selection made by the sidebar in this session.

    A page that runs without the router (a fresh server's first request to a page URL) is handed over to
    it; where there is no router to hand over to, the page draws the sidebar itself.
    """
    sel = st.session_state.get(_SELECTION_KEY)
    if isinstance(sel, Selection):
        return sel
    _to_router()
    return sidebar(APP_DIR / "sample_runs", launch_args())


def _open_or_warn(path: str) -> Run | None:
    try:
        return _open_run(path)
    except (OSError, ValueError) as exc:
        st.warning(f"Cannot open run {escape_markdown(path)}: {escape_markdown(exc)}")
        return None


def view_of(path: str, step_range: tuple[int, int | None] = (0, None)) -> RunView | None:
    """A fresh view of any run under the root (None, with a warning on the page, if it cannot be opened)."""
    run = _open_or_warn(path)
    return None if run is None else _view(run, step_range)


def runs_series(views: Sequence[RunView], metrics: Sequence[str], label: Callable[[str], str]) -> Series:
    """The metrics of several runs in one frame with a ``run`` column (``label(path)`` names each run)."""
    plots, fulls = [], []
    for view in views:
        series = view.series(metrics)
        name = label(view.path)
        plots.append(series.plot.assign(run=name))
        fulls.append(series.full.assign(run=name))
    return Series(plot=pd.concat(plots, ignore_index=True), full=pd.concat(fulls, ignore_index=True))


# ---------------------------------------------------------------------------------------------------------
# Shared widgets
def page_intro(title: str, view: RunView | None, text: str) -> None:
    """Page title, one line on what the page is for, and the run's status."""
    st.title(title)
    st.caption(text)
    if view is not None:
        last = view.run.meta.get("last_step")
        bits = [
            f"**{escape_markdown(view.name)}**",
            escape_markdown(view.status_text),
            f"last step {escape_markdown(last)}" if last is not None else "no steps yet",
        ]
        if view.live:
            bits.append(f"live: redraws every {REFRESH_SECS:g} s")
        st.markdown(" · ".join(bits))


def finished_verdicts(view: RunView, waiting: Callable[[str], Any]) -> tuple[health.Verdict, ...] | None:
    """The run's verdicts once the background check is done; meanwhile ``waiting(message)`` and None.

    A failing rule is reported on the page (and logged), never raised.
    """
    job = view.verdicts()
    wait([job], timeout=HEALTH_WAIT_SECS)
    if not job.done():
        waiting("Checking the run's health in the background (the rules read every table) …")
        rerun_when_done(job)
        return None
    exc = job.exception()
    if exc is not None:
        logger.error("health rules failed on %s", view.path, exc_info=exc)
        waiting(f"Health checks could not run on this run: {type(exc).__name__}: {escape_markdown(exc)}")
        return None
    return job.result()


def health_banner(view: RunView) -> None:
    """A one-line summary of the run's health verdicts (details on the Overview page)."""
    verdicts = finished_verdicts(view, st.caption)
    if verdicts is None:
        return
    alarms = [v.rule.replace("_", " ") for v in verdicts if v.level == "alarm"]
    warns = [v.rule.replace("_", " ") for v in verdicts if v.level == "warn"]
    if alarms:
        st.error(
            f"Health: alarm — {', '.join(alarms)}"
            + (f"; warning — {', '.join(warns)}" if warns else "")
            + ". Details on the Overview page."
        )
    elif warns:
        st.warning(f"Health: warning — {', '.join(warns)}. Details on the Overview page.")
    elif verdicts:
        st.caption(f"Health: all {len(verdicts)} applicable checks ok.")


def step_picker(steps: Sequence[int], label: str, key: str) -> int:
    """Choose one of the logged steps and say which one is shown.

    The slider starts on the newest step and, while a run is being written, follows each new step, until
    the user moves it elsewhere; moving it back to the right end follows again.
    """
    if not steps:
        raise ValueError("step_picker needs at least one step")
    newest = int(steps[-1])
    if len(steps) == 1:
        st.caption(f"{label}: {newest} (the only one logged in the selected range)")
        return newest
    follow_key = f"_cldiag_newest_{key}"
    follow = views.followed_step(st.session_state.get(key), st.session_state.get(follow_key), steps)
    if follow is not None:
        st.session_state[key] = follow
    st.session_state[follow_key] = newest
    step = int(st.select_slider(label, options=list(steps), key=key))
    if step == newest:
        st.caption(f"Showing step {step}, the newest logged; it follows new steps as they arrive.")
    else:
        st.caption(f"Showing step {step}; the newest logged is {newest} (slide to the end to follow it).")
    return step


def chart(
    fig: go.Figure,
    data: pd.DataFrame | Callable[[], pd.DataFrame],
    *,
    key: str,
    caption: tuple[str, str],
    file_name: str,
    note: str | None = None,
    select: bool = False,
) -> list[dict[str, Any]]:
    """Show a figure with its "how to read this" caption and a CSV download of its data.

    Args:
        fig: the plotly figure (the modebar offers PNG export).
        data: the data behind the chart, or a function producing it (called only on download).
        key: unique widget key on the page.
        caption: how to read the chart, in two lines (what it shows; what healthy looks like, with the paper).
        file_name: CSV file name (without extension).
        note: an extra caption (e.g. that the series were downsampled).
        select: let the user select points (clicking one reruns the page).

    Returns:
        The selected points (plotly's dicts with ``customdata``); empty without ``select``.
    """
    points: list[dict[str, Any]] = []
    if select:
        event = st.plotly_chart(
            fig, key=f"chart_{key}", config=PLOTLY_CONFIG, on_select="rerun", selection_mode="points"
        )
        points = list(event.selection.points)
    else:
        st.plotly_chart(fig, key=f"chart_{key}", config=PLOTLY_CONFIG)
    st.caption("  \n".join(caption))
    if note:
        st.caption(note)
    _csv_button(data, key=key, file_name=file_name)
    return points


def table(frame: pd.DataFrame | str | None, *, key: str, file_name: str) -> None:
    """Show a views table with a CSV download, a message as an info box, None as nothing.

    Text cells stay plain text (metadata is never rendered as Markdown/HTML); ``frame.attrs["caption"]``,
    when set, is shown above the table.
    """
    if frame is None:
        return
    if isinstance(frame, str):
        st.info(frame)
        return
    if frame.attrs.get("caption"):
        st.caption(str(frame.attrs["caption"]))
    st.dataframe(frame, hide_index=True, key=f"table_{key}")
    _csv_button(frame, key=key, file_name=file_name)


def _csv_button(data: pd.DataFrame | Callable[[], pd.DataFrame], *, key: str, file_name: str) -> None:
    def csv() -> bytes:
        frame = data() if callable(data) else data
        return frame.to_csv(index=False).encode("utf-8")

    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", file_name)
    st.download_button(
        "Download CSV",
        data=csv,
        file_name=f"{safe}.csv",
        mime="text/csv",
        key=f"csv_{key}",
        on_click="ignore",
        icon=":material/download:",
    )


def guarded(render: Callable[[], None], what: str) -> None:
    """Run a page body; an unexpected error becomes a short message on the page, not a traceback."""
    try:
        render()
    except (ValueError, KeyError, OSError) as exc:
        logger.exception("page %s failed", what)
        st.error(f"Could not draw {escape_markdown(what)}: {type(exc).__name__}: {escape_markdown(exc)}")


# ---------------------------------------------------------------------------------------------------------
# Page frames
def _no_runs(sel: Selection, title: str) -> None:
    st.title(title)
    st.info(
        f"No runs under {escape_markdown(sel.root)} yet. Log one with `cldiag.Monitor(...)` (see the "
        "README), "
        "regenerate the samples with `cldiag demo`, or start the dashboard on another folder: "
        "`cldiag serve RUNS_DIR`.",
    )


def _run_problems(view: RunView) -> None:
    problems = view.run.problems
    if problems:
        st.warning(
            f"Run {escape_markdown(view.name)}: {len(problems)} problem(s) — part files that could not be "
            "read are skipped, odd meta.json fields set aside; the charts show the rest.",
        )
        with st.expander("What was skipped"):
            st.code("\n".join(problems[:50]), language=None, wrap_lines=True)


def _skipped_runs(sel: Selection) -> None:
    # One line per run that could not be opened, with its reason; every other run works as usual.
    st.warning(
        f"{len(sel.problems)} run(s) under the root could not be opened and are skipped:\n\n"
        + "\n".join(f"- {escape_markdown(p)}" for p in sel.problems[:50])
    )


def _caps(view: RunView) -> None:
    notes = view.caps()
    if notes:
        st.caption(
            "Capped to keep the page responsive — " + "; ".join(escape_markdown(n) for n in notes) + "."
        )


def _is_live(run: Run) -> bool:
    return run.status == schema.STATUS_RUNNING and not run.is_stale(STALE_SECS)


def _frame(body: Callable[[], None], runs: Sequence[Run]) -> None:
    # A live run redraws the page body on a timer; the sidebar stays as it is (the step range follows the
    # newest step by itself).
    if any(_is_live(r) for r in runs):
        st.fragment(run_every=REFRESH_SECS)(body)()
    else:
        body()


def run_page(title: str, intro: str, render: Callable[[RunView], None], *, banner: bool = True) -> None:
    """Draw a page about the focused run: title, status, health banner, then ``render(view)``.

    Stops with a message when there is no run; redraws every :data:`REFRESH_SECS` while the run is live;
    an error inside ``render`` becomes a message instead of a traceback (see :func:`guarded`).
    """
    sel = selection()
    if sel.problems:
        _skipped_runs(sel)
    if sel.focus is None:
        _no_runs(sel, title)
        return
    run = _open_or_warn(sel.focus)
    if run is None:
        return

    def body() -> None:
        view = _view(run, sel.step_range)
        if banner:
            view.verdicts()  # start the health rules now, so they run while the charts are drawn
        page_intro(title, view, intro)
        _run_problems(view)
        _caps(view)
        top = st.empty()
        guarded(lambda: render(view), title)
        if banner:
            with top.container():
                health_banner(view)

    _frame(body, [run])


def run_multi_page(title: str, intro: str, render: Callable[[Selection, list[RunView]], None]) -> None:
    """Draw a page about the focused run and the comparison runs: ``render(selection, views)``."""
    sel = selection()
    if sel.problems:
        _skipped_runs(sel)
    if sel.focus is None:
        _no_runs(sel, title)
        return
    runs = [r for r in (_open_or_warn(p) for p in sel.compare) if r is not None]
    if not runs:
        return

    def body() -> None:
        views = [_view(r, sel.step_range) for r in runs]
        views[0].verdicts()  # the Overview shows them; elsewhere they are ready for the next page
        page_intro(title, views[0], intro)
        for view in views:
            _run_problems(view)
            _caps(view)
        guarded(lambda: render(sel, views), title)

    _frame(body, runs)


# ---------------------------------------------------------------------------------------------------------
# Panels of the view layer (cldiag.views)
def show(item: Panel | str | None, *views: RunView, select: bool = False) -> list[dict[str, Any]]:
    """Draw what a :mod:`cldiag.views` function returned for ``views``: a panel, a message, or nothing.

    A panel's figure is built once per (run versions, step range, panel key and params) and shown with
    :func:`chart`; a message (why there is nothing to draw) is shown as an info box; None draws nothing.
    With ``select`` the user can select points; the selected points are returned (see :func:`chart`).
    """
    if item is None:
        return []
    if isinstance(item, str):
        st.info(item)
        return []
    key = (tuple((v.path, v.token, v.step_range) for v in views), item.key, item.params)
    fig = cached(key, item.build)
    return chart(
        fig,
        item.data,
        key=item.key,
        caption=item.caption,
        file_name=item.file_name,
        note=item.note,
        select=select,
    )


def open_runs(root: str) -> list[Run]:
    """Every run under ``root`` that opens (the sidebar's cached listing and Run objects; no messages)."""
    runs = []
    for _, path in _discover(root)[0]:
        try:
            runs.append(_open_run(path))
        except (OSError, ValueError):
            continue
    return runs


def plot(fig: go.Figure, key: str) -> None:
    """Show a figure with the dashboard's plotly settings, without caption or download (teaching pages)."""
    st.plotly_chart(fig, key=key, config=PLOTLY_CONFIG)
