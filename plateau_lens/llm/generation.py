"""Repetition and representation collapse of a pretrained checkpoint's greedy generations."""

from __future__ import annotations

from typing import Sequence

import pandas as pd
import torch

from ..metrics import greedy_generate, mean_pairwise_cosine, repetition_frequency

LAST_HIDDEN_HOOK = "ln_final.hook_out"
"""The last-layer hidden state (after the final norm), as in ``output_hidden_states[-1]``."""


def tokenize(model, prompt: str) -> torch.Tensor:
    tokenizer = model.tokenizer
    if tokenizer is None:
        raise ValueError("this model has no tokenizer; pass tokenizer= when loading it")
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    if ids.shape[-1] == 0:
        raise ValueError(f"prompt {prompt!r} tokenizes to nothing")
    return ids.to(model.cfg.device)


@torch.no_grad()
def generation_metrics(model, prompts: Sequence[str], n_new: int = 8) -> pd.DataFrame:
    """Per prompt: greedy-generate ``n_new`` tokens; repetition frequency over their
    ``n_new − 1`` adjacent pairs; mean pairwise cosine similarity of last-layer hidden states
    at the last prompt position and the first ``n_new − 1`` generated positions."""
    if n_new < 2:
        raise ValueError(f"n_new must be >= 2, got {n_new}")
    rows = []
    for index, prompt in enumerate(prompts):
        ids = tokenize(model, prompt)
        length = ids.shape[-1]
        tokens = greedy_generate(model, ids, n_new)
        _, cache = model.run_with_cache(tokens, names_filter=lambda n: n == LAST_HIDDEN_HOOK)
        hidden = cache[LAST_HIDDEN_HOOK][:, length - 1 : length - 1 + n_new]
        rows.append({"prompt": index, "n_prompt_tokens": length,
                     "repetition_frequency": repetition_frequency(tokens[:, length:]),
                     "cosine_similarity": mean_pairwise_cosine(hidden),
                     "generated": tokens[0, length:].tolist()})
    return pd.DataFrame(rows)
