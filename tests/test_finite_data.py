"""Finite data sets (issue 33): a task with a fixed training split and a held-out split,
trained full batch or in shuffled epochs, both splits' metrics logged, resumable.

The task here is a small modular sum written in this file (not the grokking example), so
the trainer's finite path is tested on its own; the expected numbers are recomputed with
plain torch from the saved checkpoints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from plateau_lens import load_run
from plateau_lens import register_task
from plateau_lens.tasks import make_task
from plateau_lens.tasks.base import SequenceBatch, check_batch_type
from plateau_lens.tasks.protocol import FiniteTask, is_finite
from plateau_lens.training import resume, train
from plateau_lens.training.finite import training_batch


@dataclass(frozen=True)
class TinySum:
    """a + b mod p on a fixed split: rows with (a·p + b) % 3 != 0 train, the rest held out."""

    p: int = 7
    name: ClassVar[str] = "tiny_sum"
    attention_dir: ClassVar[str] = "causal"
    readout_bias: ClassVar[bool] = False
    n_positions: ClassVar[int] = 3
    capabilities: ClassVar[frozenset[str]] = frozenset({"finite_data"})

    @property
    def d_vocab(self) -> int:
        return self.p + 1

    @property
    def d_vocab_out(self) -> int:
        return self.p

    def dataset(self, split: str, device: Any = "cpu") -> SequenceBatch:
        pairs = torch.cartesian_prod(torch.arange(self.p), torch.arange(self.p))
        rows = torch.arange(len(pairs))
        keep = rows % 3 != 0 if split == "train" else rows % 3 == 0
        a, b = pairs[keep, 0], pairs[keep, 1]
        tokens = torch.stack([a, b, torch.full_like(a, self.p), (a + b) % self.p], 1)
        return SequenceBatch(tokens=tokens.to(device), prompt_length=3)

    def sample(self, batch_size, generator, device="cpu"):
        data = self.dataset("train", device)
        return data[torch.randint(len(data), (batch_size,), generator=generator)]

    def loss(self, output, batch):
        return F.cross_entropy(output[:, -1].double(), batch.answers[:, 0]).float()

    def metrics(self, output, batch):
        accuracy = (output[:, -1].argmax(-1) == batch.answers[:, 0]).double().mean()
        return {"loss": self.loss(output, batch), "accuracy": accuracy}

    def check_batch(self, batch):
        check_batch_type(self, batch, SequenceBatch)

    def default_corruption(self, batch):
        raise ValueError("no corruption")

    def probe_targets(self):
        return {}

    def collapse_positions(self):
        return []

    def optimal_attention(self):
        return None


@pytest.fixture
def tiny_sum():
    register_task("tiny_sum", replace=True)(TinySum)
    return TinySum()


def _config(batch_size: int, steps: int = 6) -> dict:
    return {"task": {"name": "tiny_sum"},
            "model": {"d_model": 16, "n_heads": 2, "attention": "softmax", "normalization": "none",
                      "act_fn": "relu"},
            "train": {"steps": steps, "batch_size": batch_size, "lr": 3e-3, "optimizer": "adamw",
                      "weight_decay": 0.5, "weight_decay_scope": "all", "betas": [0.9, 0.98],
                      "log_every": 1, "checkpoint_every": 3, "checkpoint_log_spaced": False}}


def test_task_is_finite(tiny_sum):
    assert isinstance(tiny_sum, FiniteTask) and is_finite(tiny_sum)
    assert not is_finite(make_task("mws"))


def test_epochs_cover_the_split_once_each():
    """batch_size 10 on 32 examples: 4 batches per epoch (10, 10, 10, 2) that together hold
    every example exactly once; the next epoch is another order; full batch = the split."""
    train_set = TinySum().dataset("train")
    n = len(train_set)
    assert n == 32
    for epoch in range(2):
        seen = torch.cat([training_batch(train_set, 10, seed=5, step=epoch * 4 + i).tokens
                          for i in range(4)])
        assert seen.shape[0] == n
        assert sorted(map(tuple, seen.tolist())) == sorted(map(tuple, train_set.tokens.tolist()))
    first = training_batch(train_set, 10, seed=5, step=0).tokens
    assert not torch.equal(first, training_batch(train_set, 10, seed=5, step=4).tokens)
    assert torch.equal(first, training_batch(train_set, 10, seed=5, step=0).tokens)
    assert training_batch(train_set, 64, seed=5, step=3) is train_set


def _split_metrics_by_hand(network, split_batch) -> tuple[float, float]:
    with torch.no_grad():
        logits = network(split_batch.inputs)[:, -1].double()
    answers = split_batch.answers[:, 0]
    loss = -logits.log_softmax(-1)[torch.arange(len(answers)), answers].mean().item()
    return loss, (logits.argmax(-1) == answers).double().mean().item()


def test_both_splits_logged_and_match_a_recomputation(tiny_sum, tmp_path):
    """Row s is measured on checkpoint s's weights (docs/run-directory.md). Rows 3 and 6 are
    recomputed from checkpoints 3 and 6 with plain torch on each whole split."""
    train(_config(batch_size=10), tmp_path / "run", progress=False)
    run = load_run(tmp_path / "run")
    metrics = run.metrics.set_index("step")
    for name in ("train_loss", "train_accuracy", "test_loss", "test_accuracy"):
        assert name in metrics
    for row, checkpoint in ((3, 3), (6, 6)):
        network = run.network(checkpoint)
        for split in ("train", "test"):
            loss, accuracy = _split_metrics_by_hand(network, tiny_sum.dataset(split))
            assert metrics.loc[row, f"{split}_loss"] == pytest.approx(loss, rel=1e-5)
            assert metrics.loc[row, f"{split}_accuracy"] == pytest.approx(accuracy)
    assert metrics["train_loss"].iloc[-1] < metrics["train_loss"].iloc[0]


@pytest.mark.parametrize("batch_size", [64, 10], ids=["full_batch", "epochs"])
def test_resumed_run_equals_uninterrupted(tiny_sum, tmp_path, batch_size):
    config = _config(batch_size)
    train(config, tmp_path / "whole", progress=False)
    train(config, tmp_path / "split", progress=False, stop_at=3)
    resume(tmp_path / "split", progress=False)
    whole = pd.read_csv(tmp_path / "whole" / "metrics.csv")
    split = pd.read_csv(tmp_path / "split" / "metrics.csv")
    pd.testing.assert_frame_equal(whole, split)
    a, b = load_run(tmp_path / "whole").network(6), load_run(tmp_path / "split").network(6)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name


def test_adamw_on_every_parameter_with_betas_matches_torch():
    """weight_decay_scope = "all" and betas: the same update as torch.optim.AdamW over
    model.parameters() (Nanda et al.'s optimizer), embeddings and biases decayed too."""
    import copy

    from plateau_lens import ModelConfig, build_network
    from plateau_lens.config import TrainConfig
    from plateau_lens.training.optimizers import build_optimizer

    task = make_task("mws")
    ours = build_network(task, ModelConfig(d_model=16, n_heads=2, normalization="none"), seed=0)
    theirs = copy.deepcopy(ours)
    train_config = TrainConfig(optimizer="adamw", lr=1e-2, weight_decay=1.0,
                               weight_decay_scope="all", betas=[0.9, 0.98])
    optimizer = build_optimizer(ours, train_config, torch.device("cpu"))
    reference = torch.optim.AdamW(theirs.parameters(), lr=1e-2, betas=(0.9, 0.98), weight_decay=1.0)
    batch = task.sample(8, torch.Generator().manual_seed(0))
    for network, opt in ((ours, optimizer), (theirs, reference)):
        for _ in range(3):
            opt.zero_grad()
            task.loss(network(batch.inputs), batch).backward()
            opt.step()
    for (name, a), (_, b) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert torch.allclose(a, b, atol=1e-7), name
