"""Model hyper-parameters, validated on construction."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..tasks.base import check_choice, check_int

ACT_FNS = ("gelu", "gelu_new", "relu")
POS_EMBEDDINGS = ("learned", "row_column")
ARCHITECTURES = ("gpt2", "bert")


@dataclass(frozen=True)
class ModelConfig:
    """Transformer size and variant. The task fixes context, vocabulary and attention direction.

    Defaults are the loss-plateau study's minGPT: 1 layer, 1 head, d_model 256, MLP 4·d,
    tanh-GELU, linear attention, init N(0, 0.02) with residual outputs scaled by 1/√(2L).

    ``architecture`` picks the block layout, norms and init as one named choice:

    * ``"gpt2"`` (default): pre-LN blocks (TransformerLens' ``NativeBlock``), a final
      LayerNorm before the read-out, GPT-2 init (N(0, init_std), output projections
      N(0, init_std/√(2·n_layers))). The loss-plateau study's minGPT.
    * ``"bert"``: the matrix-completion study's BERT (``plateau_lens.models.bert``): post-LN
      blocks, a LayerNorm on the embeddings, no final LayerNorm, BERT init (N(0, init_std)
      everywhere, the read-out with PyTorch's default nn.Linear init as in the authors' code).
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
    architecture: str = "gpt2"
    """"gpt2" (pre-LN) or "bert" (post-LN + embedding LayerNorm + BERT init), see above."""
    max_positions: int | None = None
    """Rows of the position table (the model's n_ctx); default: the task's positions. Larger
    lets a model be fed longer inputs than it is trained on (LRMC: other matrix sizes); rows
    never reached in training keep their init (zero gradient: Adam never moves them), as the
    rows 49…511 of the study's 512-row BERT table do."""

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
        check_choice("architecture", self.architecture, ARCHITECTURES)
        if self.max_positions is not None:
            check_int("max_positions", self.max_positions, 1)
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
