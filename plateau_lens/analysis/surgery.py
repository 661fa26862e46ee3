"""Model surgery across checkpoints: attention (Q, K, V) from one, the rest from another."""

from __future__ import annotations

import pandas as pd
import torch

from ..models.build import build_network, wrap_in_bridge
from .hooks import check_task_batch, model_task
from .metrics import output_metrics

QKV_SUFFIXES = (".attn.q.weight", ".attn.q.bias", ".attn.k.weight", ".attn.k.bias",
                ".attn.v.weight", ".attn.v.bias")


def _is_qkv(name: str) -> bool:
    return name.endswith(QKV_SUFFIXES)


def hybrid_network(qkv_source, rest_source, task, model_config):
    """A new network with Q/K/V weights of ``qkv_source`` and all else of ``rest_source``."""
    qkv_state = qkv_source.state_dict()
    state = {name: (qkv_state[name] if _is_qkv(name) else tensor).clone()
             for name, tensor in rest_source.state_dict().items()}
    network = build_network(task, model_config)
    network.load_state_dict(state)
    return network.eval()


@torch.no_grad()
def swap_attention(pre_model, post_model, batch, task=None) -> pd.DataFrame:
    """The study's switching experiment: metrics of pre, post, and the two hybrids
    (Q/K/V of one checkpoint, every other weight of the other). Originals are untouched."""
    task = model_task(post_model, task)
    check_task_batch(task, batch)
    config = getattr(post_model, "plateau_model_config", None)
    pre, post = pre_model.plateau_network, post_model.plateau_network
    if pre.state_dict().keys() != post.state_dict().keys():
        raise ValueError("the two models have different architectures")
    variants = {
        "pre": pre_model, "post": post_model,
        "qkv_post+rest_pre": wrap_in_bridge(hybrid_network(post, pre, task, config), task, config),
        "qkv_pre+rest_post": wrap_in_bridge(hybrid_network(pre, post, task, config), task, config),
    }
    return pd.DataFrame([{"model": name, **output_metrics(task, model(batch.inputs), batch)}
                         for name, model in variants.items()])
