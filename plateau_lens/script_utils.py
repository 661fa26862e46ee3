"""Shared command-line plumbing for the scripts in ``probes/`` and ``examples/``."""

from __future__ import annotations

import argparse
from pathlib import Path

from .run import Run, load_run


def run_arguments(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("run", help="run directory written by `plateau-lens train`")
    parser.add_argument("--steps", help="comma-separated checkpoint steps (default: all)")
    parser.add_argument("--every", type=int, default=1, help="use every k-th checkpoint")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--out", help="output directory (default: RUN/probes)")
    return parser


def selected_steps(run: Run, steps: str | None, every: int = 1) -> list[int]:
    if steps:
        return [int(s) for s in steps.split(",") if s.strip()]
    return run.steps[::max(1, every)]


def open_run(args) -> tuple[Run, list[int], Path]:
    run = load_run(args.run)
    out = Path(args.out) if args.out else run.path / "probes"
    out.mkdir(parents=True, exist_ok=True)
    return run, selected_steps(run, args.steps, args.every), out
