"""Model hyper-parameters, validated on construction."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..tasks.base import check_choice, check_int

ACT_FNS = ("gelu", "gelu_new", "relu")
POS_EMBEDDINGS = ("learned", "row_column")


@dataclass(frozen=True)
class ModelConfig:
    """Transformer size and variant. The task fixes context, vocabulary and attention direction.

    Defaults are the loss-plateau study's minGPT: 1 layer, 1 head, d_model 256, MLP 4·d,
    tanh-GELU, linear attention, init N(0, 0.02) with residual outputs scaled by 1/√(2L).
    """

    n_layers: int = 1
    n_heads: int = 1
    d_model: int = 256
    d_mlp: int | None = None
    attention: str = "linear"
    act_fn: str = "gelu_new"
    layer_norm_eps: float = 1e-5
    init_std: float = 0.02
    mask_embedding: str = "learned"
    """``tokens`` encoding only: "zero" keeps MASK's embedding at 0 (the study's padding_idx)."""
    pos_embedding: str = "learned"
    """"learned": one free vector per position (the studies'); "row_column" (matrix tasks):
    a learned row vector plus a learned column vector, see ``RowColumnEmbedding``."""

    def __post_init__(self) -> None:
        check_int("n_layers", self.n_layers, 1)
        check_int("n_heads", self.n_heads, 1)
        check_int("d_model", self.d_model, 1)
        if self.d_model % self.n_heads:
            raise ValueError(
                f"d_model must be divisible by n_heads={self.n_heads}, got {self.d_model}"
            )
        if self.d_mlp is not None:
            check_int("d_mlp", self.d_mlp, 1)
        check_choice("attention", self.attention, ("softmax", "linear"))
        check_choice("act_fn", self.act_fn, ACT_FNS)
        check_choice("mask_embedding", self.mask_embedding, ("learned", "zero"))
        check_choice("pos_embedding", self.pos_embedding, POS_EMBEDDINGS)
        if not self.init_std > 0:
            raise ValueError(f"init_std must be > 0, got {self.init_std!r}")

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads

    @property
    def resolved_d_mlp(self) -> int:
        return self.d_mlp if self.d_mlp is not None else 4 * self.d_model

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ModelConfig":
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(
                f"unknown [model] field(s) {unknown}; allowed: {sorted(cls.__dataclass_fields__)}"
            )
        return cls(**values)
