"""Training throughput: plateau-lens vs a reference loop in the studies' style, side by side.

The reference is what the studies' code does, re-expressed on stock `transformers` models
(``reference_loop.py``): LRMC = a BertModel (post-LN, absolute positions, dropout 0, the
study's 2002-token input) with a linear read-out and MSE over all entries; MWS = a
GPT2LMHeadModel of the same size with next-token cross-entropy. Both sides draw a fresh batch
every step from the same generator and take one Adam step. Every (implementation, config)
runs in its own subprocess (so peak memory is its own); the two implementations alternate for
``--rounds`` rounds and the median steps/s is reported.

    python benchmarks/train_throughput.py [--configs cpu,mws,paper] [--device cpu|cuda]
                                          [--precision fp32|bf16] [--compile] [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from reference_loop import training_step

REPO = Path(__file__).resolve().parents[1]
CONFIGS = {name: str(REPO / "tasks" / file) for name, file in
           {"paper": "lrmc.toml", "cpu": "lrmc_cpu.toml", "mws": "mws.toml"}.items()}


def measure(impl: str, config_path: str, device: str, precision: str, compile_: bool,
            steps: int, warmup: int, threads: int) -> dict:
    """Run in a subprocess: time ``steps`` training steps after ``warmup``."""
    import torch

    from plateau_lens import load_config

    torch.set_num_threads(threads)
    step = training_step(impl, load_config(config_path), device, precision, compile_)
    for index in range(warmup):
        step(index)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for index in range(warmup, warmup + steps):
        step(index)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda")
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"steps_per_s": steps / elapsed, "peak_mib": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="cpu,mws,paper")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--reference-precision", default=None, choices=["fp32", "bf16"],
                        help="numerics of the reference (default: same as --precision)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        spec = json.loads(args.child)
        print(json.dumps(measure(**spec)))
        return
    print(f"device {args.device}, {args.threads} threads, precision {args.precision}"
          f"{' + compile' if args.compile else ''}, {args.steps} timed steps x {args.rounds} rounds")
    print(f"{'config':>6} {'reference steps/s':>18} {'plateau-lens steps/s':>21} {'ratio':>6}"
          f" {'ref peak MiB':>13} {'ours peak MiB':>14}")
    for name in args.configs.split(","):
        path = CONFIGS.get(name, name)
        results: dict[str, list[dict]] = {"reference": [], "plateau-lens": []}
        steps = args.steps if name != "paper" or args.device != "cpu" else max(2, args.steps // 10)
        for _ in range(args.rounds):
            for impl in results:
                ours = impl == "plateau-lens"
                spec = {"impl": impl, "config_path": path, "device": args.device,
                        "precision": args.precision if ours else (args.reference_precision or args.precision),
                        "compile_": args.compile and ours, "steps": steps, "warmup": args.warmup,
                        "threads": args.threads}
                child = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)],
                                       capture_output=True, text=True)
                if child.returncode != 0:
                    sys.exit(f"{impl} on {path} failed:\n{child.stderr[-3000:]}")
                results[impl].append(json.loads(child.stdout.strip().splitlines()[-1]))
        ref = statistics.median(r["steps_per_s"] for r in results["reference"])
        ours = statistics.median(r["steps_per_s"] for r in results["plateau-lens"])
        ref_mem = max(r["peak_mib"] for r in results["reference"])
        our_mem = max(r["peak_mib"] for r in results["plateau-lens"])
        print(f"{name:>6} {ref:18.2f} {ours:21.2f} {ours / ref:6.2f} {ref_mem:13.0f} {our_mem:14.0f}",
              flush=True)


if __name__ == "__main__":
    main()
