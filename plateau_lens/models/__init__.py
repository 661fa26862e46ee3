"""The toy models: native modules booted as a TransformerBridge, and the handle analyzers take.
Names load on first use (``lazy_loader``), so that the configs' schema does not import
TransformerLens."""

import pkgutil
from typing import TYPE_CHECKING

import lazy_loader

_EXPORTS = {
    "build": ["build_model", "build_network", "with_max_positions", "wrap_in_bridge"],
    "config": ["ModelConfig"],
    "handle": ["PlateauModel", "plateau_attentions", "set_attention_bias"],
    "layers": ["AttentionBias", "PlateauAttention", "ValueEmbedding"],
}
# every submodule is an attribute too (``pl.analysis.wide``), without being exported by ``*``
__getattr__, __dir__, _ = lazy_loader.attach(
    __name__, submodules=[module.name for module in pkgutil.iter_modules(__path__)],
    submod_attrs=_EXPORTS)
__all__ = [name for names in _EXPORTS.values() for name in names]

if TYPE_CHECKING:
    from .build import build_model, build_network, with_max_positions, wrap_in_bridge
    from .config import ModelConfig
    from .handle import PlateauModel, plateau_attentions, set_attention_bias
    from .layers import AttentionBias, PlateauAttention, ValueEmbedding
