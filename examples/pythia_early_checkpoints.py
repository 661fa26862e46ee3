"""Early-pretraining repetition bias and representation collapse in Pythia (and OLMo-2),
as in the loss-plateau study (arXiv 2506.13688, Fig. on LLMs), plus the toy-model analyzers
run unchanged on a real checkpoint.

Repetition and cosine are computed as the study does (generation_metrics: the checkpoint's
own AutoTokenizer without a BOS, exactly 8 greedy tokens, last-layer hidden states). Needs the
Hugging Face hub (and the ARC-Easy dataset), or local copies laid out as DIR/step{N}/
(save_pretrained) and a prompt file:

    python examples/pythia_early_checkpoints.py --models pythia-14m,pythia-160m
    python examples/pythia_early_checkpoints.py --local-dir ckpts/pythia-14m --models pythia-14m \
        --prompts my_prompts.txt

Writes, per model, results/<model>.csv (means per step) and results/<model>_generations.csv
(each prompt's generations per step), and one figure with every model, results/pythia_early.png.
For a series without the hub, examples/pretraining_series.py pretrains one locally.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from plateau_lens import ablate_heads, linear_probes, load_checkpoint_model, patch_between_models
from plateau_lens.llm import analyze_series, load_prompts, plot_series, prompt_batch
from plateau_lens.llm.cli import STUDY_STEPS, parse_steps, resolve_steps
from plateau_lens.plots import save


def toy_analyzers_on(model, prompts: list[str]):
    """ablate_heads and a probe on a real checkpoint, through the same API as the toy models."""
    batch, task = prompt_batch(model, prompts)
    print(ablate_heads(model, batch, 0, task=task).to_string(index=False))
    print(linear_probes(model, batch, batch, targets=["current_token"], task=task,
                        hooks=[f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"]).to_string(index=False))
    return batch, task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="pythia-14m,pythia-160m,pythia-410m")
    parser.add_argument("--steps", default=STUDY_STEPS)
    parser.add_argument("--prompts", default="arc-easy")
    parser.add_argument("--local-dir", help="DIR with step{N} sub-directories (one model)")
    parser.add_argument("--out", default="results")
    args = parser.parse_args()
    out = Path(args.out)
    prompts = load_prompts(args.prompts)
    frames = []
    for name in args.models.split(","):
        steps = resolve_steps(parse_steps(args.steps), name, args.local_dir)
        frames.append(analyze_series(name, steps, prompts, out, local_dir=args.local_dir))
        print(frames[-1][["step", "repetition_frequency", "cosine_similarity"]].to_string(index=False))
    results = pd.concat(frames, ignore_index=True)
    print("wrote", save(plot_series(results), out / "pythia_early.png"))
    name = args.models.split(",")[0]
    early = load_checkpoint_model(name, step=steps[1] if len(steps) > 1 else steps[0], local_dir=args.local_dir)
    late = load_checkpoint_model(name, step=steps[-1], local_dir=args.local_dir)
    batch, task = toy_analyzers_on(late, prompts)
    print(patch_between_models(late, early, batch, hooks="hook_resid_post", task=task).to_string(index=False))


if __name__ == "__main__":
    main()
