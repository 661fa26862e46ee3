"""Prompts of different lengths as one left-padded batch, and greedy generation over it with
a KV cache: what ``transformers``' ``generate`` does for a batch, through the bridge, so the
hooks see every step.

Left padding puts each prompt's last token in the same column, so one ``[:, -1]`` reads every
prompt's next-token logits. Padded keys are masked (``attention_mask``) and each real token
keeps the position it has alone (``position_ids`` = number of real tokens before it): a
prompt's numbers are those of the prompt run by itself, up to float rounding."""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass
from typing import Sequence

import torch
from jaxtyping import Float, Int

log = logging.getLogger("plateau_lens")

_CACHE_CHECKED: "weakref.WeakKeyDictionary[object, bool]" = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class LeftPadded:
    """``tokens`` [batch, pos] (pad id in front of short prompts), ``attention_mask`` [batch,
    pos] (1 for real tokens) and ``position_ids`` [batch, pos] (0 at each prompt's first real
    token; 0 on the padding too, which no real token attends to)."""

    tokens: Int[torch.Tensor, "batch pos"]
    attention_mask: Int[torch.Tensor, "batch pos"]
    position_ids: Int[torch.Tensor, "batch pos"]


def left_pad(ids: Sequence[Sequence[int]], pad_id: int = 0, device=None) -> LeftPadded:
    """Left-pad token-id lists into one batch (see :class:`LeftPadded`)."""
    if not ids or any(len(row) == 0 for row in ids):
        raise ValueError("left_pad needs at least one prompt and no empty prompt")
    width = max(len(row) for row in ids)
    tokens = torch.full((len(ids), width), int(pad_id), dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, prompt in enumerate(ids):
        tokens[row, width - len(prompt):] = torch.as_tensor(list(prompt), dtype=torch.long)
        mask[row, width - len(prompt):] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return LeftPadded(tokens.to(device), mask.to(device), positions.to(device))


BATCH_COST_TOKENS_PER_FORWARD = 32
"""What one more forward of a batch costs, in prompt tokens of compute: on a CPU a forward
reads every weight once whatever the batch (a cached step of one prompt on the
Pythia-160m-shaped model: 0.03 s, the time of ~32 prompt tokens at 0.92 ms each; measured
2026-12-07 on the 2-core machine). A batch of generation runs ``n_new`` forwards."""


def length_batches(lengths: Sequence[int], n_forwards: int = 8,
                   cost_per_forward: int | None = None) -> list[list[int]]:
    """Indices of ``lengths`` grouped into left-padded batches of neighbouring lengths (sorted
    ascending): the grouping that minimises ``Σ_batches size·longest + n_forwards ·
    cost_per_forward`` (tokens computed, padding included, plus the per-batch cost of its
    forwards), found exactly by dynamic programming over the distinct lengths. One batch of
    prompts from 5 to 22 tokens pads half its tokens; here the padding is kept short where a
    split pays for its extra forwards. ``cost_per_forward`` defaults to
    :data:`BATCH_COST_TOKENS_PER_FORWARD`; 0 gives one batch per distinct length. Ties keep
    fewer batches."""
    if cost_per_forward is None:
        cost_per_forward = BATCH_COST_TOKENS_PER_FORWARD
    if not lengths:
        return []
    order = sorted(range(len(lengths)), key=lambda index: lengths[index])
    distinct = sorted(set(lengths))
    counts = [0] * len(distinct)
    where = {length: position for position, length in enumerate(distinct)}
    for length in lengths:
        counts[where[length]] += 1
    before = [0]
    for count in counts:
        before.append(before[-1] + count)
    fixed = n_forwards * cost_per_forward
    best = [0] + [float("inf")] * len(distinct)
    cut = [0] * (len(distinct) + 1)
    for end in range(1, len(distinct) + 1):
        for start in range(end):
            cost = best[start] + (before[end] - before[start]) * distinct[end - 1] + fixed
            if cost < best[end]:
                best[end], cut[end] = cost, start
    bounds, end = [], len(distinct)
    while end:
        bounds.append((before[cut[end]], before[end]))
        end = cut[end]
    return [order[first:last] for first, last in reversed(bounds)]


def greedy_pick(logits: Float[torch.Tensor, "batch vocab"], suppressed: Sequence[int] = ()
                ) -> Int[torch.Tensor, "batch 1"]:
    """The greedy next token of each row, ``suppressed`` ids (those in the vocabulary) set to
    −inf first, as ``min_new_tokens`` masks the EOS in ``transformers``."""
    scores = logits.float()
    masked = [t for t in suppressed if t < scores.shape[-1]]
    if masked:
        scores[:, masked] = float("-inf")
    return scores.argmax(dim=-1, keepdim=True)


@torch.no_grad()
def kv_cache_agrees(bridge, atol: float = 1e-4) -> bool:
    """Whether the bridge's KV cache gives the logits of a full forward: one prompt of 6
    tokens run with ``use_cache``, then a 7th token fed with the cache, against the 7 tokens
    in one forward. TransformerLens 4.3's OLMo bridge fails this (its attention reconstruction
    ignores the cache: logits off by ~0.2 on a tiny random OLMo, where plain ``transformers``
    agrees to 6e-8), GPT-NeoX passes. Checked once per bridge (its architecture, not its
    weights, decides)."""
    if bridge in _CACHE_CHECKED:
        return _CACHE_CHECKED[bridge]
    vocab = int(bridge.cfg.d_vocab)
    tokens = (torch.arange(7, dtype=torch.long) * 7 + 3).remainder(vocab)[None].to(bridge.cfg.device)
    full = bridge(tokens)[:, -1].float()
    _, cache = bridge(tokens[:, :-1], return_type="logits_and_cache", use_cache=True)
    step, _ = bridge(tokens[:, -1:], return_type="logits_and_cache", past_key_values=cache,
                     use_cache=True, attention_mask=torch.ones_like(tokens),
                     position_ids=torch.tensor([[6]], device=tokens.device))
    agrees = bool(torch.allclose(step[:, -1].float(), full, atol=atol, rtol=1e-4))
    if not agrees:
        log.info("this %s bridge's KV cache does not reproduce a full forward; generating "
                 "with a full forward per token (slower, same numbers)", type(
                     getattr(bridge, "original_model", bridge)).__name__)
    _CACHE_CHECKED[bridge] = agrees
    return agrees


@torch.no_grad()
def greedy_generate(bridge, batch: LeftPadded, n_new: int, suppressed: Sequence[int] = (),
                    hidden_hook: str = "ln_final.hook_out", use_cache: bool | None = None,
                    ) -> tuple[Int[torch.Tensor, "batch n_new"], Float[torch.Tensor, "batch n_new d_model"]]:
    """``n_new`` greedy tokens per prompt with a KV cache, and ``hidden_hook``'s activation at
    the last position fed at each step (the last prompt token, then the first ``n_new − 1``
    generated tokens), read from the same forward that picks the token.

    Step 1 runs the whole left-padded prompt batch; steps 2…n_new feed one token each with the
    cache, the mask grown by one column and the position one past the last. Only the last
    position's logits are computed (``logits_to_keep=1``). ``use_cache=None`` uses the cache
    where :func:`kv_cache_agrees` (else each step runs the whole sequence so far, still
    batched). ``suppressed`` ids get −inf before
    the argmax at every step (``min_new_tokens`` masking the EOS). Returns the generated ids
    [batch, n_new] and the hidden states [batch, n_new, d_model] in float32."""
    captured: list[torch.Tensor] = []

    def keep_last(activation, hook):
        captured.append(activation[:, -1].float())

    if use_cache is None:
        use_cache = kv_cache_agrees(bridge)
    sequence, mask, positions = batch.tokens, batch.attention_mask, batch.position_ids
    tokens = sequence
    cache = None
    generated = []
    with bridge.hooks(fwd_hooks=[(hidden_hook, keep_last)]):
        for _ in range(n_new):
            if use_cache:
                logits, cache = bridge(tokens, return_type="logits_and_cache", attention_mask=mask,
                                       position_ids=positions, past_key_values=cache,
                                       use_cache=True, logits_to_keep=1)
            else:
                logits = bridge(sequence, attention_mask=mask, position_ids=positions,
                                logits_to_keep=1)
            tokens = greedy_pick(logits[:, -1], suppressed)
            generated.append(tokens)
            mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=-1)
            if use_cache:
                positions = positions[:, -1:] + 1
            else:
                sequence = torch.cat([sequence, tokens], dim=-1)
                positions = torch.cat([positions, positions[:, -1:] + 1], dim=-1)
    if len(captured) != n_new:
        raise RuntimeError(f"{hidden_hook} fired {len(captured)} times in {n_new} forwards; "
                           f"it must fire once per forward")
    return torch.cat(generated, dim=-1), torch.stack(captured, dim=1)
