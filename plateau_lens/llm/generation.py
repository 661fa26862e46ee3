"""Repetition and representation collapse of a pretrained checkpoint's greedy generations,
computed the way the loss-plateau study does it for Pythia and OLMo (arXiv 2506.13688,
``src/pythia.py``, ``src/olmo.py``)."""

from __future__ import annotations

import logging
from typing import Sequence

import pandas as pd
import torch

from ..errors import InputError
from ..metrics import repetition_frequency
from .batching import greedy_generate, left_pad, length_batches
from .plain_model import has_active_hooks, plain_greedy_generate, plain_model

log = logging.getLogger("plateau_lens")

LAST_HIDDEN_HOOK = "ln_final.hook_out"
"""The last-layer hidden state after the final norm: ``transformers``' ``hidden_states[-1]``."""

KV_SHARE_OF_WEIGHTS = 0.2
"""With ``batch_size=None``, the plain model's stacked KV cache is kept within this share of the
model's weight bytes where a stack of whole length groups allows
(:func:`~plateau_lens.llm.plain_model.kv_stacks`). On the Pythia-160m-shaped model (619 MiB),
100 prompts of 5 to 22 tokens stack as 83 + 17 rows (117 and 35 MiB of keys and values, one
after the other) instead of one 100-row stack of 204 MiB: peak RSS 1 401-1 411 MiB against
1 511-1 528 MiB, for ~7 % more time (2.95 against 2.75 s per checkpoint; measured
2026-12-07, two runs each). ``None``: one stack."""

ENGINES = ("auto", "transformers", "bridge")
"""How :func:`generation_metrics` generates: ``transformers`` (the checkpoint's own model on the
bridge's weights, :func:`~plateau_lens.llm.plain_model.plain_model`), ``bridge`` (through the
bridge's hooks), ``auto`` (the first where it reproduces the bridge and no hook is on the
bridge, else the second)."""

_GREEDY_CHANGING_FIELDS = ("repetition_penalty", "no_repeat_ngram_size", "bad_words_ids",
                           "suppress_tokens", "begin_suppress_tokens", "forced_bos_token_id",
                           "forced_eos_token_id", "sequence_bias", "encoder_repetition_penalty")
_DEFAULTS = {"repetition_penalty": 1.0, "encoder_repetition_penalty": 1.0,
             "no_repeat_ngram_size": 0}


def prompt_ids(tokenizer, prompt: str, prepend_bos: bool = False) -> list[int]:
    """``tokenizer(prompt)``'s ids, as the study tokenises (``return_token_type_ids=False``);
    with ``prepend_bos`` the tokenizer's BOS goes in front unless it is there already."""
    if tokenizer is None:
        raise ValueError("this model has no tokenizer; pass tokenizer= (the checkpoint's "
                         "AutoTokenizer)")
    ids = list(tokenizer(prompt, return_token_type_ids=False)["input_ids"])
    if prepend_bos:
        bos = tokenizer.bos_token_id
        if bos is None:
            raise ValueError("prepend_bos=True, but the tokenizer has no BOS token")
        if not ids or ids[0] != bos:
            ids = [bos] + ids
    if not ids:
        raise ValueError(f"prompt {prompt!r} tokenizes to nothing")
    return ids


def suppressed_token_ids(model, tokenizer=None) -> list[int]:
    """The end-of-sequence ids that ``min_new_tokens`` masks in ``transformers``: those of the
    checkpoint's ``generation_config`` (falling back to the tokenizer's EOS when the model has
    none)."""
    config = getattr(getattr(model, "original_model", None), "generation_config", None)
    eos = getattr(config, "eos_token_id", None) if config is not None else None
    if eos is None and tokenizer is not None:
        eos = tokenizer.eos_token_id
    if eos is None:
        return []
    return sorted({int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])})


def _warn_about_generation_config(model) -> None:
    config = getattr(getattr(model, "original_model", None), "generation_config", None)
    if config is None:
        return
    active = [name for name in _GREEDY_CHANGING_FIELDS
              if getattr(config, name, None) not in (None, _DEFAULTS.get(name), [], ())]
    if active:
        log.warning("the checkpoint's generation_config sets %s, which transformers' generate "
                    "would apply; generation_metrics does not (plain greedy with the EOS masked)",
                    ", ".join(active))


def resolve_tokenizer(model, tokenizer=None):
    """``tokenizer`` if given, else the checkpoint's own ``AutoTokenizer`` that a
    :class:`~plateau_lens.llm.checkpoints.PretrainedModel` carries, else the bridge's."""
    if tokenizer is not None:
        return tokenizer
    return getattr(model, "tokenizer", None)


def bridge_of(model):
    """The ``TransformerBridge`` of a PretrainedModel / PlateauModel, or the bridge itself."""
    return getattr(model, "bridge", model)


def tokenize_prompts(tokenizer, prompts: Sequence[str], prepend_bos: bool = False) -> list[list[int]]:
    """Every prompt's ids (:func:`prompt_ids`), with a warning when the tokenizer itself puts
    a BOS in front (TransformerLens's copy does; the study's AutoTokenizer for Pythia/OLMo does
    not). A series tokenises once and passes the result to :func:`generation_metrics`."""
    ids = [prompt_ids(tokenizer, prompt, prepend_bos) for prompt in prompts]
    bos = getattr(tokenizer, "bos_token_id", None)
    if not prepend_bos and bos is not None and any(i[0] == bos for i in ids):
        log.warning("the tokenizer puts the BOS (id %d) in front of the prompts; the study's "
                    "AutoTokenizer for Pythia/OLMo adds none. If this is TransformerLens's "
                    "tokenizer (add_bos_token=True), load the checkpoint with "
                    "load_checkpoint_model or pass tokenizer=AutoTokenizer.from_pretrained(...)",
                    bos)
    return ids


@torch.no_grad()
def generation_metrics(model, prompts: Sequence[str], n_new: int = 8, *, tokenizer=None,
                       prepend_bos: bool = False, batch_size: int | None = None,
                       token_ids: Sequence[Sequence[int]] | None = None,
                       engine: str = "auto") -> pd.DataFrame:
    """Per prompt, the study's greedy generation and its two numbers (Gopalani & Hu, *What
    Happens During the Loss Plateau?*, arXiv 2506.13688, Sec. 6 / Figs. 8, 23-25; their code
    ``src/pythia.py``, ``src/olmo.py``).

    * Tokenisation: ``tokenizer(prompt)``, exactly as the study's
      ``AutoTokenizer.from_pretrained(model, revision)(question)``. ``tokenizer`` defaults to
      the checkpoint's own ``AutoTokenizer`` that ``load_checkpoint_model``'s
      :class:`PretrainedModel` carries (for Pythia and OLMo it adds no BOS), not to the
      bridge's: TransformerLens reloads tokenizers with ``add_bos_token=True``.
      For a bridge booted without ``load_checkpoint_model`` pass
      ``tokenizer=AutoTokenizer.from_pretrained(...)``. ``prepend_bos=True`` puts the BOS in
      front (not the study's recipe; off by default). ``token_ids`` (one list per prompt, from
      :func:`tokenize_prompts`) skips the tokenisation: a series tokenises once.
    * Generation: exactly ``n_new`` greedy tokens with the end-of-sequence ids of the
      checkpoint's ``generation_config`` masked at every step, as ``min_new_tokens =
      max_new_tokens = n_new`` does in ``transformers``' ``generate``: an EOS never ends or
      fills the generation. The study runs one prompt at a time without a cache
      (``use_cache=False``); here prompts go in left-padded batches with a KV cache. With
      ``batch_size=None`` (the default) the prompts are grouped by length
      (:func:`~plateau_lens.llm.batching.length_batches`: the groups that compute the fewest
      tokens, padding included, counting each forward of a group as 32 prompt tokens).
      Through the plain model each group's prompt forward runs alone and the ``n_new − 1``
      one-token steps run once per stack of groups, their KV caches stacked
      (:func:`~plateau_lens.llm.plain_model.plain_greedy_generate`; on the benchmark's 100
      prompts of 5 to 22 tokens: 5 groups, 1 246 prompt tokens instead of 2 200, stepped as
      2 stacks whose KV caches stay within :data:`KV_SHARE_OF_WEIGHTS` of the weights);
      through the bridge each group is generated as its own batch. An integer ``batch_size`` cuts the
      length-sorted prompts into batches of at most that many, each generated on its own (to
      bound memory)
      (:func:`~plateau_lens.llm.batching.greedy_generate`): the same tokens and, up to float
      rounding, the same hidden states (tests compare with the study's recipe).
    * ``engine`` (one of :data:`ENGINES`): ``auto`` (default) generates with the checkpoint's
      own ``transformers`` model on the bridge's weights (no copy; the study's model, ``sdpa``
      attention, its own KV cache; the hidden state is ``hidden_states[-1]`` of the same
      forward) where that model reproduces the bridge on a probe and no hook is on the bridge;
      otherwise through the bridge (``ln_final.hook_out``; hooks on the bridge apply).
      ``transformers`` / ``bridge`` force one (``transformers`` raises where it is unavailable).
    * ``repetition_frequency``: mean of ``[t_i == t_{i+1}]`` over the ``n_new − 1`` adjacent
      pairs of generated tokens.
    * ``cosine_similarity``: mean over the ``n_new·(n_new−1)/2`` pairs of the cosine between
      the hidden states of the ``n_new`` generation steps, each the last layer after the final
      norm (``ln_final.hook_out``) at the last position of the sequence fed at that step, i.e.
      ``hidden_states[i][-1][:, -1]`` of ``generate(..., output_hidden_states=True)``: the last
      prompt position and the first ``n_new − 1`` generated positions.

    Returns one row per prompt (in order): prompt text and ids, generated ids and text, both
    metrics. The study reports both averaged over prompts."""
    if isinstance(prompts, (str, bytes)) or not isinstance(prompts, Sequence) or not prompts:
        raise InputError(f"prompts must be a non-empty list of strings, got {prompts!r}")
    if isinstance(n_new, bool) or not isinstance(n_new, int) or n_new < 2:
        raise InputError(f"n_new must be an integer >= 2, got {n_new!r}")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                   or batch_size < 1):
        raise InputError(f"batch_size must be a positive int or None (batches chosen by length), "
                         f"got {batch_size!r}")
    if engine not in ENGINES:
        raise InputError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    tokenizer = resolve_tokenizer(model, tokenizer)
    model = bridge_of(model)
    if engine == "transformers" and has_active_hooks(model):
        raise ValueError("engine='transformers' would ignore the hooks on this bridge; use "
                         "engine='bridge' (or 'auto', which picks it when hooks are on)")
    plain = None
    if engine != "bridge" and not (engine == "auto" and has_active_hooks(model)):
        plain = plain_model(model)
        if plain is None and engine == "transformers":
            raise ValueError("engine='transformers': this bridge's transformers model cannot "
                             "reproduce it on the same weights (see the log); use "
                             "engine='bridge' or 'auto'")
    if token_ids is None:
        ids = tokenize_prompts(tokenizer, prompts, prepend_bos)
    else:
        ids = [list(map(int, row)) for row in token_ids]
        if len(ids) != len(prompts) or any(not row for row in ids):
            raise ValueError(f"token_ids must hold one non-empty list per prompt: {len(ids)} "
                             f"lists for {len(prompts)} prompts")
    suppressed = suppressed_token_ids(model, tokenizer)
    _warn_about_generation_config(model)
    if batch_size is None:
        # the plain model runs each group's prompt forward alone, then every group's steps as
        # one batch: a group costs one forward more; through the bridge a group is a batch
        groups = length_batches([len(row) for row in ids],
                                n_forwards=1 if plain is not None else n_new)
        units = [groups] if plain is not None else [[group] for group in groups]
    else:
        order = sorted(range(len(ids)), key=lambda index: len(ids[index]))
        units = [[order[start:start + batch_size]] for start in range(0, len(order), batch_size)]
    kv_budget = None
    if plain is not None and batch_size is None:
        kv_budget = None if KV_SHARE_OF_WEIGHTS is None else int(KV_SHARE_OF_WEIGHTS * sum(
            t.numel() * t.element_size() for t in plain.model.parameters()))
    pad = getattr(tokenizer, "pad_token_id", None)  # masked out: any id of the vocabulary does
    pad = pad if pad is not None and 0 <= pad < model.cfg.d_vocab else 0
    generated: dict[int, list[int]] = {}
    cosine: dict[int, float] = {}
    pairs = torch.triu_indices(n_new, n_new, offset=1)
    for unit_groups in units:
        batches = [left_pad([ids[i] for i in group], pad, device=model.cfg.device)
                   for group in unit_groups]
        members = [index for group in unit_groups for index in group]
        if plain is not None:
            new_tokens, hidden = plain_greedy_generate(plain, batches, n_new, suppressed,
                                                       kv_budget_bytes=kv_budget)
        else:
            (batch,) = batches
            new_tokens, hidden = greedy_generate(model, batch, n_new, suppressed, LAST_HIDDEN_HOOK)
        unit = torch.nn.functional.normalize(hidden.double().cpu(), dim=-1, eps=1e-12)
        similarity = (unit[:, pairs[0]] * unit[:, pairs[1]]).sum(-1).mean(-1)
        for row, index in enumerate(members):
            generated[index] = new_tokens[row].tolist()
            cosine[index] = similarity[row].item()
    rows = []
    for index, prompt in enumerate(prompts):
        new = generated[index]
        rows.append({"prompt": index, "prompt_text": prompt, "n_prompt_tokens": len(ids[index]),
                     "prompt_ids": ids[index], "generated": new,
                     "generated_text": tokenizer.decode(new),
                     "repetition_frequency": repetition_frequency(torch.tensor([new])),
                     "cosine_similarity": cosine[index]})
    return pd.DataFrame(rows)
