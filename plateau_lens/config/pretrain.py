"""The LLM pretraining config: what ``plateau_lens.llm.pretrain.pretrain_series`` trains (a
GPT-NeoX, Pythia's architecture, on local text) and when it saves a checkpoint.

Validated by the same strict means as a run config (:class:`~.base.StrictModel`), with the
names of the ``[model]`` and ``[train]`` sections wherever the concept is the same
(``n_layers``, ``n_heads``, ``d_model``, ``d_mlp``, ``steps``, ``batch_size``, ``lr``,
``warmup_steps``, ``weight_decay``, ``betas``, ``grad_clip``, ``seed``). The names it had
before (``warmup``; ``steps`` as the list of saved steps) are refused with the new one.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Optional

from pydantic import Field, model_validator

from .base import Allowed, Float, Int, StrictModel
from .limits import MAX_VOCAB
from .train import SEED_MAX, SIZE_MAX, STEPS_MAX


def pythia_like_schedule(last: int, every: int = 500) -> list[int]:
    """Pythia's checkpoint schedule scaled down: 0 and the powers of two up to 512 (as far as
    ``last``), then every ``every`` steps above 512, and ``last``:
    ``pythia_like_schedule(3500)`` → 0, 1, 2, 4, …, 512, 1000, 1500, …, 3500 (Pythia itself is
    ``every=1000`` to 143 000)."""
    if last < 0 or every < 1:
        raise ValueError(f"last must be >= 0 and every >= 1, got last={last}, every={every}")
    steps = {0, last} | {2 ** k for k in range(10) if 2 ** k <= last}
    steps |= {s for s in range(every, last + 1, every) if s > 512}
    return sorted(steps)


class PretrainConfig(StrictModel):
    """A GPT-NeoX pretraining run (defaults: the example of docs/pretrained.md, about 1.6 M
    parameters): AdamW (decay on matrices only), linear warm-up over ``warmup_steps`` then
    cosine decay to ``min_lr_ratio × lr`` at ``steps``; ``save_pretrained`` at every step of
    ``checkpoint_steps`` (0 = the random init) and at ``steps``."""

    section: ClassVar[str] = "pretrain"
    renamed: ClassVar[dict[str, str]] = {"warmup": "warmup_steps"}

    n_layers: Int(ge=1) = 3
    d_model: Int(ge=1) = 128
    n_heads: Int(ge=1) = 4
    d_mlp: Int(ge=1) = 512
    vocab_size: Int(ge=3, le=MAX_VOCAB) = 4096
    """Size of the byte-level BPE vocabulary trained on the text (with its two special tokens)."""
    seq_len: Int(ge=1) = 128
    """Tokens per training window."""
    steps: Int(ge=1, le=STEPS_MAX) = 3500
    """Optimiser updates (as ``train.steps``)."""
    checkpoint_steps: Optional[Annotated[tuple[Int(ge=0, le=STEPS_MAX), ...], Field(strict=False),
                                         Allowed("a list of steps in [0, steps]")]] = None
    """Steps saved as ``step{N}/``; None: :func:`pythia_like_schedule` of ``steps``."""
    batch_size: Int(ge=1, le=SIZE_MAX) = 16
    lr: Float(gt=0) = 1e-3
    min_lr_ratio: Annotated[Float(ge=0), Allowed("in [0, 1] (a finite number)")] = 0.1
    """The cosine decay ends at ``min_lr_ratio × lr``."""
    warmup_steps: Int(ge=0, le=STEPS_MAX) = 35
    weight_decay: Float(ge=0) = 0.01
    betas: Annotated[tuple[Float(ge=0, lt=1), Float(ge=0, lt=1)], Field(strict=False),
                     Allowed("two numbers in [0, 1), e.g. [0.9, 0.95]")] = (0.9, 0.95)
    """AdamW's (β₁, β₂) (Pythia's: (0.9, 0.95))."""
    grad_clip: Annotated[Float(ge=0), Allowed(">= 0 (a finite number; 0 = off)")] = 1.0
    seed: Int(ge=0, le=SEED_MAX) = 0

    @model_validator(mode="before")
    @classmethod
    def _steps_is_a_count(cls, values: Any) -> Any:
        """``steps`` used to be the list of saved steps: say where that list goes now."""
        if isinstance(values, dict) and isinstance(values.get("steps"), (list, tuple)):
            raise ValueError(
                f"pretrain.steps is the number of optimiser updates (an integer, as train.steps), "
                f"got the list {list(values['steps'])}: give the steps to save as "
                f"pretrain.checkpoint_steps (and steps = their last)")
        return values

    @model_validator(mode="after")
    def _consistent(self) -> "PretrainConfig":
        if self.min_lr_ratio > 1:
            raise ValueError(f"pretrain.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.d_model % self.n_heads:
            raise ValueError(f"pretrain.d_model must be divisible by n_heads={self.n_heads}, "
                             f"got {self.d_model}")
        if self.checkpoint_steps is not None:
            beyond = [s for s in self.checkpoint_steps if s > self.steps]
            if not self.checkpoint_steps or beyond:
                raise ValueError(f"pretrain.checkpoint_steps must be a non-empty list of steps in "
                                 f"[0, steps={self.steps}], got {list(self.checkpoint_steps)}")
        return self

    def save_steps(self) -> list[int]:
        """The steps saved, sorted: ``checkpoint_steps`` (or the Pythia-like schedule) and ``steps``."""
        chosen = (pythia_like_schedule(self.steps) if self.checkpoint_steps is None
                  else self.checkpoint_steps)
        return sorted(set(chosen) | {self.steps})
