"""What each hooked analyzer costs on one checkpoint of an LLM series: ``ablate_heads``,
``ablation_sweep``, ``patch_activations``, ``linear_probes`` and ``representation_collapse``
on a prompt batch (``plateau_lens.llm.prompt_batch``: equal-length prompts, one batch per
forward), and the series path's ``generation_metrics`` beside them.

Uses a series built by ``llm_series_throughput.py --work-dir DIR`` (``DIR/160m`` or
``DIR/small``): its first checkpoint and its prompts, split into a clean and a corrupted /
test half. Prints one line per analyzer (seconds, rows of its table) and a tidy CSV with
``--csv``; the load average before and after.

    python benchmarks/llm_analyzer_cost.py --root /tmp/bench/160m --prompts 32 --length 12
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True,
                        help="a series built by llm_series_throughput.py (holds series/ and prompts.txt)")
    parser.add_argument("--step", type=int, default=0, help="the checkpoint (default 0)")
    parser.add_argument("--prompts", type=int, default=32, help="prompts per batch (default 32)")
    parser.add_argument("--length", type=int, default=12, help="tokens per prompt (default 12)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--csv", type=Path, default=None, help="write the table here")
    args = parser.parse_args(argv)
    for name in ("prompts", "length", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    directory = args.root / "series" / f"step{args.step}"
    if not (directory / "config.json").is_file() or not (args.root / "prompts.txt").is_file():
        parser.error(f"--root must hold series/step{args.step}/config.json and prompts.txt "
                     f"(built by llm_series_throughput.py --work-dir); {args.root} does not")

    import pandas as pd
    import torch

    from plateau_lens import analysis
    from plateau_lens.llm import generation_metrics, load_checkpoint_model, prompt_batch

    torch.set_num_threads(args.threads)
    print(f"load average before: {os.getloadavg()[0]:.2f}; {args.threads} threads", flush=True)
    started = time.perf_counter()
    model = load_checkpoint_model(local_dir=directory)
    print(f"loaded {directory} in {time.perf_counter() - started:.1f} s", flush=True)
    prompts = (args.root / "prompts.txt").read_text().splitlines()
    half = len(prompts) // 2
    clean, task = prompt_batch(model, prompts[:half], length=args.length, max_prompts=args.prompts)
    other, _ = prompt_batch(model, prompts[half:], length=args.length, max_prompts=args.prompts)
    n = min(len(clean.tokens), len(other.tokens))
    clean, other = (type(clean)(tokens=b.tokens[:n], prompt_length=1, task_name="prompts")
                    for b in (clean, other))
    print(f"{n} prompts of {args.length} tokens per batch", flush=True)
    runs = {
        "ablate_heads": lambda: analysis.ablate_heads(model, clean, task=task),
        "ablation_sweep": lambda: analysis.ablation_sweep(model, clean, task=task, progress=False),
        "patch_activations": lambda: analysis.patch_activations(
            model, clean, corrupted_batch=other, task=task, progress=False),
        "linear_probes": lambda: analysis.linear_probes(model, clean, other, task=task),
        "representation_collapse": lambda: analysis.representation_collapse(model, clean, task=task),
        "generation_metrics": lambda: generation_metrics(model, prompts),
    }
    rows = []
    for name, run in runs.items():
        started = time.perf_counter()
        table = run()
        seconds = time.perf_counter() - started
        rows.append({"analyzer": name, "seconds": seconds, "rows": len(table),
                     "prompts": len(prompts) if name == "generation_metrics" else n,
                     "load_average": os.getloadavg()[0]})
        print(f"{name:>24}: {seconds:8.1f} s ({len(table)} rows)", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if args.csv is not None:
        pd.DataFrame(rows).to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(main())
