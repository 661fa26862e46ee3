"""The copying test: does the model copy observed entries and output ≈0 for masked ones?"""

from __future__ import annotations

import pandas as pd
import torch

from .hooks import check_task_batch, model_task


@torch.no_grad()
def copying_test(model, batch, fill_value: float = 0.5, task=None) -> pd.DataFrame:
    """Observed-entry MSE, mean |output| on masked entries, and what happens when the masked
    entries are shown as the fixed value ``fill_value`` instead of MASK: ``fill_copy_mse`` is
    the MSE of those outputs to ``fill_value`` (≈0: the model copies its input) and
    ``fill_true_mse`` to the true entries (≈ masked MSE: it completes from the others)."""
    task = model_task(model, task)
    if task.kind != "regression":
        raise ValueError(f"copying_test is defined for LRMC, not task {task.name!r}")
    check_task_batch(task, batch)
    prediction = task.predictions(model(batch.inputs)).float()
    masked = ~batch.observed
    filled_matrix = torch.where(masked, torch.full_like(batch.matrix, fill_value), batch.matrix)
    filled = task.with_inputs(batch, matrix=filled_matrix,
                              observed=torch.ones_like(batch.observed))
    filled_prediction = task.predictions(model(filled.inputs)).float()
    row = {
        "observed_mse": ((prediction - batch.matrix)[batch.observed] ** 2).mean().item(),
        "masked_mse": ((prediction - batch.matrix)[masked] ** 2).mean().item(),
        "masked_abs_pred": prediction[masked].abs().mean().item(),
        "fill_value": fill_value,
        "fill_copy_mse": ((filled_prediction - fill_value)[masked] ** 2).mean().item(),
        "fill_true_mse": ((filled_prediction - batch.matrix)[masked] ** 2).mean().item(),
    }
    return pd.DataFrame([row])


__all__ = ["copying_test"]
