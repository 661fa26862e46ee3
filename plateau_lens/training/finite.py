"""Batches and logged metrics of a finite data set (a task with ``dataset(split)``).

Training batch ``t`` is a pure function of (seed, t), as for online tasks, so a resumed run
trains on exactly the batches an uninterrupted one would: with ``batch_size`` >= the training
split the batch is the whole split (full-batch gradient descent, the grokking setup); else
epoch e = t // k (k = ⌈N / batch_size⌉ batches per epoch) is a permutation of the split
drawn from ``step_generator(seed, e)`` and batch t is its (t mod k)-th slice (the last one
of an epoch may be smaller).
"""

from __future__ import annotations

import math

import torch

from ..metrics import ForwardFn, scalar_metrics
from ..tasks.base import Batch, step_generator
from ..tasks.protocol import SPLITS


def batches_per_epoch(n_examples: int, batch_size: int) -> int:
    return max(1, math.ceil(n_examples / batch_size))


def training_batch(train_set: Batch, batch_size: int, seed: int, step: int) -> Batch:
    """Batch ``step`` of a run seeded ``seed`` on ``train_set`` (see the module docstring)."""
    n = len(train_set)
    if batch_size >= n:
        return train_set
    per_epoch = batches_per_epoch(n, batch_size)
    epoch, index = divmod(step, per_epoch)
    device = train_set.inputs.device
    order = torch.randperm(n, generator=step_generator(seed, epoch), device="cpu").to(device)
    return train_set[order[index * batch_size:(index + 1) * batch_size]]


@torch.no_grad()
def split_metrics(task, splits: dict[str, Batch], forward: ForwardFn) -> dict[str, float]:
    """``<split>_<metric>`` for every split and every metric of ``task.metrics`` (the whole
    split in one pass; the caller puts the network in eval mode)."""
    row = {}
    for split in SPLITS:
        batch = splits[split]
        row.update({f"{split}_{name}": value
                    for name, value in scalar_metrics(task, forward(batch.inputs), batch).items()})
    return row
