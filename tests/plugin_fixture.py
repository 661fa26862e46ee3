"""A user's plugin, written by tests into a temporary directory outside the repository (only
on ``PYTHONPATH``): a task written from the task contract alone (not a subclass of ours), an
analyzer registered beside it, and a ``dist-info`` folder that declares the task as an entry
point of group ``plateau_lens.tasks`` (importlib.metadata finds it on ``sys.path``, no pip)."""

from __future__ import annotations

import os
from pathlib import Path

MODULE = "labtasks"
CLASS = "CumulativeSumMod"
TASK_NAME = "cumsum_mod"
ENTRY_POINT_NAME = "cumsum_mod_ep"
ANALYZER = "answer_margin"

PLUGIN_SOURCE = '''
"""A user's task: the running sum mod p of n digits, x_1..x_n, SEP, then s_1..s_n with
s_i = (x_1 + ... + x_i) mod p; next-token cross-entropy."""
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F

from plateau_lens import register_analyzer, register_task
from plateau_lens.tasks.base import ProbeTarget, SequenceBatch


@register_task("cumsum_mod")
@dataclass(frozen=True)
class CumulativeSumMod:
    n_inputs: int = 4
    modulus: int = 5

    name = "cumsum_mod"
    attention_dir = "causal"
    readout_bias = False
    capabilities = frozenset({"answers"})

    def __post_init__(self):
        for field, value in (("n_inputs", self.n_inputs), ("modulus", self.modulus)):
            if not isinstance(value, int) or value < 2:
                raise ValueError(f"{field} must be an integer >= 2, got {value!r}")

    prompt_length = property(lambda self: self.n_inputs + 1)
    answer_length = property(lambda self: self.n_inputs)
    n_positions = property(lambda self: 2 * self.n_inputs)
    d_vocab = property(lambda self: self.modulus + 1)  # digits, then the separator
    d_vocab_out = property(lambda self: self.modulus + 1)

    def answer_rows(self):
        return range(self.n_inputs, 2 * self.n_inputs)

    def _tokens(self, digits):
        separator = torch.full_like(digits[:, :1], self.modulus)
        return torch.cat([digits, separator, digits.cumsum(-1) % self.modulus], dim=-1)

    def sample(self, batch_size, generator, device="cpu"):
        digits = torch.randint(0, self.modulus, (batch_size, self.n_inputs), generator=generator)
        return SequenceBatch(tokens=self._tokens(digits).to(device),
                             prompt_length=self.prompt_length, task_name=self.name)

    def loss(self, logits, batch):
        return F.cross_entropy(logits.float().flatten(0, 1), batch.targets.flatten())

    def metrics(self, logits, batch):
        rows = self.answer_rows()
        predicted = logits[:, rows.start:rows.stop].argmax(-1)
        return {"loss": self.loss(logits, batch).double(),
                "answer_accuracy": (predicted == batch.answers).double().mean()}

    def check_batch(self, batch):
        if not isinstance(batch, SequenceBatch) or batch.inputs.shape[-1] != self.n_positions:
            raise ValueError(f"batch must be a SequenceBatch of {self.n_positions} positions")

    def default_corruption(self, batch):
        digits = (batch.tokens[:, :self.n_inputs] + 1) % self.modulus
        return SequenceBatch(tokens=self._tokens(digits), prompt_length=self.prompt_length,
                             task_name=self.name)

    def probe_targets(self):
        return {"running_sum": ProbeTarget("classification", lambda task, batch: batch.targets)}

    def collapse_positions(self):
        return list(self.answer_rows())

    def optimal_attention(self):
        return None


@register_analyzer("answer_margin", needs={"answers"})
def answer_margin(model, batch):
    """Mean over answer rows of (correct logit - largest other logit)."""
    task = model.task
    with torch.no_grad():
        logits = model.bridge(batch.inputs).double()
    rows = task.answer_rows()
    logits = logits[:, rows.start:rows.stop]
    correct = logits.gather(-1, batch.answers[..., None])[..., 0]
    others = logits.scatter(-1, batch.answers[..., None], float("-inf")).amax(-1)
    return pd.DataFrame({"metric": ["answer_margin"], "value": [(correct - others).mean().item()]})
'''

ENTRY_POINTS = f"""[plateau_lens.tasks]
{ENTRY_POINT_NAME} = {MODULE}:{CLASS}
"""


def write_plugin(folder: Path) -> Path:
    """The plugin module and its dist-info in ``folder`` (created); returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{MODULE}.py").write_text(PLUGIN_SOURCE)
    info = folder / "labtasks-0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: labtasks\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return folder


def plugin_env(folder: Path, repo: Path) -> dict[str, str]:
    """The environment of a CLI subprocess that sees the repository and the plugin folder."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo), str(folder)]),
            "OMP_NUM_THREADS": "1"}


FIGURE_MODULE = "labfigures"
FIGURE_ENTRY = "lab-cumsum-loss"
FIGURE_STUDY = "lab-notes"

FIGURE_SOURCE = '''
"""A user's reproduction entry: train the cumsum_mod task (labtasks) and save its loss curve."""
import json
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from plateau_lens import load_config, register_reproduction, register_study
from plateau_lens.reproduce import Measured
from plateau_lens.training import train_or_resume

register_study("lab-notes", "Lab notes (2026), the cumulative-sum task")


@register_reproduction("lab-cumsum-loss", study="lab-notes", figure="Fig. 1",
                       shows="loss of cumsum_mod over training", config="(in labfigures.py)",
                       device="cpu", measured=Measured("plateau-lens reproduce lab-cumsum-loss "
                                                       "--out runs", "2 s", "reproduced: a test"))
def cumsum_loss(context):
    config = load_config({"task": {"name": "labtasks:CumulativeSumMod", "n_inputs": 3},
                          "model": {"d_model": 32, "n_layers": 1, "n_heads": 2},
                          "train": {"steps": context.steps or 6, "batch_size": 32,
                                    "eval_batch_size": 16, "log_every": 2,
                                    "checkpoint_every": 2, "device": context.device}})
    run_dir = train_or_resume(config, context.run_dir("cumsum"), progress=context.progress)
    metrics = pd.read_csv(Path(run_dir) / "metrics.csv")[["step", "loss"]]
    table = context.out / "lab-cumsum-loss.csv"
    metrics.to_csv(table, index=False)
    figure, axis = plt.subplots()
    axis.plot(metrics["step"], metrics["loss"], label="training loss")
    axis.set(xlabel="step", ylabel="cross-entropy (nats)")
    axis.legend()
    path = context.out / "lab-cumsum-loss.png"
    figure.savefig(path)
    return {"figure": path, "table": table}
'''

BROKEN_FIGURE_SOURCE = 'raise RuntimeError("the lab server is down")\n'


def write_figure_plugin(folder: Path, source: str = FIGURE_SOURCE, module: str = FIGURE_MODULE) -> Path:
    """A plugin module whose import registers a reproduction entry, and the dist-info that
    names it in the entry-point group ``plateau_lens.reproduce``; returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{module}.py").write_text(source)
    info = folder / f"{module}-0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[plateau_lens.reproduce]\n{module} = {module}\n")
    return folder
