"""Matrix-completion study, end to end on our own model (arXiv 2410.22244).

Trains tasks/lrmc_cpu.toml (or loads the run if it exists), finds the plateau and the drop in
the masked-entry MSE, and compares a checkpoint on the plateau with the final one:

* copying: on the plateau masked predictions are ≈ 0 and observed entries are copied;
* uniform-attention ablation of all heads barely matters before the drop and hurts after it;
* heads attend to the query's own row / column after the drop;
* probes read row, column and masking from the hidden states;
* the final model vs nuclear-norm minimisation at p = 0.3.

    python examples/lrmc_abrupt_learning.py [--config tasks/lrmc_cpu.toml] [--out runs/lrmc_cpu]
                                            [--compare PLATEAU_STEP,FINAL_STEP]

``--compare`` picks the two checkpoints by hand (e.g. when the decline is too gradual for
``detect_transition``); otherwise the plateau's midpoint and the last checkpoint are used.

Writes figures and tables into RUN/example/ and prints the comparison table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from plateau_lens import (
    ablate_heads, ablation_sweep, attention_structure,
    compare_to_nuclear_norm, copying_test, linear_probes, load_config, load_run, swap_attention,
)
from plateau_lens.analysis import analysis_batch, analyze_run, mean_attention_patterns
from plateau_lens.analysis.attention_structure import uniform_baseline
from plateau_lens.plots import ablation_vs_step, attention_grid, loss_curve, probe_vs_step, save
from plateau_lens.training import train_or_resume
from plateau_lens.io import write_table


def summarize(model, batch, train_batch) -> dict[str, float]:
    copy = copying_test(model, batch).set_index("metric")["value"]
    ablation = ablate_heads(model, batch, "all")
    ablated = ablation[ablation["condition"] == "ablated"].set_index("metric")["value"]
    structure = attention_structure(model, batch).groupby("metric")["value"].max()
    probes = linear_probes(model, train_batch, batch,
                           targets=["row_index", "column_index", "is_masked", "observed_row"])
    last_hook = f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"
    last = probes[probes["hook"] == last_hook].set_index(["target", "metric"])["value"]
    return {
        "masked MSE": copy["masked_mse"], "observed MSE": copy["observed_mse"],
        "mean |pred| on masked": copy["masked_abs_pred"],
        "masked MSE, all heads uniform": ablated["masked_mse"],
        "max head same-row share": structure["same_row"],
        "max head same-column share": structure["same_column"],
        "probe row-index acc (last layer)": last[("row_index", "accuracy")],
        "probe column-index acc (last layer)": last[("column_index", "accuracy")],
        "probe is-masked acc (last layer)": last[("is_masked", "accuracy")],
        "probe observed-row cosine (last layer)": last[("observed_row", "cosine")],
    }


def step_pair(text: str) -> tuple[int, int]:
    """``--compare`` value "PLATEAU_STEP,FINAL_STEP" -> two non-negative ints."""
    parts = text.split(",")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise argparse.ArgumentTypeError(
            f"--compare needs two non-negative steps as PLATEAU_STEP,FINAL_STEP, got {text!r}")
    return int(parts[0]), int(parts[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="tasks/lrmc_cpu.toml")
    parser.add_argument("--out", default="runs/lrmc_cpu")
    parser.add_argument("--nuclear-matrices", type=int, default=128)
    parser.add_argument("--compare", type=step_pair, default=None, metavar="PLATEAU_STEP,FINAL_STEP",
                        help="the two checkpoints to compare (default: from the detected transition)")
    args = parser.parse_args()
    out = Path(args.out)
    train_or_resume(load_config(args.config), out)  # resumes a run already in --out
    run = load_run(out)
    figures = out / "example"
    transition = run.transition("masked_mse")
    print("wrote", save(loss_curve(run.metrics, ["loss", "masked_mse", "observed_mse"], transition,
                                   title="LRMC: MSE over training"), figures / "loss_curve.png"))
    print("transition:", transition)
    if args.compare:
        pre, post = (run.nearest_step(step) for step in args.compare)
    elif transition is None:
        print("no plateau-and-drop detected in masked MSE: pass --compare PLATEAU_STEP,FINAL_STEP")
        return
    else:
        pre = run.nearest_step((transition.plateau_start + transition.plateau_end) // 2)
        post = run.steps[-1]
    batch = analysis_batch(run, 256)
    train_batch = analysis_batch(run, 1024, seed=run.config.train.seed + 1)
    table = pd.DataFrame({f"plateau (step {pre})": summarize(run.model(pre), batch, train_batch),
                          f"final (step {post})": summarize(run.model(post), batch, train_batch)})
    baseline = uniform_baseline(run.task, batch.observed.float().mean().item())
    table["uniform-attention value"] = pd.Series({
        "max head same-row share": baseline["same_row"],
        "max head same-column share": baseline["same_column"]})
    nuclear = compare_to_nuclear_norm(run.model(post), p_values=[run.task.p_mask],
                                      n_matrices=args.nuclear_matrices, progress=False)
    for _, row in nuclear[nuclear["metric"] == "masked_mse"].iterrows():
        table.loc[f"masked MSE at p={row.p_mask}: {row.condition}", f"final (step {post})"] = row.value
    print(table.round(4).to_string())
    write_table(table.reset_index(names="quantity"), figures / "comparison.csv")
    write_table(swap_attention(run.model(pre), run.model(post), batch), figures / "swap_attention.csv")

    steps = sorted({pre, post} | ({run.nearest_step(transition.drop_step),
                                   run.nearest_step(transition.drop_end)} if transition else set()))
    patterns = {step: mean_attention_patterns(run.model(step), batch) for step in steps}
    print("wrote", save(attention_grid(patterns), figures / "attention_maps.png"))
    series = run.steps[:: max(1, len(run.steps) // 25)]
    ablations = analyze_run(run, ablation_sweep, steps=series, batch=batch)
    write_table(ablations, figures / "ablation_over_training.csv")
    print("wrote", save(ablation_vs_step(ablations, "masked_mse", transition), figures / "ablation.png"))
    probes = analyze_run(run, lambda m, b: linear_probes(m, train_batch, b), steps=series, batch=batch)
    write_table(probes, figures / "probes_over_training.csv")
    print("wrote", save(probe_vs_step(probes, "accuracy", transition), figures / "probes_accuracy.png"))
    print("wrote", save(probe_vs_step(probes, "mse", transition), figures / "probes_mse.png"))


if __name__ == "__main__":
    main()
