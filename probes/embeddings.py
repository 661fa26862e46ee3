"""Embedding analyses of an LRMC run (the study's ``embed.py``): token-embedding norms and
PCA by value range, positional-embedding norms and t-SNE by column / row at each chosen
checkpoint, "token progress" (each checkpoint's token embeddings on the last one's top-2
PCs), and the permuted-positions experiment.

    python probes/embeddings.py runs/NAME [--steps 4000,10000,14000,16000,20000,50000]

Writes embeddings.csv, token_progress.csv, permuted_positions.csv and figures into
RUN/probes (or --out).
"""

import sys

import pandas as pd

from plateau_lens.analysis import (analysis_batch, analyze_run, permuted_positions,
                                   positional_embedding_neighbours, positional_embedding_norms,
                                   positional_embedding_tsne, token_embedding_norms,
                                   token_embedding_pca, token_progress)
from plateau_lens.io import write_table
from plateau_lens.plots import (permuted_positions_figure, positional_embedding_figure, save,
                                token_embedding_figure, token_progress_figure)
from plateau_lens.script_utils import open_run, run_arguments, run_script


def main() -> None:
    args = run_arguments(__doc__).parse_args()
    run, steps, out = open_run(args)
    analyzers = {"token_norm": token_embedding_norms, "token_pca": token_embedding_pca,
                 "position_norm": positional_embedding_norms,
                 "position_tsne": positional_embedding_tsne,
                 "position_neighbours": positional_embedding_neighbours}
    table = analyze_run(run, analyzers, steps=steps)
    write_table(table, out / "embeddings.csv")
    for step in steps:
        at = table[table["step"] == step]
        part = {name: at[at["analyzer"] == name].drop(columns=["step", "analyzer"]) for name in analyzers}
        print("wrote", save(token_embedding_figure(part["token_norm"], part["token_pca"], f"step {step}"),
                            out / f"token_embeddings_{step}.png"))
        print("wrote", save(positional_embedding_figure(part["position_norm"], part["position_tsne"],
                                                        f"step {step}"),
                            out / f"positional_embeddings_{step}.png"))
    progress = token_progress(run, steps)
    write_table(progress, out / "token_progress.csv")
    print("wrote", save(token_progress_figure(progress), out / "token_progress.png"))
    batch = analysis_batch(run, args.batch_size)
    permuted = analyze_run(run, lambda model, batch: permuted_positions(model, batch, progress=False),
                           steps=steps, batch=batch)
    write_table(permuted, out / "permuted_positions.csv")
    print("wrote", save(permuted_positions_figure(permuted), out / "permuted_positions.png"))
    summary = permuted[permuted["metric"] == "masked_mse"].groupby(
        ["step", "condition", "scope"], dropna=False)["value"].mean()
    with pd.option_context("display.width", 160):
        print(summary.unstack(["condition", "scope"]))


if __name__ == "__main__":
    sys.exit(run_script(main))
