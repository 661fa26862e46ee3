"""Resume a forward pass at block l from a cached residual, computing only blocks l…L−1.

The bridge's own ``forward(resid, start_at_layer=l)`` is exact but still runs blocks 0…l−1
and discards their output (it feeds ``resid`` through the whole wrapped model and swaps it in
at block l). For plateau-lens' own native models this module calls the bridge's components
(``blocks[l:]``, ``ln_final``, ``unembed``) directly, so every hook at or after block l still
fires and the earlier blocks cost nothing; other models (Pythia, OLMo) use ``start_at_layer``.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor


def runs_native_blocks(model) -> bool:
    """True for a bridge built by plateau-lens (fixed-length, no attention mask, no rotary)."""
    return getattr(model, "plateau_network", None) is not None


def forward_from_layer(model, residual: Float[Tensor, "batch pos d_model"], layer: int) -> Tensor:
    """The model's output when ``residual`` enters block ``layer`` (``blocks.{layer}.hook_resid_pre``)."""
    n_layers = model.cfg.n_layers
    if not 0 <= layer < n_layers:
        raise ValueError(f"layer must be in [0, {n_layers - 1}], got {layer}")
    if not runs_native_blocks(model):
        return model(residual, start_at_layer=layer)
    batch, seq = residual.shape[:2]
    position_ids = torch.arange(seq, device=residual.device).expand(batch, -1)
    hidden = residual
    for block in model.blocks[layer:]:
        output = block(hidden, position_ids=position_ids)
        hidden = output[0] if isinstance(output, tuple) else output
    return model.unembed(model.ln_final(hidden))
