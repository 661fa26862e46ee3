"""Resume a forward pass at block l from a cached residual, computing only blocks l…L−1;
and the native-module fast path that ``ablation_sweep``, ``linear_probes`` and
``representation_collapse`` take on plateau-lens' own models when no hook is attached.

The bridge's own ``forward(resid, start_at_layer=l)`` is exact but still runs blocks 0…l−1
and discards their output (it feeds ``resid`` through the whole wrapped model and swaps it in
at block l). For plateau-lens' own native models :func:`forward_from_layer` calls the bridge's
components (``blocks[l:]``, ``ln_final``, ``unembed``) directly, so every hook at or after
block l still fires and the earlier blocks cost nothing; other models (Pythia, OLMo) use
``start_at_layer``.

:func:`native_block` is the one per-block computation of the fast path: the plain native
modules (no hook points at all) with an optional edit of the attention pattern that may add
a leading copy axis, so several edits of one layer share its Q, K, V and pattern.

:func:`shared_clean_pass` runs the clean forward once for every analyzer of a checkpoint: its
activations (every residual-stream, attention-output and final-norm site) are cached for the
model's current weights and the batch's input tensor, and handed to the next analyzer that
asks for the same pass (``analyze_run`` runs the sweep, probes and collapse on one batch).

Work is split into chunks of samples run by :func:`run_parallel`: one Python thread per
intra-op thread, each computing its chunks with a single intra-op thread. Our models are
small (d_model 128, 16 positions), so one operation on a whole batch is split by torch into
short pieces with a barrier after each; whole chunks per core keep each core's activations in
its own cache and need no barriers. Each sample is computed on its own (attention mixes
positions within a sample only), so the values do not depend on the chunking.
"""

from __future__ import annotations

import queue
import re
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass, fields
from itertools import chain
from typing import Callable, Optional, Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens.utilities.activation_functions import apply_softcap

from ..models.handle import PlateauModel, attention_bias_of


def remaining_hooks(bridge) -> int:
    """Number of forward hooks currently attached to the bridge's hook points (for checks)."""
    return sum(len(point._forward_hooks) for point in set(bridge.hook_dict.values()))


def runs_native_modules(model: PlateauModel) -> bool:
    """True for a plateau-lens model with no hook attached to its bridge, whose bridge still
    computes with its native network's parameters (the same tensors): the plain native
    modules then compute the same function (the attention bias is one shared object), with
    nothing that a hook of the user's would change or read."""
    return (model.network is not None and remaining_hooks(model.bridge) == 0
            and {id(p) for p in model.bridge.parameters()} == {id(p) for p in model.network.parameters()})


def forward_from_layer(model: PlateauModel, residual: Float[Tensor, "batch pos d_model"],
                       layer: int) -> Tensor:
    """The model's output when ``residual`` enters block ``layer`` (``blocks.{layer}.hook_resid_pre``)."""
    bridge = model.bridge
    n_layers = bridge.cfg.n_layers
    if not 0 <= layer < n_layers:
        raise ValueError(f"layer must be in [0, {n_layers - 1}], got {layer}")
    if model.network is None:
        return bridge(residual, start_at_layer=layer)
    batch, seq = residual.shape[:2]
    position_ids = torch.arange(seq, device=residual.device).expand(batch, -1)
    hidden = residual
    for block in bridge.blocks[layer:]:
        output = block(hidden, position_ids=position_ids)
        hidden = output[0] if isinstance(output, tuple) else output
    return bridge.unembed(bridge.ln_final(hidden))


PatternEdit = Callable[[Tensor], Tensor]


def native_block(block, hidden: Float[Tensor, "*copies batch pos d_model"],
                 edit_pattern: Optional[PatternEdit] = None,
                 sites: Optional[dict[str, Tensor]] = None) -> Tensor:
    """TransformerLens' ``NativeBlock.forward`` (pre-LN: h + attn(ln1 h), then + mlp(ln2 ·)),
    with ``edit_pattern`` applied to the attention pattern A [batch head query key]. The edit
    may return [copies batch head query key]: z = A·V broadcasts over the copies and so does
    the rest of the block, giving [copies batch pos d_model].

    ``sites``: if given, receives the block's intermediate activations under their hook
    names within the block (``hook_attn_out``, ``hook_resid_mid``)."""
    attention_out, _ = block.attn(block.ln1(hidden), pattern_fn=edit_pattern)
    hidden = hidden + attention_out
    if sites is not None:
        sites["hook_attn_out"], sites["hook_resid_mid"] = attention_out, hidden
    if not block.cfg.attn_only:
        hidden = hidden + block.mlp(block.ln2(hidden))
    return hidden


def native_readout(network, hidden: Float[Tensor, "batch pos d_model"]) -> Tensor:
    """The final norm, unembedding and logit soft-cap of ``NativeModel.forward``."""
    return apply_softcap(network.head(network.ln_out(hidden)), network.output_logits_soft_cap)


def native_embed(network, inputs: Int[Tensor, "batch pos"]) -> Tensor:
    """Token plus positional embedding: ``blocks.0.hook_resid_pre``."""
    hidden = network.tok_embed(inputs)
    if network.pos is not None:
        hidden = hidden + network.pos(torch.arange(inputs.shape[1], device=inputs.device).expand_as(inputs))
    return hidden


def native_clean_pass(network, inputs: Int[Tensor, "batch pos"], keep_patterns: bool = False
                      ) -> tuple[Tensor, list[Tensor], list[Tensor] | None]:
    """``network(inputs)`` block by block: (output, the residual stream entering each block
    and leaving the last (L + 1 tensors: ``blocks.{l}.hook_resid_pre``, then
    ``blocks.{L-1}.hook_resid_post``), and with ``keep_patterns`` each block's attention
    pattern [batch head query key])."""
    sites = _clean_sites(network, inputs, keep_patterns)
    n_layers = len(network.layers)
    residuals = [sites[f"blocks.{layer}.hook_resid_pre"] for layer in range(n_layers)]
    residuals.append(sites[f"blocks.{n_layers - 1}.hook_resid_post"])
    patterns = ([sites[f"blocks.{layer}.attn.hook_pattern"] for layer in range(n_layers)]
                if keep_patterns else None)
    return sites["output"], residuals, patterns


def _unchanged(pattern: Tensor) -> Tensor:
    """A pattern edit that changes nothing (it makes the attention compute A explicitly)."""
    return pattern


def _clean_sites(network, inputs: Int[Tensor, "batch pos"], keep_patterns: bool) -> dict[str, Tensor]:
    """One clean pass of the native modules: every site of :data:`CLEAN_SITE` by hook name
    (and ``blocks.{l}.attn.hook_pattern`` with ``keep_patterns``), plus ``output``.

    The attention pattern is always materialised and multiplied with V, as the bridge does
    when its ``hook_pattern`` exists (never the fused kernel): the sites are then the
    bridge's ``run_with_cache`` values, not ones a rounding away."""
    hidden = native_embed(network, inputs)
    sites: dict[str, Tensor] = {}
    for layer, block in enumerate(network.layers):
        sites[f"blocks.{layer}.hook_resid_pre"] = hidden
        block_sites: dict[str, Tensor] = {}

        def keep(pattern: Tensor, block_sites=block_sites) -> Tensor:
            block_sites["attn.hook_pattern"] = pattern
            return pattern

        hidden = native_block(block, hidden, keep if keep_patterns else _unchanged, block_sites)
        sites.update({f"blocks.{layer}.{name}": value for name, value in block_sites.items()})
        sites[f"blocks.{layer}.hook_resid_post"] = hidden
    sites["ln_final.hook_out"] = network.ln_out(hidden)
    sites["output"] = apply_softcap(network.head(sites["ln_final.hook_out"]),
                                    network.output_logits_soft_cap)
    return sites


# ----------------------------------------------------------------------------- threads
ROWS_PER_CHUNK = 2048
"""Rows (samples × positions, × stacked copies) in one chunk of work: the widest activation
of a chunk (the MLP's hidden layer at d_mlp 512) is 4 MiB, so a core's chunk stays in cache
and below glibc's mmap threshold once it has grown (no fresh page faults per chunk); Python's
cost per chunk (~15 module calls per block) is ~1 % of the chunk's matmuls at d_model 128."""


def sample_chunks(n_samples: int, rows_per_sample: int, rows: int | None = None) -> list[slice]:
    """Contiguous slices of ``n_samples`` with about ``rows`` rows each (default
    :data:`ROWS_PER_CHUNK`; at least one sample per slice)."""
    per_chunk = max(1, (ROWS_PER_CHUNK if rows is None else rows) // max(1, rows_per_sample))
    return [slice(start, min(start + per_chunk, n_samples)) for start in range(0, n_samples, per_chunk)]


def analysis_workers(device: torch.device) -> int:
    """How many threads :func:`run_parallel` uses: torch's intra-op thread count on the CPU
    (``torch.set_num_threads``), one on other devices."""
    return max(1, torch.get_num_threads()) if device.type == "cpu" else 1


def run_parallel(tasks: Sequence[Callable[[], None]], workers: int,
                 done: Callable[[], object] | None = None) -> None:
    """Run ``tasks`` (independent, each writing its own results) on ``workers`` threads with
    one intra-op thread each, in order of the list (put the largest first); the caller's
    grad mode applies in every thread. The caller's intra-op thread count is restored;
    the first exception raised by a task is raised here after all threads have stopped.
    ``done``: called after each task (a progress bar's ``update``)."""
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            task()
            if done is not None:
                done()
        return
    pending: queue.SimpleQueue = queue.SimpleQueue()
    for task in tasks:
        pending.put(task)
    errors: list[BaseException] = []
    grad_enabled = torch.is_grad_enabled()
    threads_before = torch.get_num_threads()

    def work() -> None:
        torch.set_num_threads(1)
        with torch.set_grad_enabled(grad_enabled):
            while not errors:
                try:
                    task = pending.get_nowait()
                except queue.Empty:
                    return
                try:
                    task()
                    if done is not None:
                        done()
                except BaseException as error:  # re-raised in the caller's thread
                    errors.append(error)

    started: list[threading.Thread] = []
    try:
        for i in range(min(workers, len(tasks))):
            thread = threading.Thread(target=work, name=f"plateau-lens-analysis-{i}", daemon=True)
            thread.start()
            started.append(thread)
    finally:
        for thread in started:
            thread.join()
        torch.set_num_threads(threads_before)
    if errors:
        raise errors[0]


def parallel_map(function: Callable, items: Sequence, workers: int) -> list:
    """``[function(item) for item in items]`` on :func:`run_parallel`'s threads, in order."""
    results: list = [None] * len(items)

    def task(index: int) -> Callable[[], None]:
        def run() -> None:
            results[index] = function(items[index])
        return run

    run_parallel([task(index) for index in range(len(items))], workers)
    return results


# ------------------------------------------------------------------------- clean pass
@dataclass(eq=False)
class CleanPass:
    """The activations of one clean pass of the native modules, by hook name:
    ``blocks.{l}.hook_resid_pre``, ``hook_attn_out``, ``hook_resid_mid``, ``hook_resid_post``,
    ``ln_final.hook_out`` (and ``blocks.{l}.attn.hook_pattern`` when asked for), plus
    ``output`` (the model's output). Kept as computed, one dict per chunk of samples
    (``parts``); a site's chunks are joined into one tensor on its first use."""

    parts: list[dict[str, Tensor]]
    n_layers: int
    workers: int = 1

    def __post_init__(self) -> None:
        self._joined: dict[str, Tensor] = {}
        self._joined_versions: dict[str, int] = {}
        self._part_versions = self._versions_of_parts()
        self._lock = threading.Lock()

    def _versions_of_parts(self) -> tuple:
        return tuple(t._version for part in self.parts for t in part.values())

    def unchanged(self) -> bool:
        """No activation was modified in place since it was computed (or joined)."""
        return (self._versions_of_parts() == self._part_versions
                and all(self._joined[n]._version == v for n, v in self._joined_versions.items()))

    @property
    def names(self) -> list[str]:
        return list(self.parts[0])

    def chunks(self, name: str) -> list[Tensor]:
        """The site's activations chunk by chunk (consecutive samples), without joining them."""
        return [part[name] for part in self.parts]

    def activations(self, names: Sequence[str]) -> dict[str, Tensor]:
        """The sites ``names``, each one tensor over the whole batch."""
        with self._lock:
            missing = [name for name in dict.fromkeys(names) if name not in self._joined]
            if missing:
                joined = parallel_map(lambda name: torch.cat(self.chunks(name)), missing,
                                      self.workers) if len(self.parts) > 1 else [
                    self.parts[0][name] for name in missing]
                for name, value in zip(missing, joined):
                    self._joined[name], self._joined_versions[name] = value, value._version
            return {name: self._joined[name] for name in names}

    @property
    def output(self) -> Tensor:
        return self.activations(["output"])["output"]

    @property
    def residuals(self) -> list[Tensor]:
        """``blocks.{l}.hook_resid_pre`` for each block, then the last ``hook_resid_post``."""
        names = ([f"blocks.{layer}.hook_resid_pre" for layer in range(self.n_layers)]
                 + [f"blocks.{self.n_layers - 1}.hook_resid_post"])
        return list(self.activations(names).values())

    @property
    def patterns(self) -> list[Tensor] | None:
        names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(self.n_layers)]
        return list(self.activations(names).values()) if names[0] in self.parts[0] else None


CACHED_CLEAN_PASSES = 2
"""Clean passes kept (the analysis batch and the probes' training batch)."""


@dataclass(eq=False)
class _CacheEntry:
    network: weakref.ref
    inputs: Tensor  # held, so that its id is not reused while the entry lives
    state: tuple
    result: CleanPass


_cache: "OrderedDict[tuple[int, int], _CacheEntry]" = OrderedDict()
_cache_lock = threading.Lock()


def clear_clean_pass_cache() -> None:
    """Forget every cached clean pass (they are also replaced as weights or inputs change)."""
    with _cache_lock:
        _cache.clear()


def _network_state(network) -> tuple:
    """What the clean pass depends on besides the inputs: every parameter and buffer (which
    tensor, its in-place version counter, its storage) and the attention-bias multiplier."""
    tensors = chain(network.parameters(), network.buffers())
    state = tuple((id(t), t._version, t.data_ptr()) for t in tensors)
    bias = attention_bias_of(network)
    multiplier = None if bias is None else bias.multiplier
    return state + (None if multiplier is None else (id(multiplier), multiplier._version),
                    network.training)


@torch.no_grad()
def shared_clean_pass(model: PlateauModel, inputs: Int[Tensor, "batch pos"], patterns: bool = False
               ) -> CleanPass:
    """The clean pass of ``model.network`` on ``inputs`` (every site of :class:`CleanPass`,
    with ``patterns`` also the attention patterns), computed in sample chunks on
    :func:`run_parallel`'s threads.

    Cached for the network's current weights and attention bias and the very ``inputs``
    tensor (same object, unmodified; the cached activations unmodified): the analyzers of one
    checkpoint share one pass. Only for models where :func:`runs_native_modules` holds."""
    network = model.network
    key = (id(network), id(inputs))
    state = _network_state(network)
    with _cache_lock:
        entry = _cache.get(key)
        if (entry is not None and entry.network() is network and entry.inputs is inputs
                and entry.state == state + (inputs._version,)
                and entry.result.unchanged()
                and (not patterns or entry.result.patterns is not None)):
            _cache.move_to_end(key)
            return entry.result
    n_samples, seq = inputs.shape[:2]
    chunks = sample_chunks(n_samples, seq)
    parts: list[dict[str, Tensor] | None] = [None] * len(chunks)

    def chunk_task(index: int, chunk: slice) -> Callable[[], None]:
        def task() -> None:
            parts[index] = _clean_sites(network, inputs[chunk], patterns)
        return task

    workers = analysis_workers(inputs.device)
    run_parallel([chunk_task(i, c) for i, c in enumerate(chunks)], workers)
    result = CleanPass(parts=parts, n_layers=len(network.layers), workers=workers)
    with _cache_lock:
        _cache[key] = _CacheEntry(weakref.ref(network), inputs, state + (inputs._version,), result)
        _cache.move_to_end(key)
        while len(_cache) > CACHED_CLEAN_PASSES:
            _cache.popitem(last=False)
    return result


CLEAN_SITE = re.compile(r"blocks\.\d+\.(hook_resid_pre|hook_resid_post|hook_resid_mid|hook_attn_out)"
                        r"|ln_final\.hook_out")


def native_sites(model: PlateauModel, names: Sequence[str]) -> bool:
    """True when the activations at ``names`` can come from :func:`shared_clean_pass`: a model that
    :func:`runs_native_modules` and only the sites it records."""
    return all(CLEAN_SITE.fullmatch(name) for name in names) and runs_native_modules(model)


def hook_activations(model: PlateauModel, inputs: Int[Tensor, "batch pos"],
                     names: list[str]) -> dict[str, Tensor]:
    """The activations at hook ``names`` for ``inputs``. On a plateau-lens model with no hook
    attached, residual-stream, attention-output and final-norm sites come from the shared
    :func:`shared_clean_pass`; otherwise ``run_with_cache``. The tensors may be shared with other
    analyzers: do not modify them in place."""
    if native_sites(model, names):
        return shared_clean_pass(model, inputs).activations(names)
    wanted = set(names)
    _, cache = model.bridge.run_with_cache(inputs, names_filter=lambda name: name in wanted)
    return {name: cache[name] for name in names}


def tensor_key(value) -> tuple:
    """Identity and version of every tensor field of a batch (or of a tensor): the key of
    values computed from it once (e.g. probe targets), valid while no tensor changes."""
    if isinstance(value, Tensor):
        return (id(value), value._version)
    return tuple((f.name,) + tensor_key(getattr(value, f.name)) for f in fields(value)
                 if isinstance(getattr(value, f.name), Tensor))
