"""Nuclear-norm minimisation baseline for matrix completion (cvxpy).

Exact form:        min ‖X‖*  s.t.  X_ij = A_ij for (i, j) ∈ Ω.
Regularised form:  min (1/|Ω|)‖P_Ω(X − A)‖²_F + λ‖X‖*.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch
from jaxtyping import Bool, Float
from tqdm.auto import tqdm

from ..tasks.base import step_generator
from ..models.handle import PlateauModel
from .hooks import require
from .schema import record, tidy


def nuclear_norm_complete(matrix: Float[np.ndarray, "m n"], observed: Bool[np.ndarray, "m n"],
                          lam: float | None = None, solver: str | None = None) -> np.ndarray:
    """Complete one matrix from its observed entries (exact constraints if ``lam`` is None)."""
    import cvxpy as cp

    matrix, observed = np.asarray(matrix, dtype=float), np.asarray(observed, dtype=bool)
    if matrix.shape != observed.shape or matrix.ndim != 2:
        raise ValueError(f"matrix {matrix.shape} and observed {observed.shape} must be equal 2-D shapes")
    if lam is not None and lam <= 0:
        raise ValueError(f"lam must be > 0 (or None for exact constraints), got {lam}")
    if not observed.any():
        return np.zeros_like(matrix)
    completed = cp.Variable(matrix.shape)
    weights = observed.astype(float)
    if lam is None:
        problem = cp.Problem(cp.Minimize(cp.normNuc(completed)),
                             [cp.multiply(weights, completed) == weights * matrix])
    else:
        residual = cp.multiply(weights, completed - matrix)
        problem = cp.Problem(cp.Minimize(cp.sum_squares(residual) / observed.sum()
                                         + lam * cp.normNuc(completed)))
    problem.solve(solver=solver or cp.CLARABEL)
    if completed.value is None:
        raise RuntimeError(f"cvxpy failed to solve the completion problem ({problem.status})")
    return completed.value


def nuclear_norm_batch(batch, lam: float | None = None, progress: bool = False) -> np.ndarray:
    matrices = batch.matrix.cpu().numpy()
    observed = batch.observed.cpu().numpy()
    return np.stack([
        nuclear_norm_complete(matrices[i], observed[i], lam)
        for i in tqdm(range(len(matrices)), desc="nuclear norm", disable=not progress, leave=False)
    ])


@torch.no_grad()
def compare_to_nuclear_norm(model, p_values: Sequence[float] = tuple(np.round(np.arange(0.1, 0.61, 0.05), 2)),
                            n_matrices: int = 128, lam: float | None = None, seed: int = 0,
                            task=None, progress: bool = True) -> pd.DataFrame:
    """Masked-entry MSE of the model and of nuclear-norm minimisation on the same matrices,
    for each mask probability p (the study: p = 0.1…0.6, 512 matrices). Rows (see
    :mod:`.schema`): labelled ``p_mask``, condition ``model`` or ``nuclear_norm``, metrics
    ``masked_mse`` and ``masked_mse_median``."""
    import dataclasses

    model = PlateauModel.resolve(model, task)
    require(model, "m", "compare_to_nuclear_norm")
    p_values = list(p_values)
    bad = [p for p in p_values if not (isinstance(p, (int, float)) and 0 <= p < 1)]
    if bad or not p_values:
        raise ValueError(f"p_values must be a non-empty list of numbers in [0, 1), got {p_values!r}")
    if isinstance(n_matrices, bool) or not isinstance(n_matrices, int) or n_matrices < 1:
        raise ValueError(f"n_matrices must be an integer >= 1, got {n_matrices!r}")
    task = model.task
    records = []
    for index, p in enumerate(tqdm(p_values, desc="p values", disable=not progress)):
        p_task = dataclasses.replace(task, p_mask=float(p))
        batch = p_task.sample(n_matrices, step_generator(seed, index))
        masked = (~batch.observed).numpy()
        model_prediction = task.predictions(model(batch.inputs)).double().numpy()
        baseline = nuclear_norm_batch(batch, lam, progress=progress)
        truth = batch.matrix.double().numpy()
        for method, prediction in (("model", model_prediction), ("nuclear_norm", baseline)):
            errors = ((prediction - truth) ** 2)[masked]
            records.append(record("masked_mse", errors.mean() if errors.size else 0.0,
                                  condition=method, p_mask=float(p)))
            records.append(record("masked_mse_median", np.median(errors) if errors.size else 0.0,
                                  condition=method, p_mask=float(p)))
    return tidy(records, ["p_mask"])
