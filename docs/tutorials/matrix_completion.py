# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Matrix completion: ablation, patching, probes, embeddings
#
# The analyses of Gopalani, Lubana & Hu, *Abrupt Learning in Transformers: A Case Study on
# Matrix Completion* (NeurIPS 2024, arXiv 2410.22244) on a BERT-style encoder trained to fill in
# the masked entries of low-rank matrices. This page runs at every build of the site, so it
# trains `tasks/lrmc_cpu.toml` (4×4 rank 1, the study's BERT at 4 layers × 8 heads, d_model 64)
# for **400 steps only**: the model reaches the plateau (masked MSE ≈ 0.11, predicting 0 for
# every masked entry while copying the observed ones) but is thousands of steps from the drop
# (~4 500-7 000 steps on this config). Every call below is the one you would run at full length;
# the [reproduction page](../../reproduction/) gives what the full runs showed.

# %%
import tempfile
from pathlib import Path

import torch

import plateau_lens as pl
from plateau_lens import plots

torch.set_num_threads(1)          # one thread: fastest for small models on a shared CPU
repo = Path.cwd()
while not (repo / "tasks").is_dir():   # the repository root (the site builds from docs/tutorials/)
    repo = repo.parent
workdir = Path(tempfile.mkdtemp(prefix="matrix_completion_"))

config = pl.load_config(repo / "tasks/lrmc_cpu.toml").replace(
    train={"steps": 400, "log_every": 20, "checkpoint_every": 100})
run = pl.load_run(pl.train(config, workdir / "lrmc", progress=False))
print(config.task)
print(run.metrics[["step", "loss", "masked_mse", "observed_mse"]].iloc[::4].to_string(index=False))

# %% [markdown]
# ## Training curves (the study's Fig. 1)
#
# Masked MSE falls to the plateau at ≈ 0.11 within ~50 steps while observed MSE keeps falling:
# the model copies what it sees and outputs ~0 where it sees MASK. `run.transition()` finds no
# drop in 400 steps.

# %%
print("transition:", run.transition())
figure = plots.mc_training_curves(run.metrics, run.transition(), title="lrmc_cpu, first 400 steps")

# %% [markdown]
# ## Uniform-attention ablation (Table 1)
#
# `ablation_sweep` replaces each head's attention pattern (`blocks.{l}.attn.hook_pattern`) by
# uniform attention, one head and then one whole layer at a time, on a held-out batch. On the
# plateau it barely matters: the model does not use attention yet.

# %%
model = run.model(run.steps[-1])
batch = pl.analysis.analysis_batch(run, 256)
sweep = pl.ablation_sweep(model, batch, progress=False)
print(pl.analysis.wide(sweep.query("metric == 'masked_mse' and scope == 'layer'"), "clean")
      [["heads", "clean", "ablated", "change"]].to_string(index=False))

# %%
ablations = pl.analyze_run(run, lambda model, batch: pl.ablation_sweep(model, batch, progress=False),
                           batch=batch, progress=False)
figure = plots.ablation_vs_step(ablations, "masked_mse", run.transition())

# %% [markdown]
# ## Attention structure (Fig. 4)
#
# The share of each query's attention on keys in its own row, its own column (itself excluded)
# and on observed keys (`hook_pattern`). Uniform attention gives 3/16 ≈ 0.19 for the same row
# and for the same column of a 4×4 matrix. The study finds heads that attend along rows and
# columns after the drop; on the plateau they sit near that chance level.

# %%
structure = pl.attention_structure(model, batch)
print(structure.query("metric in ['same_row', 'same_column', 'observed_keys']")
      .pivot_table(index=["layer", "head"], columns="metric", values="value").round(2).head(8))

# %% [markdown]
# ## Activation patching
#
# `patch_activations` runs the corrupted input −X (the task's default corruption) with one
# head's clean output (`blocks.{l}.attn.hook_z`) patched in at a time; `masked_mse` is against
# the clean truth.

# %%
patching = pl.patch_activations(model, batch, progress=False)
figure = plots.patching_heatmaps(patching, ["masked_mse"], title="clean hook_z patched into −X, step 400")
print(patching.query("condition != 'patched' and metric == 'masked_mse'")[["condition", "value"]])

# %% [markdown]
# ## Linear probes
#
# Least-squares probes of the residual stream after each layer (`blocks.{l}.hook_resid_post`)
# for the entry, its row, the top singular vector and whether it is masked.

# %%
train_batch = pl.analysis.analysis_batch(run, 1024, seed=1)
probes = pl.linear_probes(model, train_batch, batch)
print(probes.query("metric in ['mse', 'accuracy']")
      .pivot_table(index=["target", "metric"], columns="layer", values="value").round(3))

# %% [markdown]
# ## Embeddings
#
# The value-token embeddings on their top principal components, and the positional embeddings'
# t-SNE coloured by row and by column. After the drop the study finds the positions clustering
# by column; at step 400 they do not yet.

# %%
figure = plots.token_embedding_figure(pl.analysis.token_embedding_norms(model),
                                      pl.analysis.token_embedding_pca(model), title="step 400")

# %%
neighbours = pl.analysis.positional_embedding_neighbours(model)
print(neighbours[["metric", "value"]].to_string(index=False))
figure = plots.positional_embedding_figure(pl.analysis.positional_embedding_norms(model),
                                           pl.analysis.positional_embedding_tsne(model), title="step 400")

# %% [markdown]
# ## Copying
#
# The copying test shows the masked entries as the value −0.24 instead of MASK: a model that
# copies what it sees outputs −0.24 there.

# %%
copying = pl.copying_test(model, batch)
print(copying[["fill_value", "metric", "value"]].to_string(index=False))
