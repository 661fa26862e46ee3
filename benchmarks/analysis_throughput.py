"""Analysis throughput: ``analyze_run`` with an ablation sweep, linear probes and
representation collapse over 100 checkpoints of a CPU LRMC run, and each analyzer's achieved
FLOP rate beside the machine's matmul rate, measured in the same process.

    python benchmarks/analysis_throughput.py [--run runs/bench_analysis] [--checkpoints 100]
        [--compare-with main --compare-checkpoints 5] [--compare-hooked 2]

Without --run (or if it has fewer checkpoints), a run of tasks/lrmc_cpu.toml with one
checkpoint per step is trained first into runs/bench_analysis (not timed).

Rates (GFLOP/s) are matmul FLOPs of the work each analyzer does, divided by its wall time;
2·m·k·n per [m k]·[k n] product, nothing for element-wise work (norms, GELU, softmax, edits):

* the matmul rate: ``torch.matmul`` on one block's products at the analysis batch
  (b·p rows: [b·p d]·[d 3d] (Q, K, V), [b·p d]·[d d] (O), [b·p d]·[d d_mlp],
  [b·p d_mlp]·[d_mlp d], and per head [p d_head]·[d_head p] (QKᵀ), [p p]·[p d_head] (A·V)),
  timed before each checkpoint's analyzers (interleaved with them), two ways: each product
  once on torch's intra-op threads, and the rows split over as many Python threads with one
  intra-op thread each (how the analyzers run); the larger of the two is the reference;
* ``ablation_sweep``: a block is F(b) = 2·b·p·(4d² + 2·d·d_mlp) + 2·2·b·h·p²·d_head. The
  clean pass (L blocks + read-out, shared with the other analyzers of the checkpoint, run
  first by the sweep); per ablated layer l, Q, K, V and QKᵀ once; per ablation at layer l,
  A·V, O and the MLP of block l, F(b) for each block after l and the read-out 2·b·p·d·d_out.
  (The issue's nominal count, F(b) for every block from l on per ablation, is printed too.)
* ``linear_probes``: the forward of the training batch (L blocks) plus, per hook, the float64
  products [F 1]ᵀ[F 1 Y], the eigendecomposition (9·d³), the solves, the refinement's two
  float64 passes over the training rows and the test predictions
  (``plateau_lens.analysis.probes.probe_flops``); its test activations are the shared pass's.
  Its matmul reference is also given for its own mix: float32 block products, and the
  float64 Gram products and refinement passes, each at its measured rate.
* ``representation_collapse``: its hooked forward (L blocks + read-out, the bridge's: not
  the shared pass) and the pairwise cosines, 2·b·P²·d per site in float64.

--compare-with COMMIT runs the three analyzers of that commit (``git archive``, in a
subprocess) and of this tree on the last --compare-checkpoints checkpoints and prints the
largest relative difference of any value. --compare-hooked N (default 2) times ``ablation_sweep``
against the TransformerLens way, one hooked full forward per ablation (``ablate_heads``), on the
last N checkpoints, checks the values are the same, and prints the ratio as the last line, the
headline (the shares of the matmul rate are a diagnostic: they swung from 46 % to 81 % between
runs on a quiet machine, with the reference taken).
"""

from __future__ import annotations

import argparse
import os
import pickle
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from plateau_lens import ablate_heads, ablation_sweep, linear_probes, load_config, load_run  # noqa: E402
from plateau_lens.analysis import analysis_batch, analyze_run  # noqa: E402
from plateau_lens.analysis.ablation import sweep_targets  # noqa: E402
from plateau_lens.analysis.collapse import representation_collapse  # noqa: E402
from plateau_lens.analysis.fastpath.parallel import run_parallel  # noqa: E402
from plateau_lens.analysis.probes import (available_targets, default_hooks, probe_flops, probe_plan,  # noqa: E402
                                         refinement_flops)
from plateau_lens.training import Trainer  # noqa: E402
from plateau_lens.runs.layout import list_checkpoints  # noqa: E402


def ensure_run(path: Path, config_path: str, checkpoints: int) -> Path:
    if len(list_checkpoints(path)) >= checkpoints:
        return path
    config = load_config(config_path).replace(
        train={"steps": checkpoints - 1, "checkpoint_every": 1, "checkpoint_log_spaced": False})
    print(f"training {checkpoints - 1} steps of {config_path} into {path} (not timed)")
    trainer = Trainer.resume(path) if list_checkpoints(path) else Trainer.start(config, path)
    trainer.run(progress=False)
    return path


# ------------------------------------------------------------------------------- FLOPs
class Shapes:
    """The model's sizes and the FLOP counts of the module docstring."""

    def __init__(self, cfg, d_out: int, seq: int):
        self.L, self.h, self.d, self.d_mlp = cfg.n_layers, cfg.n_heads, cfg.d_model, cfg.d_mlp
        self.d_head, self.d_out, self.p = cfg.d_head, d_out, seq

    def qkv(self, b):  # Q, K, V projections and the scores QKᵀ
        return 2 * b * self.p * 3 * self.d ** 2 + 2 * b * self.h * self.p ** 2 * self.d_head

    def after_scores(self, b):  # A·V, O and the MLP
        return (2 * b * self.h * self.p ** 2 * self.d_head
                + 2 * b * self.p * (self.d ** 2 + 2 * self.d * self.d_mlp))

    def block(self, b):  # F(b)
        return self.qkv(b) + self.after_scores(b)

    def readout(self, b):
        return 2 * b * self.p * self.d * self.d_out

    def forward(self, b):
        return self.L * self.block(b) + self.readout(b)

    def sweep(self, b, n_heads_ablations: int = 1):
        per_layer_copies = self.h + n_heads_ablations  # each head alone + the whole layer
        total = self.forward(b)  # the clean pass
        for layer in range(self.L):
            total += self.qkv(b) + per_layer_copies * (
                self.after_scores(b) + (self.L - 1 - layer) * self.block(b) + self.readout(b))
        return total

    def sweep_nominal(self, b):
        return (self.h + 1) * sum(self.L - layer for layer in range(self.L)) * self.block(b)

    def collapse(self, b, positions: int, sites: int):
        return self.forward(b) + sites * 2 * b * positions ** 2 * self.d


# --------------------------------------------------------------------------- matmul rate
class MatmulRate:
    """torch.matmul on one block's products at b samples (float32), and the probes' Gram
    product in float64; each timed with torch's intra-op threads and split over Python threads
    with one intra-op thread each."""

    def __init__(self, shapes: Shapes, b: int, n_train_rows: int, gram_columns: tuple[int, int]):
        g = torch.Generator().manual_seed(0)
        s, rows = shapes, b * shapes.p
        self.b, self.p, self.h, self.threads = b, s.p, s.h, torch.get_num_threads()
        self.rows = {"x": torch.randn(rows, s.d, generator=g), "mid": torch.randn(rows, s.d_mlp, generator=g)}
        self.weights = [torch.randn(s.d, 3 * s.d, generator=g), torch.randn(s.d, s.d, generator=g),
                        torch.randn(s.d, s.d_mlp, generator=g), torch.randn(s.d_mlp, s.d, generator=g)]
        self.q = torch.randn(b * s.h, s.p, s.d_head, generator=g)
        self.k = torch.randn(b * s.h, s.d_head, s.p, generator=g)
        self.a = torch.randn(b * s.h, s.p, s.p, generator=g)
        self.block_flops = s.block(b)
        width, columns = gram_columns
        self.gram = torch.randn(n_train_rows, columns, generator=g, dtype=torch.double)
        self.gram_width = width
        self.gram_flops = 2 * n_train_rows * width * columns

    def _block(self, samples: slice) -> None:
        p, h = self.p, self.h
        rows, heads = slice(samples.start * p, samples.stop * p), slice(samples.start * h, samples.stop * h)
        x, mid = self.rows["x"][rows], self.rows["mid"][rows]
        for inputs, weight in zip((x, x, x, mid), self.weights):
            torch.matmul(inputs, weight)
        torch.matmul(self.q[heads], self.k[heads])
        torch.matmul(self.a[heads], self.q[heads])

    def _gram(self, part: slice) -> None:
        rows = self.gram[part]
        torch.matmul(rows[:, : self.gram_width].T, rows)

    def _timed(self, fn, n_items: int, split: bool, repeats: int) -> float:
        parts = self.threads if split else 1
        bounds = np.linspace(0, n_items, parts + 1).astype(int)
        tasks = [lambda s=slice(int(lo), int(hi)): fn(s) for lo, hi in zip(bounds[:-1], bounds[1:])]
        run = (lambda: run_parallel(tasks, parts)) if split else tasks[0]
        run()  # warm-up
        start = time.perf_counter()
        for _ in range(repeats):
            run()
        return (time.perf_counter() - start) / repeats

    def measure(self, repeats: int = 3) -> dict[str, float]:
        out = {}
        for split, label in ((False, "intra-op"), (True, "threads")):
            block = self._timed(self._block, self.b, split, repeats)
            gram = self._timed(self._gram, len(self.gram), split, repeats)
            out[f"f32 {label}"] = self.block_flops / block / 1e9
            out[f"f64 gram {label}"] = self.gram_flops / gram / 1e9
        out["f32"] = max(out["f32 intra-op"], out["f32 threads"])
        out["f64 gram"] = max(out["f64 gram intra-op"], out["f64 gram threads"])
        return out


# ------------------------------------------------------------------- old-commit comparison
DUMP_SCRIPT = r"""
import pickle, sys, time, torch
sys.path.insert(0, sys.argv[1])
torch.set_num_threads(int(sys.argv[5]))
import plateau_lens
assert plateau_lens.__file__.startswith(sys.argv[1]), plateau_lens.__file__
from plateau_lens import ablation_sweep, linear_probes, load_run
from plateau_lens.analysis import analysis_batch, analyze_run
from plateau_lens.analysis.collapse import representation_collapse
run = load_run(sys.argv[2])
batch = analysis_batch(run, int(sys.argv[6]))
train = analysis_batch(run, int(sys.argv[7]), seed=run.config.train.seed + 1)
tables, seconds = {}, {}

def timed(name, analyzer):
    def wrapped(model, data):
        start = time.perf_counter()
        frame = analyzer(model, data)
        seconds.setdefault(name, []).append(time.perf_counter() - start)
        tables.setdefault(name, []).append(frame)
        return frame
    return wrapped

steps = [int(s) for s in sys.argv[3].split(",")]
analyze_run(run, {"ablation_sweep": timed("ablation_sweep", lambda m, b: ablation_sweep(m, b, progress=False)),
                  "linear_probes": timed("linear_probes", lambda m, b: linear_probes(m, train, b)),
                  "collapse": timed("collapse", representation_collapse)},
            steps=steps, batch=batch, progress=False)
with open(sys.argv[4], "wb") as f:
    pickle.dump({"tables": {step: {name: frames[i] for name, frames in tables.items()}
                            for i, step in enumerate(steps)}, "seconds": seconds}, f)
"""


def dump_tables(tree: Path, run: Path, steps, out: Path, threads: int, batch: int, train: int) -> dict:
    """The three analyzers' tables of the plateau_lens in ``tree`` on ``steps`` (through its
    own ``analyze_run``, in a subprocess) and their seconds per checkpoint."""
    subprocess.run([sys.executable, "-c", DUMP_SCRIPT, str(tree), str(run),
                    ",".join(map(str, steps)), str(out), str(threads), str(batch), str(train)],
                   check=True, cwd=REPO)
    with open(out, "rb") as f:
        return pickle.load(f)


def largest_relative_difference(old: pd.DataFrame, new: pd.DataFrame) -> float:
    labels = [c for c in old.columns if c != "value"]
    if len(old) != len(new) or not old[labels].astype(str).equals(new[labels].astype(str)):
        raise AssertionError("the tables' rows differ (labels or order)")
    a, b = old["value"].to_numpy(float), new["value"].to_numpy(float)
    scale = np.maximum(np.abs(a), np.abs(b))
    return float(np.max(np.where(scale > 0, np.abs(a - b) / np.where(scale > 0, scale, 1), 0.0)))


def compare_with_commit(commit: str, run_path: Path, steps, threads: int, batch: int, train: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "old"
        tree.mkdir()
        archive = subprocess.run(["git", "-C", str(REPO), "archive", commit, "plateau_lens"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        resolved = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", commit],
                                  capture_output=True, text=True, check=True).stdout.strip()
        print(f"\nsame values as {commit} ({resolved})? its analyzers vs this tree's on steps "
              f"{list(steps)}:")
        old = dump_tables(tree, run_path, steps, Path(tmp) / "old.pkl", threads, batch, train)
        new = dump_tables(REPO, run_path, steps, Path(tmp) / "new.pkl", threads, batch, train)
    for name in ("ablation_sweep", "linear_probes", "collapse"):
        worst = max(largest_relative_difference(old["tables"][s][name], new["tables"][s][name])
                    for s in steps)
        rows = sum(len(new["tables"][s][name]) for s in steps)
        before, after = (statistics.median(d["seconds"][name]) * 1000 for d in (old, new))
        print(f"  {name:>16}: {rows} values, largest relative difference {worst:.1e}; "
              f"{before:.0f} -> {after:.0f} ms/checkpoint (medians, one after the other)")


def aligned_by_labels(reference: pd.DataFrame, other: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both tables' rows in one order (sorted by every label column), refusing tables whose
    sets of labelled rows differ."""
    labels = [c for c in reference.columns if c != "value"]
    if sorted(other.columns) != sorted(reference.columns):
        raise AssertionError(f"the tables' columns differ: {sorted(reference.columns)} vs "
                             f"{sorted(other.columns)}")
    ordered = [frame[labels + ["value"]].astype({c: str for c in labels}).sort_values(labels)
               .reset_index(drop=True) for frame in (reference, other)]
    return ordered[0], ordered[1]


def compare_hooked(run, steps, batch) -> tuple[float, float, dict]:
    """ablation_sweep against the TransformerLens way: one hooked full forward per ablation
    (``ablate_heads`` per target of the sweep, each labelled as the sweep labels it: scope
    ``head`` with its head index, or ``layer``). Returns the speed-up, the largest relative
    difference of any value and the seconds per checkpoint of each."""
    seconds = {"ablation_sweep": 0.0, "full forward per ablation": 0.0}
    largest = 0.0
    for step in steps:
        model = run.model(step)
        start = time.perf_counter()
        shared = ablation_sweep(model, batch, progress=False)
        middle = time.perf_counter()
        frames = [ablate_heads(model, batch, heads) for _, _, _, heads in sweep_targets(model)]
        seconds["ablation_sweep"] += middle - start
        seconds["full forward per ablation"] += time.perf_counter() - middle
        for frame, (scope, layer, head, _) in zip(frames, sweep_targets(model)):
            frame["scope"] = scope
            frame["layer"] = pd.array([layer] * len(frame), dtype="Int64")
            frame["head"] = pd.array([head if scope == "head" else None] * len(frame), dtype="Int64")
        full, mine = aligned_by_labels(pd.concat(frames, ignore_index=True), shared)
        largest = max(largest, largest_relative_difference(full, mine))
    per_checkpoint = {name: value / len(steps) for name, value in seconds.items()}
    return (seconds["full forward per ablation"] / seconds["ablation_sweep"], largest,
            per_checkpoint)


# ---------------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="runs/bench_analysis")
    parser.add_argument("--config", default=str(REPO / "tasks" / "lrmc_cpu.toml"))
    parser.add_argument("--checkpoints", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--probe-train-size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--compare-with", default="main",
                        help="commit whose analyzers must give the same values ('' to skip)")
    parser.add_argument("--compare-checkpoints", type=int, default=5)
    parser.add_argument("--compare-hooked", type=int, default=2,
                        help="checkpoints for the headline: the sweep vs the TransformerLens way, "
                             "one hooked forward per ablation (default 2; 0 to skip)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.run = str(Path(args.run).resolve())  # the comparison's subprocesses run in the repository
    run = load_run(ensure_run(Path(args.run), args.config, args.checkpoints))
    steps = run.steps[: args.checkpoints]
    batch = analysis_batch(run, args.batch_size)
    train_batch = analysis_batch(run, args.probe_train_size, seed=run.config.train.seed + 1)

    probe_model = run.model(steps[0])
    cfg, seq = probe_model.cfg, batch.inputs.shape[1]
    shapes = Shapes(cfg, probe_model.network.head.out_features, seq)
    plan = probe_plan(probe_model.task, train_batch, batch, list(available_targets(probe_model.task)),
                      "least_squares")
    hooks = default_hooks(probe_model)
    n_train, n_test = len(train_batch) * seq, len(batch) * seq
    probes_extra = len(hooks) * probe_flops(n_train, n_test, cfg.d_model, plan)
    k = plan.right_hand_sides.shape[1]
    gram_part = len(hooks) * (2 * n_train * (cfg.d_model + 1) * (cfg.d_model + 1 + k)
                              + refinement_flops(n_train, cfg.d_model, sum(plan.widths)))
    flops = {"ablation_sweep": shapes.sweep(len(batch)),
             "linear_probes": shapes.forward(len(train_batch)) + probes_extra,
             "collapse": shapes.collapse(len(batch), len(probe_model.task.collapse_positions()),
                                         4 * cfg.n_layers + 1)}
    rate = MatmulRate(shapes, len(batch), n_train // 2, (cfg.d_model + 1, cfg.d_model + 1 + k))
    rates: list[dict[str, float]] = []
    seconds: dict[str, list[float]] = defaultdict(list)
    measuring = [0.0]

    def timed(name, analyzer, before=None):
        def wrapped(model, data):
            if before is not None:
                start = time.perf_counter()
                rates.append(before())
                measuring[0] += time.perf_counter() - start
            start = time.perf_counter()
            result = analyzer(model, data)
            seconds[name].append(time.perf_counter() - start)
            return result
        return wrapped

    analyzers = {
        "ablation_sweep": timed("ablation_sweep", lambda m, b: ablation_sweep(m, b, progress=False),
                                before=rate.measure),
        "linear_probes": timed("linear_probes", lambda m, b: linear_probes(m, train_batch, b)),
        "collapse": timed("collapse", representation_collapse),
    }
    load_before = os.getloadavg()
    start = time.perf_counter()
    table = analyze_run(run, analyzers, steps=steps, batch=batch, progress=False)
    total = time.perf_counter() - start
    load_after = os.getloadavg()
    analysis = sum(sum(v) for v in seconds.values())
    matmul_seconds = measuring[0]
    loading = total - analysis - matmul_seconds

    model = run.config.model
    print(f"run {run.path}: {run.task.name} {run.task.m}x{run.task.n} rank {run.task.rank}, "
          f"{model.n_layers} layers x {model.n_heads} heads, d_model {model.d_model}")
    print(f"{len(steps)} checkpoints, {len(table)} result rows, batch {args.batch_size}, probe train "
          f"{args.probe_train_size} matrices; {torch.get_num_threads()} threads on {os.cpu_count()} "
          f"cores; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after")
    median = {key: statistics.median(r[key] for r in rates) for key in rates[0]}
    print(f"matmul rate (medians over checkpoints, measured before each one's analyzers):")
    print(f"  float32 block products at batch {len(batch)}: {median['f32 intra-op']:.0f} GFLOP/s on "
          f"torch's intra-op threads, {median['f32 threads']:.0f} GFLOP/s split over "
          f"{args.threads} threads -> reference {median['f32']:.0f} GFLOP/s")
    print(f"  float64 Gram products of the probes: {median['f64 gram intra-op']:.0f} / "
          f"{median['f64 gram threads']:.0f} GFLOP/s -> {median['f64 gram']:.0f} GFLOP/s")
    print(f"wall time {total:.1f} s for {len(steps)} checkpoints, of which {loading + analysis:.1f} s "
          f"analysis + loading ({(loading + analysis) / len(steps) * 1000:.0f} ms per checkpoint) "
          f"and {matmul_seconds:.1f} s measuring the matmul rate")
    print("diagnostic: each analyzer's rate against the matmul rate (it swings between runs with "
          "the reference taken; the headline is the ratio to the TransformerLens way, last):")
    print(f"  {'':>16}  {'s total':>8} {'ms/ckpt':>8} {'GFLOP/ckpt':>10} {'GFLOP/s':>8} "
          f"{'of matmul':>9}  (medians over checkpoints; rate vs the same checkpoint's matmul rate)")
    print(f"  {'loading':>16}  {loading:8.1f} {loading / len(steps) * 1000:8.0f}")
    for name, values in seconds.items():
        achieved = [flops[name] / s / 1e9 for s in values]
        share = [a / r["f32"] for a, r in zip(achieved, rates)]
        print(f"  {name:>16}  {sum(values):8.1f} {statistics.median(values) * 1000:8.0f} "
              f"{flops[name] / 1e9:10.2f} {statistics.median(achieved):8.0f} {statistics.median(share):8.0%}")
    probe_mix = [(flops["linear_probes"] / 1e9) / ((flops["linear_probes"] - gram_part) / 1e9 / r["f32"]
                                                   + gram_part / 1e9 / r["f64 gram"]) for r in rates]
    probe_share = [flops["linear_probes"] / s / 1e9 / m for s, m in zip(seconds["linear_probes"], probe_mix)]
    print(f"  linear_probes against its own float32/float64 mix ({statistics.median(probe_mix):.0f} "
          f"GFLOP/s): {statistics.median(probe_share):.0%}")
    print(f"  ablation_sweep nominal count (F(b) per block from the ablated one on, no clean pass): "
          f"{shapes.sweep_nominal(len(batch)) / 1e9:.1f} GFLOP")
    if args.compare_with and args.compare_checkpoints:
        if shutil.which("git") is None:
            print("git not found: no comparison with", args.compare_with)
        else:
            compare_with_commit(args.compare_with, Path(args.run), steps[-args.compare_checkpoints:],
                                args.threads, args.batch_size, args.probe_train_size)
    if args.compare_hooked:
        hooked_steps = steps[-args.compare_hooked:]
        speedup, largest, per_checkpoint = compare_hooked(run, hooked_steps, batch)
        print(f"\nthe sweep against the TransformerLens way on {len(hooked_steps)} checkpoints "
              f"({len(list(sweep_targets(run.model(hooked_steps[-1]))))} ablations each):")
        for name, value in per_checkpoint.items():
            print(f"  {name:>30}: {value * 1000:6.0f} ms/checkpoint")
        print(f"HEADLINE: ablation_sweep {speedup:.1f}x the speed of the TransformerLens way (one "
              f"hooked forward per ablation, ablate_heads), same values (largest relative "
              f"difference {largest:.1e})")


if __name__ == "__main__":
    main()
