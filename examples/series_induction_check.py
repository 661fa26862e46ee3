"""Does a local checkpoint series form induction heads? Three readings per checkpoint, beside
the report's head scores (``plateau-lens report SERIES``):

* the largest previous-token / duplicate-token / induction score over heads
  (:func:`plateau_lens.development.head_scores.causal_head_scores`, TransformerLens
  ``detect_head``'s "mul" measure) on BOS + r + r with r 31 uniform random tokens (the report's
  default input, Olsson et al. 2022's repeated random tokens), and on BOS + t + t with t 31
  tokens of the series' held-out prompts (natural text the model was trained on the kind of);
* the in-context loss on the second copy against the first (mean next-token cross-entropy over
  positions 2-31 of each copy): an induction head copies the token after the earlier match,
  so the second copy's loss falls well below the first's (Olsson et al.'s in-context learning
  signature); without one the two are equal.

    python examples/series_induction_check.py runs/pretraining_series/checkpoints induction.csv

Writes one tidy row per (step, tokens, metric): ``value`` and, for head scores, ``head``
(the head with the largest score).
"""

from __future__ import annotations

import argparse

import pandas as pd
import torch
import torch.nn.functional as F

from plateau_lens.development.head_scores import causal_head_scores, default_tokens
from plateau_lens.io import write_table
from plateau_lens.llm.checkpoints import local_steps
from plateau_lens.llm.reuse import iter_checkpoints

HALF = 31  # tokens per copy: BOS + 2 × 31 = 63 positions, the report's default input length


def copy_losses(model, tokens: torch.Tensor) -> tuple[float, float]:
    """Mean next-token cross-entropy predicting positions 2..HALF of the first copy and of the
    second copy (tokens = BOS + copy + copy)."""
    with torch.no_grad():
        logits = model.bridge(tokens)
    loss = F.cross_entropy(logits[:, :-1].transpose(1, 2).float(), tokens[:, 1:], reduction="none")
    # loss[:, t] predicts token t + 1: the first copy is at positions 1..HALF, the second at
    # HALF + 1..2 HALF; leave out each copy's first token (nothing to match yet)
    return loss[:, 1:HALF].mean().item(), loss[:, HALF + 1:].mean().item()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("series", help="directory of step{N} checkpoints with a prompts.txt")
    parser.add_argument("out", help="CSV file to write")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    steps = sorted(local_steps(args.series))
    with open(f"{args.series}/prompts.txt", encoding="utf-8") as handle:
        prompts = [line for line in handle.read().splitlines() if line.strip()]
    rows, inputs = [], {}
    for step, model in iter_checkpoints(None, steps, local_dir=args.series):
        if not inputs:
            random_tokens = default_tokens(model)  # BOS + r + r, 16 rows
            if random_tokens.shape[1] != 2 * HALF + 1:
                raise ValueError(f"expected {2 * HALF + 1} positions, got {random_tokens.shape[1]}")
            ids = torch.cat([model.tokenizer(p, return_tensors="pt").input_ids[0] for p in prompts])
            text = ids[: len(ids) // HALF * HALF].view(-1, HALF)[: len(random_tokens)]
            inputs = {"random": random_tokens,
                      "text": torch.cat([random_tokens[: len(text), :1], text, text], dim=1)}
        for name, tokens in inputs.items():
            scores = causal_head_scores(model, tokens)
            for metric, group in scores.groupby("metric"):
                top = group.loc[group["value"].idxmax()]
                rows.append({"step": step, "tokens": name, "metric": f"max {metric}",
                             "value": top["value"], "head": f"L{top['layer']}H{top['head']}"})
            first, second = copy_losses(model, tokens)
            rows += [{"step": step, "tokens": name, "metric": "loss first copy", "value": first},
                     {"step": step, "tokens": name, "metric": "loss second copy", "value": second}]
    frame = pd.DataFrame(rows)
    write_table(frame, args.out)
    print(frame.pivot_table(index="step", columns=["tokens", "metric"], values="value")
          .round(3).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
