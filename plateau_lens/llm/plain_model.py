"""The checkpoint's own ``transformers`` model on the bridge's weights, for generation.

A ``TransformerBridge`` wraps every module of the ``transformers`` model it was booted on
(``bridge.original_model``) in a component with hook points, runs attention in eager mode (it
materialises the pattern for ``hook_pattern``) and, for a fused QKV matrix, through separate
q/k/v slices. That is what the hooked analyses need; to generate 8 greedy tokens it is extra
Python and extra matrix work per module per step. :func:`plain_model` builds, once per bridge,
a plain instance of the same ``transformers`` class whose every parameter and buffer *is* the
tensor the bridge's original modules hold (the same parameter objects: no copy, and weights a
:class:`~plateau_lens.llm.reuse.SeriesLoader` later maps into the bridge are its weights too),
with ``transformers``' default attention (``sdpa``). It is the model the loss-plateau study
generates with (Gopalani & Hu, arXiv 2506.13688, ``src/pythia.py``: ``AutoModelForCausalLM``
+ ``generate(..., output_hidden_states=True)``). The representation-collapse read, the study's
``hidden_states[-1]`` (the last layer after the final norm), is taken by a forward hook on the
plain model's final norm (the module the bridge calls ``ln_final``), at the last position
only: ``output_hidden_states`` would keep every layer at every prompt position.

It is used only where it computes what the bridge computes: built on the ``meta`` device (no
weights allocated), every tensor then taken from the bridge (same name after unwrapping the
bridge's components, same shape and dtype), no tensor left on ``meta``, and on a probe of 7
tokens its last-position logits and final hidden state equal the bridge's (``atol`` 1e-4).
Anything else (a class ``transformers`` cannot build from the config, a bridge whose weights
were processed, e.g. folded layer norms) gives ``None``: the caller generates through the
bridge. It ignores hooks on the bridge; callers check :func:`has_active_hooks` first."""

from __future__ import annotations

import copy
import logging
import weakref
from dataclasses import dataclass
from typing import Sequence

import torch
from jaxtyping import Float, Int

from .batching import LeftPadded, greedy_pick

log = logging.getLogger("plateau_lens")

PROBE_ATOL = 1e-4


@dataclass(frozen=True)
class PlainModel:
    """``model``: the plain ``transformers`` causal LM on the bridge's tensors; ``final_norm``:
    its module whose output is ``hidden_states[-1]`` (the bridge's ``ln_final``)."""

    model: torch.nn.Module
    final_norm: torch.nn.Module


_PLAIN: "weakref.WeakKeyDictionary[object, PlainModel | None]" = weakref.WeakKeyDictionary()


def _unwrap(module):
    """The ``transformers`` module a bridge component wraps (itself when it wraps nothing)."""
    while hasattr(module, "original_component") and isinstance(
            getattr(module, "_original_component", None), torch.nn.Module):
        module = module._original_component
    return module


def _resolve(root: torch.nn.Module, dotted: str) -> torch.nn.Module | None:
    """The module at ``dotted`` (a name in the plain model) inside the bridge's model,
    unwrapping bridge components on the way; ``None`` when a part is missing."""
    module = _unwrap(root)
    for part in filter(None, dotted.split(".")):
        child = module._modules.get(part)
        if child is None:
            return None
        module = _unwrap(child)
    return module


def _share_tensors(plain: torch.nn.Module, source: torch.nn.Module) -> str | None:
    """Point every parameter and buffer of ``plain`` at ``source``'s; the first mismatch as a
    message, ``None`` when all were found."""
    entries = [(name, False) for name, _ in plain.named_parameters(remove_duplicate=False)]
    entries += [(name, True) for name, _ in plain.named_buffers(remove_duplicate=False)]
    for name, is_buffer in entries:
        owner_path, _, leaf = name.rpartition(".")
        owner = plain.get_submodule(owner_path)
        wanted = (owner._buffers if is_buffer else owner._parameters)[leaf]
        holder = _resolve(source, owner_path)
        tensor = getattr(holder, leaf, None) if holder is not None else None
        if not isinstance(tensor, torch.Tensor):
            return f"the bridge has no tensor for {name}"
        if tensor.shape != wanted.shape or tensor.dtype != wanted.dtype:
            return (f"{name}: the bridge holds {tuple(tensor.shape)} {tensor.dtype}, the plain "
                    f"model expects {tuple(wanted.shape)} {wanted.dtype}")
        if is_buffer:
            owner._buffers[leaf] = tensor
        else:
            owner._parameters[leaf] = (tensor if isinstance(tensor, torch.nn.Parameter)
                                       else torch.nn.Parameter(tensor, requires_grad=False))
    for module_name, module in plain.named_modules():
        for attribute, value in vars(module).items():
            if isinstance(value, torch.Tensor) and value.is_meta:
                return f"{module_name}.{attribute} is left unset"
        for tensor in list(module._parameters.values()) + list(module._buffers.values()):
            if tensor is not None and tensor.is_meta:
                return f"a tensor of {module_name} is left unset"
    return None


def _final_norm(plain: torch.nn.Module, source: torch.nn.Module, bridge) -> torch.nn.Module | None:
    """The module of ``plain`` at the place of the bridge's ``ln_final`` in ``source``."""
    wrapped = getattr(bridge, "ln_final", None)
    if wrapped is None:
        return None
    target = _unwrap(wrapped)
    for name, module in plain.named_modules():
        if name and _resolve(source, name) is target:
            return module
    return None


def _build(bridge) -> PlainModel | None:
    from transformers import AutoModelForCausalLM

    source = getattr(bridge, "original_model", None)
    config = getattr(source, "config", None)
    if source is None or config is None:
        return None
    config = copy.deepcopy(config)  # the bridge's own config stays as it is (eager attention)
    try:
        with torch.device("meta"):
            try:
                plain = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")
            except (ValueError, ImportError):
                plain = AutoModelForCausalLM.from_config(config)
    except Exception as error:  # an architecture transformers cannot build from its config
        log.info("no plain transformers model for this bridge (%s); generating through the "
                 "bridge", error)
        return None
    if type(plain) is not type(_unwrap(source)):
        log.info("transformers builds a %s from this config, the bridge wraps a %s; generating "
                 "through the bridge", type(plain).__name__, type(_unwrap(source)).__name__)
        return None
    problem = _share_tensors(plain, source)
    if problem is not None:
        log.info("the plain transformers model cannot share the bridge's weights (%s); "
                 "generating through the bridge", problem)
        return None
    final_norm = _final_norm(plain, source, bridge)
    if final_norm is None:
        log.info("no module of the plain transformers model sits where the bridge's ln_final "
                 "does; generating through the bridge")
        return None
    built = PlainModel(plain.eval(), final_norm)
    return built if _agrees_with_bridge(built, bridge) else None


class _LastPosition:
    """A forward hook keeping a copy of the module output's last position (float32)."""

    def __init__(self):
        self.kept: list[torch.Tensor] = []

    def __call__(self, module, inputs, output):
        self.kept.append(output[:, -1].to(torch.float32, copy=True))


@torch.no_grad()
def _agrees_with_bridge(plain: PlainModel, bridge, hidden_hook: str = "ln_final.hook_out") -> bool:
    """Last-position logits and final hidden state (the bridge's ``ln_final.hook_out``, the
    plain model's final norm) of the two on one 7-token probe, within :data:`PROBE_ATOL`."""
    vocab = int(bridge.cfg.d_vocab)
    tokens = (torch.arange(7, dtype=torch.long) * 7 + 3).remainder(vocab)[None].to(bridge.cfg.device)
    captured = []
    with bridge.hooks(fwd_hooks=[(hidden_hook, lambda act, hook: captured.append(act[:, -1]))]):
        bridge_logits = bridge(tokens)[:, -1].float()
    hidden = _LastPosition()
    handle = plain.final_norm.register_forward_hook(hidden)
    try:
        logits = plain.model(input_ids=tokens).logits[:, -1].float()
    finally:
        handle.remove()
    same = (len(captured) == 1 and len(hidden.kept) == 1
            and torch.allclose(logits, bridge_logits, atol=PROBE_ATOL, rtol=1e-4)
            and torch.allclose(hidden.kept[0], captured[0].float(), atol=PROBE_ATOL, rtol=1e-4))
    if not same:
        log.info("the plain transformers model on the bridge's weights does not reproduce the "
                 "bridge (processed weights?); generating through the bridge")
    return same


def plain_model(bridge) -> PlainModel | None:
    """The bridge's ``transformers`` model without the bridge's wrappers, on the same tensors
    (see the module's docstring); built and checked once per bridge, ``None`` where it cannot
    reproduce the bridge."""
    if bridge not in _PLAIN:
        _PLAIN[bridge] = _build(bridge)
    return _PLAIN[bridge]


def has_active_hooks(bridge) -> bool:
    """Whether any hook point of the bridge (``bridge.hook_dict``) has a forward hook: an
    intervention the plain model would not apply. (TransformerLens's own capture hooks on the
    wrapped ``transformers`` modules are not interventions.)"""
    return any(point._forward_hooks or point._forward_pre_hooks
               for point in bridge.hook_dict.values())


@dataclass
class _Stream:
    """Prompts being generated together: their last tokens, mask, positions and KV cache."""

    tokens: torch.Tensor
    mask: torch.Tensor
    positions: torch.Tensor
    cache: object


def _forward(plain: PlainModel, hidden: _LastPosition, stream: _Stream, suppressed
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward of ``stream`` (its cache grows in place): the greedy next tokens [rows, 1]
    and the final norm's output at the last position [rows, d_model]."""
    logits = plain.model(input_ids=stream.tokens, attention_mask=stream.mask,
                         position_ids=stream.positions, cache=stream.cache, use_cache=True,
                         logits_to_keep=1).logits
    if len(hidden.kept) != 1:
        raise RuntimeError(f"the final norm ran {len(hidden.kept)} times in one forward")
    return greedy_pick(logits[:, -1], suppressed), hidden.kept.pop()


def _stackable(cache) -> bool:
    """Whether a group's KV cache can join a stacked batch: a plain ``DynamicCache`` whose
    every layer is a full-attention ``DynamicLayer`` (not sliding windows, not another kind)."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    return (type(cache) is DynamicCache and bool(cache.layers)
            and all(type(layer) is DynamicLayer for layer in cache.layers))


class _StackedKV:
    """Keys and values of several groups in one preallocated batch per layer, each group's
    rows left-padded with zeros to ``width`` positions (masked out by the mask's zeros in
    front: a padded key gets weight exp(−inf) = 0). A group's cache is copied in as soon as
    its prompt forward ends and is freed then, so at most one group's cache exists beside
    the batch."""

    def __init__(self, layout: list[tuple[torch.Tensor, torch.Tensor]], rows: int, width: int):
        def empty(tensor):
            return tensor.new_zeros((rows, tensor.shape[1], width, *tensor.shape[3:]))

        self.width = width
        self.keys = [empty(keys) for keys, _ in layout]
        self.values = [empty(values) for _, values in layout]

    @staticmethod
    def layout(cache) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer, empty keys and values of the cache's heads, head size, dtype and device."""
        def like(tensor):
            return tensor.new_empty((0, tensor.shape[1], 0, *tensor.shape[3:]))

        return [(like(layer.keys), like(layer.values)) for layer in cache.layers]

    def put(self, cache, start: int) -> None:
        if len(cache.layers) != len(self.keys):
            raise RuntimeError("the groups' KV caches have different numbers of layers")
        for index, layer in enumerate(cache.layers):
            rows, length = layer.keys.shape[0], layer.keys.shape[2]
            self.keys[index][start:start + rows, :, self.width - length:] = layer.keys
            self.values[index][start:start + rows, :, self.width - length:] = layer.values

    def to_cache(self, config):
        """The batch as a ``DynamicCache`` (layer by layer, each buffer let go once copied)."""
        from transformers import DynamicCache

        cache = DynamicCache(config=config)
        for index in range(len(self.keys)):
            keys, values = self.keys[index], self.values[index]
            self.keys[index] = self.values[index] = None
            cache.update(keys, values, index)
            del keys, values
        return cache


def kv_stacks(shapes: Sequence[tuple[int, int]], n_new: int, bytes_per_position: int,
              budget_bytes: int | None) -> list[list[int]]:
    """Consecutive groups (``shapes``: rows and width of each, widths ascending) joined into
    stacks that step together, each stack's KV cache at the end of generation (rows × (widest
    + ``n_new`` − 1) positions) within ``budget_bytes`` where it can be (a group over the budget
    alone forms its own stack). As every stack costs ``n_new`` − 1 forwards, the fewest stacks
    are wanted. Taking each stack as long as it fits gives the fewest: with the widths
    ascending, a stack's cost only grows as groups are added, so every run of groups inside a
    stack that fits fits too (an exchange argument). ``None``: one stack."""
    if budget_bytes is None:
        return [list(range(len(shapes)))] if shapes else []
    stacks: list[list[int]] = []
    rows = 0
    for index, (group_rows, width) in enumerate(shapes):
        total = (rows + group_rows) * (width + n_new - 1) * bytes_per_position
        if stacks and total <= budget_bytes:
            stacks[-1].append(index)
            rows += group_rows
        else:
            stacks.append([index])
            rows = group_rows
    return stacks


def _kv_bytes_per_position(cache) -> int:
    """Bytes of keys and values, over every layer, that one row holds per position."""
    total = sum(layer.keys.numel() * layer.keys.element_size()
                + layer.values.numel() * layer.values.element_size() for layer in cache.layers)
    first = cache.layers[0].keys
    return total // (first.shape[0] * first.shape[2])


@torch.no_grad()
def plain_greedy_generate(plain: PlainModel, groups: LeftPadded | Sequence[LeftPadded],
                          n_new: int, suppressed=(), kv_budget_bytes: int | None = None
                          ) -> tuple[Int[torch.Tensor, "batch n_new"],
                                     Float[torch.Tensor, "batch n_new d_model"]]:
    """``n_new`` greedy tokens per prompt from a plain ``transformers`` causal LM with its own
    KV cache (``DynamicCache``), and ``hidden_states[-1]`` (the last layer after the final
    norm) at the last position fed at each step: what
    :func:`~plateau_lens.llm.batching.greedy_generate` reads through the bridge, what the
    study reads from ``generate(..., output_hidden_states=True)`` (here a hook on the final
    norm, see the module's docstring). Logits at the last position only
    (``logits_to_keep=1``); ``suppressed`` ids masked before every argmax.

    ``groups``: one left-padded batch, or several (prompts of similar length each, widths
    ascending, see :func:`~plateau_lens.llm.batching.length_batches`). Each group's prompt
    forward runs on its own (no padding to the longest prompt of all) and its KV cache is
    copied into its stack's preallocated batch (:class:`_StackedKV`); then the ``n_new − 1``
    one-token steps run once per stack, as each step reads every weight once whatever the
    batch. Stacks (:func:`kv_stacks`) run one after the other, each holding its KV cache
    within ``kv_budget_bytes`` where it can (``None``: all groups in one stack). Where
    :func:`_stackable` says no, each group steps alone. Returns ids [batch, n_new] and hidden
    states [batch, n_new, d_model] in float32, rows in the order of the groups' rows."""
    from transformers import DynamicCache

    if isinstance(groups, LeftPadded):
        groups = [groups]
    config = plain.model.config
    hidden = _LastPosition()
    handle = plain.final_norm.register_forward_hook(hidden)

    def prompt_forward(group) -> tuple[_Stream, torch.Tensor]:
        stream = _Stream(group.tokens, group.attention_mask, group.position_ids,
                         DynamicCache(config=config))
        stream.tokens, state = _forward(plain, hidden, stream, suppressed)
        return stream, state

    try:
        first = prompt_forward(groups[0])
        layout = None
        if len(groups) > 1 and _stackable(first[0].cache):
            layout = _StackedKV.layout(first[0].cache)
            stacks = kv_stacks([tuple(g.tokens.shape) for g in groups], n_new,
                               _kv_bytes_per_position(first[0].cache), kv_budget_bytes)
        else:
            stacks = [[index] for index in range(len(groups))]
        all_tokens, all_states = [], []
        for stack in stacks:
            width = max(groups[index].tokens.shape[1] for index in stack)
            stacked = (_StackedKV(layout, sum(groups[i].tokens.shape[0] for i in stack), width)
                       if len(stack) > 1 else None)
            streams, states = [], []
            start = 0
            for index in stack:
                stream, state = first if index == 0 else prompt_forward(groups[index])
                if stacked is not None:
                    stacked.put(stream.cache, start)
                    stream.cache = None  # copied: freed before the next group's forward
                    start += stream.tokens.shape[0]
                streams.append(stream)
                states.append(state)
            first = None
            if stacked is not None:
                stream = _Stream(torch.cat([s.tokens for s in streams]),
                                 torch.cat([torch.nn.functional.pad(s.mask, (width - s.mask.shape[1], 0))
                                            for s in streams]),
                                 torch.cat([s.positions[:, -1:] for s in streams]),
                                 stacked.to_cache(config))
            else:
                (stream,) = streams
            kept_tokens, kept_states = [stream.tokens], [torch.cat(states)]
            for _ in range(n_new - 1):
                stream.mask = torch.cat([stream.mask, stream.mask.new_ones(stream.mask.shape[0], 1)],
                                        dim=-1)
                stream.positions = stream.positions[:, -1:] + 1
                stream.tokens, state = _forward(plain, hidden, stream, suppressed)
                kept_tokens.append(stream.tokens)
                kept_states.append(state)
            del stream, streams
            all_tokens.append(torch.cat(kept_tokens, dim=-1))
            all_states.append(torch.stack(kept_states, dim=1))
    finally:
        handle.remove()
    return torch.cat(all_tokens), torch.cat(all_states)
