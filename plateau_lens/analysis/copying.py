"""The copying test: does the model copy observed entries and output ≈0 for masked ones?"""

from __future__ import annotations

import pandas as pd
import torch

from .hooks import prepare, require
from .schema import metric_records, tidy


@torch.no_grad()
def copying_test(model, batch, fill_value: float = 0.5, task=None) -> pd.DataFrame:
    """Observed-entry MSE, mean |output| on masked entries, and what happens when the masked
    entries are shown as the fixed value ``fill_value`` instead of MASK: ``fill_copy_mse`` is
    the MSE of those outputs to ``fill_value`` (≈0: the model copies its input) and
    ``fill_true_mse`` to the true entries (≈ masked MSE: it completes from the others).
    Rows (see :mod:`.schema`): labelled ``fill_value``."""
    model = prepare(model, batch, task)
    require(model, "m", "copying_test")
    task = model.task
    prediction = task.predictions(model(batch.inputs)).double()
    truth = batch.matrix.double()
    masked = ~batch.observed
    filled_matrix = torch.where(masked, torch.full_like(batch.matrix, fill_value), batch.matrix)
    filled = task.with_inputs(batch, matrix=filled_matrix,
                              observed=torch.ones_like(batch.observed))
    filled_prediction = task.predictions(model(filled.inputs)).double()
    metrics = {
        "observed_mse": ((prediction - truth)[batch.observed] ** 2).mean().item(),
        "masked_mse": ((prediction - truth)[masked] ** 2).mean().item(),
        "masked_abs_pred": prediction[masked].abs().mean().item(),
        "fill_copy_mse": ((filled_prediction - fill_value)[masked] ** 2).mean().item(),
        "fill_true_mse": ((filled_prediction - truth)[masked] ** 2).mean().item(),
    }
    return tidy(metric_records(metrics, fill_value=fill_value), ["fill_value"])


__all__ = ["copying_test"]
