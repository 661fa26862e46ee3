"""``plateau-lens llm``: repetition and collapse over a pretrained checkpoint series."""

from __future__ import annotations

from pathlib import Path

from .checkpoints import PYTHIA_STEPS


def parse_steps(text: str) -> list[int]:
    """``"0,1,2,4,...,512,1000"`` (an ellipsis continues the doubling) or ``"all"`` for Pythia."""
    if text == "all":
        return list(PYTHIA_STEPS)
    parts = [p.strip() for p in text.split(",") if p.strip()]
    steps: list[int] = []
    for index, part in enumerate(parts):
        if part == "...":
            if len(steps) < 2 or index + 1 >= len(parts):
                raise ValueError("'...' needs two steps before it and one after it")
            ratio = steps[-1] / steps[-2] if steps[-2] else 2
            end = int(parts[index + 1])
            while steps[-1] * ratio < end:
                steps.append(int(steps[-1] * ratio))
        else:
            steps.append(int(part))
    if any(s < 0 for s in steps):
        raise ValueError(f"steps must be >= 0, got {steps}")
    return sorted(set(steps))


def add_llm_parser(sub) -> None:
    p = sub.add_parser("llm", help="repetition and representation collapse over LLM checkpoints")
    p.add_argument("model", help="hub name (pythia-160m, allenai/OLMo-2-1124-7B) or a label")
    p.add_argument("--steps", default="0,1,2,4,...,512,1000,2000,4000,8000,10000")
    p.add_argument("--prompts", default="arc-easy", help="'arc-easy' or a text file, one per line")
    p.add_argument("--n-prompts", type=int, default=100)
    p.add_argument("--new-tokens", type=int, default=8)
    p.add_argument("--local-dir", help="directory with step{N} sub-directories (offline)")
    p.add_argument("--out", default="results")
    p.add_argument("--device")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run_llm)


def run_llm(args) -> int:
    from .prompts import load_prompts
    from .series import analyze_series, plot_series

    steps = parse_steps(args.steps)
    prompts = load_prompts(args.prompts, args.n_prompts)
    results = analyze_series(args.model, steps, prompts, Path(args.out), local_dir=args.local_dir,
                             n_new=args.new_tokens, device=args.device, progress=not args.quiet)
    from ..plots import save

    figure_path = save(plot_series(results), Path(args.out) / f"{args.model.replace('/', '_')}.png")
    print(results[["step", "repetition_frequency", "cosine_similarity"]].to_string(index=False))
    print(f"results in {args.out}; figure {figure_path}")
    return 0
