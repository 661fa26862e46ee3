from .build import build_model, build_network, with_max_positions, wrap_in_bridge
from .config import ModelConfig
from .handle import PlateauModel, plateau_attentions, set_attention_bias
from .layers import AttentionBias, PlateauAttention, ValueEmbedding

__all__ = ["build_model", "build_network", "with_max_positions", "wrap_in_bridge", "ModelConfig", "PlateauModel",
           "plateau_attentions", "set_attention_bias", "AttentionBias", "PlateauAttention",
           "ValueEmbedding"]
