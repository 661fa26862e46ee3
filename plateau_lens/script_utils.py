"""Shared command-line plumbing for the scripts in ``probes/`` and ``examples/``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from .config import SIZE_MAX, STEPS_MAX
from .runs.load import Run, load_run


def run_script(main: Callable[[], object], argv: list[str] | None = None) -> int:
    """The probe scripts' entry (``sys.exit(run_script(main))``): ``main()`` with the command
    line's error reporting (``plateau_lens.cli.report_errors``): a refused input or an
    ``OSError`` is one line ``<script>: error: <what> (<path>)`` and exit 2 (bad input) or 4
    (the operating system failed), a traceback only with ``--debug``."""
    argv = sys.argv if argv is None else argv
    debug = "--debug" in argv[1:]
    if debug:
        argv[:] = [a for a in argv if a != "--debug"]
    from .cli import report_errors, setup_logging

    setup_logging()
    prog = Path(argv[0]).name if argv else "plateau-lens"

    def work() -> int:
        code = main()
        return code if isinstance(code, int) else 0

    return report_errors(work, debug, prog=prog)


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer in [low, high] (argparse names the flag when refused)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer in [{low}, {high}], got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be an integer in [{low}, {high}], got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def run_arguments(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description,
                                     epilog="--debug: on an error, also print its traceback")
    parser.add_argument("run", help="run directory written by `plateau-lens train`")
    parser.add_argument("--steps", help="comma-separated checkpoint steps (default: all)")
    parser.add_argument("--every", type=bounded_int(1, STEPS_MAX), default=1,
                        help="use every k-th checkpoint")
    parser.add_argument("--batch-size", type=bounded_int(1, SIZE_MAX), default=256)
    parser.add_argument("--out", help="output directory (default: RUN/probes)")
    return parser


def selected_steps(run: Run, steps: str | None, every: int = 1) -> list[int]:
    """The checkpoint steps a script reads: ``--steps`` (each must be one of the run's) or
    every ``every``-th checkpoint; raises ``InputError`` naming the flag."""
    from .errors import InputError

    if every < 1:
        raise InputError(f"--every must be an integer >= 1, got {every}")
    if steps:
        try:
            chosen = [int(s) for s in steps.split(",") if s.strip()]
        except ValueError:
            raise InputError(f"--steps must be comma-separated integers, got {steps!r}") from None
        missing = [s for s in chosen if s not in run.checkpoints]
        if missing:
            raise InputError(f"--steps {missing} are not checkpoints of {run.path}; available: "
                             f"{run.steps}")
        return chosen
    return run.steps[::every]


def open_run(args) -> tuple[Run, list[int], Path]:
    run = load_run(args.run)
    out = Path(args.out) if args.out else run.path / "probes"
    out.mkdir(parents=True, exist_ok=True)
    return run, selected_steps(run, args.steps, args.every), out
