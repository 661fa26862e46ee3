"""Pretrain a small GPT-NeoX (Pythia's architecture) from scratch on local text, save a
checkpoint series at Pythia's log-spaced schedule, and measure the study's repetition
frequency and representation collapse over it with ``plateau-lens llm`` — all offline, on the
CPU.

Default: a 3-layer GPT-NeoX (d_model 128, 4 heads, MLP 512, 1.6 M parameters) with a
4096-token byte-level BPE like Pythia's, trained on the English documentation text that ships
with Python (pydoc topics and standard-library docstrings, ``--text DIR`` for your own
``.txt`` files), batch 8 × 128 tokens, AdamW 1e-3 (35 warm-up steps, cosine to 1e-4),
checkpoints at 0, 1, 2, 4, ..., 512 and every 500 from 1000 to 3500 (step 0 is the random
init; Pythia's own schedule is the same with every 1000).
Prompts: the first line of 100 held-out documents (not trained on), or ``--prompts FILE`` /
``--prompts arc-easy``.

    python examples/pretraining_series.py                       # ~12 min on one CPU core
    python examples/pretraining_series.py --last 512            # to step 512 only
    python examples/pretraining_series.py --analyse-only        # re-run the analysis only

Writes
    DIR/step{N}/            save_pretrained checkpoints (model + tokenizer) for every step
    DIR/pretrain.json       configuration, parameters, tokens, wall time, training loss
    DIR/prompts.txt         the held-out prompts used
    OUT/<label>.csv         repetition frequency and cosine similarity per step
    OUT/<label>_generations.csv   every prompt's generated ids and text per step
    OUT/<label>.png         one figure: both metrics against the step
(DIR defaults to runs/pretraining_series/checkpoints, OUT to runs/pretraining_series, label
``docs-neox``.)

Then ``plateau-lens report DIR --out REPORT --threads 1`` puts head scores, essential dynamics
and the LLC beside repetition and collapse on one (log) step axis, and
``python examples/series_induction_check.py DIR induction.csv`` checks for induction heads.
Found on the default series (docs/development.md, "A Pythia-style series"): repetition and
collapse jump at step 8 and fall between 128 and 512; previous-token heads form in layer 1
from ~270 steps (L1H2 to 0.29); no induction head forms by step 3 500 (largest induction score
0.011-0.012 on repeated random tokens at every checkpoint, the random init's level).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import torch

from plateau_lens.cli import main as plateau_lens_main
from plateau_lens.io import write_text
from plateau_lens.llm.pretrain import (PretrainConfig, pretrain_series, prompts_from_documents,
                                       python_documentation, pythia_like_schedule,
                                       split_documents, text_documents)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/pretraining_series", help="results directory")
    parser.add_argument("--checkpoints", help="series directory (default OUT/checkpoints)")
    parser.add_argument("--label", default="docs-neox", help="series name in result files")
    parser.add_argument("--text", help="directory of .txt files (default: Python's own docs)")
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--d-mlp", type=int, default=512)
    parser.add_argument("--vocab", type=int, default=4096, help="BPE vocabulary size")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup-steps", type=int, default=35)
    parser.add_argument("--last", type=int, default=3500, help="last training step")
    parser.add_argument("--every", type=int, default=500,
                        help="checkpoint spacing after the powers of two")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prompts", default="held-out",
                        help="'held-out' (first lines of held-out documents), a file or arc-easy")
    parser.add_argument("--n-prompts", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest "
                        "for this size on a shared 2-core machine; measured)")
    parser.add_argument("--analyse-only", action="store_true",
                        help="skip pretraining; analyse the checkpoints already in DIR")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    series = Path(args.checkpoints) if args.checkpoints else out / "checkpoints"
    started = time.perf_counter()
    documents = text_documents(args.text) if args.text else python_documentation()
    train, held_out = split_documents(documents, held_out=0.02, seed=args.seed)
    if args.prompts == "held-out":
        prompts = series / "prompts.txt"
        write_text(prompts, "\n".join(prompts_from_documents(held_out, args.n_prompts)) + "\n")
    else:
        prompts = args.prompts
    if not args.analyse_only:
        config = PretrainConfig(n_layers=args.layers, d_model=args.d_model, n_heads=args.heads,
                                d_mlp=args.d_mlp, vocab_size=args.vocab, seq_len=args.seq_len,
                                batch_size=args.batch_size, lr=args.lr,
                                warmup_steps=args.warmup_steps, steps=args.last,
                                checkpoint_steps=pythia_like_schedule(args.last, args.every),
                                seed=args.seed)
        summary = pretrain_series(series, train, config)
        logging.info("pretrained %.2f M parameters on %d tokens (%d characters) in %.0f s",
                     summary["parameters"] / 1e6, summary["tokens"], summary["characters"],
                     summary["wall_seconds"])
    analysis_started = time.perf_counter()
    code = plateau_lens_main(["llm", args.label, "--local-dir", str(series), "--prompts",
                              str(prompts), "--n-prompts", str(args.n_prompts), "--out", str(out)])
    logging.info("analysis %.0f s; total wall time %.0f s",
                 time.perf_counter() - analysis_started, time.perf_counter() - started)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
