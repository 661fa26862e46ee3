"""Next-token prediction on user prompts, so the sequence analyzers (ablation, patching,
probes) can score a pretrained model exactly as they score a toy one."""

from __future__ import annotations

from typing import Sequence

import torch

from ..tasks.base import SequenceBatch


class PromptTask:
    """Every position predicts the next token of the prompt (all positions scored)."""

    name, kind = "prompts", "sequence"

    def __init__(self, length: int):
        if length < 2:
            raise ValueError(f"prompts must be at least 2 tokens long, got {length}")
        self.prompt_length, self.answer_length, self.n_positions = 1, length - 1, length - 1

    def answer_rows(self) -> range:
        return range(0, self.n_positions)

    def loss(self, logits, batch: SequenceBatch):
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), batch.targets.flatten())


def prompt_batch(model, prompts: Sequence[str], length: int = 12,
                 max_prompts: int = 64) -> tuple[SequenceBatch, PromptTask]:
    """Tokenize, keep the prompts with at least ``length`` tokens, cut them to ``length``."""
    ids = [model.tokenizer(p, return_tensors="pt").input_ids[0] for p in prompts]
    kept = [i[:length] for i in ids if len(i) >= length][:max_prompts]
    if not kept:
        raise ValueError(f"no prompt has {length} tokens; use a smaller length")
    tokens = torch.stack(kept).to(model.cfg.device)
    return SequenceBatch(tokens=tokens, prompt_length=1, task_name="prompts"), PromptTask(length)
