"""Attention biasing, the loss-plateau study's training intervention on the attention map
(Gopalani & Hu 2025, arXiv 2506.13688, Figs. 3, 4 and 43; ``[train] attention_bias = c``): the
optimal entries of the causally masked attention are multiplied by c, without renormalising,
in training, evaluation and generation, from ``[train] attention_bias_start`` on; the SEP row
is not scaled. The model carries the multiplier (``models.layers.AttentionBias``), so it sits
with the models: the trainer sets it at each step and ``load_run`` replays it at a checkpoint's
step."""

from __future__ import annotations

from jaxtyping import Float
from torch import Tensor


def attention_bias_multiplier(task, c: float) -> Float[Tensor, "query key"]:
    """1 + (c − 1)·M for the task's optimal-attention mask M, leaving the first answer row
    (the separator's row) unscaled, as in the study."""
    if not c > 0:
        raise ValueError(f"attention bias c must be > 0, got {c}")
    optimal = task.optimal_attention()
    if optimal is None:
        raise ValueError(f"attention biasing needs an optimal attention mask, and task "
                         f"{task.name!r} defines none")
    optimal = optimal.clone()
    optimal[task.prompt_length - 1] = 0
    return 1 + (c - 1) * optimal


def configured_attention_bias(task, train_config, step: int) -> Tensor | None:
    """The multiplier a run's ``[train] attention_bias`` asks for at ``step`` (None: off)."""
    if train_config.attention_bias == 1.0 or step < train_config.attention_bias_start:
        return None
    return attention_bias_multiplier(task, train_config.attention_bias)
