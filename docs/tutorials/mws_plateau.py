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
# # The MWS plateau, from training to every analyzer
#
# The moving-window sum of Gopalani & Hu, *What Happens During the Loss Plateau?
# Understanding Abrupt Learning in Transformers* (NeurIPS 2025, arXiv 2506.13688): inputs
# x₁…x_T, a separator, then yᵢ = (x_{i−1} + xᵢ) mod 17 (y₁ = x₁). The study trains a 1-layer,
# 1-head linear-attention GPT and sees the loss sit on a plateau, with the first output learned
# early, repeated output tokens and collapsed hidden states, before it drops suddenly.
#
# This page runs at every build of the site, so it uses a smaller model than
# `tasks/mws.toml`: T = 8 inputs, d_model 64, batch 32, Adam lr 1e-3 (the study: T = 16,
# d_model 256, batch 256, lr 1e-4), for 600 steps. At this size the plateau is short but all
# there; `plateau-lens reproduce lp-fig2-mws` runs the study's size.

# %%
import tempfile
from pathlib import Path

import torch

import plateau_lens as pl
from plateau_lens import plots
from plateau_lens.analysis.attention_structure import mean_attention_patterns

torch.set_num_threads(1)          # one thread: fastest for small models on a shared CPU
repo = Path.cwd()
while not (repo / "tasks").is_dir():   # the repository root (the site builds from docs/tutorials/)
    repo = repo.parent
workdir = Path(tempfile.mkdtemp(prefix="mws_plateau_"))

config = pl.load_config(repo / "tasks/mws.toml").replace(
    task={"n_inputs": 8},
    model={"d_model": 64, "d_mlp": 256},
    train={"batch_size": 32, "eval_batch_size": 32, "lr": 1e-3, "steps": 600,
           "log_every": 10, "checkpoint_every": 50})
run = pl.load_run(pl.train(config, workdir / "mws", progress=False))
print(run.steps)

# %% [markdown]
# ## The plateau and the drop
#
# `run.transition()` finds them in the loss curve alone (`pl.detect_transition`). The training
# log already holds the study's measures at every logged step: the accuracy of the first output
# and of the later ones (by greedy generation), the repetition frequency of the generated
# outputs beside the data's, the cosine similarity of the last hidden states over the answer
# rows (representation collapse) and the attention progress.

# %%
transition = run.transition()
print(transition.describe() if transition else "no plateau-and-drop found")
figure = plots.plateau_dynamics({"MWS, T = 8": run.metrics}, transitions={"MWS, T = 8": transition},
                                title="moving-window sum: the loss-plateau study's measures")

# %% [markdown]
# ## Analyzers over every checkpoint
#
# Each analyzer takes a model and a batch and returns a tidy table; `pl.analyze_run` applies it
# to every checkpoint with `step` in front. A held-out batch, seeded, serves for all of them.

# %%
batch = pl.analysis.analysis_batch(run, 256)
plateau_step = max(s for s in run.steps if transition and s <= transition.plateau_end)
final_step = run.steps[-1]
print("on the plateau:", plateau_step, " after the drop:", final_step)

# %% [markdown]
# **Representation collapse** at the study's five sites (`pre_att_h`, `post_att_h`,
# `post_att_res_h`, `post_mlp_h`, `pre_lm_h`): the mean pairwise cosine similarity of the hidden
# states over the answer rows. On the plateau the sites from the attention output on collapse.

# %%
collapse = pl.analyze_run(run, pl.representation_collapse, batch=batch, progress=False)
print(collapse.query("step in [@plateau_step, @final_step]")
      .pivot_table(index="site", columns="step", values="value").round(3))
figure = plots.collapse_by_site(collapse, transition, title="representation collapse by site")

# %% [markdown]
# **Repetition**: greedy generation of the answer, the share of equal adjacent outputs against
# the data's. **Attention progress**: the attention mass on the optimal keys (the window's two
# inputs), Σ|A|·M / Σ|A| over the answer rows.

# %%
repetition = pl.analyze_run(run, pl.repetition, batch=batch, progress=False)
progress = pl.analyze_run(run, pl.attention_progress, batch=batch, progress=False)
shown = ["accuracy_pos_0", "accuracy_pos_1", "accuracy", "repetition_frequency", "repetition_frequency_data"]
print(repetition.query("step in [@plateau_step, @final_step] and metric in @shown")
      .pivot_table(index="metric", columns="step", values="value").round(3))
print(progress.query("step in [@plateau_step, @final_step]")[["step", "layer", "metric", "value"]].to_string(index=False))

# %% [markdown]
# **Attention maps** (`blocks.0.attn.hook_pattern`, batch mean) on the plateau and after the
# drop: the optimal pattern is the two diagonals from the answer rows to the window's inputs.

# %%
patterns = {step: mean_attention_patterns(run.model(step), batch)
            for step in (0, plateau_step, final_step)}
figure = plots.attention_grid(patterns, title="batch-mean attention, MWS (query rows × key columns)")

# %% [markdown]
# **Uniform-attention ablation**: the head's pattern replaced by uniform causal attention. On
# the plateau it costs little; after the drop the model needs its attention.

# %%
ablation = pl.analyze_run(run, lambda model, batch: pl.ablate_heads(model, batch, "all"),
                          steps=[plateau_step, final_step], batch=batch, progress=False)
print(pl.analysis.wide(ablation.query("metric == 'loss'"), "clean")[["step", "clean", "ablated", "change"]]
      .to_string(index=False))

# %% [markdown]
# **Linear probes** of the residual stream for the current and the next token; **patching**
# the final checkpoint's attention output into the plateau checkpoint, on the same input.

# %%
probe_train = pl.analysis.analysis_batch(run, 1024, seed=1)
probes = pl.analyze_run(run, lambda model, batch: pl.linear_probes(model, probe_train, batch),
                        steps=[0, plateau_step, final_step], batch=batch, progress=False)
print(probes.query("metric == 'accuracy'").pivot_table(index=["target", "hook"], columns="step", values="value")
      .round(3))

# %%
patched = pl.patch_between_models(run.model(final_step), run.model(plateau_step), batch,
                                  hooks="attn.hook_z", progress=False)
print(patched.query("metric == 'loss'")[["condition", "hook", "value"]].to_string(index=False))

# %% [markdown]
# `source` is the final checkpoint, `target` the plateau one, `patched` the plateau checkpoint
# with the final one's attention output (`hook_z`) on the same input.
#
# What to read in the tables above: whether, as in the study's Fig. 2, the first output is
# learned on the plateau while the later ones are not, the outputs repeat more than the data's
# and the hidden states collapse while the loss is flat, and attention moves onto the optimal
# keys as the loss drops. The numbers above are this run's; the study's size, on the CPU and on
# a GPU, is on the [reproduction page](../../reproduction/).
