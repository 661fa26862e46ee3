"""Wall time of the same 4-run sweep with 1 worker and with 2 workers, side by side.

    python benchmarks/sweep_scaling.py [--steps 3000] [--runs 4] [--size tiny|small|study] [--config tasks/mws.toml]

Each sweep runs on its own fresh local Ray (started and stopped inside the timed call, as
`plateau-lens sweep` does) into its own folder; the runs are tasks/mws.toml's task at a small
size (--size small: that of tests/test_sweep.py; tiny: d_model 64, batch 32; study: the
config's own) with `train.steps = --steps`
and seeds 0..runs-1. With 1 worker the run gets every core's torch
threads, with N workers each gets cores // N. Prints a table and exits 1 when N workers are
less than --min-speedup times faster than 1 (the bar: 1.6x for 2 workers on 2 cores).
Other jobs on the machine distort the comparison: the load average is printed beside it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


# the MWS model of tests/test_sweep.py: tasks/mws.toml at 8 inputs, d_model 128, batch 64
# (~10 s per 200 steps on one free core); --size study keeps tasks/mws.toml's own sizes
SMALL = {"task.n_inputs": 8, "model.d_model": 128, "model.d_mlp": 512, "train.batch_size": 64,
         "train.eval_batch_size": 32, "train.lr": 5e-4}
# smaller still: a run that Python overhead dominates, so a second torch thread barely helps it
TINY = {**SMALL, "model.d_model": 64, "model.d_mlp": 256, "train.batch_size": 32}
SIZES = {"tiny": TINY, "small": SMALL, "study": {}}


def write_sweep(folder: Path, config: Path, steps: int, runs: int, size: str) -> Path:
    fixed = {**SIZES[size], "train.steps": steps,
             "train.checkpoint_every": max(1, steps // 4)}
    lines = [f'base = "{config.resolve().as_posix()}"', "[set]"]
    lines += [f"{key} = {value!r}" for key, value in fixed.items()]
    lines += ["[grid]", f"train.seed = {list(range(runs))}"]
    path = folder / "scaling.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def time_sweep(sweep_file: Path, out: Path, workers: int) -> dict:
    from plateau_lens.sweep import load_sweep, run_sweep

    sweep = load_sweep(sweep_file)
    load_before = os.getloadavg()[0]
    began = time.perf_counter()
    outcome = run_sweep(sweep, out, workers=workers, progress=False)
    seconds = time.perf_counter() - began
    summary = outcome.summary
    if not (summary["status"] == "finished").all():
        raise RuntimeError(f"the {workers}-worker sweep did not finish:\n{summary}")
    cores = os.cpu_count() or 1
    return {"workers": workers, "torch_threads_per_run": max(1, cores // workers),
            "wall_s": seconds, "mean_run_s": summary["wall_time_s"].mean(),
            "mean_steps_per_s": summary["steps_per_s"].mean(),
            # the runs' own seconds, packed onto the workers; the rest of wall_s is fixed cost
            # (Ray start ~4 s, each worker importing torch + TransformerLens ~8 s, shutdown)
            "runs_s_per_worker": summary["wall_time_s"].sum() / workers,
            "load_before": load_before, "load_after": os.getloadavg()[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "tasks" / "mws.toml"))
    # 3 000 tiny steps: ~35-40 s per run, so the fixed cost (Ray start and stop, the workers'
    # imports: 13-17 s in both arms) does not dominate; shorter sweeps measure mostly that
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny",
                        help="tiny / small: the MWS task at 8 inputs, d_model 64 / 128, batch 32 / "
                             "64 (small is tests/test_sweep.py's); study: the config's own sizes")
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2, help="compared against 1 worker")
    parser.add_argument("--min-speedup", type=float, default=1.6)
    parser.add_argument("--out", help="keep the sweeps here (default: a temporary folder)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.runs < 1 or args.workers < 2:
        parser.error("--steps and --runs must be >= 1 and --workers >= 2")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(args.out) if args.out else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        sweep_file = write_sweep(folder, Path(args.config), args.steps, args.runs,
                                 size=args.size)
        rows = [time_sweep(sweep_file, folder / f"workers_{w}", w) for w in (1, args.workers)]
    table = pd.DataFrame(rows)
    speedup = table["wall_s"].iloc[0] / table["wall_s"].iloc[1]
    table["speedup"] = table["wall_s"].iloc[0] / table["wall_s"]
    table["fixed_s"] = table["wall_s"] - table["runs_s_per_worker"]
    runs_speedup = table["runs_s_per_worker"].iloc[0] / table["runs_s_per_worker"].iloc[1]
    print(f"{args.runs} runs of {Path(args.config).name}({args.size} size) x "
          f"{args.steps} steps on "
          f"{os.cpu_count()} cores (wall_s: the whole sweep, Ray start and stop included)")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print(f"the runs alone (fixed cost left out): {runs_speedup:.2f}x")
    verdict = "ok" if speedup >= args.min_speedup else "TOO SLOW"
    print(f"{args.workers} workers are {speedup:.2f}x faster than 1 "
          f"(bar: {args.min_speedup}x): {verdict}")
    return 0 if speedup >= args.min_speedup else 1


if __name__ == "__main__":
    sys.exit(main())
