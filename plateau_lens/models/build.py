"""Build TransformerLens-native networks for a task and wrap them in a TransformerBridge.

Training runs on the plain native modules (``build_network``: fused attention, compilable);
analysis runs on a ``TransformerBridge`` over a structural copy whose parameters *are* the
training network's parameters (``wrap_in_bridge``), so both always compute with the same
weights.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn as nn
from transformer_lens import TransformerBridgeConfig
from transformer_lens.model_bridge.sources._bridge_builder import build_bridge_from_module
from transformer_lens.model_bridge.sources.native import NativeModel, initialize_native_model

from .config import ModelConfig
from .layers import PlateauAttention, RowColumnEmbedding, ValueEmbedding

NATIVE_ARCHITECTURE = "TransformerLensNative"


def bridge_config(task, model_config: ModelConfig, seed: int = 0) -> TransformerBridgeConfig:
    return TransformerBridgeConfig(
        d_model=model_config.d_model,
        n_layers=model_config.n_layers,
        n_heads=model_config.n_heads,
        d_head=model_config.d_head,
        d_mlp=model_config.resolved_d_mlp,
        n_ctx=task.n_positions,
        d_vocab=task.d_vocab,
        d_vocab_out=task.d_vocab_out,
        act_fn=model_config.act_fn,
        eps=model_config.layer_norm_eps,
        normalization_type="LN",
        attention_dir=task.attention_dir,
        architecture=NATIVE_ARCHITECTURE,
        init_mode="gpt2",
        initializer_range=model_config.init_std,
        seed=seed,
    )


def build_network(task, model_config: ModelConfig, seed: int = 0) -> NativeModel:
    """A freshly initialised native network for ``task`` (deterministic for ``seed``).

    Regression tasks (LRMC) get a linear read-out with bias to one real per position; the
    ``real`` LRMC encoding gets a :class:`ValueEmbedding`; attention is
    :class:`PlateauAttention` of ``model_config.attention`` kind.
    """
    cfg = bridge_config(task, model_config, seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = NativeModel(cfg)
        for block in network.layers:
            block.attn = PlateauAttention(cfg, kind=model_config.attention)
        if getattr(task, "encoding", None) == "real":
            network.tok_embed = ValueEmbedding(cfg.d_model)
        elif getattr(task, "encoding", None) == "tokens" and model_config.mask_embedding == "zero":
            network.tok_embed = nn.Embedding(cfg.d_vocab, cfg.d_model, padding_idx=0)
        if task.kind == "regression":
            network.head = nn.Linear(cfg.d_model, task.d_vocab_out, bias=True)
        if model_config.pos_embedding == "row_column":
            if not hasattr(task, "m"):
                raise ValueError(f"pos_embedding='row_column' needs a matrix task (lrmc), "
                                 f"got task {task.name!r}")
            network.pos = RowColumnEmbedding(task.m, task.n, cfg.d_model)
        initialize_native_model(network, cfg, seed=seed)
        if isinstance(network.pos, RowColumnEmbedding):
            # each factor N(0, σ²/2): the summed table has the usual N(0, σ²) entries
            for factor in (network.pos.row, network.pos.column):
                nn.init.normal_(factor, std=model_config.init_std / 2 ** 0.5)
        embed = network.tok_embed
        if isinstance(embed, nn.Embedding) and embed.padding_idx is not None:
            with torch.no_grad():
                embed.weight[embed.padding_idx].zero_()
        if isinstance(embed, ValueEmbedding):
            nn.init.zeros_(embed.bias)
    return network


def tie_parameters(target: nn.Module, source: nn.Module) -> None:
    """Make every parameter of ``target`` the very same tensor as in ``source`` (same tree)."""
    source_modules = dict(source.named_modules())
    for name, module in target.named_modules():
        for param_name in list(module._parameters):
            module._parameters[param_name] = source_modules[name]._parameters[param_name]


def wrap_in_bridge(network: NativeModel, task=None, model_config: ModelConfig | None = None):
    """A ``TransformerBridge`` computing with ``network``'s own parameters (not copies)."""
    analysis_copy = copy.deepcopy(network)
    tie_parameters(analysis_copy, network)
    cfg = copy.deepcopy(network.cfg)
    bridge = build_bridge_from_module(
        analysis_copy, architecture=NATIVE_ARCHITECTURE, tl_config=cfg, model_name="plateau-lens"
    )
    # Plain attributes for analyzers; object.__setattr__ skips the bridge's attribute routing.
    object.__setattr__(bridge, "plateau_task", task)
    object.__setattr__(bridge, "plateau_model_config", model_config)
    object.__setattr__(bridge, "plateau_network", network)
    bridge.eval()
    return bridge


def build_model(config: Any, seed: int | None = None):
    """``TransformerBridge`` for a run config (``RunConfig``, dict or TOML path) or a
    ``(task, ModelConfig)`` pair. Encoder tasks get bidirectional attention."""
    from ..config import RunConfig, load_config

    if isinstance(config, tuple):
        task, model_config = config
        return wrap_in_bridge(build_network(task, model_config, seed or 0), task, model_config)
    if not isinstance(config, RunConfig):
        config = load_config(config)
    seed = config.train.seed if seed is None else seed
    task = config.make_task()
    network = build_network(task, config.model, seed)
    return wrap_in_bridge(network, task, config.model)
