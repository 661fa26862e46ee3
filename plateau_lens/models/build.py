"""Build TransformerLens-native networks for a task and wrap them in a TransformerBridge.

Training runs on the plain native modules (``build_network``: fused attention, compilable);
analysis runs on a ``TransformerBridge`` over a structural copy whose parameters and
attention bias *are* the training network's (``wrap_in_bridge``), so both always compute
with the same weights. :func:`build_model` returns both in one :class:`PlateauModel`.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
import torch.nn as nn
from transformer_lens import TransformerBridgeConfig
from transformer_lens.model_bridge.sources._bridge_builder import build_bridge_from_module
from transformer_lens.model_bridge.sources.native import NativeModel, initialize_native_model

from ..tasks.protocol import has_capability
from .bert import PostNormModel, init_bert, post_norm_components
from ..config.model import ModelConfig
from .handle import PlateauModel, attention_bias_of
from .layers import (AttentionBias, NoPositions, PlateauAttention, RowColumnEmbedding,
                     SinusoidalEmbedding, ValueEmbedding)

NATIVE_ARCHITECTURE = "TransformerLensNative"


def n_ctx(task, model_config: ModelConfig) -> int:
    """Rows of the position table: ``max_positions``, or the task's positions by default."""
    if model_config.max_positions is None:
        return task.n_positions
    if model_config.max_positions < task.n_positions:
        raise ValueError(f"max_positions must be >= the task's {task.n_positions} positions, "
                         f"got {model_config.max_positions}")
    return model_config.max_positions


def bridge_config(task, model_config: ModelConfig, seed: int = 0) -> TransformerBridgeConfig:
    return TransformerBridgeConfig(
        d_model=model_config.d_model,
        n_layers=model_config.n_layers,
        n_heads=model_config.n_heads,
        d_head=model_config.d_head,
        d_mlp=model_config.resolved_d_mlp,
        n_ctx=n_ctx(task, model_config),
        d_vocab=task.d_vocab,
        d_vocab_out=task.d_vocab_out,
        act_fn=model_config.act_fn,
        eps=model_config.layer_norm_eps,
        normalization_type="LN" if model_config.normalization == "layer_norm" else None,
        attn_only=model_config.attn_only,
        positional_embedding_type="rotary" if model_config.pos_embedding == "rotary" else "standard",
        rotary_base=model_config.rotary_base,
        attention_dir=task.attention_dir,
        architecture=NATIVE_ARCHITECTURE,
        init_mode="gpt2",
        initializer_range=model_config.init_std,
        seed=seed,
    )


def check_model_for_task(task, model_config: ModelConfig) -> None:
    """Refuse, before any work, a model config that does not fit ``task``: row/column
    positions need a matrix task; a zero MASK embedding needs the token encoding (elsewhere it
    would do nothing). Run when a run is made (train, --dry-run, each sweep point); building a
    saved run checks only what building needs, so runs saved before a check existed load."""
    _check_row_column(task, model_config)
    _check_tied(task, model_config)
    if model_config.mask_embedding == "zero" and not has_capability(task, "mask_token"):
        raise ValueError(f"model.mask_embedding='zero' needs a task with the token encoding, "
                         f"token 0 its MASK (capability 'mask_token': lrmc, lrmc_mixed with "
                         f"encoding = 'tokens'), got task {task.name!r}; allowed here: 'learned'")


def _check_row_column(task, model_config: ModelConfig) -> None:
    if model_config.pos_embedding == "row_column" and not has_capability(task, "matrix"):
        raise ValueError(f"model.pos_embedding='row_column' needs a matrix task (capability "
                         f"'matrix': lrmc, lrmc_gpt), got task {task.name!r}")


def _check_tied(task, model_config: ModelConfig) -> None:
    if not model_config.tied_embeddings:
        return
    if has_capability(task, "real_inputs") or task.d_vocab != task.d_vocab_out:
        raise ValueError(f"model.tied_embeddings=true needs token inputs and as many outputs as "
                         f"input tokens (W_U = W_Eᵀ), got task {task.name!r} with d_vocab "
                         f"{task.d_vocab}, d_vocab_out {task.d_vocab_out}"
                         f"{' and real-valued inputs' if has_capability(task, 'real_inputs') else ''}; "
                         f"set tied_embeddings=false")


def build_network(task, model_config: ModelConfig, seed: int = 0) -> NativeModel:
    """A freshly initialised native network for ``task`` (deterministic for ``seed``).

    A task with ``readout_bias`` (LRMC) gets a linear read-out with bias; a task with
    capability ``real_inputs`` (LRMC's ``real`` encoding) gets a :class:`ValueEmbedding`; attention is :class:`PlateauAttention` of
    ``model_config.attention`` kind, every layer sharing one :class:`AttentionBias`.
    ``architecture = "bert"`` builds a :class:`~plateau_lens.models.bert.PostNormModel` with
    BERT's init instead of TransformerLens' pre-LN ``NativeModel`` with GPT-2's.
    """
    cfg = bridge_config(task, model_config, seed)
    bert = model_config.architecture == "bert"
    attention_bias = AttentionBias()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = PostNormModel(cfg) if bert else NativeModel(cfg)
        for block in network.layers:
            block.attn = PlateauAttention(cfg, kind=model_config.attention,
                                          attention_bias=attention_bias, rotary=network.rotary)
        if has_capability(task, "real_inputs"):
            network.tok_embed = ValueEmbedding(cfg.d_model)
        elif has_capability(task, "mask_token") and model_config.mask_embedding == "zero":
            network.tok_embed = nn.Embedding(cfg.d_vocab, cfg.d_model, padding_idx=0)
        if task.readout_bias:
            network.head = nn.Linear(cfg.d_model, task.d_vocab_out, bias=True)
        if model_config.pos_embedding == "row_column":
            _check_row_column(task, model_config)
            network.pos = RowColumnEmbedding(math.ceil(cfg.n_ctx / task.n), task.n, cfg.d_model)
        if bert:
            generator = torch.Generator().manual_seed(seed)
            init_bert(network, model_config.init_std, generator)
            return network
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
        # fixed tables after the init (it would redraw any table it finds)
        if model_config.pos_embedding == "sinusoidal":
            network.pos = SinusoidalEmbedding(cfg.n_ctx, cfg.d_model)
        elif model_config.pos_embedding == "none":  # rotary: no table (pos stays None)
            network.pos = NoPositions(cfg.n_ctx, cfg.d_model)
        if model_config.tied_embeddings:
            _check_tied(task, model_config)
            network.head.weight = embed.weight  # one parameter: W_U = W_Eᵀ
    return network


def wrap_in_bridge(network: NativeModel):
    """A ``TransformerBridge`` over a structural copy of ``network`` that shares its
    parameters and its attention bias (the same objects, not copies). A post-LN network
    (``architecture = "bert"``) gets BERT's hook layout (``models.bert.post_norm_components``)."""
    shared = {id(parameter): parameter for parameter in network.parameters()}
    bias = attention_bias_of(network)
    if bias is not None:
        shared[id(bias)] = bias
    analysis_copy = copy.deepcopy(network, memo=shared)
    post_norm = isinstance(network, PostNormModel)
    bridge = build_bridge_from_module(analysis_copy, architecture=NATIVE_ARCHITECTURE,
                                      tl_config=copy.deepcopy(network.cfg), model_name="plateau-lens",
                                      post_adapter_hook=post_norm_components if post_norm else None)
    bridge.eval()
    return bridge


def build_model(config: Any, seed: int | None = None) -> PlateauModel:
    """A freshly initialised :class:`PlateauModel`: a network (``build_network``) and the
    bridge over it (``wrap_in_bridge``). ``config`` is a run config (a ``RunConfig``, its dict
    or a TOML/JSON path; ``seed``: its ``train.seed`` unless given) or a
    ``(task, ModelConfig)`` pair (``seed`` 0 unless given)."""
    if isinstance(config, tuple):
        if len(config) != 2 or not isinstance(config[1], ModelConfig):
            raise ValueError(f"build_model((task, model_config)) needs a ModelConfig, got "
                             f"{type(config[-1]).__name__ if config else 'an empty tuple'}")
        task, model_config = config
        seed = 0 if seed is None else seed
    else:
        if not all(hasattr(config, name) for name in ("make_task", "model", "train")):
            from ..config import load_config  # a dict or a path: validated as a run config

            config = load_config(config)
        task, model_config = config.make_task(), config.model
        seed = config.train.seed if seed is None else seed
    network = build_network(task, model_config, seed)
    return PlateauModel(bridge=wrap_in_bridge(network), task=task, network=network,
                        config=model_config)


def with_max_positions(model: PlateauModel, max_positions: int, seed: int = 0) -> PlateauModel:
    """A copy of a plateau-lens model whose position table has ``max_positions`` rows, so it
    can be fed longer inputs than it was built for (LRMC: a 7×7 model asked about 7×9 or
    9×9 matrices). Every parameter, and the first rows of the position table, are the
    model's (copies); the new rows are a fresh init (N(0, init_std), drawn for ``seed``):
    what a row never reached in training holds, since it gets zero gradient and Adam never
    moves it (the study's BERT has 512 rows and trains 49). The attention bias is carried
    over."""
    if model.network is None or model.config is None:
        raise ValueError("with_max_positions needs a plateau-lens model (network and config)")
    current = model.network.cfg.n_ctx
    if max_positions < current:
        raise ValueError(f"max_positions must be >= the model's {current} positions, "
                         f"got {max_positions}")
    config = ModelConfig.from_dict({**model.config.to_dict(), "max_positions": max_positions})
    reference = next(model.network.parameters())
    network = build_network(model.task, config, seed).to(reference.device, reference.dtype)
    state = network.state_dict()
    with torch.no_grad():
        for name, value in model.network.state_dict().items():
            if state[name].shape == value.shape:
                state[name].copy_(value)
            else:  # the position table (or a row/column table's rows): grows along dim 0
                state[name][: value.shape[0]].copy_(value)
    bias = model.attention_bias
    if bias is not None and bias.multiplier is not None:
        attention_bias_of(network).multiplier = bias.multiplier.clone()
    return PlateauModel(bridge=wrap_in_bridge(network), task=model.task, network=network,
                        config=config)
