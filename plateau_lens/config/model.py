"""The ``[model]`` section: transformer size and shape, validated on construction (strict
types, finite ranges, combinations that cannot be built refused by field name)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Optional

from pydantic import model_validator

from .base import ConfigError, Float, Int, StrictModel

AttentionKind = Literal["softmax", "linear"]
"""``model.attention``: softmax attention, or the loss-plateau study's linear attention
(``plateau_lens.models.layers.PlateauAttention``)."""


class ModelConfig(StrictModel):
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

    section: ClassVar[str] = "model"

    n_layers: Int(ge=1) = 1
    n_heads: Int(ge=1) = 1
    d_model: Int(ge=1) = 256
    d_mlp: Optional[Int(ge=1)] = None
    attention: AttentionKind = "linear"
    act_fn: Literal["gelu", "gelu_new", "relu"] = "gelu_new"
    layer_norm_eps: Float(gt=0, lt=1) = 1e-5
    init_std: Float(gt=0) = 0.02
    mask_embedding: Literal["learned", "zero"] = "learned"
    """``tokens`` encoding only: "zero" keeps MASK's embedding at 0 (the study's padding_idx)."""
    pos_embedding: Literal["learned", "row_column", "sinusoidal", "rotary", "none"] = "learned"
    """"learned": one free vector per position (the studies'); "row_column" (matrix tasks):
    a learned row vector plus a learned column vector, see ``RowColumnEmbedding``;
    "sinusoidal": the fixed table of Vaswani et al. 2017 (``SinusoidalEmbedding``, no
    parameters); "rotary": RoPE on queries and keys (Su et al. 2021, TransformerLens' native
    ``NativeRotary``, adjacent-pair convention, base ``rotary_base``), no table added to the
    residual stream; "none": no positional information at all (a causal model can still
    count positions through its mask)."""
    rotary_base: Float(gt=1) = 10000.0
    """``pos_embedding = "rotary"``: θ_i = base^(-2i/d_head)."""
    normalization: Literal["layer_norm", "none"] = "layer_norm"
    """"layer_norm" (the studies'): the architecture's LayerNorms; "none": no LayerNorm
    anywhere (``gpt2`` only), as in Nanda et al. 2023's grokking transformer."""
    attn_only: bool = False
    """Attention-only blocks: no MLP (``gpt2`` only; leave ``d_mlp`` unset)."""
    tied_embeddings: bool = False
    """Tied unembedding W_U = W_Eᵀ (one parameter; needs d_vocab = d_vocab_out, token inputs)."""
    architecture: Literal["gpt2", "bert"] = "gpt2"
    """"gpt2" (pre-LN) or "bert" (post-LN + embedding LayerNorm + BERT init), see above."""
    max_positions: Optional[Int(ge=1)] = None
    """Rows of the position table (the model's n_ctx); default: the task's positions. Larger
    lets a model be fed longer inputs than it is trained on (LRMC: other matrix sizes); rows
    never reached in training keep their init (zero gradient: Adam never moves them), as the
    rows 49…511 of the study's 512-row BERT table do."""

    @model_validator(mode="after")
    def _heads_divide_width(self) -> "ModelConfig":
        if self.d_model % self.n_heads:
            raise ValueError(
                f"model.d_model must be divisible by n_heads={self.n_heads}, got {self.d_model}")
        return self

    @model_validator(mode="after")
    def _shape_options_fit(self) -> "ModelConfig":
        """Combinations of the shape options that cannot be built, refused by field name."""
        if self.architecture == "bert":
            gpt2_only = {"normalization": ("none", self.normalization == "none"),
                         "attn_only": (True, self.attn_only),
                         "tied_embeddings": (True, self.tied_embeddings),
                         "pos_embedding": (self.pos_embedding,
                                           self.pos_embedding not in ("learned", "row_column"))}
            for name, (value, clash) in gpt2_only.items():
                if clash:
                    raise ValueError(
                        f"model.{name}={value!r} needs model.architecture='gpt2' (the post-LN "
                        f"'bert' architecture has its LayerNorms, MLPs, an untied read-out and "
                        f"'learned' or 'row_column' positions), got architecture='bert'")
        if self.attn_only and self.d_mlp is not None:
            raise ValueError(f"model.d_mlp={self.d_mlp} is set but model.attn_only=true builds "
                             f"no MLP: leave d_mlp unset or set attn_only=false")
        if self.pos_embedding == "rotary" and self.d_head % 2:
            raise ValueError(f"model.pos_embedding='rotary' needs an even d_head = d_model / "
                             f"n_heads, got {self.d_model} / {self.n_heads} = {self.d_head}")
        if self.max_positions is not None and self.pos_embedding == "none":
            raise ValueError("model.max_positions sizes the position table, but "
                             "model.pos_embedding='none' has none: leave max_positions unset")
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
