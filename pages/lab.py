"""Lab: train a small contrastive model from the browser and watch its diagnostics live; presets.

The training runs in a :class:`cldiag.lab.session.LabSession` kept in ``st.session_state``: its daemon
thread lives outside the script, so the reruns every widget click causes neither kill nor restart it. Runs
go to the Lab folder (:func:`cldiag.lab.paths.lab_runs_dir`, ``$CLDIAG_LAB_DIR``), which the run picker
lists too. Labels, the figure and its caption come from :mod:`cldiag.lab.view`; this page reads widgets,
loads the run and shows it.
"""

from __future__ import annotations

from typing import Any, get_args

import streamlit as st
from streamlit.errors import StreamlitAPIException

from cldiag import ui
from cldiag.lab import paths, view
from cldiag.lab import trainer as T
from cldiag.lab.presets import PRESETS, Preset, PresetResult
from cldiag.lab.session import LabSession

POLL_SECS = 1.0
SESSION_KEY, RESULTS_KEY, NOTICE_KEY, COUNT_KEY = (
    "lab_session",
    "lab_preset_results",
    "lab_notice",
    "lab_count",
)
DEFAULT = T.LabConfig()
BATCH_SIZES = [b for b in (2**k for k in range(1, 12)) if T.BATCH_RANGE[0] <= b <= T.BATCH_RANGE[1]]
PRESET_LENGTHS = {0.1: "quick look (10 % of the steps)", 0.3: "short (30 %)", 1.0: "full length"}
STATUS_BOX = {"finished": st.success, "stopped": st.info, "diverged": st.error, "failed": st.error}
STOPPED_NOTICE = "The previous training was stopped: one training at a time."
# Pages that open a finished run, as app.py registers them; the gap page only for two modalities.
RUN_LINKS = [
    ("pages/1_overview.py", "Overview"),
    ("pages/3_geometry.py", "Geometry"),
    ("pages/6_spectrum.py", "Spectrum"),
    ("pages/7_embeddings.py", "Embeddings"),
    ("pages/5_modality_gap.py", "Modality gap"),
]


def lab_session() -> LabSession:
    """This browser session's runner: one training (or preset) at a time, surviving reruns."""
    return st.session_state.setdefault(SESSION_KEY, LabSession())


def choice(where: Any, label: str, names: Any, default: str, labels: dict[str, str], key: str) -> str:
    """A selectbox over the trainer's allowed names, starting at the trainer's default."""
    options = list(get_args(names))
    return where.selectbox(label, options, options.index(default), lambda o: labels.get(o, o), key=key)


def controls() -> tuple[T.LabConfig | None, str | None]:
    """The training settings from the widgets, or the reason the trainer rejects them."""
    a, b, c = st.columns(3)
    data = choice(a, "Data set", T.DataName, DEFAULT.data, view.DATA_LABELS, "lab_data")
    encoder = choice(a, "Encoder", T.EncoderName, DEFAULT.encoder, view.ENCODER_LABELS, "lab_enc")
    loss = choice(a, "Loss", T.LossName, DEFAULT.loss, view.LOSS_LABELS, "lab_loss")
    lo, hi = T.TEMPERATURE_RANGE
    tau = b.number_input("Temperature τ", lo, hi, DEFAULT.temperature, 0.01, format="%.3f", key="lab_tau")
    learnable = b.checkbox("Learnable τ (as CLIP)", DEFAULT.learnable_temperature, key="lab_learn_tau")
    batch = b.select_slider("Batch size", BATCH_SIZES, DEFAULT.batch_size, key="lab_batch")
    lr = c.number_input("Learning rate", 1e-6, T.LR_MAX, DEFAULT.lr, 1e-4, format="%.1e", key="lab_lr")
    steps = c.number_input("Steps", 1, T.MAX_STEPS, DEFAULT.steps, 100, key="lab_steps")
    toy = data == "toy"
    aug = c.slider(
        "Noise std on dims 8–15" if toy else "Augmentation strength",
        0.0,
        T.TOY_NOISE_MAX if toy else 1.0,
        DEFAULT.augmentation,
        0.05,
        key=f"lab_aug_{'toy' if toy else 'images'}",  # the two scales must not share a value
        help="Jing et al.: 0.1 is weak, 1.5 strong." if toy else "Shift, noise and erasing, scaled together.",
    )
    with st.expander("More settings"):
        x, y, z = st.columns(3)
        seed = x.number_input("Seed", 0, 2**31 - 1, DEFAULT.seed, 1, key="lab_seed")
        embed = y.number_input("Embedding dim", *T.EMBED_RANGE, DEFAULT.embed_dim, key="lab_embed")
        optimizer = choice(z, "Optimizer", T.OptimizerName, DEFAULT.optimizer, {}, "lab_opt")
        projector = x.checkbox("Projector head", DEFAULT.projector, key="lab_proj")
    fields = {"data": data, "encoder": encoder, "loss": loss, "temperature": float(tau), "lr": float(lr)}
    fields |= {"learnable_temperature": learnable, "batch_size": int(batch), "steps": int(steps)}
    fields |= {"augmentation": float(aug), "seed": int(seed), "embed_dim": int(embed)}
    try:
        return T.LabConfig(**fields, optimizer=optimizer, projector=projector), None
    except (ValueError, TypeError) as exc:
        return None, str(exc)


def start_training(config: T.LabConfig) -> None:
    session = lab_session()
    if session.running:
        st.session_state[NOTICE_KEY] = STOPPED_NOTICE
    count = st.session_state[COUNT_KEY] = st.session_state.get(COUNT_KEY, 0) + 1
    name = paths.lab_run_name(config.data, config.loss, config.temperature, count)
    session.start(config, paths.lab_run_dir(paths.lab_runs_dir(), name), replace=True)


def start_preset(name: str, steps_scale: float) -> None:
    session = lab_session()
    if session.running:
        st.session_state[NOTICE_KEY] = STOPPED_NOTICE
    session.start_preset(name, paths.lab_runs_dir(), steps_scale=steps_scale, replace=True)


def open_links(name: str, two_modality: bool) -> None:
    """Links to the dashboard pages, opened on the run ``name`` (the sidebar matches ``?run=`` by name)."""
    links = [(p, t) for p, t in RUN_LINKS if two_modality or t != "Modality gap"]
    for col, (page, title) in zip(st.columns(len(links)), links, strict=True):
        try:
            col.page_link(page, label=title, icon=":material/open_in_new:", query_params={"run": name})
        except StreamlitAPIException:  # outside the dashboard's router the pages are not registered
            col.caption(f"{title}: open `{name}` in the dashboard (`streamlit run app.py`).")


def progress_line(session: LabSession, p: T.LabProgress) -> None:
    name, position = view.run_name(p.run_dir), session.preset_position
    if position is None:
        st.progress(p.fraction, text=f"`{name}`: step {p.step} of {p.total}")
        return
    index, count = position
    text = f"Preset `{session.preset}`: run {index + 1} of {count}, `{name}`, step {p.step} of {p.total}"
    st.progress((index + p.fraction) / count, text=text)


def live_chart(p: T.LabProgress) -> ui.RunView | None:
    """The key diagnostics of the run being written, read from its directory like any other run."""
    run_view = ui.view_of(p.run_dir)
    if run_view is None:
        return None
    config = run_view.run.config
    metrics = view.live_metrics(config)
    series = run_view.series([*metrics, view.KNN_RAW])
    if series.full.empty:
        st.caption("No metrics written yet: the first ones arrive within a second.")
        return run_view
    raw = series.full.loc[series.full["metric"] == view.KNN_RAW, "value"]
    title = f"{run_view.name}: key diagnostics"
    steps, dim, bar = int(config.get("steps", p.total)), run_view.dim, raw.iloc[0] if len(raw) else None
    fig = run_view.cached(
        "lab-live",
        lambda: view.fig_lab_live(series.plot, metrics, steps=steps, dim=dim, raw_knn=bar, title=title),
    )
    caption = view.live_caption(p.metrics)
    ui.chart(
        fig, series.full, key="lab_live", file_name=f"{run_view.name}-lab", note=series.note, caption=caption
    )
    return run_view


def live_panel(was_running: bool) -> None:
    """What the session trains: progress, how it ended, live charts; redrawn every second while it runs."""
    session = lab_session()
    p = session.progress
    if p is None:
        st.info("Nothing trained in this session yet: choose settings above and press **Start training**.")
        return
    name = view.run_name(p.run_dir)
    if session.running:
        progress_line(session, p)
    elif p.status in ("finished", "stopped"):
        STATUS_BOX[p.status](f"`{name}`: {p.message}.")
    else:
        STATUS_BOX.get(p.status, st.error)(f"`{name}` {p.status}: {p.message}")
    shown = [(label, p.metrics[k]) for k, label in view.PROGRESS_METRICS.items() if k in p.metrics]
    if shown:
        for col, (label, value) in zip(st.columns(len(shown)), shown, strict=True):
            col.metric(label, f"{value:.4g}")
    # Before its first report the trainer may not have created the run directory yet.
    run_view = live_chart(p) if p.step > 0 or (not session.running and session.error is None) else None
    if run_view is not None and not session.running:
        st.markdown("**Open this run in the dashboard**")
        open_links(run_view.name, run_view.run.two_modality)
    if was_running and not session.running:
        st.rerun()  # the whole page: buttons and preset results change once training ends


def preset_result(name: str) -> PresetResult | None:
    """This session's latest result of preset ``name`` (taken from the runner once it has finished)."""
    results = st.session_state.setdefault(RESULTS_KEY, {})
    session = lab_session()
    if session.preset_result is not None and not session.running:
        results[session.preset_result.name] = session.preset_result
    return results.get(name)


def preset_section(preset: Preset, steps_scale: float) -> None:
    # The preset run last stays open, so its verdict is in view when it arrives.
    with st.expander(f"**{preset.title}** · {preset.paper}", expanded=lab_session().preset == preset.name):
        st.markdown(preset.explanation)
        paper, ours = st.columns(2)
        paper.markdown(f"**The paper.** {preset.claim}")
        result, runs, missing = preset_result(preset.name), len(preset.plan()), preset.missing()
        if missing:  # an optional dependency (the real-model preset): say what to install, run nothing
            ours.warning(missing, icon=":material/download:")
        elif result is None:
            ours.markdown(f"**Our runs.** Not run in this session yet: {runs} run{'s' if runs > 1 else ''}.")
        else:
            line, notes = view.preset_verdict(preset, result)
            ours.markdown(line)
            for note in notes:
                ours.caption(note)
        st.button(
            f"Run the {runs} runs of this preset" if runs > 1 else "Run this preset",
            key=f"lab_preset_{preset.name}",
            on_click=start_preset,
            args=(preset.name, steps_scale),
            disabled=missing is not None,
            icon=":material/play_arrow:",
            help=f"Stops the training in progress. Runs are written to the Lab folder as `{preset.name}-…`, "
            "replacing earlier ones of the same name.",
        )


def page() -> None:
    ui.selection()  # the sidebar, when this page is the first one a fresh server runs
    session = lab_session()
    st.title("Lab")
    st.caption(
        "Train a small contrastive model on your CPU and watch its diagnostics while it learns. Each "
        f"training writes a normal run to the Lab folder `{paths.lab_runs_dir()}` (set `CLDIAG_LAB_DIR` to "
        "change it); the run picker lists it, so every other page can open it."
    )
    if notice := st.session_state.pop(NOTICE_KEY, None):
        st.info(notice)
    st.subheader("Your training")
    config, problem = controls()
    if problem:
        st.error(f"These settings are rejected: {problem}.", icon=":material/block:")
    start, halt = st.columns([1, 4])
    start.button(
        "Start training",
        key="lab_start",
        type="primary",
        icon=":material/play_arrow:",
        disabled=config is None,
        on_click=start_training,
        args=(config,),
    )
    halt.button(
        "Stop", key="lab_stop", icon=":material/stop:", disabled=not session.running, on_click=session.stop
    )
    running = session.running
    st.fragment(run_every=POLL_SECS if running else None)(live_panel)(running)
    st.subheader(f"Presets: {len(PRESETS)} published findings, measured here")
    steps_scale = st.columns(2)[0].select_slider(
        "Length of the preset runs",
        list(PRESET_LENGTHS),
        1.0,
        format_func=PRESET_LENGTHS.get,
        key="lab_preset_scale",
    )
    for preset in PRESETS.values():
        preset_section(preset, steps_scale)


page()
