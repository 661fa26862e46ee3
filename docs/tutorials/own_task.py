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
# # Your own task as a plugin
#
# A task is one class: it samples batches and owns its loss, its metrics and what the
# analyzers need (probe targets, the rows where collapse is measured, an optimal attention
# mask where one exists). Once plateau-lens knows its name, a config's `[task]` table trains it
# and every analyzer runs on it unchanged.
#
# > **Registering: `register_task`, with a fallback.** The plugin interface of issue 33
# > (`plateau_lens.register_task`, entry points, and `[task] name = "pkg.mod:Class"` in a
# > config) is documented in [Your own task or analyzer](../../extending/). This page was written
# > while that interface was being merged: where `plateau_lens.register_task` is missing, the
# > cell below falls back to adding the class to `plateau_lens.tasks.TASKS`, the dictionary the
# > registry used before.
#
# Here: **sorting**. The inputs x₁…x_T are drawn from {1…high}, a separator 0 follows, then the
# model writes the inputs in increasing order. Sorting is a classic task with an abrupt drop; we
# train it for a few steps only, to show the plumbing (this page runs at every build of the site).

# %%
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

import plateau_lens as pl
import plateau_lens.plots
from plateau_lens.tasks import SequenceBatch, SequenceTask

try:
    from plateau_lens import register_task          # the plugin interface (issue 33)
except ImportError:                                  # before it: the registry dictionary
    from plateau_lens.tasks import TASKS

    def register_task(name):
        def add(cls):
            TASKS[name] = cls
            return cls
        return add

torch.manual_seed(0)
torch.set_num_threads(1)          # tiny models: one thread is fastest on a shared CPU
workdir = Path(tempfile.mkdtemp(prefix="own_task_"))

# %% [markdown]
# ## The task
#
# `SequenceTask` gives the next-token loss over every position, the metrics
# (`loss`, `teacher_forced_accuracy` on the answer rows), the layout (`prompt_length`,
# `answer_rows()`), batch checks and the probe targets `next_token` / `current_token`. A new
# sequence task defines its fields (a frozen dataclass: they become the config's `[task]`
# fields, validated with their types), its name, its vocabulary and `sample`.

# %%
@register_task("sort")
@dataclass(frozen=True)
class Sort(SequenceTask):
    """Sorting: x₁…x_T uniform in {1..high}, 0, then x sorted increasingly. Vocabulary high + 1."""

    n_inputs: int = 8
    high: int = 16
    low: int = 1
    name = "sort"

    def __post_init__(self) -> None:
        self._check_inputs()              # n_inputs >= 1, high >= low >= 0, with clear errors

    @property
    def d_vocab(self) -> int:
        return self.high + 1

    def sample(self, batch_size: int, generator: torch.Generator, device="cpu") -> SequenceBatch:
        x = torch.randint(self.low, self.high + 1, (batch_size, self.n_inputs), generator=generator)
        separator = torch.zeros((batch_size, 1), dtype=torch.long)
        return self._batch(torch.cat([x, separator, x.sort(-1).values], dim=-1).to(device))


task = Sort()
batch = task.sample(2, torch.Generator().manual_seed(0))
print(batch.tokens)                       # inputs, 0, the sorted inputs
assert (batch.tokens[:, task.prompt_length:] == batch.tokens[:, :task.n_inputs].sort(-1).values).all()

# %% [markdown]
# ## Registered by name
#
# `@register_task("sort")` above made the name known: `make_task("sort", ...)` and a
# `[task] name = "sort"` table both work, and a bad field is refused before any work with the
# field's name and what it allows.

# %%
print(pl.make_task("sort", n_inputs=6))
try:
    pl.make_task("sort", n_input=6)
except ValueError as error:
    print("refused:", error)

# %% [markdown]
# ## Training it from a config
#
# A config is a TOML file (or the same dictionary) with `[task]`, `[model]` and `[train]`
# tables. A tiny model and 60 steps, enough to see the loss move:

# %%
config = {
    "task": {"name": "sort", "n_inputs": 8, "high": 16},
    "model": {"n_layers": 2, "n_heads": 2, "d_model": 32, "d_mlp": 128},
    "train": {"steps": 60, "batch_size": 64, "lr": 3e-3, "log_every": 10, "checkpoint_every": 20},
}
run_dir = pl.train(config, workdir / "sort", progress=False)
run = pl.load_run(run_dir)
print(run.metrics[["step", "loss", "teacher_forced_accuracy", "accuracy"]].to_string(index=False))
figure = pl.plots.loss_curve(run.metrics, ["loss", "accuracy"], run.transition(),
                             title="sorting: loss and greedy accuracy (60 steps)")

# %% [markdown]
# ## Every analyzer, unchanged
#
# The analyzers read the task through the same protocol, so they need nothing more. Sorting has
# no optimal attention mask defined here (`optimal_attention()` returns `None`), so
# `attention_progress` has nothing to measure; the others run:

# %%
model = run.model(run.steps[-1])
held_out = pl.analysis.analysis_batch(run, 128)
sweep = pl.ablation_sweep(model, held_out, progress=False)
print(pl.analysis.wide(sweep.query("metric == 'loss'"), "clean")[["scope", "heads", "clean", "ablated", "change"]])

# %%
collapse = pl.representation_collapse(model, held_out)
print(collapse.query("site == 'pre_lm_h'")[["site", "hook", "metric", "value"]])

# %%
probes = pl.linear_probes(model, pl.analysis.analysis_batch(run, 256, seed=1), held_out)
print(probes.query("metric == 'accuracy'")[["hook", "layer", "target", "value"]].to_string(index=False))

# %% [markdown]
# `pl.analyze_run(run, analyzer)` applies any of them to every checkpoint, with `step` in front:

# %%
over_training = pl.analyze_run(run, pl.representation_collapse, progress=False)
print(over_training.query("site == 'pre_lm_h'")[["step", "value"]].to_string(index=False))
