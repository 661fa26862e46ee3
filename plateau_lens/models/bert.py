"""The matrix-completion study's BERT as a TransformerLens-native model (``architecture = "bert"``).

The study (Gopalani et al., arXiv 2410.22244; authors' ``src/model.py``) trains a stock
Hugging Face ``BertModel`` (token-type embeddings removed) plus a linear read-out
``nn.Linear(d_model, 1)``. Written from its equations:

    x₀          = LN_emb(E[token] + P[position])                  embedding LayerNorm
    resid_mid   = LN1(x + Attn(x))                                post-LN: norm after the add
    resid_post  = LN2(resid_mid + MLP(resid_mid))
    output      = W_U resid_post[last block] + b_U                no final LayerNorm

Modules keep TransformerLens-native names (``tok_embed``, ``pos``, ``layers.{l}.ln1/attn/ln2/
mlp``, ``head``) plus ``ln_embed`` (the embedding LayerNorm; ``ln_out`` is an ``Identity``), so
the bridge wraps them with the standard hooks. Through the bridge (:func:`post_norm_components`)
the hooks mean what they mean in ``tests/reference`` and TransformerLens' own BERT:

* ``embed.hook_out`` / ``hook_pos_embed``: the token / position embeddings; ``embed_ln.hook_in``
  / ``embed_ln.hook_out``: before / after the embedding LayerNorm. ``hook_embed`` is
  TransformerLens' alias for post-LN models (its BERT, Bloom): ``embed_ln.hook_out``, BERT's
  embeddings output (on pre-LN models it is the token embedding, ``embed.hook_out``);
* ``blocks.{l}.hook_resid_pre``: the block's input; ``hook_attn_out``: the attention output
  (after W_O, before the add); ``hook_resid_mid``: LN1's output (the residual stream between
  attention and MLP, after its norm); ``hook_mlp_out``: the MLP output; ``hook_resid_post``:
  LN2's output (the block's output);
* no ``ln_final`` hooks: the read-out reads ``blocks.{L-1}.hook_resid_post``
  (``plateau_lens.metrics.readout_input_hook`` falls back to it).

BERT init (``init_bert``, as ``BertPreTrainedModel._init_weights``): every linear weight and
embedding N(0, init_std) — no 1/√(2L) residual scaling — biases 0, LayerNorms (1, 0), the MASK
row of a ``padding_idx`` embedding 0. The read-out is not part of BertModel: in the authors'
code it is a plain ``nn.Linear``, so it keeps PyTorch's default init U(±1/√d_model) for weight
and bias (drawn here from the seeded generator).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn as nn
from transformer_lens.model_bridge.generalized_components import BlockBridge, NormalizationBridge
from transformer_lens.model_bridge.sources.native import NativeBlock, NativeModel
from transformer_lens.utilities import TypedModuleList
from transformer_lens.utilities.activation_functions import apply_softcap

from .layers import RowColumnEmbedding, ValueEmbedding


class PostNormBlock(NativeBlock):
    """BERT's post-LN block: h = LN1(x + attn(x)); out = LN2(h + mlp(h)).

    Same submodules (and parameter names) as TransformerLens' pre-LN ``NativeBlock``; only the
    order of operations differs."""

    post_norm = True

    def forward(self, hidden_states: torch.Tensor, attention_mask: Optional[torch.Tensor] = None,
                position_ids: Optional[torch.Tensor] = None, **kwargs) -> tuple[torch.Tensor]:
        attn_out, _pattern = self.attn(hidden_states, attention_mask=attention_mask,
                                       position_ids=position_ids)
        hidden_states = self.ln1(hidden_states + attn_out)
        if not self.cfg.attn_only:
            hidden_states = self.ln2(hidden_states + self.mlp(hidden_states))
        return (hidden_states,)


class PostNormModel(NativeModel):
    """``NativeModel`` with post-LN blocks, an embedding LayerNorm (``ln_embed``) and no final
    norm (``ln_out`` is an ``Identity``, kept so code that calls it still runs)."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.layers = TypedModuleList([PostNormBlock(cfg) for _ in range(cfg.n_layers)])
        self.ln_embed = nn.LayerNorm(cfg.d_model, eps=cfg.eps)
        self.ln_out = nn.Identity()

    def forward(self, input_ids: Optional[torch.Tensor] = None,
                attention_mask: Optional[torch.Tensor] = None,
                position_ids: Optional[torch.Tensor] = None,
                inputs_embeds: Optional[torch.Tensor] = None, **kwargs) -> torch.Tensor:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Exactly one of input_ids or inputs_embeds must be provided.")
        model_input = input_ids if input_ids is not None else inputs_embeds
        hidden_states = self.tok_embed(input_ids) if input_ids is not None else inputs_embeds
        batch, seq = model_input.shape[:2]
        if seq > self.cfg.n_ctx:
            raise ValueError(f"input length {seq} exceeds n_ctx={self.cfg.n_ctx} (the model's "
                             f"position table; build it with a larger [model] max_positions)")
        if position_ids is None:
            position_ids = torch.arange(seq, device=model_input.device).unsqueeze(0).expand(batch, -1)
        hidden_states = self.ln_embed(hidden_states + self.pos(position_ids))
        for block in self.layers:
            (hidden_states,) = block(hidden_states, attention_mask=attention_mask,
                                     position_ids=position_ids)
        return apply_softcap(self.head(self.ln_out(hidden_states)), self.output_logits_soft_cap)


def post_norm_components(adapter) -> None:
    """``post_adapter_hook`` of ``build_bridge_from_module`` for a :class:`PostNormModel`:
    adds the embedding LayerNorm (``embed_ln``), drops ``ln_final`` (there is none), and
    points ``hook_resid_mid`` at LN1's output (the default alias, ``ln2.hook_in``, is the
    pre-LN residual; on a post-LN block it would be resid_mid + mlp_out). The MLP reads the
    residual directly, so ``hook_mlp_in`` captures the MLP's own input."""
    mapping = adapter.component_mapping
    blocks = BlockBridge(name=mapping["blocks"].name, config=adapter.cfg,
                         submodules=mapping["blocks"].submodules,
                         hook_alias_overrides={"hook_resid_mid": "ln1.hook_out"},
                         mlp_reads_resid_directly=True)
    rebuilt = {}
    for key, component in mapping.items():
        if key == "ln_final":
            continue
        rebuilt[key] = blocks if key == "blocks" else component
        if key == "pos_embed":
            rebuilt["embed_ln"] = NormalizationBridge(name="ln_embed", config=adapter.cfg)
    adapter.component_mapping = rebuilt


def init_bert(network: PostNormModel | NativeModel, std: float, generator: torch.Generator) -> None:
    """BERT's init (see the module docstring), in place, drawing from ``generator``."""

    def normal(tensor: torch.Tensor, scale: float = std) -> None:
        tensor.copy_(torch.randn(tensor.shape, generator=generator) * scale)

    with torch.no_grad():
        for module in network.modules():
            if module is network.head:
                continue
            if isinstance(module, nn.Linear):
                normal(module.weight)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.Embedding):
                normal(module.weight)
                if module.padding_idx is not None:
                    module.weight[module.padding_idx].zero_()
            elif isinstance(module, ValueEmbedding):
                normal(module.weight)
                module.bias.zero_()
            elif isinstance(module, RowColumnEmbedding):
                # each factor N(0, σ²/2): the summed table has the usual N(0, σ²) entries
                normal(module.row, std / math.sqrt(2))
                normal(module.column, std / math.sqrt(2))
            elif isinstance(module, nn.LayerNorm):
                module.weight.fill_(1.0)
                module.bias.zero_()
        head = network.head
        bound = 1 / math.sqrt(head.in_features)  # nn.Linear's default init
        head.weight.copy_(torch.rand(head.weight.shape, generator=generator) * 2 * bound - bound)
        if head.bias is not None:
            head.bias.copy_(torch.rand(head.bias.shape, generator=generator) * 2 * bound - bound)
