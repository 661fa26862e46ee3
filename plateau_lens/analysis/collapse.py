"""Representation collapse and repetition bias (the loss-plateau study)."""

from __future__ import annotations

from typing import Sequence

import pandas as pd
import torch

from ..metrics import (finite_forward, generation_metrics, mean_cosine_over_pairs, mean_pairwise_cosine,
                       readout_input_hook)
from ..errors import check_layers, check_names, check_positions
from ..tasks.protocol import has_capability
from .hooks import check_hook_names, prepare, require
from .fastpath.parallel import one_intra_op_thread
from .schema import metric_records, record, tidy

BLOCK_SITES = {
    "pre_att_h": "blocks.{layer}.hook_resid_pre",
    "post_att_h": "blocks.{layer}.hook_attn_out",
    "post_att_res_h": "blocks.{layer}.hook_resid_mid",
    "post_mlp_h": "blocks.{layer}.hook_resid_post",
}
"""The study's per-layer sites (tf-loss-plateau ``src/model_linear_all_locs.py``), named as
there: the residual stream entering the block (``pre_att_h``: the embeddings for its
1-layer model), the attention output after the output projection, the residual stream after
attention, the residual stream after the MLP (for the last block: before ln_f)."""
PARALLEL_MID = ("blocks.{layer}.hook_resid_pre", "blocks.{layer}.hook_attn_out")
"""``post_att_res_h`` on a parallel-residual block (GPT-NeoX/Pythia, ``cfg.parallel_attn_mlp``:
x_out = x + Attn(LN₁ x) + MLP(LN₂ x)), which has no ``hook_resid_mid``: the stream holds no
state with attention added and the MLP not, so we read x + Attn(LN₁ x), the sum of these two
hooks: the residual stream after attention as a sequential block would have it (its MLP
reads LN₂ x, not this sum)."""
FINAL_SITE = "pre_lm_h"
"""ln_f's output including its weight and bias, the input of the unembedding (``pre_lm_h``
in the study's ``src/model_linear.py``: the site of its cosine-similarity figures)."""
SITES = (*BLOCK_SITES, FINAL_SITE)


def is_parallel_residual(bridge) -> bool:
    """Attention and MLP read the same block input (GPT-NeoX/Pythia): no ``hook_resid_mid``."""
    return bool(getattr(bridge.cfg, "parallel_attn_mlp", False)) and \
        "blocks.0.hook_resid_mid" not in bridge.hook_dict


def collapse_hooks(bridge, sites: Sequence[str], layers: Sequence[int]
                   ) -> dict[tuple[str, int | None], tuple[str, ...]]:
    """``(site, layer) -> hook names whose activations are summed`` (one name but for
    ``post_att_res_h`` on a parallel-residual model, see :data:`PARALLEL_MID`); the final
    site has no layer."""
    sites = check_names("sites", sites, SITES)
    layers = check_layers("layers", layers, bridge.cfg.n_layers)
    parallel = is_parallel_residual(bridge)
    names = {}
    for site in sites:
        if site == FINAL_SITE:
            names[(site, None)] = (readout_input_hook(bridge),)
        else:
            for layer in layers:
                templates = PARALLEL_MID if parallel and site == "post_att_res_h" else (BLOCK_SITES[site],)
                names[(site, layer)] = tuple(t.format(layer=layer) for t in templates)
    return names


@torch.no_grad()
def representation_collapse(model, batch, sites: Sequence[str] | None = None,
                            layers: Sequence[int] | None = None,
                            positions: Sequence[int] | None = None, task=None) -> pd.DataFrame:
    """Mean pairwise cosine similarity of hidden states across ``positions``, teacher-forced
    (the loss-plateau study's representation collapse).

    ``sites``: the study's names (:data:`SITES`, default all): ``pre_lm_h`` is ln_f's output
    with its affine (``ln_final.hook_out``), the study's headline site; the others are read
    at every block in ``layers`` (default all); on a parallel-residual block (GPT-NeoX,
    Pythia) ``post_att_res_h`` is ``hook_resid_pre + hook_attn_out`` (:data:`PARALLEL_MID`;
    its ``hook`` column names both). ``positions``: default
    the task's headline pairs (``task.collapse_pairs()["cosine_similarity"]`` where the task
    states pairs, e.g. within blocks for repeat-k; else every pair of
    ``task.collapse_positions()``; MWS: rows 17–31, 105 pairs per sample), the same number
    the training log's ``cosine_similarity`` reports. Rows (see :mod:`.schema`): labelled
    ``site``, metric ``cosine_similarity``. The hooked pass runs on one intra-op thread on
    the CPU (:func:`~.parallel.one_intra_op_thread`: faster at our sizes, the same values)."""
    model = prepare(model, batch, task)
    pairs = None
    if positions is None and has_capability(model.task, "collapse_pairs"):
        pairs = model.task.collapse_pairs()["cosine_similarity"]
        positions = sorted({p for pair in pairs for p in pair})
    positions = model.task.collapse_positions() if positions is None else positions
    positions = check_positions("positions", positions, batch.inputs.shape[1], minimum=2)
    layers = range(model.cfg.n_layers) if layers is None else layers
    names = collapse_hooks(model.bridge, SITES if sites is None else sites, layers)
    wanted = {name for hooks in names.values() for name in hooks}
    check_hook_names(model.bridge, sorted(wanted))
    with one_intra_op_thread(batch.inputs.device):
        _, cache = model.bridge.run_with_cache(batch.inputs, names_filter=lambda n: n in wanted)

    def cosine(hidden):
        if pairs is not None:
            return mean_cosine_over_pairs(hidden, pairs)
        return mean_pairwise_cosine(hidden[:, positions])

    return tidy([record("cosine_similarity", cosine(sum(cache[name] for name in hooks)),
                        hook=" + ".join(hooks), site=site)
                 for (site, _), hooks in names.items()], ["site"])


@torch.no_grad()
def repetition(model, batch, task=None) -> pd.DataFrame:
    """Greedy generation from the prompts: repetition frequency of the model's outputs
    (mean of [ŷ_t = ŷ_{t+1}] over adjacent answer pairs) beside that of the true outputs,
    and accuracy overall and per answer position (metrics ``accuracy_pos_{i}``)."""
    model = prepare(model, batch, task)
    require(model, "repetition")
    return tidy(metric_records(generation_metrics(model.task, finite_forward(model.bridge), batch)))
