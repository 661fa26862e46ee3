"""The task metric every analyzer reports: MSE split masked/observed, or loss/accuracy."""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor


@torch.no_grad()
def output_metrics(task, output: Float[Tensor, "batch pos out"], batch) -> dict[str, float]:
    """LRMC: loss (MSE, all entries), masked_mse, observed_mse, masked_abs_pred.
    Sequence tasks: loss (next-token CE) and accuracy (teacher-forced argmax on the answer)."""
    if task.kind == "regression":
        return {k: v.item() for k, v in task.metrics(output, batch).items()}
    rows = list(task.answer_rows())
    predicted = output[:, rows[0] : rows[-1] + 1].argmax(-1)
    return {
        "loss": task.loss(output, batch).item(),
        "accuracy": (predicted == batch.answers).float().mean().item(),
    }
