"""Nuclear-norm minimisation baseline for matrix completion (cvxpy), the study's Fig. 3
(``compare_nuc_bert.py``) and the λ sweep of the relaxed problem (``cvx_nuc_norm.py``).

Exact form:        min ‖X‖*  s.t.  X_ij = A_ij for (i, j) ∈ Ω.
Regularised form:  min (1/|Ω|)‖P_Ω(X − A)‖²_F + λ‖X‖*.

Each form is built once per matrix shape as a parametrised (DPP) cvxpy problem and
re-solved for every matrix with new parameter values (about half the time of building a
problem per matrix). The minimiser sees what the model sees: the observed entries, rounded
to the token grid (2 decimals) under the study's token encoding; errors are measured
against the task's target, for the model and the minimiser alike (the rounded matrix under
the token encoding, as the study's compare_nuc_bert.py, whose X is its X_rounded).
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from jaxtyping import Bool, Float
from ..progress import progress_bar

from ..codec import round_to_tokens
from ..models.handle import PlateauModel
from ..tasks.base import check_int, step_generator
from ..tasks.protocol import has_capability, optional_member
from .hooks import require
from .schema import record, tidy

STUDY_P_VALUES = tuple(float(p) for p in np.round(np.arange(0.1, 0.61, 0.05), 2))
STUDY_LAMBDAS = (5e-4, 1e-3, 1.5e-3, 1.75e-3, 2e-3, 5e-3, 1e-2)
"""The λ values of the study's sweep of the regularised problem (``cvx_nuc_norm.py``)."""
STUDY_N_MATRICES = 512
COMPLETION_METRICS = ("mse", "masked_mse", "observed_mse", "masked_mse_median", "nuclear_norm")


class _CompletionProblem:
    """One parametrised cvxpy problem for m×n matrices: exact (``regularised=False``) or
    regularised with λ a parameter. ``solve(matrix, observed, lam)`` re-uses its
    compiled form."""

    def __init__(self, shape: tuple[int, int], regularised: bool, solver: str):
        import cvxpy as cp

        self.solver = solver
        self.completed = cp.Variable(shape)
        self.weights = cp.Parameter(shape, nonneg=True)
        self.target = cp.Parameter(shape)  # weights ∘ A
        if regularised:
            # weights = P_Ω / √|Ω|, so the squared residual is (1/|Ω|)‖P_Ω(X − A)‖²
            self.lam = cp.Parameter(nonneg=True)
            residual = cp.multiply(self.weights, self.completed) - self.target
            self.problem = cp.Problem(cp.Minimize(cp.sum_squares(residual)
                                                  + self.lam * cp.normNuc(self.completed)))
        else:
            self.lam = None
            self.problem = cp.Problem(cp.Minimize(cp.normNuc(self.completed)),
                                      [cp.multiply(self.weights, self.completed) == self.target])

    def solve(self, matrix: np.ndarray, observed: np.ndarray, lam: float | None) -> np.ndarray:
        weights = observed.astype(float)
        if self.lam is not None:
            weights = weights / np.sqrt(observed.sum())
            self.lam.value = float(lam)
        self.weights.value = weights
        self.target.value = weights * matrix
        self.problem.solve(solver=self.solver)
        if self.completed.value is None:
            raise RuntimeError(f"cvxpy failed to solve the completion problem ({self.problem.status})")
        return np.array(self.completed.value)


@lru_cache(maxsize=16)
def _problem(shape: tuple[int, int], regularised: bool, solver: str) -> _CompletionProblem:
    return _CompletionProblem(shape, regularised, solver)


def nuclear_norm_complete(matrix: Float[np.ndarray, "m n"], observed: Bool[np.ndarray, "m n"],
                          lam: float | None = None, solver: str | None = None) -> np.ndarray:
    """Complete one matrix from its observed entries (exact constraints if ``lam`` is None,
    else the regularised form with weight ``lam``)."""
    import cvxpy as cp

    matrix, observed = np.asarray(matrix, dtype=float), np.asarray(observed, dtype=bool)
    if matrix.shape != observed.shape or matrix.ndim != 2:
        raise ValueError(f"matrix {matrix.shape} and observed {observed.shape} must be equal 2-D shapes")
    if lam is not None and not lam > 0:
        raise ValueError(f"lam must be > 0 (or None for exact constraints), got {lam}")
    if not observed.any():
        return np.zeros_like(matrix)
    problem = _problem(tuple(matrix.shape), lam is not None, solver or cp.CLARABEL)
    return problem.solve(matrix, observed, lam)


def model_view(task, batch) -> np.ndarray:
    """The entries as the model sees them: rounded to the token grid under the token
    encoding, exact otherwise (masked entries are never read). Also the task's target."""
    matrix = batch.matrix
    if optional_member(task, "encoding") == "tokens":
        matrix = round_to_tokens(matrix)
    return matrix.double().cpu().numpy()


def nuclear_norm_batch(batch, lam: float | None = None, progress: bool = False,
                       task=None) -> np.ndarray:
    """Complete every matrix of ``batch`` (see :func:`nuclear_norm_complete`); with
    ``task``, from the observed entries as the model sees them (:func:`model_view`)."""
    matrices = model_view(task, batch) if task is not None else batch.matrix.double().cpu().numpy()
    observed = batch.observed.cpu().numpy()
    return np.stack([
        nuclear_norm_complete(matrices[i], observed[i], lam)
        for i in progress_bar(range(len(matrices)), desc="nuclear norm", disable=not progress, leave=False)
    ])


def completion_metrics(prediction: np.ndarray, truth: np.ndarray, observed: np.ndarray) -> dict[str, float]:
    """MSE on all entries, masked and observed entries (NaN where there are none), the
    median masked squared error, and the mean nuclear norm of the predicted matrices."""
    squared = (prediction - truth) ** 2
    masked = ~observed

    def mean(values: np.ndarray) -> float:
        return float(values.mean()) if values.size else float("nan")

    return {"mse": mean(squared), "masked_mse": mean(squared[masked]),
            "observed_mse": mean(squared[observed]),
            "masked_mse_median": float(np.median(squared[masked])) if masked.any() else float("nan"),
            "nuclear_norm": float(np.linalg.norm(prediction, ord="nuc", axis=(-2, -1)).mean())}


def _check_p_values(p_values) -> list[float]:
    p_values = list(p_values)
    bad = [p for p in p_values if isinstance(p, bool) or not (isinstance(p, (int, float)) and 0 <= p < 1)]
    if bad or not p_values:
        raise ValueError(f"p_values must be a non-empty list of numbers in [0, 1), got {p_values!r}")
    return [float(p) for p in p_values]


@torch.no_grad()
def compare_to_nuclear_norm(model, p_values: Sequence[float] = STUDY_P_VALUES,
                            n_matrices: int = STUDY_N_MATRICES, lam: float | None = None,
                            seed: int = 0, task=None, progress: bool = True) -> pd.DataFrame:
    """The study's Fig. 3: the model (trained at one p) and nuclear-norm minimisation on the
    same matrices, for each mask probability p (the study: p = 0.1 … 0.6, 512 matrices).

    Reads only the model's output (the read-out). Rows (see :mod:`.schema`): labelled
    ``p_mask``; conditions ``model`` and ``nuclear_norm`` with metrics ``mse`` (all
    entries), ``masked_mse``, ``observed_mse``, ``masked_mse_median`` and
    ``nuclear_norm`` (mean ‖·‖* of the completed matrices); condition ``truth`` with the
    true matrices' ``nuclear_norm``."""
    model = PlateauModel.resolve(model, task)
    require(model, "compare_to_nuclear_norm")
    p_values = _check_p_values(p_values)
    check_int("n_matrices", n_matrices, 1)
    if lam is not None and not lam > 0:
        raise ValueError(f"lam must be > 0 (or None for exact constraints), got {lam}")
    task = model.task
    records = []
    for index, p in enumerate(progress_bar(p_values, desc="p values", disable=not progress)):
        p_task = dataclasses.replace(task, p_mask=p)
        batch = p_task.sample(n_matrices, step_generator(seed, index))
        observed = batch.observed.cpu().numpy()
        truth = model_view(p_task, batch)
        predictions = {"model": task.predictions(model(batch.inputs)).double().cpu().numpy(),
                       "nuclear_norm": nuclear_norm_batch(batch, lam, progress=progress, task=p_task)}
        for method, prediction in predictions.items():
            for metric, value in completion_metrics(prediction, truth, observed).items():
                records.append(record(metric, value, condition=method, p_mask=p))
        records.append(record("nuclear_norm", np.linalg.norm(truth, ord="nuc", axis=(-2, -1)).mean(),
                              condition="truth", p_mask=p))
    return tidy(records, ["p_mask"])


def nuclear_norm_lambda_sweep(task, lams: Sequence[float] = STUDY_LAMBDAS, n_matrices: int = 256,
                              p_mask: float | None = None, seed: int = 0, exact: bool = True,
                              progress: bool = True) -> pd.DataFrame:
    """The regularised problem min (1/|Ω|)‖P_Ω(X − A)‖² + λ‖X‖* over the study's λ values
    (``cvx_nuc_norm.py``: 256 matrices, p = 0.3), beside the exact form (``exact=True``).
    ``task``: a matrix-completion task, or a model (its task). Rows: labelled ``lam`` (NaN
    for the exact form) and ``p_mask``; conditions ``regularised`` / ``exact``; metrics as
    :func:`completion_metrics` (the study's table: observed, masked and all-entry MSE)."""
    if isinstance(task, PlateauModel):
        task = task.task
    if not has_capability(task, "matrix"):
        raise ValueError(f"nuclear_norm_lambda_sweep is defined for matrix-completion tasks "
                         f"(lrmc), got {type(task).__name__}")
    lams = list(lams)
    if not lams or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 for v in lams):
        raise ValueError(f"lams must be a non-empty list of numbers > 0, got {lams!r}")
    check_int("n_matrices", n_matrices, 1)
    if p_mask is not None:
        task = dataclasses.replace(task, p_mask=_check_p_values([p_mask])[0])
    batch = task.sample(n_matrices, step_generator(seed, 0))
    observed = batch.observed.cpu().numpy()
    truth = model_view(task, batch)
    settings = [("exact", None)] * bool(exact) + [("regularised", float(v)) for v in lams]
    records = []
    for condition, lam in progress_bar(settings, desc="lambda", disable=not progress):
        completed = nuclear_norm_batch(batch, lam, progress=progress, task=task)
        for metric, value in completion_metrics(completed, truth, observed).items():
            records.append(record(metric, value, condition=condition,
                                  lam=float("nan") if lam is None else lam, p_mask=float(task.p_mask)))
    return tidy(records, ["lam", "p_mask"])


__all__ = ["STUDY_LAMBDAS", "STUDY_P_VALUES", "compare_to_nuclear_norm", "completion_metrics",
           "model_view", "nuclear_norm_batch", "nuclear_norm_complete", "nuclear_norm_lambda_sweep"]
