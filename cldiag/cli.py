"""The ``cldiag`` command: ``serve``, ``report``, ``demo``, ``lab``, ``compact``.

Each command is a thin shell over a library call, so everything it does is also scriptable from Python.
Errors print one line on stderr (never a traceback) and set the exit code: 0 success, 1 a health alarm or a
failed check, 2 bad usage or an unreadable run, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cldiag import __version__

__all__ = ["main"]

EXIT_OK, EXIT_ALARM, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
ENV_RUN_ROOT = "CLDIAG_RUN_ROOT"


class CLIError(Exception):
    """An error whose message is all the user needs (printed as one line, exit code 2)."""


def app_path() -> Path:
    """The dashboard's ``app.py``: it lives at the repository root, next to the ``cldiag`` package.

    Raises:
        CLIError: when it is not there (e.g. cldiag was installed from a wheel, which ships only the library).
    """
    path = Path(__file__).resolve().parent.parent / "app.py"
    if not path.is_file():
        raise CLIError(
            f"the dashboard app is not at {path}: 'cldiag serve' needs a source checkout "
            "(git clone … && pip install -e .); a wheel install ships only the library",
        )
    return path


# --------------------------------------------------------------------------------------------------------
# commands
def _serve(args: argparse.Namespace) -> int:
    app = app_path()
    env = dict(os.environ)
    if args.run_root is not None:
        root = args.run_root
        if "://" not in root or root.startswith("file://"):
            local = root[len("file://") :] if root.startswith("file://") else root
            if not os.path.isdir(local):
                raise CLIError(f"run root {root!r} is not a directory")
            root = os.path.abspath(local)
        env[ENV_RUN_ROOT] = root
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app),
        "--server.headless",
        "true",
        "--server.address",
        args.host,
        "--server.port",
        str(args.port),
        "--browser.gatherUsageStats",
        "false",
        # The watcher only serves editing the app's sources, and it watches app.py's folder recursively, so
        # runs written under it reach it too (issue 17 saw a RuntimeWarning per Lab run in sample_runs/).
        "--server.fileWatcherType",
        "none",
    ]
    shown = env.get(ENV_RUN_ROOT, "the sample runs")
    print(f"cldiag: serving {shown} at http://{args.host}:{args.port} (Ctrl+C stops)", file=sys.stderr)
    if os.name == "posix":
        # Become the streamlit process: signals (Ctrl+C, a supervisor's SIGTERM) reach it directly and no
        # orphaned server outlives a killed wrapper.
        sys.stderr.flush()
        os.execve(sys.executable, command, env)
    proc = subprocess.Popen(command, env=env)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        # Ctrl+C reached streamlit too (same process group); give it a moment to shut down cleanly.
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    from cldiag import health
    from cldiag.reader import read_run

    run = read_run(args.run)
    verdicts = health.evaluate(run)
    examples = _examples(run, args.examples) if args.examples else None
    if args.json:
        report = health.report_dict(run, verdicts)
        if examples is not None:
            report["examples"] = examples if isinstance(examples, str) else examples.to_dict("records")
        _emit(json.dumps(report, indent=2, default=str))
    else:
        _emit(health.format_report(run, verdicts))
        if examples is not None:
            from cldiag.views import format_worst_pairs

            _emit("\n" + (examples if isinstance(examples, str) else format_worst_pairs(examples)))
    failing = {"alarm"} if args.fail_on == "alarm" else {"alarm", "warn"}
    return EXIT_ALARM if any(v.level in failing for v in verdicts) else EXIT_OK


def _examples(run: Any, n: int) -> Any:
    """The ``n`` worst pairs of the latest snapshot (a DataFrame), or why there are none (a string)."""
    from cldiag.views import worst_pairs_table

    steps = run.snapshot_steps()
    if not steps:
        return "No embedding snapshot: no pairs to show."
    earlier = steps[0] if len(steps) > 1 else None
    return worst_pairs_table(run, steps[-1], n, compare_step=earlier)


def _demo(args: argparse.Namespace) -> int:
    demo = _backend("cldiag.lab.demo", "demo")
    result = demo.make_sample_runs(args.out, real_model=args.real_model)
    _print_result(result)
    print(f"cldiag: sample runs are in {args.out}; open them with: cldiag serve {args.out}", file=sys.stderr)
    return EXIT_OK


def _lab(args: argparse.Namespace) -> int:
    presets = _backend("cldiag.lab.presets", "lab")
    result = presets.run_preset(args.preset, args.out, steps_scale=args.steps_scale)
    _print_result(result)
    return EXIT_OK if result.passed else EXIT_ALARM


def _compact(args: argparse.Namespace) -> int:
    from cldiag.maintenance import compact_run

    result = compact_run(args.run)
    _emit(
        f"compacted {result.path}: {result.parts_before} → {result.parts_after} part files, "
        f"{_size(result.bytes_before)} → {_size(result.bytes_after)}, {result.rows} rows",
    )
    for problem in result.problems:
        print(f"cldiag compact: note: {problem}", file=sys.stderr)
    return EXIT_OK


# --------------------------------------------------------------------------------------------------------
# helpers
def _backend(module: str, command: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module.startswith(exc.name):
            raise CLIError(f"'cldiag {command}' needs {module}, which this installation lacks") from exc
        raise


def _emit(text: str) -> None:
    """Print to stdout; a reader that went away (``cldiag report RUN | head``) is not an error."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _print_result(result: Any) -> None:
    if result is None:
        return
    if isinstance(result, list | tuple):
        _emit("\n".join(map(str, result)))
    else:
        _emit(str(result))


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be in 1 … 65535, got {value}")
    return value


def _command(
    sub: Any, name: str, func: Callable[[argparse.Namespace], int], help_: str, desc: str
) -> argparse.ArgumentParser:
    """A subcommand ``name`` that runs ``func``."""
    p = sub.add_parser(name, help=help_, description=desc)
    p.set_defaults(func=func)
    return p


def _add_serve(sub: Any) -> None:
    """The ``serve`` command's arguments."""
    p = _command(
        sub,
        "serve",
        _serve,
        "open the dashboard on a directory of runs",
        "Start the Streamlit dashboard on RUN_ROOT (a directory of runs, or s3://bucket/prefix). Binds to "
        "127.0.0.1 unless --host says otherwise.",
    )
    p.add_argument(
        "run_root", nargs="?", metavar="RUN_ROOT", help="directory or URI of runs (default: the sample runs)"
    )
    p.add_argument("--port", type=_port, default=8501, help="port to listen on (default: %(default)s)")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default: %(default)s; 0.0.0.0 exposes the dashboard to the network)",
    )


def _add_report(sub: Any) -> None:
    """The ``report`` command's arguments."""
    p = _command(
        sub,
        "report",
        _report,
        "print health verdicts of a run",
        "Judge a run with cldiag's health rules and print the verdicts with their evidence. Exit code 0 "
        "when no alarm fires, 1 when one does (see --fail-on), 2 when the run cannot be read.",
    )
    p.add_argument("run", metavar="RUN", help="run directory or URI")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON instead of a table")
    p.add_argument(
        "--fail-on",
        choices=("alarm", "warn"),
        default="alarm",
        help="lowest level that makes the exit code 1 (default: %(default)s)",
    )
    p.add_argument(
        "--examples",
        type=int,
        default=0,
        metavar="N",
        help="also print the N anchors whose positive ranks worst in the latest snapshot, with their "
        "positive and hardest negatives (metadata as plain text)",
    )


def _add_demo(sub: Any) -> None:
    """The ``demo`` command's arguments."""
    p = _command(
        sub,
        "demo",
        _demo,
        "write the sample runs",
        "Regenerate the sample runs the dashboard opens by default (eight small lab trainings, about 80 "
        "CPU-seconds). With --real-model also the real pretrained-model run: all-MiniLM-L6-v2 fine-tuned on "
        "stdlib (docstring, signature) pairs.",
    )
    p.add_argument(
        "--out", default="sample_runs", metavar="DIR", help="where to write them (default: %(default)s)"
    )
    p.add_argument(
        "--real-model",
        action="store_true",
        help="also rebuild minilm-stdlib-pairs (needs pip install 'cldiag[st]'; about 2 more CPU-minutes)",
    )


def _add_lab(sub: Any) -> None:
    """The ``lab`` command's arguments."""
    p = _command(
        sub,
        "lab",
        _lab,
        "run a lab preset headless",
        "Run one lab preset (one run per setting under --out) and print whether it reproduced its finding. "
        "Exit code 1 when the preset's check fails.",
    )
    p.add_argument("preset", metavar="PRESET", help="preset name")
    p.add_argument("--out", required=True, metavar="DIR", help="directory for the preset's runs")
    p.add_argument(
        "--steps-scale",
        type=_positive_float,
        default=1.0,
        metavar="X",
        help="multiply every training length by X (e.g. 0.2 for a quick check; default: %(default)s)",
    )


def _add_compact(sub: Any) -> None:
    """The ``compact`` command's arguments."""
    p = _command(
        sub,
        "compact",
        _compact,
        "merge a run's small part files",
        "Merge the part files of each table of a run into one, atomically and keeping every row once; safe "
        "while the run is being written and read.",
    )
    p.add_argument("run", metavar="RUN", help="run directory or URI")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``cldiag`` command (one subparser per command)."""
    parser = argparse.ArgumentParser(
        prog="cldiag",
        description="Diagnose contrastive-learning runs: dashboard, health report, sample runs, lab presets.",
        epilog="Run 'cldiag COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"cldiag {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in (_add_serve, _add_report, _add_demo, _add_lab, _add_compact):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``cldiag`` command line and return its exit code.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).

    Returns:
        0 on success, 1 when a health alarm fires or a lab check fails, 2 on bad usage or an unreadable
        run, 130 when interrupted.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed usage and the error (or the help text)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the user gets one clear line, not a traceback
        known = isinstance(exc, CLIError | OSError | ValueError | ImportError)
        message = str(exc) if known else f"{type(exc).__name__}: {exc}"
        print(f"cldiag {args.command}: error: {' '.join(message.split())}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
