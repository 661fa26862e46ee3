"""Linear probes on hidden states (least squares without bias, as in the study; logistic
regression for class targets), trained on one batch and scored on a held-out one (the
study's ``probe.py``: 2 048 training and 256 test matrices, :func:`probe_batches`)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields, is_dataclass
from typing import Sequence

import einops
import numpy as np
import pandas as pd
import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..errors import InputError, check_names
from ..tasks.base import ProbeTarget, check_choice, check_int, step_generator
from ..tasks.protocol import capabilities_of
from .hooks import check_hook_names, prepare
from .fastpath.clean_pass import hook_activations, tensor_key
from .fastpath.parallel import ROWS_PER_CHUNK, analysis_workers, parallel_map
from .schema import record, tidy

MAX_CLASSIFIER_SAMPLES = 20_000


FEATURE_RCOND = 1e-6  # float32 features: singular directions below ~10 ulp are rounding noise


def _with_bias(features: Float[Tensor, "n d"]) -> Float[Tensor, "n d+1"]:
    """[F 1] in float64: the features with a constant column for a bias."""
    return torch.cat([features.double(), features.new_ones(len(features), 1, dtype=torch.double)], 1)


def fit_least_squares(features: Float[Tensor, "n d"], targets: Float[Tensor, "n k"],
                      gram: Float[Tensor, "d d"] | None = None) -> Tensor:
    """W minimising ‖features·W − targets‖² (no bias, as in the study): the minimum-norm
    solution, ignoring singular values below 1e-6·σ_max, the float32 rounding noise of
    rank-deficient features such as embeddings (:func:`refined_least_squares`), as float32.
    ``gram``: FᵀF in float64, if already formed. On ill-conditioned features (post-LN
    residual streams: cond(F) ~1e5) predict in float64 with :func:`refined_least_squares`'s
    weights, as :func:`linear_probes` does (float32 weights and products moved its predictions
    by 2.5e-4 at cond(F) 8e4)."""
    features, targets = features.double(), targets.double()
    gram = features.T @ features if gram is None else gram.double()
    return refined_least_squares(gram, features.T @ targets, features, targets).float()


def gram_pseudo_inverse(gram: Float[Tensor, "d d"]) -> Float[Tensor, "d d"]:
    """(FᵀF)⁺ in float64 through the eigenvectors of FᵀF = V diag(σ²) Vᵀ: V diag(1/σ²) Vᵀ over
    the directions with σ > 1e-6·σ_max, the rest set to zero. In float64 the products of
    float32 entries are exact, so eigenvalues are resolved down to ~1e-15·σ_max², far below
    the cut at (1e-6·σ_max)²."""
    eigenvalues, eigenvectors = torch.linalg.eigh(gram)
    kept = eigenvalues > (FEATURE_RCOND ** 2) * eigenvalues.max().clamp_min(0)
    inverse = torch.where(kept, eigenvalues.reciprocal(), torch.zeros_like(eigenvalues))
    return (eigenvectors * inverse) @ eigenvectors.T


def refined_least_squares(gram: Float[Tensor, "d d"], moment: Float[Tensor, "d k"],
                          features: Float[Tensor, "n d"], targets: Float[Tensor, "n k"]) -> Tensor:
    """The minimum-norm least-squares W from the moments FᵀF and Fᵀy, refined once on F, in
    float64. W₀ = (FᵀF)⁺Fᵀy alone is the SVD pseudo-inverse solution for one pass over the n
    rows, but with a relative error of cond(FᵀF)·ε₆₄ = cond(F)²·ε₆₄ (~1e-6 for post-LN
    residual streams, cond(F) ~1e5), which depends on the order FᵀF was summed in. One step
    of iterative refinement (the corrected semi-normal equations), W₁ = W₀ + (FᵀF)⁺Fᵀ(y − F·W₀),
    forms the residual from F itself, so W₁ has the accuracy of a QR or SVD solve (relative
    error ~cond(F)·ε₆₄) for one more pass over the rows."""
    pseudo_inverse = gram_pseudo_inverse(gram)
    weights = pseudo_inverse @ moment
    features, targets = features.double(), targets.double()
    return weights + pseudo_inverse @ (features.T @ (targets - features @ weights))


def regression_scores(prediction: Tensor, targets: Tensor) -> dict[str, float]:
    """Test MSE, and for vectors of length ≥ 2 the mean cosine similarity per sample
    (``cosine``) and the mean of its absolute value (``abs_cosine``: what the study reports,
    "Avg. Absolute Cos-Sim", blind to the sign of the prediction)."""
    scores = {"mse": torch.mean((prediction - targets) ** 2).item()}
    if targets.shape[-1] > 1:
        cos = torch.nn.functional.cosine_similarity(prediction, targets, dim=-1, eps=1e-8)
        scores["cosine"] = cos.mean().item()
        scores["abs_cosine"] = cos.abs().mean().item()
    return scores


STUDY_PROBE_SIZES = (2048, 256)
"""The study's probe training and test sizes (matrices)."""


def probe_batches(task, n_train: int = STUDY_PROBE_SIZES[0], n_test: int = STUDY_PROBE_SIZES[1],
                  seed: int = 0):
    """``(train_batch, test_batch)``: independent held-out batches of the study's sizes
    (``task``: a task, or a run whose task and seed are used, away from its training
    batches)."""
    from .over_training import analysis_batch

    check_int("n_train", n_train, 1)
    check_int("n_test", n_test, 1)
    if hasattr(task, "config") and hasattr(task, "checkpoints"):  # a Run
        return (analysis_batch(task, n_train, seed=task.config.train.seed + 1 + seed),
                analysis_batch(task, n_test, seed=task.config.train.seed + seed))
    return (task.sample(n_train, step_generator(seed, 1)), task.sample(n_test, step_generator(seed, 2)))


def _top_singular_projector(task, batch) -> Tensor:
    """vec(u₁u₁ᵀ) of X (m² values, the same at every position): the top left singular
    vector without its arbitrary sign (u₁ and −u₁ give the same target)."""
    u, _, _ = torch.linalg.svd(batch.matrix.double())
    top = u[..., 0]
    projector = einops.rearrange(top[:, :, None] * top[:, None, :], "b i j -> b (i j)")
    return einops.repeat(projector.float(), "b k -> b p k", p=task.m * task.n)


MATRIX_PROBE_TARGETS = {
    "top_singular_projector": ProbeTarget("regression", _top_singular_projector),
}
"""Targets defined here for matrix tasks, beside the task's own (``task.probe_targets()``;
LRMC's ``top_singular_vector`` is u₁ with its sign fixed so that its entries sum to ≥ 0)."""


def available_targets(task) -> dict[str, ProbeTarget]:
    """The task's probe targets, plus :data:`MATRIX_PROBE_TARGETS` for matrix tasks (not for
    the GPT variant ``lrmc_gpt``: a sequence task with m and n, probed on its tokens)."""

    targets = dict(task.probe_targets())
    if {"matrix", "value_readout"} <= capabilities_of(task):
        targets.update({k: v for k, v in MATRIX_PROBE_TARGETS.items() if k not in targets})
    return targets


def fit_logistic(features: np.ndarray, labels: np.ndarray, seed: int = 0):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=500, random_state=seed).fit(features, labels)


def logistic_accuracy(x_train: Tensor, labels_train: Tensor, x_test: Tensor, labels_test: Tensor,
                      seed: int = 0) -> float:
    """scikit-learn logistic regression on at most 20 000 training samples; test accuracy."""
    labels_train = labels_train.flatten().cpu().numpy()
    labels_test = labels_test.flatten().cpu().numpy()
    keep = np.random.default_rng(seed).permutation(len(labels_train))[:MAX_CLASSIFIER_SAMPLES]
    if len(np.unique(labels_train[keep])) < 2:
        return float(np.mean(labels_test == labels_train[keep][0]))
    classifier = fit_logistic(x_train[keep].cpu().numpy(), labels_train[keep], seed)
    return float(classifier.score(x_test.cpu().numpy(), labels_test))


def one_hot_labels(labels: Sequence[Int[Tensor, "n"]]) -> tuple[Tensor, list[Tensor]]:
    """The one-hot blocks of several label vectors side by side [n Σ classes] (float64), and
    each vector's classes."""
    class_sets = [torch.unique(values) for values in labels]
    one_hot = torch.cat([(values[:, None] == classes[None, :]).double()
                         for values, classes in zip(labels, class_sets)], 1)
    return one_hot, class_sets


def ridge_classifier_accuracies(gram: Float[Tensor, "d+1 d+1"], moment: Float[Tensor, "d+1 c"],
                                n_train: int, test_with_bias: Float[Tensor, "m d+1"],
                                class_sets: Sequence[Tensor], labels_test: Sequence[Tensor],
                                ridge: float = 1e-3) -> list[float]:
    """Test accuracy of closed-form linear classifiers: ridge regression (with bias) onto the
    one-hot labels, argmax. ``gram`` = [F 1]ᵀ[F 1], ``moment`` = [F 1]ᵀ·one-hot (train)."""
    regularised = gram + ridge * n_train * torch.eye(len(gram), dtype=gram.dtype)
    weights = torch.linalg.solve(regularised, moment)
    scores = torch.split(test_with_bias @ weights, [len(classes) for classes in class_sets], dim=1)
    return [(classes[block.argmax(-1)] == values).double().mean().item()
            for block, classes, values in zip(scores, class_sets, labels_test)]


def default_hooks(model) -> list[str]:
    """Embeddings (``blocks.0.hook_resid_pre``) and every layer's ``hook_resid_post``."""
    return ["blocks.0.hook_resid_pre"] + [
        f"blocks.{layer}.hook_resid_post" for layer in range(model.cfg.n_layers)]


CLASSIFIERS = ("least_squares", "logistic")


@dataclass(eq=False)
class ProbePlan:
    """What the probes of one (train, test) batch pair need besides the activations; the
    same at every checkpoint, so :func:`probe_plan` computes it once."""

    regression_targets: list[str]
    class_targets: list[str]
    widths: list[int]
    y_train: dict[str, Tensor]
    y_test: dict[str, Tensor]
    right_hand_sides: Tensor | None  # [n_train, k] float64: regression targets, then one-hot labels
    regression_test: tuple[Tensor, ...]
    masked: Tensor | None
    split_by_mask: set[str]  # regression targets also scored on masked / observed positions
    class_sets: list[Tensor]
    labels_test: list[Tensor]


@dataclass(eq=False)
class _PlanEntry:
    key: tuple
    held: tuple  # the task and batches, so that their ids are not reused while the entry lives
    plan: ProbePlan


_plan_cache: list[_PlanEntry] = []
_plan_lock = threading.Lock()
PLAIN_FIELD_TYPES = (int, float, str, bool, type(None))


def task_key(task) -> tuple:
    """The task's type and settings when it is a frozen dataclass of plain values (every
    toy task: two equal tasks, e.g. from two ``Run.model`` calls, share one plan); otherwise
    its identity."""
    if is_dataclass(task) and task.__dataclass_params__.frozen:
        values = tuple(getattr(task, f.name) for f in fields(task))
        if all(type(value) in PLAIN_FIELD_TYPES for value in values):
            return (type(task),) + values
    return ("id", id(task))


def probe_plan(task, train_batch, test_batch, targets: Sequence[str], classifier: str) -> ProbePlan:
    """The targets of every probe (flattened over batch and position), the right-hand sides
    of the least-squares solves side by side and the test labels: computed once per task
    (:func:`task_key`) and batch pair, and reused while the batches' tensors are unchanged."""
    key = (task_key(task), tensor_key(train_batch), tensor_key(test_batch), tuple(targets), classifier)
    with _plan_lock:
        for entry in _plan_cache:
            if entry.key == key:
                return entry.plan
    available = available_targets(task)
    regression_targets = [t for t in targets if available[t].kind == "regression"]
    class_targets = [t for t in targets if available[t].kind == "classification"]
    y_train = {t: available[t].values(task, train_batch) for t in targets}
    y_test = {t: available[t].values(task, test_batch) for t in targets}
    widths = [y_train[t].shape[-1] for t in regression_targets]
    # the right-hand sides of every solve, side by side: regression targets, then one-hot labels
    train_columns = [torch.cat([einops.rearrange(y_train[t], "b p k -> (b p) k")
                                for t in regression_targets], 1).double()] if regression_targets else []
    class_sets: list[Tensor] = []
    if class_targets and classifier == "least_squares":
        one_hot, class_sets = one_hot_labels([y_train[t].flatten() for t in class_targets])
        train_columns.append(one_hot)
    regression_test: tuple[Tensor, ...] = ()
    if regression_targets:
        regression_test = torch.split(torch.cat(
            [einops.rearrange(y_test[t], "b p k -> (b p) k") for t in regression_targets], 1), widths, 1)
    masked = task.split_by_mask(test_batch).flatten() if any(
        available[t].split_by_mask for t in regression_targets) else None
    plan = ProbePlan(regression_targets, class_targets, widths, y_train, y_test,
                     torch.cat(train_columns, 1) if train_columns else None, regression_test,
                     masked, {t for t in regression_targets if available[t].split_by_mask},
                     class_sets, [y_test[t].flatten() for t in class_targets])
    with _plan_lock:
        _plan_cache[:] = [_PlanEntry(key, (task, train_batch, test_batch), plan)]
    return plan


def refinement_flops(n_train: int, width: int, k_regression: int) -> int:
    """The float64 passes over the training rows of :func:`refined_least_squares`: F·W₀ and
    Fᵀ·(y − F·W₀)."""
    return 2 * 2 * n_train * width * k_regression


def probe_flops(n_train: int, n_test: int, width: int, plan: ProbePlan) -> int:
    """Matmul FLOPs of one hook's least-squares probes beyond its activations (the definition
    benchmarks/analysis_throughput.py reports rates with): the Gram and moment products
    [F 1]ᵀ[F 1 Y], the eigendecomposition of FᵀF (counted as 9·d³), (FᵀF)⁺ = V·diag·Vᵀ,
    W₀ = (FᵀF)⁺Fᵀy, the refinement's F·W₀, Fᵀ·residual and (FᵀF)⁺ product
    (:func:`refinement_flops`), the ridge solve and the test predictions."""
    d, k_reg, k_cls = width, sum(plan.widths), sum(len(c) for c in plan.class_sets)
    flops = 0
    if plan.right_hand_sides is not None:
        flops += 2 * n_train * (d + 1) * (d + 1 + k_reg + k_cls)
    if k_reg:
        flops += (9 * d ** 3 + 2 * d ** 3 + 2 * (2 * d * d * k_reg) + 2 * n_test * d * k_reg
                  + refinement_flops(n_train, d, k_reg))
    if k_cls:
        flops += (2 * (d + 1) ** 3) // 3 + 2 * (d + 1) ** 2 * k_cls + 2 * n_test * (d + 1) * k_cls
    return flops


@torch.no_grad()
def linear_probes(model, train_batch, test_batch, targets: Sequence[str] | None = None,
                  hooks: Sequence[str] | None = None, task=None, seed: int = 0,
                  classifier: str = "least_squares") -> pd.DataFrame:
    """Fit a probe per (hook, target) on ``train_batch`` and score it on ``test_batch``.

    Reads the [batch, pos, d_model] activation at each hook (default: the residual stream,
    ``blocks.0.hook_resid_pre`` and every ``blocks.{l}.hook_resid_post``: the study's
    per-layer hidden states). Regression targets: least squares without bias (as in the
    study), metrics ``mse`` (+ ``mse_masked``, ``mse_observed``; for vector targets
    ``cosine`` and the study's mean absolute cosine ``abs_cosine``); targets are the task's
    and, for matrix tasks, the sign-free ``top_singular_projector`` (:func:`available_targets`);
    class targets:
    ``accuracy`` of a closed-form least-squares classifier (``classifier="least_squares"``,
    fast enough for every checkpoint of a run) or scikit-learn's logistic regression
    (``"logistic"``, on at most 20 000 training samples). Rows (see :mod:`.schema`): labelled
    ``target``.

    On plateau-lens' own models with no hook attached, the activations come from the clean
    pass shared with the checkpoint's other analyzers (:func:`~.clean_pass.hook_activations`),
    the targets are computed once per batch pair (:func:`probe_plan`) and the hooks' probes
    are fitted on every core.
    """
    check_choice("classifier", classifier, CLASSIFIERS)
    model = prepare(model, train_batch, task)
    task = model.task
    task.check_batch(test_batch)
    available = available_targets(task)
    targets = list(available) if targets is None else check_names("targets", targets, available)
    unknown = [t for t in targets if t not in available]
    if unknown or not targets:
        raise InputError(f"targets must be a non-empty list of {sorted(available)}, got {targets!r}")
    hooks = check_hook_names(model.bridge, default_hooks(model) if hooks is None else hooks)
    train_cache = hook_activations(model, train_batch.inputs, hooks)
    not_3d = {name: tuple(train_cache[name].shape) for name in hooks if train_cache[name].ndim != 3}
    if not_3d:
        raise InputError(f"hooks: probes read [batch, pos, d] activations; hooks {not_3d} are not "
                         f"(per-head or pattern hooks: probe blocks.{{l}}.hook_attn_out or the "
                         f"residual stream instead)")
    test_cache = hook_activations(model, test_batch.inputs, hooks)
    plan = probe_plan(task, train_batch, test_batch, targets, classifier)
    n_train = train_cache[hooks[0]].shape[0] * train_cache[hooks[0]].shape[1]
    moments = (_gram_and_moments(hooks, train_cache, plan.right_hand_sides)
               if plan.right_hand_sides is not None else {})

    def fit(name: str, part: str) -> dict[str, dict[str, float]]:
        x_test = einops.rearrange(test_cache[name].float(), "b p d -> (b p) d")
        if part == "regression":
            x_train = einops.rearrange(train_cache[name], "b p d -> (b p) d")
            return _regression_scores(x_train, x_test, plan, moments[name])
        if plan.class_sets:
            return _classifier_scores(x_test, plan, moments[name], n_train)
        x_train = einops.rearrange(train_cache[name].float(), "b p d -> (b p) d")
        return {t: {"accuracy": logistic_accuracy(x_train, plan.y_train[t], x_test, plan.y_test[t], seed)}
                for t in plan.class_targets}

    parts = ([("regression",)] if plan.regression_targets else []) + (
        [("classes",)] if plan.class_targets else [])
    fits = [(name, part) for name in hooks for (part,) in parts]
    scores: dict[str, dict[str, dict[str, float]]] = {name: {} for name in hooks}
    workers = analysis_workers(test_batch.inputs.device) if plan.class_sets or not plan.class_targets else 1
    for (name, _), result in zip(fits, parallel_map(lambda item: fit(*item), fits, workers)):
        scores[name].update(result)
    records = []
    for name in hooks:
        for target_name in targets:
            for metric, value in scores[name][target_name].items():
                records.append(record(metric, value, hook=name, target=target_name))
    return tidy(records, ["target"])


def _gram_and_moments(hooks: Sequence[str], train_cache: dict[str, Tensor],
                      right_hand_sides: Float[Tensor, "n k"]) -> dict[str, Tensor]:
    """[F 1]ᵀ[F 1 Y] in float64 for each hook: [d+1, d+1+k], whose first d+1 columns are the
    Gram matrix of [F 1] and the rest its moments with the right-hand sides Y. Summed over
    pieces of at most ``ROWS_PER_CHUNK`` rows, which run on
    :func:`~.parallel.run_parallel`'s threads."""
    pieces = []  # (hook, rows of the features)
    for name in hooks:
        features = einops.rearrange(train_cache[name], "b p d -> (b p) d")
        pieces += [(name, slice(start, min(start + ROWS_PER_CHUNK, len(features))))
                   for start in range(0, len(features), ROWS_PER_CHUNK)]

    def product(piece: tuple[str, slice]) -> Float[Tensor, "d+1 d+1+k"]:
        name, rows = piece
        features = einops.rearrange(train_cache[name], "b p d -> (b p) d")[rows]
        width = features.shape[1]
        extended = features.new_empty((len(features), width + 1 + right_hand_sides.shape[1]),
                                      dtype=torch.double)
        extended[:, :width] = features
        extended[:, width] = 1.0
        extended[:, width + 1:] = right_hand_sides[rows]
        return extended[:, : width + 1].T @ extended

    products = parallel_map(product, pieces, analysis_workers(right_hand_sides.device))
    totals: dict[str, Tensor] = {}
    for (name, _), value in zip(pieces, products):
        totals[name] = value if name not in totals else totals[name] + value
    return totals


def _regression_scores(x_train: Float[Tensor, "n d"], x_test: Float[Tensor, "m d"], plan: ProbePlan,
                       moments: Tensor) -> dict[str, dict[str, float]]:
    """The least-squares probes of one hook: ``moments`` = [F 1]ᵀ[F 1 Y] (:func:`_gram_and_moments`),
    refined on the training features (:func:`refined_least_squares`); the weights and the test
    predictions stay in float64 (in float32 their rounding, amplified by the features'
    condition number, moved the predictions by ~2e-4 on a post-LN model)."""
    width, k = x_test.shape[1], sum(plan.widths)
    # one least-squares solve for all regression targets (lstsq is column-wise)
    weights = refined_least_squares(moments[:-1, :width], moments[:-1, width + 1: width + 1 + k],
                                    x_train, plan.right_hand_sides[:, :k])
    x_test = x_test.double()
    predictions = torch.split(x_test @ weights, plan.widths, 1)
    scores_by_target = {}
    for target_name, prediction, truth in zip(plan.regression_targets, predictions, plan.regression_test):
        scores = regression_scores(prediction, truth)
        if target_name in plan.split_by_mask:
            for label, select in (("masked", plan.masked), ("observed", ~plan.masked)):
                if select.any():
                    scores[f"mse_{label}"] = torch.mean((prediction[select] - truth[select]) ** 2).item()
        scores_by_target[target_name] = scores
    return scores_by_target


def _classifier_scores(x_test: Float[Tensor, "n d"], plan: ProbePlan, moments: Tensor, n_train: int
                       ) -> dict[str, dict[str, float]]:
    """The closed-form classifiers of one hook (ridge regression onto the one-hot labels)."""
    width = x_test.shape[1]
    accuracies = ridge_classifier_accuracies(
        moments[:, : width + 1], moments[:, width + 1 + sum(plan.widths):], n_train,
        _with_bias(x_test), plan.class_sets, plan.labels_test)
    return {t: {"accuracy": a} for t, a in zip(plan.class_targets, accuracies)}
