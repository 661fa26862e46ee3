"""Analysis throughput: ``analyze_run`` with an ablation sweep, linear probes and
representation collapse over 100 checkpoints of a CPU LRMC run.

    python benchmarks/analysis_throughput.py [--run runs/lrmc_cpu] [--checkpoints 100]

Without --run (or if it has fewer checkpoints), a run of tasks/lrmc_cpu.toml with one
checkpoint per step is trained first into runs/bench_analysis (not timed). Prints the wall
time, the per-checkpoint cost and the split between loading and each analyzer; then, side by
side on --compare checkpoints, ``ablation_sweep`` (one cached clean pass, each ablation resumed
at its layer) against one full forward per ablation (``ablate_heads`` per target), and checks
that both give the same numbers.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

import pandas as pd

from plateau_lens import ablate_heads, ablation_sweep, linear_probes, load_config, load_run
from plateau_lens.analysis import analysis_batch, analyze_run
from plateau_lens.analysis.ablation import sweep_targets
from plateau_lens.analysis.collapse import representation_collapse
from plateau_lens.training import Trainer
from plateau_lens.training.checkpoint import list_checkpoints


def ensure_run(path: Path, config_path: str, checkpoints: int) -> Path:
    if len(list_checkpoints(path)) >= checkpoints:
        return path
    config = load_config(config_path).replace(
        train={"steps": checkpoints - 1, "checkpoint_every": 1, "checkpoint_log_spaced": False})
    print(f"training {checkpoints - 1} steps of {config_path} into {path} (not timed)")
    trainer = Trainer.resume(path) if list_checkpoints(path) else Trainer.start(config, path)
    trainer.run(progress=False)
    return path


def full_forward_sweep(model, batch) -> pd.DataFrame:
    """The sweep without sharing: a clean pass and a full forward for every ablation."""
    return pd.concat([ablate_heads(model, batch, heads) for _, _, _, heads in sweep_targets(model)],
                     ignore_index=True)


def compare_sweeps(run, steps, batch) -> None:
    seconds = {"ablation_sweep": 0.0, "full forward per ablation": 0.0}
    largest_difference = 0.0
    for step in steps:
        model = run.model(step)
        start = time.perf_counter()
        shared = ablation_sweep(model, batch)
        middle = time.perf_counter()
        full = full_forward_sweep(model, batch)
        seconds["ablation_sweep"] += middle - start
        seconds["full forward per ablation"] += time.perf_counter() - middle
        largest_difference = max(largest_difference, (shared["value"].to_numpy() - full["value"].to_numpy()).__abs__().max())
    ratio = seconds["full forward per ablation"] / seconds["ablation_sweep"]
    print(f"side by side on {len(steps)} checkpoints (36 ablations + clean each):")
    for name, value in seconds.items():
        print(f"  {name:>30}: {value / len(steps) * 1000:6.0f} ms/checkpoint")
    print(f"  speed-up {ratio:.2f}x; largest difference in any ablated metric {largest_difference:.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="runs/bench_analysis")
    parser.add_argument("--config", default="tasks/lrmc_cpu.toml")
    parser.add_argument("--checkpoints", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--probe-train-size", type=int, default=512)
    parser.add_argument("--compare", type=int, default=5,
                        help="checkpoints for the side-by-side sweep comparison (0: skip)")
    args = parser.parse_args()
    run = load_run(ensure_run(Path(args.run), args.config, args.checkpoints))
    steps = run.steps[: args.checkpoints]
    batch = analysis_batch(run, args.batch_size)
    train_batch = analysis_batch(run, args.probe_train_size, seed=run.config.train.seed + 1)
    seconds: dict[str, float] = defaultdict(float)

    def timed(name, analyzer):
        def wrapped(model, data):
            start = time.perf_counter()
            result = analyzer(model, data)
            seconds[name] += time.perf_counter() - start
            return result
        return wrapped

    analyzers = {
        "ablation_sweep": timed("ablation_sweep", ablation_sweep),
        "linear_probes": timed("linear_probes", lambda m, b: linear_probes(m, train_batch, b)),
        "collapse": timed("collapse", representation_collapse),
    }
    start = time.perf_counter()
    table = analyze_run(run, analyzers, steps=steps, batch=batch, progress=False)
    total = time.perf_counter() - start
    model = run.config.model
    print(f"run {run.path}: {run.task.name} {run.task.m}x{run.task.n} rank {run.task.rank}, "
          f"{model.n_layers} layers x {model.n_heads} heads, d_model {model.d_model}")
    print(f"{len(steps)} checkpoints, {len(table)} result rows, batch {args.batch_size}, "
          f"probe train {args.probe_train_size} matrices")
    print(f"wall time {total:.1f} s = {total / len(steps) * 1000:.0f} ms per checkpoint "
          f"(target < 60 s for 100)")
    loading = total - sum(seconds.values())
    for name, value in [("loading checkpoints + bridges", loading), *seconds.items()]:
        print(f"  {name:>30}: {value:6.1f} s ({value / len(steps) * 1000:.0f} ms/checkpoint)")
    if args.compare:
        compare_sweeps(run, steps[-args.compare:], batch)


if __name__ == "__main__":
    main()
