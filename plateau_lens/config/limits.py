"""Bounds on sizes, checked with the config before any work: a number the machine cannot
hold is refused with the field that causes it, instead of exhausting memory.

Two kinds of bound: fixed ones on what a task may derive (``MAX_VOCAB`` tokens,
``MAX_POSITIONS`` positions), and the machine's: the parameters (built in host memory
before any move to a device) and, for a CPU run, training memory (weights, gradients, Adam's
two moments and the activations of one batch) must fit into the host's physical memory.
The estimate is a lower bound of what training allocates, so a refused config could never
have run; one that passes may still not fit beside other processes.
"""

from __future__ import annotations

import dataclasses
import os

from .base import ConfigError

MAX_VOCAB = 2**24
"""Token ids a task may use (LLM vocabularies are ~2**18)."""
MAX_POSITIONS = 2**16
"""Positions a task's input may have (the studies use <= 64)."""
BYTES_PER_FLOAT = 4
TRAINING_COPIES = 4
"""Weights, gradients and Adam's first and second moments."""


def host_memory_bytes() -> int:
    """The machine's physical memory (bytes)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 2**40


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.3g} GiB"


def _largest_fields(params: dict) -> list[str]:
    """The task's integer fields with the largest value: the ones that set its sizes."""
    ints = {k: v for k, v in params.items() if isinstance(v, int) and not isinstance(v, bool)}
    if not ints:
        return []
    top = max(ints.values())
    return [f"task.{k} = {v}" for k, v in ints.items() if v == top]


def check_task_size(task, params: dict) -> None:
    """Raise ``ConfigError`` when ``task``'s vocabulary or input width is beyond
    :data:`MAX_VOCAB` / :data:`MAX_POSITIONS`, naming the fields that set it."""
    fields = ", ".join(_largest_fields(params)) or "its fields"
    vocab = max(int(task.d_vocab), int(task.d_vocab_out))
    if vocab > MAX_VOCAB:
        raise ConfigError(f"task {task.name!r} would have a vocabulary of {vocab} tokens (from "
                          f"{fields}); at most {MAX_VOCAB}: lower it")
    if int(task.n_positions) > MAX_POSITIONS:
        raise ConfigError(f"task {task.name!r} would have {task.n_positions} input positions (from "
                          f"{fields}); at most {MAX_POSITIONS}: lower it")


@dataclasses.dataclass(frozen=True)
class MemoryEstimate:
    parameters: int
    parameter_bytes: int
    activation_bytes: int

    @property
    def training_bytes(self) -> int:
        return self.parameter_bytes * TRAINING_COPIES + self.activation_bytes


def estimate_memory(task, model, train) -> MemoryEstimate:
    """Parameter count (embeddings, blocks, read-out; biases and norms left out) and the
    float32 activations the backward pass keeps for one batch (per block: residual, Q, K, V,
    z, attention out, two norms, MLP in/out; the attention pattern and scores; the logits)."""
    d, layers, heads = model.d_model, model.n_layers, model.n_heads
    d_mlp = model.resolved_d_mlp
    positions = max(int(task.n_positions), model.max_positions or 0)
    parameters = (int(task.d_vocab) * d + positions * d
                  + layers * (4 * d * d + 2 * d * d_mlp) + d * int(task.d_vocab_out))
    batch = max(train.batch_size, train.eval_batch_size)
    n = int(task.n_positions)
    per_block = n * (10 * d + 2 * d_mlp) + 2 * heads * n * n
    activations = batch * (layers * per_block + 2 * n * int(task.d_vocab_out))
    return MemoryEstimate(parameters, parameters * BYTES_PER_FLOAT, activations * BYTES_PER_FLOAT)


def check_memory(task, model, train, available: int | None = None,
                 training: bool = False) -> MemoryEstimate:
    """Raise ``ConfigError`` when the run cannot fit in the host's memory (``available``
    bytes; default :func:`host_memory_bytes`): the parameters always (they are built on the
    CPU, also for analysis), and with ``training`` the whole training footprint where
    ``train.device = "cpu"`` (checked by the trainer, not when a config is merely read)."""
    available = host_memory_bytes() if available is None else available
    estimate = estimate_memory(task, model, train)
    task_fields = _largest_fields({k: getattr(task, k) for k in getattr(task, "__dataclass_fields__", {})})
    sizes = (f"model.n_layers = {model.n_layers}, model.d_model = {model.d_model}, model.d_mlp = "
             f"{model.resolved_d_mlp}, task vocabulary {task.d_vocab}, {task.n_positions} positions"
             + (f" from {', '.join(task_fields)}" if task_fields else ""))
    if estimate.parameter_bytes > available:
        raise ConfigError(
            f"the model would have {estimate.parameters:.3g} parameters ({_gib(estimate.parameter_bytes)}; "
            f"{sizes}) but this machine has {_gib(available)} of memory: lower model.d_model, "
            f"model.n_layers, model.d_mlp or the task's sizes")
    if training and train.device == "cpu" and estimate.training_bytes > available:
        raise ConfigError(
            f"training on the CPU needs at least {_gib(estimate.training_bytes)} (weights, gradients "
            f"and Adam state {_gib(estimate.parameter_bytes * TRAINING_COPIES)}; activations of "
            f"train.batch_size = {train.batch_size} / train.eval_batch_size = {train.eval_batch_size} "
            f"{_gib(estimate.activation_bytes)}; {sizes}) but this machine has {_gib(available)}: "
            f"lower train.batch_size or the model's sizes")
    return estimate
