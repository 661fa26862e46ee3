"""One clean pass of the native modules per checkpoint and batch, shared by its analyzers.

``analyze_run`` hands every analyzer of a checkpoint the same model and batch: the ablation
sweep needs the clean output and the residual stream entering each block, the probes the
residual stream of the same batch (their test set) and of their training batch. Each of those
passes is computed once (:func:`shared_clean_pass`), in chunks of samples on every core
(:mod:`.parallel`), and kept while neither the network's weights nor the input tensor change.

A pass is exactly :func:`~.partial_forward.native_clean_pass` on the whole batch (the chunks
do not change a value: each sample is computed on its own), so analyzers that take it give
the numbers they gave with a pass of their own.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass, fields
from itertools import chain

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ...models.handle import PlateauModel, attention_bias_of
from .parallel import analysis_workers, parallel_map, run_parallel, sample_chunks
from .partial_forward import native_clean_pass, residual_depth, runs_native_modules


@dataclass(eq=False)
class CleanPass:
    """The clean pass of a network on a batch (see :func:`~.partial_forward.native_clean_pass`).

    ``residuals``: L + 1 tensors, ``blocks.{l}.hook_resid_pre`` for each block, then
    ``blocks.{L-1}.hook_resid_post``; ``patterns``: each block's attention pattern, or None
    when the pass was run without them (softmax attention then uses the fused kernel, as
    ``native_clean_pass`` does)."""

    output: Float[Tensor, "batch pos out"]
    residuals: list[Float[Tensor, "batch pos d_model"]]
    patterns: list[Float[Tensor, "batch head query key"]] | None

    def __post_init__(self) -> None:
        self._versions = self._current_versions()

    def _current_versions(self) -> tuple[int, ...]:
        tensors = [self.output, *self.residuals, *(self.patterns or [])]
        return tuple(tensor._version for tensor in tensors)

    def unchanged(self) -> bool:
        """No tensor of the pass was modified in place since it was computed."""
        return self._current_versions() == self._versions


@torch.no_grad()
def chunked_clean_pass(network, inputs: Int[Tensor, "batch pos"], patterns: bool) -> CleanPass:
    """``native_clean_pass`` in chunks of samples on :func:`~.parallel.run_parallel`'s
    threads, joined into whole-batch tensors."""
    n_samples, seq = inputs.shape[:2]
    workers = analysis_workers(inputs.device)
    chunks = sample_chunks(n_samples, seq) if inputs.device.type == "cpu" else [slice(0, n_samples)]
    parts: list = [None] * len(chunks)

    def chunk_task(index: int):
        def task() -> None:
            parts[index] = native_clean_pass(network, inputs[chunks[index]], keep_patterns=patterns)
        return task

    run_parallel([chunk_task(index) for index in range(len(chunks))], workers)
    if len(parts) == 1:
        output, residuals, kept = parts[0]
        return CleanPass(output, residuals, kept)
    # the same tensor of every chunk, joined: output, the L + 1 residuals, then the patterns
    pieces = [[part[0] for part in parts]]
    pieces += [[part[1][depth] for part in parts] for depth in range(len(parts[0][1]))]
    if patterns:
        pieces += [[part[2][layer] for part in parts] for layer in range(len(parts[0][2]))]
    joined = parallel_map(torch.cat, pieces, workers)
    n_residuals = len(parts[0][1])
    return CleanPass(joined[0], joined[1 : 1 + n_residuals],
                     joined[1 + n_residuals:] if patterns else None)


CACHED_CLEAN_PASSES = 4
"""Clean passes kept (``analyze_run``: the analysis batch and the probes' training batch,
with and without the attention patterns)."""


@dataclass(eq=False)
class _CacheEntry:
    network: weakref.ref
    inputs: Tensor  # held, so that its storage is not reused while the entry lives
    state: tuple
    result: CleanPass


_cache: "OrderedDict[tuple[int, tuple, bool], _CacheEntry]" = OrderedDict()
_cache_lock = threading.Lock()


def clear_clean_pass_cache() -> None:
    """Forget every cached clean pass (they are also replaced as weights or inputs change)."""
    with _cache_lock:
        _cache.clear()


def _network_state(network, inputs: Tensor) -> tuple:
    """What a clean pass depends on besides the input values: every parameter and buffer
    (which tensor, its in-place version counter, its storage), the attention-bias multiplier
    (which tensor, its version), the train/eval mode, and the inputs' version."""
    tensors = chain(network.parameters(), network.buffers())
    state = tuple((id(t), t._version, t.data_ptr()) for t in tensors)
    bias = attention_bias_of(network)
    multiplier = None if bias is None else bias.multiplier
    return state + (None if multiplier is None else (id(multiplier), multiplier._version),
                    network.training, inputs._version)


def shared_clean_pass(model: PlateauModel, inputs: Int[Tensor, "batch pos"],
                      patterns: bool = False) -> CleanPass:
    """The clean pass of ``model.network`` on ``inputs`` (with ``patterns``, the attention
    patterns too), computed once and shared: kept for the network's current weights, attention
    bias and mode and the same ``inputs`` values (a view of the same storage, unmodified:
    :func:`tensor_identity`, and the storage's version counter), as long as no
    tensor of the pass has been modified. A pass with patterns is a different computation
    (softmax attention is then materialised instead of fused) and is kept separately. Only
    for models where :func:`~.partial_forward.runs_native_modules` holds."""
    network = model.network
    key = (id(network), tensor_identity(inputs), patterns)
    state = _network_state(network, inputs)
    with _cache_lock:
        entry = _cache.get(key)
        if (entry is not None and entry.network() is network and entry.state == state
                and entry.result.unchanged()):
            _cache.move_to_end(key)
            return entry.result
    result = chunked_clean_pass(network, inputs, patterns)
    with _cache_lock:
        _cache[key] = _CacheEntry(weakref.ref(network), inputs, state, result)
        _cache.move_to_end(key)
        while len(_cache) > CACHED_CLEAN_PASSES:
            _cache.popitem(last=False)
    return result


def tensor_identity(tensor: Tensor) -> tuple:
    """Which values a tensor views: its storage's address, offset, shape and strides. Two
    views of the same storage share it (``batch.inputs`` of a sequence batch is a new slice
    of its tokens at every access); the cache holds the tensor, so the storage is not freed
    and its address not reused while the entry lives."""
    return (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape),
            tensor.stride(), tensor.dtype, tensor.device)


def tensor_key(value) -> tuple:
    """Identity and version of every tensor field of a batch (or of a tensor): the key of
    values computed from it once (e.g. probe targets), valid while no tensor changes."""
    if isinstance(value, Tensor):
        return (id(value), value._version)
    return tuple((f.name,) + tensor_key(getattr(value, f.name)) for f in fields(value)
                 if isinstance(getattr(value, f.name), Tensor))


def hook_activations(model: PlateauModel, inputs: Int[Tensor, "batch pos"],
                     names: list[str]) -> dict[str, Tensor]:
    """The activations at hook ``names`` for ``inputs``. When every name is a residual-stream
    hook (``blocks.{l}.hook_resid_pre`` / ``hook_resid_post``) of a plateau-lens model with no
    hook attached, the native modules' clean pass gives them, shared with the checkpoint's
    other analyzers (:func:`shared_clean_pass`: do not modify them in place);
    otherwise ``run_with_cache``."""
    depths = [residual_depth(name) for name in names]
    if None not in depths and runs_native_modules(model):
        residuals = shared_clean_pass(model, inputs).residuals
        return {name: residuals[depth] for name, depth in zip(names, depths)}
    wanted = set(names)
    _, cache = model.bridge.run_with_cache(inputs, names_filter=lambda name: name in wanted)
    return {name: cache[name] for name in names}
