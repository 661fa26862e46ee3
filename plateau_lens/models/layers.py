"""Modules that plateau-lens swaps into TransformerLens' ``NativeModel``.

They keep the native module names and parameter names, so ``TransformerBridge`` wraps
them with the standard hook points (``hook_embed``, ``blocks.{l}.attn.hook_pattern``, ...).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Callable, Optional

import einops
import torch
import torch.nn as nn
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens.model_bridge.sources.native import NativeAttention
from transformer_lens.model_bridge.sources.native.model import NativeRotary

from ..codec import FIXED_POINT_MASK, FIXED_POINT_SCALE
from ..config.model import AttentionKind


@dataclass(eq=False)
class AttentionBias:
    """The attention-biasing multiplier of one model, shared by every attention module of
    its native network and of the bridge over it (one object, so the two can never differ).
    ``multiplier``: a [query, key] tensor, or None (off)."""

    multiplier: Optional[Tensor] = None


class PlateauAttention(NativeAttention):
    """Native attention with a fused training path, linear attention and attention biasing.

    * ``kind="softmax"``: A = softmax(QKᵀ/√d_head + mask).
    * ``kind="linear"`` (the loss-plateau study's default): A = QKᵀ/√d_head with masked
      (future) entries set to 0 and no softmax; output A·V.
    * ``rotary`` (``pos_embedding = "rotary"``): TransformerLens' ``NativeRotary`` rotates
      queries and keys by their positions before the scores (``hook_q``/``hook_k`` hold them
      unrotated).
    * ``attention_bias`` (attention biasing, an :class:`AttentionBias` shared by all layers): if its
      multiplier is set, a [query, key] tensor that multiplies A elementwise after masking
      (after the softmax for softmax attention; no renormalisation), in training,
      evaluation and generation alike.

    When called without ``pattern_fn`` (plain training through the native modules) and with
    no multiplier, softmax attention runs ``F.scaled_dot_product_attention`` and never
    materialises A. Through the bridge, ``pattern_fn`` is the ``hook_pattern`` hook and the
    pattern is materialised so hooks can read and edit it.
    """

    def __init__(self, cfg, kind: AttentionKind = "softmax",
                 attention_bias: AttentionBias | None = None, rotary: NativeRotary | None = None):
        super().__init__(cfg, rotary=rotary)
        if kind not in typing.get_args(AttentionKind):
            raise ValueError(f"attention must be one of {list(typing.get_args(AttentionKind))}, "
                             f"got {kind!r}")
        self.kind = kind
        self.attention_bias = AttentionBias() if attention_bias is None else attention_bias

    def forward(
        self,
        hidden_states: Float[Tensor, "batch pos d_model"],
        attention_mask: Optional[Tensor] = None,
        position_ids: Optional[Tensor] = None,
        pattern_fn: Optional[Callable[[Tensor], Tensor]] = None,
        **kwargs,
    ) -> tuple[Tensor, Optional[Tensor]]:
        if attention_mask is not None:
            raise ValueError("plateau-lens models take no attention_mask (fixed-length tasks)")
        q, k, v = (
            einops.rearrange(proj(hidden_states), "b p (h d) -> b h p d", h=self.n_heads)
            for proj in (self.q, self.k, self.v)
        )
        if self.rotary is not None:  # RoPE (pos_embedding = "rotary"): rotate q and k
            q, k = self.rotary.apply_rope(q, k, position_ids=position_ids)
        multiplier = self.attention_bias.multiplier
        if pattern_fn is None and multiplier is None and self.kind == "softmax":
            z = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal,
                                               scale=1.0 / self.scale)
            pattern = None
        else:
            pattern = self.pattern(q, k)
            if multiplier is not None:
                seq = pattern.shape[-1]
                pattern = pattern * multiplier[:seq, :seq].to(pattern.device, pattern.dtype)
            if pattern_fn is not None:
                pattern = pattern_fn(pattern)
            z = pattern @ v
        out = self.o(einops.rearrange(z, "... h p d -> ... p (h d)"))
        return out, pattern

    def pattern(
        self, q: Float[Tensor, "batch head pos d_head"], k: Float[Tensor, "batch head pos d_head"]
    ) -> Float[Tensor, "batch head query key"]:
        scores = q @ k.transpose(-2, -1) / self.scale
        seq = scores.shape[-1]
        if self.kind == "softmax":
            if self.causal:
                scores = scores.masked_fill(self.causal_mask[:seq, :seq], float("-inf"))
            return scores.softmax(dim=-1)
        if self.causal:
            scores = scores.masked_fill(self.causal_mask[:seq, :seq], 0.0)
        return scores


class ValueEmbedding(nn.Module):
    """Real-valued input encoding: e(x) = x·w + b for an observed entry, m for a masked one.

    ``weight`` stacks [w; m] (2 × d_model) so TransformerLens sees an embedding matrix.
    Input ids are fixed-point values (x·2²⁰, see ``plateau_lens.tasks.lrmc``).
    """

    def __init__(self, d_model: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(2, d_model))
        self.bias = nn.Parameter(torch.zeros(d_model))

    def forward(self, ids: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_model"]:
        masked = (ids == FIXED_POINT_MASK).unsqueeze(-1)
        values = torch.where(masked.squeeze(-1), 0, ids).to(self.weight.dtype) / FIXED_POINT_SCALE
        embedded = values.unsqueeze(-1) * self.weight[0] + self.bias
        return torch.where(masked, self.weight[1], embedded)


class RowColumnEmbedding(nn.Module):
    """Factorised positional embedding of an m×n matrix flattened row-major:
    e(p) = r_{⌊p/n⌋} + c_{p mod n} (a row vector plus a column vector, m + n rows in all).

    An opt-in alternative to the study's m·n free position vectors; ``weight`` is the
    (m·n) × d_model table TransformerLens reads as ``W_pos``.
    """

    def __init__(self, m: int, n: int, d_model: int):
        super().__init__()
        self.row = nn.Parameter(torch.zeros(m, d_model))
        self.column = nn.Parameter(torch.zeros(n, d_model))

    @property
    def weight(self) -> Float[Tensor, "pos d_model"]:
        table = self.row[:, None, :] + self.column[None, :, :]
        return einops.rearrange(table, "m n d -> (m n) d")

    def forward(self, position_ids: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_model"]:
        return self.weight[position_ids]


class SinusoidalEmbedding(nn.Module):
    """The fixed positional table of Vaswani et al. 2017 ("Attention is all you need", §3.5):
    PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(p / 10000^(2i/d)). A buffer, not a
    parameter (nothing to train, nothing in the state dict); ``weight`` is the n_ctx × d_model
    table TransformerLens reads as ``W_pos``."""

    weight: Tensor

    def __init__(self, n_ctx: int, d_model: int, base: float = 10000.0):
        super().__init__()
        position = torch.arange(n_ctx, dtype=torch.float64)[:, None]
        inverse_wavelength = base ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
        angle = position * inverse_wavelength
        table = torch.zeros(n_ctx, d_model, dtype=torch.float64)
        table[:, 0::2] = torch.sin(angle)
        table[:, 1::2] = torch.cos(angle[:, : d_model // 2])
        self.register_buffer("weight", table.float(), persistent=False)

    def forward(self, position_ids: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_model"]:
        return self.weight[position_ids]


class NoPositions(nn.Module):
    """``pos_embedding = "none"``: adds nothing (a zero table, no parameters); kept as a module
    so the bridge's ``hook_pos_embed`` exists (and reads 0) like on every other model."""

    weight: Tensor

    def __init__(self, n_ctx: int, d_model: int):
        super().__init__()
        self.register_buffer("weight", torch.zeros(n_ctx, d_model), persistent=False)

    def forward(self, position_ids: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_model"]:
        return self.weight[position_ids]
