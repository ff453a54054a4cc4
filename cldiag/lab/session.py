"""Background lab trainings for an interactive page: :class:`LabSession` runs one training at a time.

A Streamlit page reruns its script on every widget change, which would kill a training loop running
inside it. A :class:`LabSession` (one per browser session, kept in ``st.session_state``) runs
:func:`~cldiag.lab.trainer.train` -- or every run of a preset, :func:`~cldiag.lab.presets.run_preset` -- in
a daemon thread outside the script; the page only reads :attr:`LabSession.progress`.

This module sits above both :mod:`cldiag.lab.trainer` and :mod:`cldiag.lab.presets` (presets import the
trainer, the session imports both), so neither needs a function-local import of the other.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable

from cldiag.lab.presets import PRESETS, PresetResult, run_preset
from cldiag.lab.trainer import LabConfig, LabProgress, LabResult, train

__all__ = ["LabBusyError", "LabSession"]


class LabBusyError(RuntimeError):
    """A training is already running in this session and the caller asked not to replace it."""


class LabSession:
    """Runs one lab training (or one preset's trainings) at a time in a daemon thread.

    For a Streamlit page, keep one per browser session in ``st.session_state``: Streamlit reruns the page
    script on every widget change, which would kill a training loop running inside it; the thread lives
    outside the script and the page only reads :attr:`progress`. Starting anything while a training runs
    stops that training first (or raises :class:`LabBusyError` with ``replace=False``), so two trainings of
    one session never run at once.

    Example:
        >>> import tempfile
        >>> session = LabSession()
        >>> config = LabConfig(data="toy", encoder="linear", embed_dim=16, steps=10, batch_size=32)
        >>> session.start(config, tempfile.mkdtemp() + "/run")
        >>> session.join(timeout=60)
        True
        >>> session.progress.status
        'finished'
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._progress: LabProgress | None = None
        self._result: LabResult | None = None
        self._error: BaseException | None = None
        self._preset: str | None = None
        self._preset_position: tuple[int, int] | None = None
        self._preset_result: PresetResult | None = None

    @property
    def running(self) -> bool:
        """Whether a training thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def progress(self) -> LabProgress | None:
        """The latest progress of the current (or last) training, None before the first start."""
        return self._progress

    @property
    def result(self) -> LabResult | None:
        """The result of the last single training once it has ended, else None."""
        return self._result

    @property
    def error(self) -> BaseException | None:
        """The exception that ended the last training, if one did (the run is then marked failed)."""
        return self._error

    @property
    def preset(self) -> str | None:
        """Name of the preset running or run last; None after a single training was started."""
        return self._preset

    @property
    def preset_position(self) -> tuple[int, int] | None:
        """``(index of the current run, number of runs)`` of the preset; None for a single training."""
        return self._preset_position

    @property
    def preset_result(self) -> PresetResult | None:
        """The :class:`~cldiag.lab.presets.PresetResult` of the last preset once it has ended, else None."""
        return self._preset_result

    def start(
        self, config: LabConfig, run_dir: str, *, replace: bool = True, overwrite: bool = False
    ) -> None:
        """Start training ``config`` into ``run_dir`` in the background.

        Args:
            config: What to train (validated already by :class:`LabConfig`).
            run_dir: Run directory for the Monitor.
            replace: If a training is running: stop it and wait for it to end first (True), or raise
                :class:`LabBusyError` (False).
            overwrite: Replace a run already in ``run_dir``.

        Raises:
            LabBusyError: If a training is running and ``replace`` is False.
            TypeError: If ``config`` is not a :class:`LabConfig`.
        """
        if not isinstance(config, LabConfig):
            raise TypeError(f"config must be a LabConfig, got {type(config).__name__}")

        def work(stop: threading.Event) -> None:
            self._result = train(config, run_dir, stop, self._set_progress, overwrite=overwrite)

        with self._lock:
            self._claim(replace)
            self._preset = None
            self._preset_position = None
            self._launch(work, LabProgress(run_dir, 0, config.steps, "running", {}, "starting"))

    def start_preset(
        self, name: str, out_dir: str | os.PathLike[str], *, steps_scale: float = 1.0, replace: bool = True
    ) -> None:
        """Run every setting of preset ``name`` under ``out_dir`` in the background, then check it.

        See :func:`cldiag.lab.presets.run_preset`; the result lands in :attr:`preset_result`.

        Raises:
            ValueError: If the preset is unknown or ``steps_scale`` is not positive.
            LabBusyError: If a training is running and ``replace`` is False.
        """
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(sorted(PRESETS))}")
        plan = PRESETS[name].plan(steps_scale)
        first_dir = os.path.join(os.fspath(out_dir), f"{name}-{plan[0][0]}")

        def on_progress(index: int, count: int, p: LabProgress) -> None:
            self._preset_position = (index, count)
            self._progress = p

        def work(stop: threading.Event) -> None:
            self._preset_result = run_preset(
                name, out_dir, steps_scale=steps_scale, progress=on_progress, stop_event=stop
            )

        with self._lock:
            self._claim(replace)
            self._preset = name
            self._preset_position = (0, len(plan))
            self._preset_result = None
            self._launch(work, LabProgress(first_dir, 0, plan[0][1], "running", {}, "starting"))

    def _set_progress(self, p: LabProgress) -> None:
        self._progress = p

    def _claim(self, replace: bool) -> None:
        """Make sure nothing runs (the caller holds the lock)."""
        if self.running:
            if not replace:
                raise LabBusyError("a training is already running in this session; stop it first")
            self._stop_locked(timeout=None)

    def _launch(self, work: Callable[[threading.Event], None], first: LabProgress) -> None:
        stop = self._stop = threading.Event()
        self._result = None
        self._error = None
        self._progress = first

        def run() -> None:
            try:
                work(stop)
            except Exception as exc:  # noqa: BLE001 - shown to the learner on the page instead of lost
                self._error = exc
                last = self._progress or first
                self._progress = dataclasses.replace(
                    last, status="failed", message=f"{type(exc).__name__}: {exc}"
                )

        self._thread = threading.Thread(
            target=run,
            name=f"cldiag-lab:{first.run_dir}",
            daemon=True,  # a closed browser tab or a stopped server must not wait for the training
        )
        self._thread.start()

    def stop(self, timeout: float | None = 30.0) -> bool:
        """Ask the running training to stop and wait up to ``timeout`` seconds for it to end.

        Returns:
            True when no training is running any more.
        """
        with self._lock:
            return self._stop_locked(timeout)

    def _stop_locked(self, timeout: float | None) -> bool:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the current training to end; True when it has."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.running
