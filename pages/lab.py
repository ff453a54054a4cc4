"""Lab: train a small contrastive model from the browser and watch its diagnostics live; four presets.

The training runs in a :class:`cldiag.lab.trainer.LabSession` kept in ``st.session_state``: its daemon
thread lives outside the script, so the reruns every widget click causes neither kill nor restart it. The
page only reads the session's progress and polls the run it writes (under the dashboard's run root, so
every other page can open it) from a fragment that redraws every second while something trains.
"""

from __future__ import annotations

import posixpath
import time
from typing import get_args

import streamlit as st
from streamlit.errors import StreamlitAPIException

from cldiag import figures as F
from cldiag import schema, ui
from cldiag.lab import trainer as T
from cldiag.lab.presets import PRESETS, Preset, PresetResult

POLL_SECS = 1.0
SESSION_KEY = "lab_session"
RESULTS_KEY = "lab_preset_results"
NOTICE_KEY = "lab_notice"
COUNT_KEY = "lab_count"
DEFAULT = T.LabConfig()
LIVE_METRICS = [
    schema.M_LOSS,
    "knn_acc",
    schema.M_ALIGNMENT,
    schema.M_UNIFORMITY,
    schema.M_RANK,
    schema.M_GAP,
    schema.M_TEMPERATURE,
]
DATA_LABELS = {
    "digits": "digits: 8×8 images, two augmented views",
    "cluttered-digits": "cluttered digits: digits beside loud clutter",
    "prototypes": "prototypes: 50 classes hidden under nuisance",
    "pairs": "pairs: digit image ↔ caption (two modalities)",
    "toy": "toy: 16-d Gaussians (Jing et al.)",
}
ENCODER_LABELS = {"mlp": "MLP", "cnn": "small CNN (8×8 images)", "linear": "linear map (square)"}
LOSS_LABELS = {
    "nt_xent": "NT-Xent (SimCLR)",
    "info_nce": "InfoNCE (symmetric)",
    "clip": "CLIP",
    "dcl": "DCL (decoupled)",
    "dclw": "DCLW (weighted DCL)",
    "supcon": "SupCon (uses labels)",
    "mochi": "MoCHi (mixed hard negatives)",
    "align": "alignment only, no negatives (collapses)",
}
BATCH_SIZES = [b for b in (2**k for k in range(1, 12)) if T.BATCH_RANGE[0] <= b <= T.BATCH_RANGE[1]]
PRESET_LENGTHS = {0.1: "quick look (10 % of the steps)", 0.3: "short (30 %)", 1.0: "full length"}
STATUS_BOX = {"finished": st.success, "stopped": st.info, "diverged": st.error, "failed": st.error}
PROGRESS_METRICS = {"loss": "loss", "knn_acc": "held-out 5-NN accuracy", "knn_acc_raw": "5-NN on raw inputs"}
# Pages that open a finished run, as app.py registers them; the gap page only for two modalities.
RUN_LINKS = [
    ("pages/1_overview.py", "Overview"),
    ("pages/3_geometry.py", "Geometry"),
    ("pages/6_spectrum.py", "Spectrum"),
    ("pages/7_embeddings.py", "Embeddings"),
    ("pages/5_modality_gap.py", "Modality gap"),
]


def lab_session() -> T.LabSession:
    """This browser session's runner: one training (or preset) at a time, surviving reruns."""
    return st.session_state.setdefault(SESSION_KEY, T.LabSession())


# ------------------------------------------------------------------------------------------ controls
def controls() -> tuple[T.LabConfig | None, str | None]:
    """The training settings from the widgets, or the reason the trainer rejects them."""
    a, b, c = st.columns(3)
    data = a.selectbox("Data set", get_args(T.DataName), format_func=DATA_LABELS.get, key="lab_data")
    encoder = a.selectbox("Encoder", get_args(T.EncoderName), format_func=ENCODER_LABELS.get, key="lab_enc")
    loss = a.selectbox("Loss", get_args(T.LossName), format_func=LOSS_LABELS.get, key="lab_loss")
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
        optimizer = z.selectbox("Optimizer", get_args(T.OptimizerName), key="lab_opt")
        projector = x.checkbox("Projector head", DEFAULT.projector, key="lab_proj")
    try:
        config = T.LabConfig(
            data=data,
            encoder=encoder,
            loss=loss,
            temperature=float(tau),
            learnable_temperature=learnable,
            batch_size=int(batch),
            lr=float(lr),
            steps=int(steps),
            augmentation=float(aug),
            seed=int(seed),
            embed_dim=int(embed),
            optimizer=optimizer,
            projector=projector,
        )
    except (ValueError, TypeError) as exc:
        return None, str(exc)
    return config, None


def start_training(config: T.LabConfig, root: str) -> None:
    session = lab_session()
    if session.running:
        st.session_state[NOTICE_KEY] = "The previous training was stopped: one training at a time."
    # The session's count keeps two starts within one second apart; the time keeps sessions apart.
    count = st.session_state[COUNT_KEY] = st.session_state.get(COUNT_KEY, 0) + 1
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = f"lab-{config.data}-{config.loss}-t{config.temperature:g}-{stamp}-{count}"
    session.start(config, ui.resolve_under_root(root, name), replace=True)


def start_preset(name: str, root: str, steps_scale: float) -> None:
    session = lab_session()
    if session.running:
        st.session_state[NOTICE_KEY] = "The previous training was stopped: one training at a time."
    session.start_preset(name, root, steps_scale=steps_scale, replace=True)


def stop() -> None:
    lab_session().stop()


# ------------------------------------------------------------------------------------------ live panel
def open_links(name: str, two_modality: bool) -> None:
    """Links to the dashboard pages, opened on the run ``name`` (the sidebar matches ``?run=`` by name)."""
    links = [(p, t) for p, t in RUN_LINKS if two_modality or t != "Modality gap"]
    cols = st.columns(len(links))
    for col, (page, title) in zip(cols, links, strict=True):
        try:
            col.page_link(page, label=f"{title}", icon=":material/open_in_new:", query_params={"run": name})
        except StreamlitAPIException:
            # Outside the dashboard's router the pages are not registered.
            col.caption(f"{title}: open `{name}` in the dashboard (`streamlit run app.py`).")


def progress_line(session: T.LabSession, p: T.LabProgress) -> None:
    name = posixpath.basename(p.run_dir.rstrip("/"))
    position = session.preset_position
    if position is None:
        st.progress(p.fraction, text=f"`{name}`: step {p.step} of {p.total}")
        return
    index, count = position
    st.progress(
        (index + p.fraction) / count,
        text=f"Preset `{session.preset}`: run {index + 1} of {count}, `{name}`, step {p.step} of {p.total}",
    )


def live_chart(p: T.LabProgress) -> ui.RunView | None:
    """The key diagnostics of the run being written, read from its directory like any other run."""
    view = ui.view_of(p.run_dir)
    if view is None:
        return None
    # A fixed τ would fill a panel with a flat line.
    metrics = [
        m for m in LIVE_METRICS if m != schema.M_TEMPERATURE or view.run.config.get("learnable_temperature")
    ]
    series = view.series(metrics)
    if series.full.empty:
        st.caption("No metrics written yet: the first ones arrive within a second.")
        return view
    fig = view.cached(
        "lab-live",
        lambda: F.fig_metric_grid(series.plot, metrics, title=f"{view.name}: key diagnostics", dim=view.dim),
    )
    ui.chart(
        fig,
        series.full,
        key="lab_live",
        file_name=f"{view.name}-lab",
        note=series.note,
        caption=(
            "Loss and held-out 5-NN accuracy (knn_acc) of the run training now, beside its geometry: "
            "alignment, uniformity, effective rank (and the modality gap, τ when they apply).",
            "Healthy: loss and alignment fall, uniformity falls, kNN accuracy rises above the raw-input bar, "
            "the effective rank stays well above 1 (Wang & Isola 2020; RankMe, Garrido et al. 2023).",
        ),
    )
    return view


def live_panel(was_running: bool) -> None:
    """What the session trains: progress, how it ended, live charts; redrawn every second while it runs."""
    session = lab_session()
    p = session.progress
    if p is None:
        st.info("Nothing trained in this session yet: choose settings above and press **Start training**.")
        return
    name = posixpath.basename(p.run_dir.rstrip("/"))
    if session.running:
        progress_line(session, p)
    elif p.status in ("finished", "stopped"):
        STATUS_BOX[p.status](f"`{name}`: {p.message}.")
    else:
        STATUS_BOX.get(p.status, st.error)(f"`{name}` {p.status}: {p.message}")
    shown = [(label, p.metrics[k]) for k, label in PROGRESS_METRICS.items() if k in p.metrics]
    if shown:
        for col, (label, value) in zip(st.columns(len(shown)), shown, strict=True):
            col.metric(label, f"{value:.4g}")
    # Before its first report the trainer may not have created the run directory yet.
    view = live_chart(p) if p.step > 0 or (not session.running and session.error is None) else None
    if view is not None and not session.running:
        st.markdown("**Open this run in the dashboard**")
        open_links(view.name, view.run.two_modality)
    if was_running and not session.running:
        st.rerun()  # the whole page: buttons and preset results change once training ends


# ------------------------------------------------------------------------------------------ presets
def preset_result(name: str) -> PresetResult | None:
    """This session's latest result of preset ``name`` (taken from the runner once it has finished)."""
    results = st.session_state.setdefault(RESULTS_KEY, {})
    session = lab_session()
    done = session.preset_result
    if done is not None and not session.running:
        results[done.name] = done
    return results.get(name)


def preset_section(preset: Preset, root: str, steps_scale: float) -> None:
    # The preset run last stays open, so its verdict is in view when it arrives.
    with st.expander(f"**{preset.title}** · {preset.paper}", expanded=lab_session().preset == preset.name):
        st.markdown(preset.explanation)
        paper, ours = st.columns(2)
        paper.markdown(f"**The paper.** {preset.claim}")
        result = preset_result(preset.name)
        if result is None:
            ours.markdown(f"**Our runs.** Not run in this session yet: {len(preset.settings)} runs.")
        else:
            verdict = ":green[reproduced]" if result.passed else ":orange[not reproduced]"
            ours.markdown(f"**Our runs** ({result.seconds:.0f} s): {verdict}. {result.summary}")
            ended = [r for r in result.results if r.status == "finished"]
            if len(ended) < len(preset.settings):
                ours.caption(
                    f"Only {len(ended)} of {len(preset.settings)} runs finished (stopped, or one diverged): "
                    "the check read what exists."
                )
            elif any(r.config.steps < c.steps for r, c in zip(result.results, preset.configs, strict=True)):
                ours.caption("Shortened runs: the effect can be weaker than at full length.")
            names = ", ".join(f"`{posixpath.basename(r.run_dir)}`" for r in result.results)
            ours.caption(
                f"The runs: {names}. Pick them in the sidebar (Run, Compare with) to see them together."
            )
        st.button(
            f"Run the {len(preset.settings)} runs of this preset",
            key=f"lab_preset_{preset.name}",
            on_click=start_preset,
            args=(preset.name, root, steps_scale),
            icon=":material/play_arrow:",
            help="Stops the training in progress. Runs are written under the run root as "
            f"`{preset.name}-…`, replacing earlier ones of the same name.",
        )


# ------------------------------------------------------------------------------------------ the page
def page() -> None:
    sel = ui.selection()
    session = lab_session()
    st.title("Lab")
    st.caption(
        "Train a small contrastive model on your CPU and watch its diagnostics while it learns. Each "
        f"training writes a normal run under `{sel.root}`, so every other page can open it."
    )
    notice = st.session_state.pop(NOTICE_KEY, None)
    if notice:
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
        args=(config, sel.root),
    )
    halt.button("Stop", key="lab_stop", icon=":material/stop:", disabled=not session.running, on_click=stop)

    running = session.running
    st.fragment(run_every=POLL_SECS if running else None)(live_panel)(running)

    st.subheader("Presets: four published findings, measured here")
    steps_scale = st.columns(2)[0].select_slider(
        "Length of the preset runs",
        list(PRESET_LENGTHS),
        1.0,
        format_func=PRESET_LENGTHS.get,
        key="lab_preset_scale",
    )
    for preset in PRESETS.values():
        preset_section(preset, sel.root, steps_scale)


page()
