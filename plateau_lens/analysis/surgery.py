"""Model surgery across checkpoints (the authors' ``switch_models.py``): part of the weights
from one checkpoint, the rest from another.

The study swaps in two ways (``fuse: att`` and ``fuse: mlp``), each in both directions:

* ``"qkv"``: the attention's query, key and value weights and biases (every parameter whose
  name contains "query", "key" or "value" in their BERT);
* ``"attention"``: the whole attention sublayer, i.e. Q, K, V, the output projection O and the
  sublayer's LayerNorm (their "mlp" fuse copies every parameter whose name does *not*
  contain "attention", so the attention's O-projection and its LayerNorm stay with the
  attention). Here that LayerNorm is ``ln1`` of each block: the norm before attention in the
  pre-LN blocks, the norm of x + attention(x) in post-LN (BERT) blocks.
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd
import torch

from ..metrics import finite_scalar_metrics
from ..models.build import build_model
from ..models.handle import PlateauModel
from ..errors import check_names
from ..tasks.base import check_choice
from .hooks import prepare
from .schema import metric_records, tidy

QKV_SUFFIXES = (".attn.q.weight", ".attn.q.bias", ".attn.k.weight", ".attn.k.bias",
                ".attn.v.weight", ".attn.v.bias")
ATTENTION_PARTS = (".attn.", ".ln1.")
SWAP_PARTS = ("qkv", "attention")


def _is_qkv(name: str) -> bool:
    return name.endswith(QKV_SUFFIXES)


def _is_attention(name: str) -> bool:
    dotted = "." + name
    return any(part in dotted for part in ATTENTION_PARTS)


SELECTORS = {"qkv": _is_qkv, "attention": _is_attention}


def hybrid_model(part_source: PlateauModel, rest_source: PlateauModel, part: str = "qkv") -> PlateauModel:
    """A new model with the ``part`` weights (``"qkv"`` or ``"attention"``, see the module
    docstring) of ``part_source`` and all other weights of ``rest_source``."""
    check_choice("part", part, SWAP_PARTS)
    selected = SELECTORS[part]
    part_state = part_source.network.state_dict()
    state = {name: (part_state[name] if selected(name) else tensor).clone()
             for name, tensor in rest_source.network.state_dict().items()}
    if not any(selected(name) for name in state):
        raise ValueError(f"no {part!r} parameters found in this network (names such as "
                         f"{list(state)[:4]})")
    model = build_model((rest_source.task, rest_source.config))
    model.network.load_state_dict(state)
    model.set_attention_bias(rest_source.attention_bias.multiplier)
    return model.eval()


@torch.no_grad()
def swap_attention(pre_model, post_model, batch, parts: Sequence[str] = SWAP_PARTS,
                   task=None) -> pd.DataFrame:
    """The study's switching experiment: metrics of pre, post, and for each of ``parts`` the
    two hybrids, e.g. ``qkv_post+rest_pre`` (Q/K/V of the post checkpoint, every other
    weight of the pre one) and ``attention_pre+rest_post`` (the whole attention sublayer,
    Q/K/V/O and its LayerNorm, of pre; embeddings, MLPs, their norms and the read-out of
    post). Originals are untouched. Reads only the output (the read-out). Rows (see
    :mod:`.schema`): one condition per model variant."""
    parts = check_names("parts", parts, SWAP_PARTS)
    post = prepare(post_model, batch, task)
    pre = PlateauModel.resolve(pre_model, post.task)
    if pre.network is None or post.network is None:
        raise ValueError("swap_attention needs plateau-lens models (it rebuilds networks); for "
                         "pretrained checkpoints, patch_between_models(pre, post, batch, "
                         "hooks='attn.hook_z') moves attention outputs instead")
    if pre.network.state_dict().keys() != post.network.state_dict().keys() or pre.config != post.config:
        raise ValueError("swap_attention needs two checkpoints of the same architecture")
    variants = {"pre": pre, "post": post}
    for part in parts:
        variants[f"{part}_post+rest_pre"] = hybrid_model(post, pre, part)
        variants[f"{part}_pre+rest_post"] = hybrid_model(pre, post, part)
    records = []
    for name, variant in variants.items():
        records += metric_records(finite_scalar_metrics(post.task, variant(batch.inputs), batch),
                                  condition=name)
    return tidy(records)


__all__ = ["hybrid_model", "swap_attention", "SWAP_PARTS"]
