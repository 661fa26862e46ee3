"""Time the analysis of an LLM checkpoint series three ways, side by side, interleaved: the
toolkit's command line (``plateau-lens llm NAME --local-dir DIR``), its Python API
(``iter_checkpoints(local_dir=...)`` + ``generation_metrics``) and the batched plain
``transformers`` recipe written here (per checkpoint ``from_pretrained``, then one left-padded
``generate`` call for all prompts: 8 greedy new tokens with the EOS masked,
``output_hidden_states=True``; repetition frequency and representation collapse as the
loss-plateau study defines them, arXiv 2506.13688 Sec. 6, Figs. 8 and 23-25).

The series is built locally first (not timed): a Pythia-160m-shaped GPT-NeoX (12 layers,
d_model 768, 12 heads, MLP 3 072, vocabulary 50 304, parallel residual, rotary on 25 % of each
head), random weights saved with ``save_pretrained`` at steps 0, 1, 2, 3 (seeds 0-3), a
byte-level BPE trained on Python's own documentation, and 100 prompts (openings of held-out
documentation entries, up to 24 words). ``--small`` builds a 2-layer d_model 64 one (for CI).

Each path runs in its own process per round (peak RSS is that process's), the order rotating
between rounds because the machine is shared. Printed: per path and round, seconds per
checkpoint split into load and compute (medians over the checkpoints), peak RSS, the ratio of
each toolkit path's speed to the recipe's (> 1: faster), and the largest difference of the
metrics between the paths; and, on the first checkpoint (``--check-steps``), the study's own
recipe one prompt at a time without a cache (``use_cache=False``): identical tokens and the
largest cosine difference.

    python benchmarks/llm_series_throughput.py --small            # seconds
    python benchmarks/llm_series_throughput.py --rounds 2          # the 160m-shaped series
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHAPES = {
    "160m": dict(vocab_size=50304, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, rotary_pct=0.25, use_parallel_residual=True,
                 max_position_embeddings=2048, tie_word_embeddings=False),
    "small": dict(vocab_size=1024, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=256, rotary_pct=0.25, use_parallel_residual=True,
                  max_position_embeddings=512, tie_word_embeddings=False),
}
STEPS = (0, 1, 2, 3)
PATHS = ("cli", "api", "recipe")


# --------------------------------------------------------------------------- the series
def build_series(root: Path, shape: str, n_prompts: int) -> None:
    """The checkpoints (``root/series/step{N}``), their tokenizer and ``root/prompts.txt``."""
    import torch
    import transformers

    from plateau_lens.llm.pretrain import (prompts_from_documents, python_documentation,
                                           split_documents, train_tokenizer)

    documents = python_documentation()
    train, held = split_documents(documents, held_out=0.05)
    tokenizer = train_tokenizer(train, vocab_size=SHAPES[shape]["vocab_size"])
    tokenizer.pad_token = tokenizer.eos_token
    prompts = prompts_from_documents(held, n_prompts, max_words=24)
    (root / "prompts.txt").write_text("\n".join(prompts) + "\n")
    eos = tokenizer.eos_token_id
    config = transformers.GPTNeoXConfig(**SHAPES[shape], bos_token_id=eos, eos_token_id=eos)
    for step in STEPS:
        torch.manual_seed(step)
        model = transformers.GPTNeoXForCausalLM(config)
        model.save_pretrained(root / "series" / f"step{step}")
        tokenizer.save_pretrained(root / "series" / f"step{step}")
        del model


def weights_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.glob("*.safetensors"))


# --------------------------------------------------------------------------- the workers
def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_recipe(root: Path, threads: int) -> dict:
    """The batched plain-transformers recipe: one left-padded ``generate`` per checkpoint."""
    import torch
    import transformers

    torch.set_num_threads(threads)
    transformers.utils.logging.disable_progress_bar()
    prompts = (root / "prompts.txt").read_text().splitlines()
    steps, per_prompt = [], {}
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(root / "series" / "step0"))
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:  # masked out: any token does
        tokenizer.pad_token = tokenizer.eos_token
    for step in STEPS:
        started = time.perf_counter()
        model = transformers.AutoModelForCausalLM.from_pretrained(str(root / "series" / f"step{step}"))
        model.eval()
        loaded = time.perf_counter()
        inputs = tokenizer(prompts, return_tensors="pt", padding=True, return_token_type_ids=False)
        with torch.no_grad():
            output = model.generate(**inputs, min_new_tokens=8, max_new_tokens=8, do_sample=False,
                                    return_dict_in_generate=True, output_hidden_states=True,
                                    pad_token_id=tokenizer.pad_token_id)
        new = output.sequences[:, -8:]
        hidden = torch.stack([state[-1][:, -1] for state in output.hidden_states], dim=1)
        unit = torch.nn.functional.normalize(hidden.double(), dim=-1)
        cosine = unit @ unit.transpose(1, 2)
        upper = torch.triu(torch.ones(8, 8, dtype=torch.bool), diagonal=1)
        collapse = cosine[:, upper].mean(-1)
        repetition = (new[:, 1:] == new[:, :-1]).double().mean(-1)
        done = time.perf_counter()
        steps.append({"step": step, "load_s": loaded - started, "compute_s": done - loaded})
        per_prompt[step] = {"generated": new.tolist(), "repetition": repetition.tolist(),
                            "cosine": collapse.tolist()}
        del model, output
    return {"steps": steps, "per_prompt": per_prompt, "peak_rss_mib": peak_rss_mib()}


def worker_api(root: Path, threads: int) -> dict:
    """The toolkit's Python API: one bridge for the series, batched KV-cached generation."""
    import torch

    from plateau_lens.llm import generation_metrics, iter_checkpoints, load_prompts

    torch.set_num_threads(threads)
    prompts = load_prompts(root / "prompts.txt", 10 ** 6, seed=None)
    steps, per_prompt = [], {}
    series = iter_checkpoints(None, STEPS, local_dir=root / "series")
    token_ids = None
    while True:
        started = time.perf_counter()
        try:
            step, model = next(series)
        except StopIteration:
            break
        loaded = time.perf_counter()
        if token_ids is None:  # tokenise once per series
            from plateau_lens.llm.generation import tokenize_prompts

            token_ids = tokenize_prompts(model.tokenizer, prompts)
        frame = generation_metrics(model, prompts, token_ids=token_ids)
        done = time.perf_counter()
        steps.append({"step": step, "load_s": loaded - started, "compute_s": done - loaded})
        per_prompt[step] = {"generated": frame["generated"].tolist(),
                            "repetition": frame["repetition_frequency"].tolist(),
                            "cosine": frame["cosine_similarity"].tolist()}
    return {"steps": steps, "per_prompt": per_prompt, "peak_rss_mib": peak_rss_mib()}


def worker_one_at_a_time(root: Path, threads: int, check_steps: list[int]) -> dict:
    """The study's recipe as its code runs it (src/pythia.py): one prompt per ``generate``,
    ``use_cache=False``."""
    import torch
    import transformers

    torch.set_num_threads(threads)
    transformers.utils.logging.disable_progress_bar()
    prompts = (root / "prompts.txt").read_text().splitlines()
    per_prompt = {}
    for step in check_steps:
        directory = str(root / "series" / f"step{step}")
        tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
        model = transformers.AutoModelForCausalLM.from_pretrained(directory).eval()
        rows = {"generated": [], "repetition": [], "cosine": []}
        for question in prompts:
            inputs = tokenizer(question, return_tensors="pt", return_token_type_ids=False)
            with torch.no_grad():
                output = model.generate(**inputs, min_new_tokens=8, max_new_tokens=8,
                                        do_sample=False, return_dict_in_generate=True,
                                        output_hidden_states=True, use_cache=False,
                                        pad_token_id=tokenizer.eos_token_id)
            new = output.sequences[0, -8:]
            states = output.hidden_states
            cosines = [torch.nn.functional.cosine_similarity(
                states[i][-1][0, -1].double(), states[j][-1][0, -1].double(), dim=-1).item()
                for i in range(8) for j in range(i)]
            rows["generated"].append(new.tolist())
            rows["repetition"].append((new[1:] == new[:-1]).double().mean().item())
            rows["cosine"].append(sum(cosines) / len(cosines))
        per_prompt[step] = rows
    return {"per_prompt": per_prompt, "peak_rss_mib": peak_rss_mib()}


# --------------------------------------------------------------------------- running the paths
def run_child(command: list[str], env: dict) -> tuple[int, str, float, float]:
    """Run a process; its return code, stderr, wall seconds and peak RSS (MiB, from wait4)."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=REPO)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read()
    return process.returncode, stderr, time.perf_counter() - started, usage.ru_maxrss / 1024


def run_cli(root: Path, out: Path, env: dict) -> dict:
    import re

    import pandas as pd

    command = [str(Path(sys.executable).with_name("plateau-lens")), "llm", "bench",
               "--local-dir", str(root / "series"), "--prompts", str(root / "prompts.txt"),
               "--n-prompts", str(len((root / "prompts.txt").read_text().splitlines())),
               "--first-prompts", "--out", str(out)]
    if not Path(command[0]).exists():
        command[:1] = [sys.executable, "-m", "plateau_lens.cli"]
    code, stderr, wall, rss = run_child(command, env)
    if code != 0:
        raise RuntimeError(f"the CLI failed ({code}):\n{stderr[-3000:]}")
    steps = [{"step": int(m[1]), "load_s": float(m[2]), "compute_s": float(m[3])}
             for m in re.finditer(r"bench step (\d+): .*load ([\d.]+) s, compute ([\d.]+) s", stderr)]
    generations = pd.read_csv(out / "bench_generations.csv").sort_values(["step", "prompt"])
    per_prompt = {int(step): {"generated": [json.loads(g) for g in group["generated"]],
                              "repetition": group["repetition_frequency"].tolist(),
                              "cosine": group["cosine_similarity"].tolist()}
                  for step, group in generations.groupby("step")}
    return {"steps": steps, "per_prompt": per_prompt, "peak_rss_mib": rss, "wall_s": wall}


def run_worker(kind: str, root: Path, threads: int, env: dict, extra: list[str] = ()) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        result_file = Path(scratch) / "result.json"
        command = [sys.executable, __file__, "--worker", kind, "--root", str(root),
                   "--threads", str(threads), "--result", str(result_file), *extra]
        code, stderr, wall, rss = run_child(command, env)
        if code != 0:
            raise RuntimeError(f"the {kind} worker failed ({code}):\n{stderr[-3000:]}")
        result = json.loads(result_file.read_text())
    result["per_prompt"] = {int(k): v for k, v in result["per_prompt"].items()}
    result["wall_s"], result["peak_rss_mib"] = wall, rss
    return result


def largest_differences(first: dict, second: dict) -> tuple[int, float, float]:
    """Prompts whose tokens differ, largest |Δ repetition|, largest |Δ cosine| over the steps
    both hold."""
    tokens = repetition = cosine = 0
    for step in sorted(set(first) & set(second)):
        a, b = first[step], second[step]
        tokens += sum(x != y for x, y in zip(a["generated"], b["generated"]))
        repetition = max([repetition] + [abs(x - y) for x, y in zip(a["repetition"], b["repetition"])])
        cosine = max([cosine] + [abs(x - y) for x, y in zip(a["cosine"], b["cosine"])])
    return tokens, repetition, cosine


def per_checkpoint(result: dict) -> tuple[float, float]:
    """Median load and compute seconds per checkpoint."""
    return (statistics.median(s["load_s"] for s in result["steps"]),
            statistics.median(s["compute_s"] for s in result["steps"]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="a 2-layer d_model 64 series (CI)")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds (default 1)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads per path (default 2)")
    parser.add_argument("--n-prompts", type=int, default=100, help="prompts (default 100)")
    parser.add_argument("--check-steps", default="0", help="steps checked against the study's "
                        "one-prompt-at-a-time recipe (comma-separated; '' for none; default 0)")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="where the series is built (kept; reused when present)")
    parser.add_argument("--worker", choices=("api", "recipe", "one-at-a-time"), help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("rounds", "threads", "n_prompts"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    check_steps = [int(s) for s in args.check_steps.split(",") if s.strip()]
    if any(s not in STEPS for s in check_steps):
        parser.error(f"--check-steps must be among {list(STEPS)}, got {args.check_steps!r}")
    if args.worker:
        if args.worker == "api":
            result = worker_api(args.root, args.threads)
        elif args.worker == "recipe":
            result = worker_recipe(args.root, args.threads)
        else:
            result = worker_one_at_a_time(args.root, args.threads, check_steps)
        args.result.write_text(json.dumps(result))
        return 0

    shape = "small" if args.small else "160m"
    scratch = None
    if args.work_dir is None:
        scratch = tempfile.TemporaryDirectory(prefix="llm-series-")
        root = Path(scratch.name)
    else:
        root = args.work_dir / shape
        root.mkdir(parents=True, exist_ok=True)
    if not (root / "series" / f"step{STEPS[-1]}" / "config.json").is_file():
        started = time.perf_counter()
        build_series(root, shape, args.n_prompts)
        print(f"built the {shape} series in {time.perf_counter() - started:.0f} s: {root}")
    weights = weights_bytes(root / "series" / "step0") / 2 ** 20
    env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               OMP_NUM_THREADS=str(args.threads), TOKENIZERS_PARALLELISM="false")
    print(f"{shape}-shaped GPT-NeoX series, {len(STEPS)} checkpoints of {weights:.0f} MiB, "
          f"{len((root / 'prompts.txt').read_text().splitlines())} prompts, 8 new tokens, "
          f"{args.threads} threads; load average before: {os.getloadavg()[0]:.2f}")
    results: dict[str, list[dict]] = {path: [] for path in PATHS}
    for round_index in range(args.rounds):
        order = PATHS[round_index % 3:] + PATHS[:round_index % 3]
        for path in order:
            if path == "cli":
                with tempfile.TemporaryDirectory() as out:
                    result = run_cli(root, Path(out), env)
            else:
                result = run_worker(path, root, args.threads, env)
            results[path].append(result)
            load, compute = per_checkpoint(result)
            print(f"round {round_index + 1} {path:>6}: {load + compute:7.2f} s per checkpoint "
                  f"(load {load:.2f} s, compute {compute:.2f} s), process wall {result['wall_s']:.1f} s, "
                  f"peak RSS {result['peak_rss_mib']:.0f} MiB = {result['peak_rss_mib'] / weights:.2f}x "
                  f"one checkpoint's weights", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print("\nspeed relative to the batched plain-transformers recipe, same round (> 1: faster):")
    for round_index in range(args.rounds):
        recipe = sum(per_checkpoint(results["recipe"][round_index]))
        for path in ("cli", "api"):
            mine = sum(per_checkpoint(results[path][round_index]))
            print(f"  round {round_index + 1}: {path} {recipe / mine:.2f}x "
                  f"({mine:.2f} s vs {recipe:.2f} s per checkpoint)")
    print("\nlargest differences between the paths (round 1; prompts with other tokens, "
          "|Δ repetition|, |Δ cosine|):")
    first = {path: results[path][0]["per_prompt"] for path in PATHS}
    for a, b in (("cli", "recipe"), ("api", "recipe"), ("cli", "api")):
        tokens, repetition, cosine = largest_differences(first[a], first[b])
        print(f"  {a} vs {b}: {tokens} prompts, {repetition:.2g}, {cosine:.2g}")
    if check_steps:
        started = time.perf_counter()
        reference = run_worker("one-at-a-time", root, args.threads, env,
                               ["--check-steps", args.check_steps])
        print(f"\nthe study's recipe one prompt at a time, use_cache=False, steps {check_steps} "
              f"({time.perf_counter() - started:.0f} s):")
        for path in PATHS:
            tokens, repetition, cosine = largest_differences(first[path], reference["per_prompt"])
            print(f"  {path}: {tokens} prompts with other tokens, |Δ repetition| {repetition:.2g}, "
                  f"|Δ cosine| {cosine:.2g}")
    if scratch is not None:
        scratch.cleanup()
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(main())
