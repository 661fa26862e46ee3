"""Embedding analyses of the matrix-completion study (the authors' ``src/embed.py``).

Token embeddings (``hook_embed``: for the study's token encoding, rows of
``tok_embed.weight``, the study's ``word_embeddings.weight``; the values −1.5 … 1.5 are its
rows 851–1151):

* :func:`token_embedding_norms`: ℓ2 norm of each value's embedding, over the value;
* :func:`token_embedding_pca`: the embeddings' top principal components, per value (the
  study colours them by value range: magnitude and sign);
* :func:`token_progress`: earlier checkpoints' embeddings projected on the final
  checkpoint's principal components (before, during and after the drop).

Positional embeddings (``hook_pos_embed``: rows of ``pos.weight``, the study's
``position_embeddings.weight[:m·n]``):

* :func:`positional_embedding_norms`: ℓ2 norm per position;
* :func:`positional_embedding_tsne`: t-SNE of the m·n position vectors, labelled by row and
  column (the study colours by column);
* :func:`positional_embedding_neighbours`: how often a position's nearest neighbour is in
  its own column / row (a number for what the t-SNE shows);
* :func:`permuted_positions`: shuffle the positional embeddings and measure the loss.

Everything reads the embeddings through the bridge's hooks, so it works for either input
encoding (for the real-valued one, the "embedding of value x" is x·w + b) and either
positional embedding (learned table, or row + column factors). The weight-level analyzers
take an unused ``batch`` second argument so that ``analyze_run(run, analyzer)`` can call
them over a checkpoint series like any other analyzer.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor
from ..progress import progress_bar

from ..metrics import finite_scalar_metrics
from ..models.handle import PlateauModel
from ..tasks.base import check_choice, check_int
from ..tasks.protocol import optional_member
from .hooks import prepare, require
from .schema import metric_records, record, tidy

TOKEN_HOOK = "hook_embed"
POSITION_HOOK = "hook_pos_embed"
STUDY_VALUE_LIMIT = 1.5
"""The study plots value tokens −1.5 … 1.5 (step 0.01) for 7×7 rank-2 matrices."""
VALUE_RANGE_WIDTH = 0.5
"""The study colours value tokens by ranges of width 0.5: [−1.5, −1), …, [1, 1.5]."""


# ------------------------------------------------------------------------------ helpers
def _matrix_model(model, task, analyzer: str) -> PlateauModel:
    handle = PlateauModel.resolve(model, task)
    require(handle, analyzer)
    return handle


def default_values(task) -> np.ndarray:
    """The values whose embeddings are analysed: −L … L in steps of 0.01 with
    L = min(1.5, rank) for uniform factors (entries of U Vᵀ lie in [−rank, rank]; the study's
    7×7 rank-2 setting gives its −1.5 … 1.5), 1.5 for other factor distributions."""
    limit = STUDY_VALUE_LIMIT
    if optional_member(task, "factor_distribution") == "uniform":
        limit = min(limit, float(task.rank))
    return np.round(np.arange(-limit, limit + 1e-9, 0.01), 2)


def value_range_labels(values: Sequence[float], width: float = VALUE_RANGE_WIDTH) -> list[str]:
    """The study's colour groups: [a, a + width) from the smallest value up, the last group
    closed ([1, 1.5] in the study)."""
    values = np.asarray(values, dtype=float)
    low, high = float(values.min()), float(values.max())
    n_groups = max(1, int(np.ceil((high - low) / width - 1e-9)))
    index = np.minimum(np.floor((values - low) / width + 1e-9).astype(int), n_groups - 1)
    def label(i: int) -> str:
        start = low + i * width
        return f"[{start:g}, {high:g}]" if i == n_groups - 1 else f"[{start:g}, {start + width:g})"

    return [label(int(i)) for i in index]


def _check_values(values) -> np.ndarray:
    values = np.asarray(values, dtype=float).ravel()
    if values.size < 2 or not np.isfinite(values).all():
        raise ValueError(f"values must hold at least 2 finite numbers, got {values!r}")
    return values


@torch.no_grad()
def value_embeddings(model, values: Sequence[float] | None = None,
                     task=None) -> tuple[np.ndarray, Float[Tensor, "value d_model"]]:
    """``(values, E)``: E[i] is the embedding of value ``values[i]`` as the model reads it at
    ``hook_embed`` (the task encodes the value: its token, or its fixed-point id)."""
    model = _matrix_model(model, task, "value_embeddings")
    task = model.task
    values = default_values(task) if values is None else _check_values(values)
    matrix = torch.tensor(values, dtype=torch.float32)[:, None, None].expand(-1, task.m, task.n)
    ids = task.encode(matrix, torch.ones(matrix.shape, dtype=torch.bool))
    _, cache = model.bridge.run_with_cache(ids, names_filter=lambda n: n == TOKEN_HOOK,
                                           stop_at_layer=0)
    return values, cache[TOKEN_HOOK][:, 0].double().cpu()


@torch.no_grad()
def positional_embeddings(model, task=None) -> Float[Tensor, "pos d_model"]:
    """The m·n position vectors as the model adds them (``hook_pos_embed``)."""
    model = _matrix_model(model, task, "positional_embeddings")
    task = model.task
    ids = task.encode(torch.zeros(1, task.m, task.n), torch.zeros(1, task.m, task.n, dtype=torch.bool))
    _, cache = model.bridge.run_with_cache(ids, names_filter=lambda n: n == POSITION_HOOK,
                                           stop_at_layer=0)
    return cache[POSITION_HOOK][0].double().cpu()


def principal_components(matrix: Float[Tensor, "n d"], n_components: int
                         ) -> tuple[Tensor, Tensor, Tensor]:
    """``(mean, components [k, d], explained_variance_ratio [k])`` of the rows of ``matrix``
    (float64 SVD of the centred rows). Sign convention: each component's largest-magnitude
    loading is positive (deterministic; PCA fixes directions only up to sign)."""
    matrix = matrix.double()
    check_int("n_components", n_components, 1, min(matrix.shape))
    mean = matrix.mean(0)
    _, singular, vh = torch.linalg.svd(matrix - mean, full_matrices=False)
    components = vh[:n_components]
    largest = components.abs().argmax(1)
    signs = torch.sign(components[torch.arange(n_components), largest])
    components = components * torch.where(signs == 0, 1.0, signs)[:, None]
    variance = singular ** 2
    return mean, components, variance[:n_components] / variance.sum().clamp_min(1e-300)


# ------------------------------------------------------------------------- token analyses
def token_embedding_norms(model, batch=None, values: Sequence[float] | None = None,
                          task=None) -> pd.DataFrame:
    """ℓ2 norm of each value's token embedding (``hook_embed``; the study's
    ``word_embeddings.weight`` rows, plotted over the value). Rows (see :mod:`.schema`):
    labelled ``entry_value`` and ``value_range``, metric ``norm``."""
    values, embeddings = value_embeddings(model, values, task)
    norms = embeddings.norm(dim=-1)
    ranges = value_range_labels(values)
    return tidy([record("norm", norm, hook=TOKEN_HOOK, entry_value=float(value), value_range=label)
                 for value, label, norm in zip(values, ranges, norms.tolist())],
                ["entry_value", "value_range"])


def token_embedding_pca(model, batch=None, values: Sequence[float] | None = None,
                        n_components: int = 2, task=None) -> pd.DataFrame:
    """The value-token embeddings (``hook_embed``) on their top principal components (the
    study: PCA of ``word_embeddings.weight`` rows 851–1151, coloured by value range; its
    top 2 PCs encode magnitude and sign). Rows: labelled ``entry_value`` and ``value_range``,
    metrics ``pc1`` … (centred projections), and ``explained_variance_ratio`` per component
    (``entry_value`` NA, ``position`` = component index, 0-based)."""
    values, embeddings = value_embeddings(model, values, task)
    mean, components, ratio = principal_components(embeddings, n_components)
    projections = (embeddings - mean) @ components.T
    return tidy(_projection_records(values, projections) + [
        record("explained_variance_ratio", r, hook=TOKEN_HOOK, position=k, entry_value=None,
               value_range=None) for k, r in enumerate(ratio.tolist())], ["entry_value", "value_range"])


def _projection_records(values: np.ndarray, projections: Tensor, **labels) -> list[dict]:
    ranges = value_range_labels(values)
    return [record(f"pc{k + 1}", projections[i, k].item(), hook=TOKEN_HOOK, **labels,
                   entry_value=float(value), value_range=ranges[i])
            for i, value in enumerate(values) for k in range(projections.shape[1])]


def token_progress(run, steps: Iterable[int] | None = None, final_step: int | None = None,
                   values: Sequence[float] | None = None, n_components: int = 2,
                   center: bool = False, progress: bool = True) -> pd.DataFrame:
    """Token embeddings (``hook_embed``) of earlier checkpoints projected on the principal
    components of the final checkpoint's (the study's "token progress": steps before,
    during and after the drop, e.g. 4 000, 10 000, 14 000, 16 000, 20 000 of 50 000).

    As in the authors' code the projection is E_step · PCᵀ without centring (``center=True``
    subtracts the final checkpoint's mean embedding first, so that the final step equals
    :func:`token_embedding_pca`). Rows: ``step`` first, labelled ``entry_value``, ``value_range``,
    metrics ``pc1`` …; the final checkpoint's ``explained_variance_ratio`` rows carry its step.
    """
    final_step = run.steps[-1] if final_step is None else final_step
    steps = list(run.steps) if steps is None else list(steps)
    missing = [s for s in [*steps, final_step] if s not in run.checkpoints]
    if missing or not steps:
        raise ValueError(f"steps must be a non-empty list of checkpoint steps of {run.path}; "
                         f"{missing or 'none'} not available (have {run.steps})")
    values, final = value_embeddings(run.model(final_step), values)
    mean, components, ratio = principal_components(final, n_components)
    offset = mean if center else torch.zeros_like(mean)
    records = [record("explained_variance_ratio", r, hook=TOKEN_HOOK, position=k, step=final_step,
                      entry_value=None, value_range=None) for k, r in enumerate(ratio.tolist())]
    for step, model in progress_bar(run.models(steps), total=len(steps), desc="token progress",
                            disable=not progress):
        _, embeddings = value_embeddings(model, values)
        records += _projection_records(values, (embeddings - offset) @ components.T, step=step)
    return tidy(records, ["step", "entry_value", "value_range"])


# ----------------------------------------------------------------------- position analyses
def _row_column(task) -> tuple[np.ndarray, np.ndarray]:
    positions = np.arange(task.m * task.n)
    return positions // task.n, positions % task.n


def positional_embedding_norms(model, batch=None, task=None) -> pd.DataFrame:
    """ℓ2 norm of each position's embedding (``hook_pos_embed``; the study's
    ``position_embeddings.weight[:m·n]``). Rows: ``position`` (row-major), labelled ``row``
    and ``column``, metric ``norm``."""
    model = _matrix_model(model, task, "positional_embedding_norms")
    rows, columns = _row_column(model.task)
    norms = positional_embeddings(model).norm(dim=-1).tolist()
    return tidy([record("norm", norm, hook=POSITION_HOOK, position=p, row=int(rows[p]),
                        column=int(columns[p])) for p, norm in enumerate(norms)],
                ["row", "column"])


def default_perplexity(n_points: int) -> float:
    """scikit-learn's default 30 for more than 45 points (the study: 49 positions), else
    (n − 1)/3, at least 1 (t-SNE needs perplexity below the number of points)."""
    return 30.0 if n_points > 45 else max(1.0, (n_points - 1) / 3)


def tsne_embedding(points: np.ndarray, perplexity: float, seed: int) -> np.ndarray:
    """scikit-learn's t-SNE to 2 dimensions (PCA initialisation, fixed seed), on one thread:
    for a few dozen points its OpenMP threads only wait on each other (measured on a busy
    2-core machine with torch holding 2 threads: 29 s for 12 points, 1 s on one thread),
    and one thread makes the layout independent of the machine's thread count."""
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed
                    ).fit_transform(points)


def positional_embedding_tsne(model, batch=None, perplexity: float | None = None, seed: int = 0,
                              task=None) -> pd.DataFrame:
    """t-SNE of the m·n position vectors (``hook_pos_embed``), the study's figure where
    positions of the same column cluster. Rows: ``position``, labelled ``row`` and
    ``column``, metrics ``tsne_1`` and ``tsne_2``. ``perplexity``: see
    :func:`default_perplexity`."""
    model = _matrix_model(model, task, "positional_embedding_tsne")
    points = positional_embeddings(model).cpu().numpy()
    perplexity = default_perplexity(len(points)) if perplexity is None else float(perplexity)
    if not 0 < perplexity < len(points):
        raise ValueError(f"perplexity must be in (0, {len(points)}) for {len(points)} positions, "
                         f"got {perplexity}")
    coordinates = tsne_embedding(points, perplexity, seed)
    rows, columns = _row_column(model.task)
    return tidy([record(f"tsne_{axis + 1}", coordinates[p, axis], hook=POSITION_HOOK, position=p,
                        row=int(rows[p]), column=int(columns[p]))
                 for p in range(len(points)) for axis in range(2)], ["row", "column"])


def positional_embedding_neighbours(model, batch=None, task=None) -> pd.DataFrame:
    """How the position vectors (``hook_pos_embed``) group: the fraction of positions whose
    nearest other position (Euclidean, in d_model) is in the same column, resp. row, beside
    the chance levels (m−1)/(mn−1) and (n−1)/(mn−1). Rows: metrics ``same_column_neighbour``,
    ``same_row_neighbour``, ``chance_same_column``, ``chance_same_row``."""
    model = _matrix_model(model, task, "positional_embedding_neighbours")
    task = model.task
    points = positional_embeddings(model)
    distances = torch.cdist(points, points)
    distances.fill_diagonal_(float("inf"))
    nearest = distances.argmin(1).cpu().numpy()
    rows, columns = _row_column(task)
    size = task.m * task.n
    metrics = {
        "same_column_neighbour": float(np.mean(columns[nearest] == columns)),
        "same_row_neighbour": float(np.mean(rows[nearest] == rows)),
        "chance_same_column": (task.m - 1) / (size - 1),
        "chance_same_row": (task.n - 1) / (size - 1),
    }
    return tidy(metric_records(metrics, hook=POSITION_HOOK))


PERMUTATION_SCOPES = ("all", "rows", "columns")


def position_permutation(task, scope: str, generator: torch.Generator) -> Tensor:
    """``source`` with source[p] = the position whose embedding position p receives:
    ``"all"``: any position (the study's ``randperm(m·n)``); ``"rows"``: the matrix rows are
    shuffled, so every position keeps its column's embedding family; ``"columns"``: the
    columns are shuffled, every position keeps its row."""
    check_choice("scope", scope, PERMUTATION_SCOPES)
    m, n = task.m, task.n
    if scope == "all":
        return torch.randperm(m * n, generator=generator)
    rows = torch.arange(m)[:, None].expand(m, n)
    columns = torch.arange(n)[None, :].expand(m, n)
    if scope == "rows":
        rows = torch.randperm(m, generator=generator)[rows]
    else:
        columns = torch.randperm(n, generator=generator)[columns]
    return (rows * n + columns).reshape(-1)


@torch.no_grad()
def permuted_positions(model, batch, n_permutations: int = 8,
                       scopes: Sequence[str] = PERMUTATION_SCOPES, seed: int = 0,
                       task=None, progress: bool = True) -> pd.DataFrame:
    """The study's permuted-positions experiment: the model's metrics when the positional
    embeddings are shuffled (``hook_pos_embed`` output re-indexed by a permutation, the
    same as permuting the rows of ``pos.weight``), for ``n_permutations`` random
    permutations of each scope (:func:`position_permutation`: ``all`` is the study's).
    Rows: condition ``clean`` (scope and permutation NA) and ``permuted``, labelled ``scope``
    and ``permutation``; metrics are the task's (loss = MSE over all entries, masked_mse,
    observed_mse, masked_abs_pred)."""
    model = prepare(model, batch, task)
    require(model, "permuted_positions")
    check_int("n_permutations", n_permutations, 1)
    scopes = list(scopes)
    if not scopes:
        raise ValueError(f"scopes must be a non-empty list of {list(PERMUTATION_SCOPES)}")
    for scope in scopes:
        check_choice("scope", scope, PERMUTATION_SCOPES)
    task = model.task
    records = metric_records(finite_scalar_metrics(task, model(batch.inputs), batch), condition="clean",
                             scope=None, permutation=None)
    generator = torch.Generator().manual_seed(seed)
    jobs = [(scope, index) for scope in scopes for index in range(n_permutations)]
    for scope, index in progress_bar(jobs, desc="permutations", disable=not progress, leave=False):
        source = position_permutation(task, scope, generator)

        def shuffle(activation, hook, source=source):
            return activation[:, source.to(activation.device)]

        with model.bridge.hooks(fwd_hooks=[(POSITION_HOOK, shuffle)]):
            output = model(batch.inputs)
        records += metric_records(finite_scalar_metrics(task, output, batch), condition="permuted",
                                  hook=POSITION_HOOK, scope=scope, permutation=index)
    frame = tidy(records, ["scope", "permutation"])
    frame["permutation"] = frame["permutation"].astype("Int64")
    return frame


__all__ = [
    "default_values", "value_range_labels", "value_embeddings", "positional_embeddings",
    "principal_components", "token_embedding_norms", "token_embedding_pca", "token_progress",
    "positional_embedding_norms", "positional_embedding_tsne", "positional_embedding_neighbours",
    "position_permutation", "permuted_positions", "default_perplexity",
]
