"""``plateau-lens sweep SWEEP.toml --out DIR [--workers N] [--address ADDR]`` and
``plateau-lens sweep --summarize DIR``."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..analyzers import ANALYZERS

EXIT_FAILED_RUNS = 1
EXIT_INTERRUPTED = 130


def add_sweep_parser(sub) -> None:
    p = sub.add_parser(
        "sweep", help="train a grid of configs on Ray: a local Ray by default, a cluster with --address",
        description="Train every point of a sweep file into DIR/runs/<name> (ordinary run "
                    "directories), then write DIR/sweep.csv and DIR/figures. Re-running the same "
                    "command skips finished runs and resumes unfinished ones.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("sweep", nargs="?", help="sweep file, e.g. tasks/sweeps/mws_attention_bias.toml")
    p.add_argument("--out", help="sweep directory")
    p.add_argument("--workers", type=int,
                   help="runs at once (default: the number of cores; with --address: as many as "
                        "the cluster's CPUs allow)")
    p.add_argument("--address", help="a Ray cluster: 'auto' (on one of its nodes) or "
                                     "'ray://HEAD:10001'; without it a local Ray is started")
    p.add_argument("--threads", type=int,
                   help="torch threads per run (default: cores // workers; 1 on a cluster, where "
                        "each run also asks Ray for this many CPUs)")
    p.add_argument("--gpus-per-run", type=float, default=0.0, help="GPUs each run asks Ray for")
    p.add_argument("--analyze", metavar="NAMES",
                   help=f"comma-separated analyzers to run over every run's checkpoints on the "
                        f"same workers, into DIR/analysis.csv: {', '.join(ANALYZERS)}, one a plugin "
                        f"registered (its task's module is imported first) or 'module:function'")
    p.add_argument("--summarize", metavar="DIR",
                   help="rebuild DIR/sweep.csv and DIR/figures from the run directories (no Ray)")
    p.add_argument("--lock-timeout", type=float, default=120.0,
                   help="seconds a run waits for a dying process of a killed sweep to let go of it")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_sweep)


def swept_columns(frame) -> list[str]:
    return [column for column in frame.columns if "." in column]


def print_table(frame) -> None:
    columns = ["run", "status", "plateau_length", "drop_step", "final_loss", "final_accuracy",
               "steps_per_s", "wall_time_s"]
    print(frame[columns].to_string(index=False, float_format=lambda v: f"{v:.4g}"))


def cmd_summarize(directory: str) -> int:
    from .figures import write_figures
    from ..runs.layout import FIGURE_DIR, SWEEP_SUMMARY_FILE
    from .summary import summarize

    out = Path(directory)
    frame = summarize(out)
    figures = write_figures(frame, swept_columns(frame), out)
    print_table(frame)
    print(f"{len(frame)} runs -> {out / SWEEP_SUMMARY_FILE}; {len(figures)} figures in {out / FIGURE_DIR}")
    return 0


def cmd_sweep(args) -> int:
    if args.summarize:
        if args.sweep:
            raise ValueError("give a sweep file (with --out) or --summarize DIR, not both")
        return cmd_summarize(args.summarize)
    if not args.sweep or not args.out:
        raise ValueError("usage: plateau-lens sweep SWEEP.toml --out DIR (or --summarize DIR)")
    from .analyze import check_analyzers_apply, parse_analyzers
    from .engine import check_existing, import_ray, run_sweep
    from .spec import load_sweep
    from ..runs.layout import FIGURE_DIR, SWEEP_SUMMARY_FILE, named_run_dir, SWEEP_LOG_FILE

    for flag in ("workers", "threads"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise ValueError(f"--{flag} must be >= 1, got {value}")
    if args.gpus_per_run < 0:
        raise ValueError(f"--gpus-per-run must be >= 0, got {args.gpus_per_run}")
    # everything is checked before anything is written
    sweep = load_sweep(args.sweep)  # imports the points' task modules (and their analyzers)
    analyzers = parse_analyzers(args.analyze)
    check_analyzers_apply(analyzers, sweep.points)
    out = Path(args.out)
    check_existing(sweep, out)
    import_ray()
    outcome = run_sweep(sweep, out, workers=args.workers, address=args.address,
                        threads=args.threads, gpus_per_run=args.gpus_per_run, analyzers=analyzers,
                        progress=not args.quiet, lock_timeout=args.lock_timeout)
    if not args.quiet:
        print_table(outcome.summary)
    counts = outcome.summary["status"].value_counts().to_dict()
    print(f"{len(outcome.summary)} runs ({', '.join(f'{n} {s}' for s, n in counts.items())}) -> "
          f"{out / SWEEP_SUMMARY_FILE}; {len(outcome.figures)} figures in {out / FIGURE_DIR}"
          + (f"; analysis -> {outcome.analysis}" if outcome.analysis else ""))
    for name, message in outcome.failed.items():
        print(f"failed: {name}: {message} (log: {named_run_dir(out, name) / SWEEP_LOG_FILE})")
    for name, message in outcome.analysis_failed.items():
        print(f"analysis failed: {name}: {message} (log: {named_run_dir(out, name) / SWEEP_LOG_FILE})")
    if outcome.interrupted:
        print("interrupted: finished runs are kept and unfinished ones keep their checkpoints; "
              "re-run the same command to resume")
        return EXIT_INTERRUPTED
    return EXIT_FAILED_RUNS if outcome.failed or outcome.analysis_failed else 0
