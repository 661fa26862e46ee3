"""Linear probes on hidden states (least squares without bias, as in the study; logistic
regression for class targets), trained on one batch and scored on a held-out one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import einops
import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from ..tasks.base import MatrixBatch
from .hooks import check_hook_names, check_task_batch, model_task

MAX_CLASSIFIER_SAMPLES = 20_000


@dataclass(frozen=True)
class ProbeTarget:
    """``values(task, batch)`` → [batch, pos, k] float targets (regression) or [batch, pos]
    integer labels (classification); ``split_by_mask``: also report masked/observed MSE."""

    kind: str
    values: Callable
    split_by_mask: bool = False


def _positions(task, batch) -> tuple[Tensor, Tensor]:
    rows = torch.arange(task.m).repeat_interleave(task.n)
    cols = torch.arange(task.n).repeat(task.m)
    return rows, cols


def _entry(task, batch: MatrixBatch) -> Tensor:
    return einops.rearrange(batch.matrix, "b m n -> b (m n) 1")


def _observed_row(task, batch: MatrixBatch) -> Tensor:
    """For each position, the entries of its row that are observed (0 where masked)."""
    visible = batch.matrix * batch.observed
    return einops.repeat(visible, "b m n -> b (m k) n", k=task.n)


def _top_singular_vector(task, batch: MatrixBatch) -> Tensor:
    """u₁ of X, sign fixed so that its entries sum to ≥ 0; the same at every position."""
    u, _, _ = torch.linalg.svd(batch.matrix.double())
    top = u[..., 0]
    top = top * torch.where(top.sum(-1, keepdim=True) >= 0, 1.0, -1.0)
    return einops.repeat(top.float(), "b m -> b p m", p=task.m * task.n)


def _row_index(task, batch):
    rows, _ = _positions(task, batch)
    return einops.repeat(rows, "p -> b p", b=len(batch))


def _column_index(task, batch):
    _, cols = _positions(task, batch)
    return einops.repeat(cols, "p -> b p", b=len(batch))


def _is_masked(task, batch):
    return einops.rearrange(~batch.observed, "b m n -> b (m n)").long()


LRMC_TARGETS = {
    "entry": ProbeTarget("regression", _entry, split_by_mask=True),
    "observed_row": ProbeTarget("regression", _observed_row, split_by_mask=True),
    "top_singular_vector": ProbeTarget("regression", _top_singular_vector),
    "row_index": ProbeTarget("classification", _row_index),
    "column_index": ProbeTarget("classification", _column_index),
    "is_masked": ProbeTarget("classification", _is_masked),
}

SEQUENCE_TARGETS = {
    "next_token": ProbeTarget("classification", lambda task, batch: batch.targets),
    "current_token": ProbeTarget("classification", lambda task, batch: batch.inputs),
}


def fit_least_squares(features: Float[Tensor, "n d"], targets: Float[Tensor, "n k"]) -> Tensor:
    """W minimising ‖features·W − targets‖² (no bias, as in the study)."""
    return torch.linalg.lstsq(features.double(), targets.double()).solution.float()


def regression_scores(prediction: Tensor, targets: Tensor) -> dict[str, float]:
    """Test MSE and mean cosine similarity (per sample; vectors of length ≥ 2 only)."""
    scores = {"mse": torch.mean((prediction - targets) ** 2).item()}
    if targets.shape[-1] > 1:
        cos = torch.nn.functional.cosine_similarity(prediction, targets, dim=-1, eps=1e-8)
        scores["cosine"] = cos.mean().item()
    return scores


def fit_logistic(features: np.ndarray, labels: np.ndarray, seed: int = 0):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=500, random_state=seed).fit(features, labels)


def least_squares_classifier_accuracy(x_train: Tensor, labels_train: Tensor, x_test: Tensor,
                                      labels_test: Tensor, ridge: float = 1e-3) -> float:
    """Closed-form linear classifier: ridge regression (with bias) onto one-hot labels, argmax."""
    classes = torch.unique(labels_train)
    one_hot = (labels_train[:, None] == classes[None, :]).double()
    with_bias = torch.cat([x_train.double(), torch.ones(len(x_train), 1, dtype=torch.double)], 1)
    gram = with_bias.T @ with_bias + ridge * len(x_train) * torch.eye(with_bias.shape[1], dtype=torch.double)
    weights = torch.linalg.solve(gram, with_bias.T @ one_hot)
    test = torch.cat([x_test.double(), torch.ones(len(x_test), 1, dtype=torch.double)], 1)
    predicted = classes[(test @ weights).argmax(-1)]
    return (predicted == labels_test).double().mean().item()


def default_hooks(model) -> list[str]:
    """Embeddings (``blocks.0.hook_resid_pre``) and every layer's ``hook_resid_post``."""
    return ["blocks.0.hook_resid_pre"] + [
        f"blocks.{layer}.hook_resid_post" for layer in range(model.cfg.n_layers)]


def _layer_of(name: str) -> int:
    """Residual-stream depth: 0 = embeddings, l+1 = after block l."""
    layer = int(name.split(".")[1])
    return layer if name.endswith("hook_resid_pre") else layer + 1


@torch.no_grad()
def linear_probes(model, train_batch, test_batch, targets: Sequence[str] | None = None,
                  hooks: Sequence[str] | None = None, task=None, seed: int = 0,
                  classifier: str = "least_squares") -> pd.DataFrame:
    """Fit a probe per (hook, target) on ``train_batch`` and score it on ``test_batch``.

    Rows: ``hook, layer, target, metric, value`` with metrics ``mse`` (+ ``mse_masked``,
    ``mse_observed``, ``cosine``) for regression targets and ``accuracy`` for class targets.
    Class targets use a closed-form least-squares classifier (``classifier="least_squares"``,
    fast enough for every checkpoint of a run) or scikit-learn's logistic regression
    (``"logistic"``, on at most 20 000 training samples).
    """
    if classifier not in ("least_squares", "logistic"):
        raise ValueError(f"classifier must be 'least_squares' or 'logistic', got {classifier!r}")
    task = model_task(model, task)
    check_task_batch(task, train_batch)
    check_task_batch(task, test_batch)
    available = LRMC_TARGETS if task.kind == "regression" else SEQUENCE_TARGETS
    targets = list(available) if targets is None else list(targets)
    unknown = [t for t in targets if t not in available]
    if unknown:
        raise ValueError(f"unknown probe target(s) {unknown}; allowed: {sorted(available)}")
    hooks = check_hook_names(model, default_hooks(model) if hooks is None else hooks)
    _, train_cache = model.run_with_cache(train_batch.inputs, names_filter=lambda n: n in hooks)
    _, test_cache = model.run_with_cache(test_batch.inputs, names_filter=lambda n: n in hooks)
    rows = []
    for name in hooks:
        x_train = einops.rearrange(train_cache[name].float(), "b p d -> (b p) d")
        x_test = einops.rearrange(test_cache[name].float(), "b p d -> (b p) d")
        layer = _layer_of(name) if name.startswith("blocks.") else None
        for target_name in targets:
            target = available[target_name]
            y_train = target.values(task, train_batch)
            y_test = target.values(task, test_batch)
            if target.kind == "regression":
                y_train = einops.rearrange(y_train, "b p k -> (b p) k")
                y_test = einops.rearrange(y_test, "b p k -> (b p) k")
                weights = fit_least_squares(x_train, y_train)
                prediction = x_test @ weights
                scores = regression_scores(prediction, y_test)
                if target.split_by_mask:
                    masked = einops.rearrange(~test_batch.observed, "b m n -> (b m n)")
                    for label, select in (("masked", masked), ("observed", ~masked)):
                        if select.any():
                            scores[f"mse_{label}"] = torch.mean(
                                (prediction[select] - y_test[select]) ** 2).item()
            elif classifier == "least_squares":
                scores = {"accuracy": least_squares_classifier_accuracy(
                    x_train, y_train.flatten(), x_test, y_test.flatten())}
            else:
                labels_train = y_train.flatten().cpu().numpy()
                labels_test = y_test.flatten().cpu().numpy()
                rng = np.random.default_rng(seed)
                keep = rng.permutation(len(labels_train))[:MAX_CLASSIFIER_SAMPLES]
                if len(np.unique(labels_train[keep])) < 2:
                    scores = {"accuracy": float(np.mean(labels_test == labels_train[keep][0]))}
                else:
                    classifier = fit_logistic(x_train[keep].cpu().numpy(), labels_train[keep], seed)
                    scores = {"accuracy": float(classifier.score(x_test.cpu().numpy(), labels_test))}
            for metric, value in scores.items():
                rows.append({"hook": name, "layer": layer, "target": target_name,
                             "metric": metric, "value": value})
    return pd.DataFrame(rows)
