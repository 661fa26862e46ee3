"""Out-of-distribution evaluation of a matrix-completion model (the authors' ``src/ood.py``).

A trained model is scored on matrices drawn differently from its training data: other
factor distributions (the study's Gaussian factors of scale 0.5 and Laplace factors of
scale 0.25), other ranks, other mask probabilities p, and other matrix sizes, smaller and
larger than trained. Every condition reports the total (all entries), observed and masked
MSE in one table.

Sizes: an m′×n′ matrix is flattened row-major into m′·n′ positions and the model reads it
with its first m′·n′ position vectors, as the study's BERT does. So fewer *rows* keep every
entry's column (position p = i·n + j), while another number of *columns* moves entries onto
positions learned for other columns (the study: positions are column-specific). A size
with more positions than the model has (``cfg.n_ctx``) is asked of a copy of the model whose
position table is extended to the largest size (:func:`~plateau_lens.models.with_max_positions`):
the new rows are a fresh N(0, init_std) draw, which is what the study's BERT holds there (512
position vectors at BERT's init, only the first 49 ever trained; a row no input reaches gets
no gradient). Such rows say so in ``note``. A model that cannot be extended (a bridge loaded
without its plateau-lens config) reports NaN there, with the reason in ``note``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Sequence

import pandas as pd
import torch
from ..progress import progress_bar

from ..metrics import scalar_metrics
from ..models.build import with_max_positions
from ..models.handle import PlateauModel
from ..tasks.base import check_int, step_generator
from .hooks import require
from .schema import record, tidy

STUDY_GAUSSIAN_SCALE = 0.5
STUDY_LAPLACE_SCALE = 0.25
OOD_LABELS = ("shift", "m", "n", "rank", "p_mask", "factor_distribution", "factor_scale", "note")
OOD_METRICS = ("loss", "observed_mse", "masked_mse", "masked_abs_pred", "masked_mean_square",
               "masked_mse_ratio")


@dataclass(frozen=True)
class OODCondition:
    """One test distribution: ``changes`` to the trained task's fields (``m``, ``n``,
    ``rank``, ``p_mask``, ``factor_distribution``, ``factor_scale``), grouped by ``shift``
    ("trained", "factors", "rank", "p_mask", "size")."""

    name: str
    shift: str
    changes: dict[str, Any] = field(default_factory=dict)


def default_conditions(task) -> list[OODCondition]:
    """The trained distribution; Gaussian (0.5) and Laplace (0.25) factors; ranks 1 …
    min(m, n, r + 2); p ∈ {0.1, 0.2, 0.4, 0.5, 0.6}; sizes with one row / one column /
    both fewer, and one / two more of each (more positions than the model has are
    asked of the model with its position table extended: see the module docstring)."""
    conditions = [OODCondition("trained", "trained"),
                  OODCondition(f"gaussian({STUDY_GAUSSIAN_SCALE:g})", "factors",
                               {"factor_distribution": "gaussian", "factor_scale": STUDY_GAUSSIAN_SCALE}),
                  OODCondition(f"laplace({STUDY_LAPLACE_SCALE:g})", "factors",
                               {"factor_distribution": "laplace", "factor_scale": STUDY_LAPLACE_SCALE})]
    conditions += [OODCondition(f"rank {rank}", "rank", {"rank": rank})
                   for rank in range(1, min(task.m, task.n, task.rank + 2) + 1) if rank != task.rank]
    conditions += [OODCondition(f"p = {p:g}", "p_mask", {"p_mask": p})
                   for p in (0.1, 0.2, 0.4, 0.5, 0.6) if abs(p - task.p_mask) > 1e-9]
    sizes = [(task.m - 1, task.n), (task.m, task.n - 1), (task.m - 1, task.n - 1),
             (task.m + 1, task.n), (task.m, task.n + 1), (task.m + 2, task.n + 2)]
    for m, n in sizes:
        if min(m, n) >= task.rank:
            conditions.append(OODCondition(f"{m}×{n}", "size", {"m": m, "n": n}))
    return conditions


def ood_task(task, condition: OODCondition):
    """The trained task with the condition's changes (validated by the task itself)."""
    unknown = sorted(set(condition.changes) - {f.name for f in dataclasses.fields(task)})
    if unknown:
        raise ValueError(f"condition {condition.name!r} changes unknown task field(s) {unknown}; "
                         f"allowed: {sorted(f.name for f in dataclasses.fields(task))}")
    return dataclasses.replace(task, **condition.changes)


def _labels(task, condition: OODCondition, note: str) -> dict[str, Any]:
    return {"shift": condition.shift, "m": task.m, "n": task.n, "rank": task.rank,
            "p_mask": float(task.p_mask), "factor_distribution": task.factor_distribution,
            "factor_scale": float(task.factor_scale) if task.factor_distribution != "uniform" else None,
            "note": note}


@torch.no_grad()
def ood_evaluation(model, conditions: Sequence[OODCondition] | None = None,
                   n_matrices: int = 1024, seed: int = 0, task=None,
                   progress: bool = True, extend_positions: bool = True) -> pd.DataFrame:
    """The model's MSE on each test distribution (:func:`default_conditions` by default;
    the study evaluates 1 024 matrices per condition).

    Reads only the model's output (the read-out, ``hook_unembed``). Rows (see
    :mod:`.schema`): condition = the condition's name, labels ``shift``, ``m``, ``n``,
    ``rank``, ``p_mask``, ``factor_distribution``, ``factor_scale``, ``note``; metrics
    ``loss`` (total MSE over all entries), ``observed_mse``, ``masked_mse``,
    ``masked_abs_pred``, ``masked_mean_square`` (mean X² over masked entries: the masked MSE
    of predicting 0, the plateau's solution) and ``masked_mse_ratio`` (their ratio: below 1
    means better than the plateau's copy-and-zero solution on that distribution).

    ``extend_positions`` (default True): sizes longer than the model's position table are
    evaluated on a copy with the table extended (fresh N(0, init_std) rows drawn for
    ``seed``, the trained rows kept); False reports them as NaN."""
    model = PlateauModel.resolve(model, task)
    require(model, "ood_evaluation")
    check_int("n_matrices", n_matrices, 1)
    conditions = default_conditions(model.task) if conditions is None else list(conditions)
    if not conditions or not all(isinstance(c, OODCondition) for c in conditions):
        raise ValueError("conditions must be a non-empty list of OODCondition")
    names = [c.name for c in conditions]
    if len(set(names)) != len(names):
        raise ValueError(f"condition names must be unique, got {names}")
    tasks = [ood_task(model.task, c) for c in conditions]  # validate all before any work
    trained_positions = model.task.n_positions  # rows of the table that training reached
    available = model.cfg.n_ctx
    longest = max(t.n_positions for t in tasks)
    cannot_extend = ""
    if longest > available:
        if not extend_positions:
            cannot_extend = "extend_positions=False"
        elif model.network is None or model.config is None:
            cannot_extend = "the model has no plateau-lens config to extend"
        else:
            model = with_max_positions(model, longest, seed=seed)
    records = []
    for index, (condition, test_task) in enumerate(
            progress_bar(list(zip(conditions, tasks)), desc="OOD conditions", disable=not progress)):
        needed = test_task.n_positions
        if needed > model.cfg.n_ctx:
            note = f"needs {needed} positions; the model has {available} ({cannot_extend})"
            records += [record(metric, float("nan"), condition=condition.name,
                               **_labels(test_task, condition, note)) for metric in OOD_METRICS]
            continue
        note = (f"positions {trained_positions}-{needed - 1} untrained (fresh init)"
                if needed > trained_positions else "")
        batch = test_task.sample(n_matrices, step_generator(seed, index))
        metrics = scalar_metrics(test_task, model(batch.inputs), batch)
        masked = ~batch.observed
        target = test_task.target(batch).double()
        mean_square = (target[masked] ** 2).mean().item() if masked.any() else float("nan")
        metrics["masked_mean_square"] = mean_square
        metrics["masked_mse_ratio"] = (metrics["masked_mse"] / mean_square
                                       if masked.any() and mean_square > 0 else float("nan"))
        if not masked.any():
            metrics["masked_mse"] = metrics["masked_abs_pred"] = float("nan")
        labels = _labels(test_task, condition, note)
        records += [record(metric, metrics[metric], condition=condition.name, **labels)
                    for metric in OOD_METRICS]
    return tidy(records, list(OOD_LABELS))


__all__ = ["OODCondition", "default_conditions", "ood_task", "ood_evaluation",
           "STUDY_GAUSSIAN_SCALE", "STUDY_LAPLACE_SCALE"]
