"""Model surgery across checkpoints: attention (Q, K, V) from one, the rest from another."""

from __future__ import annotations

import pandas as pd
import torch

from ..metrics import scalar_metrics
from ..models.build import build_model
from ..models.handle import PlateauModel
from .hooks import prepare
from .schema import metric_records, tidy

QKV_SUFFIXES = (".attn.q.weight", ".attn.q.bias", ".attn.k.weight", ".attn.k.bias",
                ".attn.v.weight", ".attn.v.bias")


def _is_qkv(name: str) -> bool:
    return name.endswith(QKV_SUFFIXES)


def hybrid_model(qkv_source: PlateauModel, rest_source: PlateauModel) -> PlateauModel:
    """A new model with the Q/K/V weights of ``qkv_source`` and all else of ``rest_source``."""
    qkv_state = qkv_source.network.state_dict()
    state = {name: (qkv_state[name] if _is_qkv(name) else tensor).clone()
             for name, tensor in rest_source.network.state_dict().items()}
    model = build_model(rest_source.task, rest_source.config)
    model.network.load_state_dict(state)
    model.set_attention_bias(rest_source.attention_bias.multiplier)
    return model.eval()


@torch.no_grad()
def swap_attention(pre_model, post_model, batch, task=None) -> pd.DataFrame:
    """The study's switching experiment: metrics of pre, post, and the two hybrids
    (Q/K/V of one checkpoint, every other weight of the other). Originals are untouched.
    Rows (see :mod:`.schema`): one condition per model variant."""
    post = prepare(post_model, batch, task)
    pre = PlateauModel.resolve(pre_model, post.task)
    if pre.network is None or post.network is None:
        raise ValueError("swap_attention needs plateau-lens models (it rebuilds networks)")
    if pre.network.state_dict().keys() != post.network.state_dict().keys() or pre.config != post.config:
        raise ValueError("swap_attention needs two checkpoints of the same architecture")
    variants = {
        "pre": pre, "post": post,
        "qkv_post+rest_pre": hybrid_model(post, pre),
        "qkv_pre+rest_post": hybrid_model(pre, post),
    }
    records = []
    for name, variant in variants.items():
        records += metric_records(scalar_metrics(post.task, variant(batch.inputs), batch),
                                  condition=name)
    return tidy(records)
