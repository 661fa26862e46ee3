"""Next-token prediction on user prompts, so the sequence analyzers (ablation, patching,
probes) can score a pretrained model exactly as they score a toy one."""

from __future__ import annotations

from typing import Sequence

import torch

from ..tasks.algorithmic import SequenceTask
from ..tasks.base import SequenceBatch


class PromptTask(SequenceTask):
    """Every position predicts the next token of the prompt (all positions scored): the
    task protocol for a pretrained model's prompts, so the sequence analyzers score it as
    they score a toy task."""

    name = "prompts"

    def __init__(self, length: int, d_vocab: int):
        if length < 2:
            raise ValueError(f"prompts must be at least 2 tokens long, got {length}")
        self.n_inputs, self.d_vocab = length - 1, d_vocab

    prompt_length = 1

    @property
    def answer_length(self) -> int:
        return self.n_inputs

    def collapse_positions(self) -> list[int]:
        return list(range(self.n_positions))

    def default_corruption(self, batch: SequenceBatch) -> SequenceBatch:
        """None: which prompt is the counterfactual of which is the user's choice."""
        raise ValueError(
            "prompts have no default corruption for activation patching: pass "
            "corrupted_batch=prompt_batch(model, other_prompts, length=...)[0] (one counterfactual "
            "prompt per clean prompt, same length) or corrupt=lambda task, batch: ...")


def prompt_batch(model, prompts: Sequence[str], length: int = 12,
                 max_prompts: int = 64) -> tuple[SequenceBatch, PromptTask]:
    """Tokenize (with the checkpoint's own tokenizer, as the study does: no BOS added for
    Pythia/OLMo), keep the prompts with at least ``length`` tokens, cut them to ``length``."""
    ids = [torch.tensor(model.tokenizer(p)["input_ids"]) for p in prompts]
    kept = [i[:length] for i in ids if len(i) >= length][:max_prompts]
    if not kept:
        raise ValueError(f"no prompt has {length} tokens; use a smaller length")
    tokens = torch.stack(kept).to(model.cfg.device)
    return (SequenceBatch(tokens=tokens, prompt_length=1, task_name="prompts"),
            PromptTask(length, model.cfg.d_vocab))
