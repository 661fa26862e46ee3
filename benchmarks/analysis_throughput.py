"""Analysis throughput: ``analyze_run`` with an ablation sweep, linear probes and
representation collapse over 100 checkpoints of a CPU LRMC run.

    python benchmarks/analysis_throughput.py [--run runs/lrmc_cpu] [--checkpoints 100]

Without --run (or if it has fewer checkpoints), a run of tasks/lrmc_cpu.toml with one
checkpoint per step is trained first into runs/bench_analysis (not timed). Prints the wall
time, the per-checkpoint cost and the split between loading and each analyzer.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

from plateau_lens import ablation_sweep, linear_probes, load_config, load_run
from plateau_lens.analysis import analysis_batch, analyze_run
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="runs/bench_analysis")
    parser.add_argument("--config", default="tasks/lrmc_cpu.toml")
    parser.add_argument("--checkpoints", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--probe-train-size", type=int, default=512)
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


if __name__ == "__main__":
    main()
