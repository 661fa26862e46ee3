from .build import build_model, build_network, tie_parameters, wrap_in_bridge
from .config import ModelConfig
from .layers import PlateauAttention, ValueEmbedding

__all__ = ["build_model", "build_network", "tie_parameters", "wrap_in_bridge", "ModelConfig",
           "PlateauAttention", "ValueEmbedding"]
