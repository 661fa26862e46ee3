"""Resume a forward pass at block l from a cached residual, computing only blocks l…L−1.

The bridge's own ``forward(resid, start_at_layer=l)`` is exact but still runs blocks 0…l−1
and discards their output (it feeds ``resid`` through the whole wrapped model and swaps it in
at block l). For plateau-lens' own native models :func:`forward_from_layer` calls the bridge's
components (``blocks[l:]``, ``ln_final``, ``unembed``) directly, so every hook at or after
block l still fires and the earlier blocks cost nothing; other models (Pythia, OLMo) use
``start_at_layer``.

:func:`native_block` and :func:`native_clean_pass` run the plain native modules (no hook
points at all) with an optional edit of the attention pattern that may add a leading copy
axis, so several edits of one layer share its Q, K, V and pattern: the fast path of
``ablation_sweep`` and ``linear_probes`` on plateau-lens models when no user hook is attached.
Their clean pass is computed once per checkpoint and batch and shared (:mod:`.clean_pass`).
"""

from __future__ import annotations

import re
from typing import Callable, Optional

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens.utilities.activation_functions import apply_softcap

from ...models.handle import PlateauModel


def remaining_hooks(bridge) -> int:
    """Number of forward hooks currently attached to the bridge's hook points (for checks)."""
    return sum(len(point._forward_hooks) for point in set(bridge.hook_dict.values()))


def runs_native_modules(model: PlateauModel) -> bool:
    """True for a plateau-lens model with no hook attached to its bridge, whose bridge still
    computes with its native network's parameters (the same tensors): the plain native
    modules then compute the same function (the attention bias is one shared object), with
    nothing that a hook of the user's would change or read."""
    return (model.network is not None and remaining_hooks(model.bridge) == 0
            and {id(p) for p in model.bridge.parameters()} == {id(p) for p in model.network.parameters()})


def forward_from_layer(model: PlateauModel, residual: Float[Tensor, "batch pos d_model"],
                       layer: int) -> Tensor:
    """The model's output when ``residual`` enters block ``layer`` (``blocks.{layer}.hook_resid_pre``)."""
    bridge = model.bridge
    n_layers = bridge.cfg.n_layers
    if not 0 <= layer < n_layers:
        raise ValueError(f"layer must be in [0, {n_layers - 1}], got {layer}")
    if model.network is None:
        return bridge(residual, start_at_layer=layer)
    batch, seq = residual.shape[:2]
    position_ids = torch.arange(seq, device=residual.device).expand(batch, -1)
    hidden = residual
    for block in bridge.blocks[layer:]:
        output = block(hidden, position_ids=position_ids)
        hidden = output[0] if isinstance(output, tuple) else output
    if hasattr(bridge, "ln_final"):  # post-LN (BERT) models have no final norm
        hidden = bridge.ln_final(hidden)
    return bridge.unembed(hidden)


PatternEdit = Callable[[Tensor], Tensor]


def native_block(block, hidden: Float[Tensor, "*copies batch pos d_model"],
                 edit_pattern: Optional[PatternEdit] = None) -> Tensor:
    """TransformerLens' ``NativeBlock.forward`` (pre-LN: h + attn(ln1 h), then + mlp(ln2 ·)),
    or for a post-LN block (``architecture = "bert"``, ``PostNormBlock``) BERT's
    ln1(h + attn(h)), then ln2(· + mlp(·)), with ``edit_pattern`` applied to the attention
    pattern A [batch head query key]. The edit may return [copies batch head query key]:
    z = A·V broadcasts over the copies and so does the rest of the block, giving
    [copies batch pos d_model]."""
    if getattr(block, "post_norm", False):
        attention_out, _ = block.attn(hidden, pattern_fn=edit_pattern)
        hidden = block.ln1(hidden + attention_out)
        if not block.cfg.attn_only:
            hidden = block.ln2(hidden + block.mlp(hidden))
        return hidden
    attention_out, _ = block.attn(block.ln1(hidden), pattern_fn=edit_pattern)
    hidden = hidden + attention_out
    if not block.cfg.attn_only:
        hidden = hidden + block.mlp(block.ln2(hidden))
    return hidden


def materialised(pattern: Float[Tensor, "*copies batch head query key"]) -> Tensor:
    """The pattern edit that changes nothing: passed to :func:`native_block`, it makes
    softmax attention compute A = softmax(QKᵀ) and A·V explicitly, as the bridge does, instead
    of the fused kernel (which at 16 positions is several times slower on the CPU)."""
    return pattern


def native_readout(network, hidden: Float[Tensor, "batch pos d_model"]) -> Tensor:
    """The final norm (an ``Identity`` on post-LN models), unembedding and logit soft-cap of
    ``NativeModel.forward``."""
    return apply_softcap(network.head(network.ln_out(hidden)), network.output_logits_soft_cap)


def native_clean_pass(network, inputs: Int[Tensor, "batch pos"], keep_patterns: bool = False
                      ) -> tuple[Tensor, list[Tensor], list[Tensor] | None]:
    """``network(inputs)`` block by block: (output, the residual stream entering each block
    and leaving the last (L + 1 tensors: ``blocks.{l}.hook_resid_pre``, then
    ``blocks.{L-1}.hook_resid_post``), and with ``keep_patterns`` each block's attention
    pattern [batch head query key])."""
    seq = inputs.shape[1]
    hidden = network.tok_embed(inputs)
    if network.pos is not None:
        hidden = hidden + network.pos(torch.arange(seq, device=inputs.device).expand_as(inputs))
    if getattr(network, "ln_embed", None) is not None:  # post-LN (BERT): embedding LayerNorm
        hidden = network.ln_embed(hidden)
    residuals: list[Tensor] = []
    patterns: list[Tensor] = []

    def keep(pattern: Tensor) -> Tensor:
        patterns.append(pattern)
        return pattern

    for block in network.layers:
        residuals.append(hidden)
        hidden = native_block(block, hidden, keep if keep_patterns else None)
    residuals.append(hidden)
    return native_readout(network, hidden), residuals, patterns if keep_patterns else None


RESIDUAL_HOOK = re.compile(r"blocks\.(\d+)\.hook_resid_(pre|post)")


def residual_depth(name: str) -> int | None:
    """The index into :func:`native_clean_pass`'s residuals of a residual-stream hook name
    (``blocks.{l}.hook_resid_pre`` → l, ``blocks.{l}.hook_resid_post`` → l + 1), else None."""
    match = RESIDUAL_HOOK.fullmatch(name)
    return None if match is None else int(match.group(1)) + (match.group(2) == "post")
