"""The copying test (the authors' ``copy_check.py``): does the model copy observed entries
and output ≈0 for masked ones, and what does it do when the masked entries are shown as a
fixed value, or when the input is not low-rank at all?"""

from __future__ import annotations

import pandas as pd
import torch

from ..errors import InputError, check_finite_output, check_integer
from ..tasks.base import check_choice
from .hooks import prepare, require
from .schema import metric_records, tidy

STUDY_FILL_VALUE = -0.24
"""The study's replacement value for masked entries (``copy_check.yaml``: ``replace_value``)."""
MATRIX_KINDS = ("low_rank", "random")


def random_full_rank(batch, seed: int = 0) -> torch.Tensor:
    """The study's random input: every entry i.i.d. Uniform[−1, 1] (full rank almost surely),
    the same shape as ``batch.matrix``, from a fixed seed."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(batch.matrix.shape, generator=generator) * 2 - 1).to(batch.matrix)


@torch.no_grad()
def copying_test(model, batch, fill_value: float | None = STUDY_FILL_VALUE,
                 matrix: str = "low_rank", seed: int = 0, task=None) -> pd.DataFrame:
    """The model's output on the batch, and on the batch with its masked entries shown as
    the fixed value ``fill_value`` (the study's −0.24; None skips this pass).

    ``matrix="low_rank"``: the batch's matrices; ``"random"``: the study's random full-rank
    input (:func:`random_full_rank`, entries U[−1, 1]) with the batch's observation mask: a
    model that only copies does as well there as on low-rank input.

    Reads only the model's output (the read-out). Metrics, all against the (low-rank or
    random) true matrix (the task's target: rounded to 2 decimals under the token encoding,
    the study's X_rounded): ``loss`` (MSE over all entries), ``observed_mse``, ``masked_mse``,
    ``masked_abs_pred`` (mean |output| on masked entries: ≈0 on the plateau); with a fill
    value, on the filled input: ``fill_copy_mse`` (masked outputs vs ``fill_value``: ≈0 when
    the model copies its input, the study's "mask replace loss"), ``fill_true_mse`` (masked
    outputs vs the truth: ≈ masked MSE when it completes from the other entries),
    ``fill_observed_mse`` and ``fill_loss`` (all entries vs the truth, the study's "Loss").
    Rows (see :mod:`.schema`): labelled ``fill_value`` (NA when None) and ``matrix``."""
    check_choice("matrix", matrix, MATRIX_KINDS)
    if fill_value is not None and (isinstance(fill_value, bool) or not isinstance(fill_value, (int, float))
                                   or not abs(fill_value) <= 10):
        raise InputError(f"fill_value must be a number in [-10, 10] (the token range) or None, "
                         f"got {fill_value!r}")
    check_integer("seed", seed, 0, 2**63 - 1)
    model = prepare(model, batch, task)
    require(model, "copying_test")
    task = model.task
    if matrix == "random":
        batch = task.with_inputs(batch, matrix=random_full_rank(batch, seed))
    prediction = task.predictions(check_finite_output(model(batch.inputs))).double()
    truth = task.target(batch).double()  # rounded to 2 decimals under the token encoding
    masked = ~batch.observed
    squared = (prediction - truth) ** 2
    metrics = {
        "loss": squared.mean().item(),
        "observed_mse": squared[batch.observed].mean().item(),
        "masked_mse": squared[masked].mean().item(),
        "masked_abs_pred": prediction[masked].abs().mean().item(),
    }
    if fill_value is not None:
        filled_matrix = torch.where(masked, torch.full_like(batch.matrix, fill_value), batch.matrix)
        filled = task.with_inputs(batch, matrix=filled_matrix,
                                  observed=torch.ones_like(batch.observed))
        filled_prediction = task.predictions(check_finite_output(model(filled.inputs))).double()
        filled_squared = (filled_prediction - truth) ** 2
        metrics.update({
            "fill_copy_mse": ((filled_prediction - fill_value)[masked] ** 2).mean().item(),
            "fill_true_mse": filled_squared[masked].mean().item(),
            "fill_observed_mse": filled_squared[batch.observed].mean().item(),
            "fill_loss": filled_squared.mean().item(),
        })
    return tidy(metric_records(metrics, fill_value=fill_value, matrix=matrix),
                ["fill_value", "matrix"])


__all__ = ["copying_test", "random_full_rank", "STUDY_FILL_VALUE"]
