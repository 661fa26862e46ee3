"""Model hyper-parameters, validated on construction (strict types, finite ranges)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Optional

from pydantic import model_validator

from ..schema import ConfigError, Float, Int, StrictModel

ACT_FNS = ("gelu", "gelu_new", "relu")
POS_EMBEDDINGS = ("learned", "row_column")


class ModelConfig(StrictModel):
    """Transformer size and variant. The task fixes context, vocabulary and attention direction.

    Defaults are the loss-plateau study's minGPT: 1 layer, 1 head, d_model 256, MLP 4·d,
    tanh-GELU, linear attention, init N(0, 0.02) with residual outputs scaled by 1/√(2L).
    """

    section: ClassVar[str] = "model"

    n_layers: Int(ge=1) = 1
    n_heads: Int(ge=1) = 1
    d_model: Int(ge=1) = 256
    d_mlp: Optional[Int(ge=1)] = None
    attention: Literal["softmax", "linear"] = "linear"
    act_fn: Literal["gelu", "gelu_new", "relu"] = "gelu_new"
    layer_norm_eps: Float(gt=0, lt=1) = 1e-5
    init_std: Float(gt=0) = 0.02
    mask_embedding: Literal["learned", "zero"] = "learned"
    """``tokens`` encoding only: "zero" keeps MASK's embedding at 0 (the study's padding_idx)."""
    pos_embedding: Literal["learned", "row_column"] = "learned"
    """"learned": one free vector per position (the studies'); "row_column" (matrix tasks):
    a learned row vector plus a learned column vector, see ``RowColumnEmbedding``."""

    @model_validator(mode="after")
    def _heads_divide_width(self) -> "ModelConfig":
        if self.d_model % self.n_heads:
            raise ValueError(
                f"model.d_model must be divisible by n_heads={self.n_heads}, got {self.d_model}")
        return self

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads

    @property
    def resolved_d_mlp(self) -> int:
        return self.d_mlp if self.d_mlp is not None else 4 * self.d_model

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump().items() if v is not None}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ModelConfig":
        if not isinstance(values, dict):
            raise ConfigError(f"[model] must be a table of fields, got {values!r}")
        return cls(**values)
