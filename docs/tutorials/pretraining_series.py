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
# # A Pythia-style checkpoint series, offline
#
# The loss-plateau study (Gopalani & Hu, NeurIPS 2025, arXiv 2506.13688, Figs. 8 and 23-25)
# measures two things over the early checkpoints of Pythia and OLMo: the **repetition
# frequency** of 8 greedy tokens (the share of equal adjacent pairs) and the **cosine
# similarity** of the last layer's hidden states at those 8 steps (representation collapse).
# Pythia's checkpoints live on the Hugging Face hub; this page builds a series of its own,
# offline: a small GPT-NeoX (Pythia's architecture) pretrained from scratch on the English
# documentation that ships with Python, saved with `save_pretrained` at Pythia's log-spaced
# steps 0, 1, 2, 4, …, then analysed with the same code that reads Pythia.
#
# It runs at every build of the site, so the model is tiny (2 layers, d_model 64) and trained
# for 128 steps on a slice of the text. `python examples/pretraining_series.py` is the full
# version (3 layers, d_model 128, 3 500 steps, ~12 minutes); its table is on
# [Pretrained checkpoints](../../pretrained/#a-pretraining-series-of-your-own-offline).

# %%
import tempfile
from pathlib import Path

import IPython.display
import torch
import transformers

import plateau_lens as pl
import plateau_lens.plots
from plateau_lens.llm import generation_metrics
from plateau_lens.llm.pretrain import (PretrainConfig, pretrain_series, prompts_from_documents,
                                       python_documentation, split_documents)
from plateau_lens.llm.series import analyze_series, plot_series

torch.set_num_threads(1)
transformers.utils.logging.disable_progress_bar()   # no loading bars in the rendered page
workdir = Path(tempfile.mkdtemp(prefix="pretraining_series_"))

documents = python_documentation()
train_documents, held_out = split_documents(documents, held_out=0.02, seed=0)
train_documents = train_documents[:400]                    # a slice: this page must run fast
prompts = prompts_from_documents(held_out, 20)             # first lines of held-out entries
print(len(documents), "documents;", sum(map(len, train_documents)), "characters trained on")
print(prompts[:3])

# %% [markdown]
# ## Pretraining, with checkpoints at Pythia's early steps

# %%
config = PretrainConfig(n_layers=2, d_model=64, n_heads=4, d_mlp=256, vocab_size=1024,
                        seq_len=64, batch_size=8, warmup_steps=10, steps=128)
series = workdir / "checkpoints"
summary = pretrain_series(series, train_documents, config)
print(config.save_steps())                                 # pythia_like_schedule(128)
print(sorted(path.name for path in series.iterdir()))

# %% [markdown]
# ## One checkpoint: the study's measure
#
# `load_checkpoint_model(local_dir=...)` reads a `save_pretrained` folder the way it reads a
# hub revision, and returns a handle with the `TransformerBridge` (`model.bridge`) and the
# checkpoint's own tokenizer (`model.tokenizer`, which adds no BOS, as the study tokenises).
# `generation_metrics` follows the study's code: exactly 8 greedy tokens with the EOS masked.

# %%
model = pl.load_checkpoint_model(local_dir=series, step=16)
print(type(model.bridge).__name__, type(model.tokenizer).__name__)
per_prompt = generation_metrics(model, prompts)
print(per_prompt[["prompt", "repetition_frequency", "cosine_similarity"]].head().to_string(index=False))

# %% [markdown]
# ## The whole series
#
# `analyze_series` (what `plateau-lens llm NAME --local-dir DIR` runs) loads one checkpoint at a
# time and writes the means per step, every generation, and a figure with the step on a symlog
# axis.

# %%
results = analyze_series("docs-neox-tiny", config.save_steps(), prompts, workdir / "results",
                         local_dir=series, progress=False)
print(results[["step", "repetition_frequency", "cosine_similarity"]].round(3).to_string(index=False))

# %%
figure = plot_series(results, title="tiny GPT-NeoX on Python's documentation (20 held-out prompts)")
IPython.display.Image(filename=str(pl.plots.save(figure, workdir / "series.png")))

# %% [markdown]
# The full example shows the study's pattern on its series (repetition and collapse rise early,
# from step 8 to 128, then fall by step 512). This tiny one trains for 128 steps only, so read
# its table for what it is: whether, and where, repetition and cosine similarity rise above
# the random init's.
#
# ## The toy-model analyzers on a pretrained bridge
#
# The analyzers take a plain bridge with `task=`: `prompt_batch` tokenises prompts with the
# checkpoint's tokenizer and returns the batch and a task whose metrics are next-token loss and
# accuracy.

# %%
from plateau_lens.llm.prompt_task import prompt_batch

model = pl.load_checkpoint_model(local_dir=series, step=128)
batch, task = prompt_batch(model, held_out[:200], length=12)
print(pl.analysis.wide(pl.ablate_heads(model.bridge, batch, [(1, 0), (1, 1)], task=task), "clean")
      [["heads", "metric", "clean", "ablated", "change"]].to_string(index=False))
