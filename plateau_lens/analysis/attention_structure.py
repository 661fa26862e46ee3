"""Where LRMC heads attend: same row, same column, observed vs masked keys; mean maps."""

from __future__ import annotations

from typing import Sequence

import einops
import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from ..tasks.base import MatrixBatch, check_choice
from ..tasks.protocol import has_capability
from .hooks import prepare, require
from .schema import record, tidy


def _pattern_names(model) -> list[str]:
    return [f"blocks.{layer}.attn.hook_pattern" for layer in range(model.cfg.n_layers)]


ROW_MASK_REST = ("observed", "batch")


def mask_rows(task, batch: MatrixBatch, rows: Sequence[int], keep: Sequence[int] | None,
              rest: str = "observed") -> MatrixBatch:
    """The batch with every entry of the chosen ``rows`` masked except one per row, in
    column ``keep[i]`` for row ``rows[i]`` (the study's row-masking option in ``att_maps.py``;
    its configuration masks rows 3 and 6 of a 7×7 matrix except columns 1 and 5, 0-indexed:
    :func:`study_row_mask`). ``keep=None`` masks the rows entirely. ``rest``: ``"observed"``
    (the study's: every entry outside the chosen rows is shown) or ``"batch"`` (outside the
    chosen rows the batch's own observation mask is kept)."""
    check_choice("rest", rest, ROW_MASK_REST)
    rows = [int(r) for r in rows]
    bad = [r for r in rows if not 0 <= r < task.m]
    if bad or not rows:
        raise ValueError(f"rows must be a non-empty list of row indices in [0, {task.m - 1}], got {rows}")
    if len(set(rows)) != len(rows):
        raise ValueError(f"rows must not repeat, got {rows}")
    if keep is not None:
        keep = [int(c) for c in keep]
        if len(keep) != len(rows):
            raise ValueError(f"keep must give one column per row ({len(rows)}), got {keep}")
        bad = [c for c in keep if not 0 <= c < task.n]
        if bad:
            raise ValueError(f"keep columns must be in [0, {task.n - 1}], got {bad}")
    observed = (torch.ones_like(batch.observed) if rest == "observed" else batch.observed.clone())
    observed[:, rows] = False
    if keep is not None:
        observed[:, rows, keep] = True
    return task.with_inputs(batch, observed=observed)


def study_row_mask(task) -> tuple[list[int], list[int]]:
    """``(rows, keep)`` of the study's row-masking figure: rows 3 and 6 of 7, observed only
    in columns 1 and 5 (0-indexed). Other sizes: the middle and the last row, observed in
    column 1 and the second-to-last column (the same rule; needs m ≥ 2 and n ≥ 3)."""
    if task.m < 2 or task.n < 3:
        raise ValueError(f"the study's row mask needs m >= 2 and n >= 3, got {task.m}×{task.n}")
    return [task.m // 2, task.m - 1], [1, task.n - 2]


@torch.no_grad()
def mean_attention_patterns(model, batch, task=None) -> Float[Tensor, "layer head query key"]:
    """Batch-averaged attention pattern (``hook_pattern``) of every head, as one tensor (for
    figures such as ``plots.attention_grid``)."""
    model = prepare(model, batch, task)
    names = _pattern_names(model)
    _, cache = model.bridge.run_with_cache(batch.inputs, names_filter=lambda n: n in names)
    return torch.stack([cache[name].float().mean(0) for name in names])


def attention_patterns(model, batch, task=None) -> pd.DataFrame:
    """Batch-averaged attention maps (the study's ``att_maps.py``), tidy: one row per layer,
    head, query ``position`` and ``key``, metric ``attention``."""
    patterns = mean_attention_patterns(model, batch, task)
    layer, head, query, key = (index.ravel() for index in np.indices(patterns.shape))
    frame = pd.DataFrame({"key": key, "condition": None,
                          "hook": [f"blocks.{l}.attn.hook_pattern" for l in layer],
                          "layer": layer, "head": head, "position": query,
                          "metric": "attention", "value": patterns.double().cpu().numpy().ravel()})
    return frame.astype({"key": "Int64", "layer": "Int64", "head": "Int64", "position": "Int64"})


@torch.no_grad()
def _matrix_key_groups(task, batch) -> tuple[range, dict[str, Tensor]]:
    """Encoder (``lrmc``): every position is a query; its entry is the one it carries."""
    rows = torch.arange(task.m).repeat_interleave(task.n)
    cols = torch.arange(task.n).repeat(task.m)
    self_mask = torch.eye(task.m * task.n, dtype=torch.bool)
    key_observed = einops.rearrange(batch.observed, "b m n -> b 1 (m n)").double()
    groups = {"same_row": (rows[:, None] == rows[None, :]) & ~self_mask,
              "same_column": (cols[:, None] == cols[None, :]) & ~self_mask,
              "self": self_mask, "observed_keys": key_observed, "masked_keys": 1 - key_observed}
    return range(task.m * task.n), groups


def _sequence_key_groups(task, batch) -> tuple[range, dict[str, Tensor]]:
    """GPT variant (``lrmc_gpt``): the queries are the answer rows (the position before each
    answer token: SEP predicts X₁₁, …); a query's entry is the one it predicts. Keys carry the
    entry of :meth:`entry_of_position` (prompt copy, or the answer copy written so far)."""
    from ..tasks.lrmc_gpt import GPT_MASK

    key_rows, key_cols = task.entry_of_position()
    queries = task.answer_rows()
    query_rows = torch.arange(task.m).repeat_interleave(task.n)
    query_cols = torch.arange(task.n).repeat(task.m)
    is_entry = key_rows[None, :] >= 0
    same_entry = (key_rows[None, :] == query_rows[:, None]) & (key_cols[None, :] == query_cols[:, None])
    position = torch.arange(len(key_rows))
    prompt = position < task.m * task.n
    shown = (batch.inputs != GPT_MASK).cpu()
    groups = {"same_row": (key_rows[None, :] == query_rows[:, None]) & ~same_entry & is_entry,
              "same_column": (key_cols[None, :] == query_cols[:, None]) & ~same_entry & is_entry,
              "self": same_entry,
              "observed_keys": (prompt & shown)[:, None, :].double(),
              "masked_keys": (prompt & ~shown)[:, None, :].double(),
              "separator": (position == task.m * task.n)[None, :],
              "answer_keys": (position > task.m * task.n)[None, :]}
    return queries, groups


def attention_structure(model, batch, task=None) -> pd.DataFrame:
    """Per head, the mean share of attention (|A| normalised per query, A = ``hook_pattern``)
    a query puts on keys in its own row, its own column (excluding itself), itself, observed
    keys and masked keys; under uniform attention these are (n−1)/(mn), (m−1)/(mn), 1/(mn)
    and the observed/masked fractions. Rows (see :mod:`.schema`): metrics ``same_row``,
    ``same_column``, ``self``, ``observed_keys``, ``masked_keys``.

    On the GPT variant (``lrmc_gpt``, causal) the queries are the answer rows and a query's
    entry is the one it predicts: ``self`` is the share on that entry's prompt copy (observed
    or MASK), ``same_row`` / ``same_column`` on other entries of its row / column (prompt
    copies and the answer written so far), ``observed_keys`` / ``masked_keys`` on the prompt's
    observed / MASK tokens, plus ``separator`` and ``answer_keys`` (the answer so far)."""
    model = prepare(model, batch, task)
    require(model, "attention_structure")
    task = model.task
    sequence = has_capability(task, "matrix_sequence")
    queries, groups = (_sequence_key_groups if sequence else _matrix_key_groups)(task, batch)
    names = _pattern_names(model)
    _, cache = model.bridge.run_with_cache(batch.inputs, names_filter=lambda n: n in names)
    records = []
    for name in names:
        magnitude = cache[name].double().abs()[:, :, queries.start:queries.stop].cpu()  # [b h q k]
        total = magnitude.sum(-1).clamp(min=1e-300)

        def share(weights: Tensor) -> Tensor:
            weights = weights.double()
            if weights.ndim == 3:  # per sample: [b, q or 1, k]
                weights = weights[:, None]
            return ((magnitude * weights).sum(-1) / total).mean(dim=(0, 2))

        shares = {metric: share(weights) for metric, weights in groups.items()}
        for head in range(model.cfg.n_heads):
            records += [record(metric, values[head].item(), hook=name, head=head)
                        for metric, values in shares.items()]
    return tidy(records)


def uniform_baseline(task, observed_fraction: float) -> dict[str, float]:
    size = task.m * task.n
    return {"same_row": (task.n - 1) / size, "same_column": (task.m - 1) / size,
            "self": 1 / size, "observed_keys": observed_fraction,
            "masked_keys": 1 - observed_fraction}
