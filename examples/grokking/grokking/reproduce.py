"""The grokking run as a reproduction entry (``plateau-lens reproduce grokking-modular-addition
--out DIR``): the command line finds this module through the entry-point group
``plateau_lens.reproduce`` of ``examples/grokking/pyproject.toml`` (``pip install -e
examples/grokking``). It trains ``grokking.toml`` (or resumes it in ``DIR/runs/grokking``) and
writes what ``python -m grokking.analyze`` writes."""

from __future__ import annotations

from plateau_lens import register_reproduction, register_study
from plateau_lens.reproduce import Measured

from .train import CONFIG

register_study("grokking", "Nanda, Chan, Lieberum, Smith & Steinhardt, Progress measures for "
                           "grokking via mechanistic interpretability (ICLR 2023, arXiv "
                           "2301.05217); Power et al. 2022 (arXiv 2201.02177)")


@register_reproduction(
    "grokking-modular-addition", study="grokking", figure="Figs. 1, 7",
    shows="a + b mod 113 on 30 % of the pairs, full batch: train and test loss and accuracy, "
          "restricted and excluded loss, the steps where train accuracy reaches 1 and test "
          "accuracy passes 0.9, and each progress measure's onset against the test loss",
    config="examples/grokking/grokking.toml", device="cpu",
    measured=Measured(
        command="python -m grokking.train --out runs/grokking (stopped at step 7 700); "
                "python -m grokking.analyze runs/grokking --out results",
        cost="93 min for 7 700 steps, 1 torch thread on the shared 2-core CPU (load 7-17)",
        status="reproduced: groks. Train accuracy 1.0 at step 160, test accuracy > 0.9 at 6 820 "
               "(Nanda et al.: ~10k epochs); detect_transition on the test loss: plateau to 6 200, "
               "drop at 7 140; restricted loss, sum of squared weights, excluded loss and the key "
               "frequencies' energy share all move 1 150-4 500 steps before that drop (the test "
               "loss itself declines slowly from ~1 400). Seed 0, one run"))
def grokking_modular_addition(context) -> dict:
    from plateau_lens import load_config
    from plateau_lens.training import train_or_resume

    from .analyze import main as analyze

    train = {"device": context.device}
    if context.steps is not None:
        train["steps"] = context.steps
    if context.batch_size is not None:
        train["batch_size"] = context.batch_size
    config = load_config(CONFIG).replace(train=train)
    run_dir = train_or_resume(config, context.run_dir("grokking"), progress=context.progress)
    analyze([str(run_dir), "--out", str(context.out)])
    return {name: context.out / file for name, file in (
        ("figure", "grokking.png"), ("table", "progress.csv"), ("onsets", "onsets.csv"),
        ("summary", "summary.md"))}
