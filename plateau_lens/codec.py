"""How matrix entries travel to a model as integer ids: the matrix-completion study's value
tokens, and plateau-lens' fixed-point ids for the real-valued encoding.

A ground-floor module: the LRMC task encodes with it and the real-valued embedding layer
decodes with it, so neither imports the other.
"""

from __future__ import annotations

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

TOKEN_MASK = 0
TOKEN_VALUE_LIMIT = 10.0
TOKEN_VOCAB_SIZE = 2002
FIXED_POINT_SCALE = 2**20
FIXED_POINT_MASK = torch.iinfo(torch.int64).min


def values_to_tokens(values: Float[Tensor, "..."]) -> Int[Tensor, "..."]:
    """The study's value tokens: 1 + round(100·x) + 1000 over x ∈ [-10, 10] (2 001 tokens
    after MASK = 0). Rounded in float64: in float32, 100·x can land on the wrong side of a
    half-way point (about 1 entry in 700 000 of U[-1,1]·U[-1,1] sums did)."""
    clipped = values.double().clamp(-TOKEN_VALUE_LIMIT, TOKEN_VALUE_LIMIT)
    return torch.round(clipped * 100).long() + 1 + 1000


def tokens_to_values(tokens: Int[Tensor, "..."]) -> Float[Tensor, "..."]:
    """Inverse of :func:`values_to_tokens` (MASK maps to NaN)."""
    values = (tokens.double() - 1001) / 100
    return torch.where(tokens == TOKEN_MASK, torch.nan, values).float()


def round_to_tokens(values: Float[Tensor, "..."]) -> Float[Tensor, "..."]:
    """The value each entry's token stands for (x rounded to 2 decimals, clipped)."""
    return ((values_to_tokens(values).double() - 1001) / 100).to(values.dtype)


def values_to_fixed_point(values: Float[Tensor, "..."]) -> Int[Tensor, "..."]:
    return torch.round(values.double() * FIXED_POINT_SCALE).long()


def fixed_point_to_values(ids: Int[Tensor, "..."]) -> Float[Tensor, "..."]:
    """Inverse of :func:`values_to_fixed_point` (MASK maps to NaN)."""
    masked = ids == FIXED_POINT_MASK
    values = torch.where(masked, 0, ids).double() / FIXED_POINT_SCALE
    return torch.where(masked, torch.nan, values).float()


def masked_ids(ids: Int[Tensor, "..."], encoding: str) -> Bool[Tensor, "..."]:
    """True where an id is the MASK of ``encoding`` ("tokens" or "real")."""
    return ids == (TOKEN_MASK if encoding == "tokens" else FIXED_POINT_MASK)
