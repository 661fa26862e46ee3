"""The toy models: native modules booted as a TransformerBridge, and the handle analyzers take.
Names load on first use (``lazy_loader``), so that the configs' schema does not import
TransformerLens."""

from typing import TYPE_CHECKING

from ..lazy import lazy_package

__getattr__, __dir__, __all__ = lazy_package(__name__, __path__, {
    "build": ["build_model", "build_network", "with_max_positions", "wrap_in_bridge"],
    "handle": ["PlateauModel", "plateau_attentions", "set_attention_bias"],
    "layers": ["AttentionBias", "PlateauAttention", "ValueEmbedding"],
})

if TYPE_CHECKING:
    from .build import build_model, build_network, with_max_positions, wrap_in_bridge
    from .handle import PlateauModel, plateau_attentions, set_attention_bias
    from .layers import AttentionBias, PlateauAttention, ValueEmbedding
