"""What a task may declare beyond the contract and what each declaration promises: the
capability names (:data:`CAPABILITIES`), the members a capability promises
(:data:`PROMISED_MEMBERS`), the optional members with their defaults (:data:`OPTIONAL_MEMBERS`)
and the functions that read them. The task contract itself (:class:`~plateau_lens.tasks.protocol.Task`)
is in ``protocol``; ``base``'s batch check reads capabilities from here, so neither imports the
other in a circle."""

from __future__ import annotations

from typing import Any


CAPABILITIES: dict[str, str] = {
    "matrix": "a matrix-completion task: m×n entries flattened row-major (attributes m, n, rank)",
    "value_readout": "one real value read out per position, predictions(output) -> [batch, m, n] "
                     "(LRMC's regression head)",
    "answers": "answers generated after a prompt (prompt_length, answer_length, answer_rows()): "
               "generation accuracy and repetition",
    "real_inputs": "inputs are real values (a value embedding, not a token table)",
    "mask_token": "token id 0 is the MASK token (model.mask_embedding = 'zero' allowed)",
    "finite_data": "a fixed data set, dataset(split, device) -> the whole 'train' or 'test' "
                   "split as one batch: training draws from it, both splits' metrics are logged",
    "collapse_pairs": "collapse_pairs() -> {logged name: [(row, row), ...]}: the position pairs "
                      "of its representation-collapse measures (default: every pair of "
                      "collapse_positions() as 'cosine_similarity')",
    "attention_masks": "attention_progress_masks(batch, n_layers) -> {layer: 0/1 mask [query, "
                       "key] or [batch, query, key]} (default: the last layer's "
                       "optimal_attention())",
    "output_entropy": "the entropy of the generated outputs is logged beside the data's "
                      "(with 'answers')",
    "matrix_sequence": "entry_of_position() -> (row, column) per position: a matrix written as a "
                       "sequence (lrmc_gpt; with 'matrix')",
}
"""The capabilities a task may declare, and what declaring one promises."""

PROMISED_MEMBERS: dict[str, tuple[str, ...]] = {
    "matrix": ("m", "n", "rank"),
    "value_readout": ("predictions",),
    "answers": ("prompt_length", "answer_length", "answer_rows"),
    "finite_data": ("dataset",),
    "collapse_pairs": ("collapse_pairs",),
    "attention_masks": ("attention_progress_masks",),
    "matrix_sequence": ("entry_of_position",),
}
"""The members a task that declares a capability must have (checked when it is registered)."""

OPTIONAL_MEMBERS: dict[str, tuple[Any, str]] = {
    "token_vocabulary": (None, "int: input token ids must lie in [0, token_vocabulary) "
                               "(check_batch's range check; None: not checked)"),
    "encoding": ("real", "matrix tasks: 'tokens' when entries are read as tokens on a 0.01 grid "
                         "(the nuclear-norm baseline then sees the rounded entries)"),
    "factor_distribution": ("uniform", "matrix tasks: the factors' distribution; 'uniform' "
                                       "bounds the embedding analyses' value range by the rank"),
}
"""Members a task may have beside the contract, each with the default an analyzer assumes
when it has not: read them with :func:`optional_member`, never with ``getattr``."""


def optional_member(task: Any, name: str) -> Any:
    """``task.<name>``, or the documented default of :data:`OPTIONAL_MEMBERS` where the task
    has no such member. ``KeyError`` for a name that is not documented there."""
    if name not in OPTIONAL_MEMBERS:
        raise KeyError(f"{name!r} is not an optional task member; documented: "
                       f"{sorted(OPTIONAL_MEMBERS)} (declare a capability instead)")
    return getattr(task, name, OPTIONAL_MEMBERS[name][0])


def capabilities_of(task: Any) -> frozenset[str]:
    """The task's declared capabilities (none declared: the empty set)."""
    declared = getattr(task, "capabilities", frozenset())
    return frozenset(declared)


def check_capabilities(task_or_class: Any, name: str) -> None:
    """Raise ``TypeError`` for a declared capability that is not in :data:`CAPABILITIES`
    (a class whose ``capabilities`` is a property is checked on its instances)."""
    declared = getattr(task_or_class, "capabilities", frozenset())
    if isinstance(declared, property):
        return
    if not isinstance(declared, (frozenset, set, tuple, list)):
        raise TypeError(f"task {name!r}: capabilities must be a frozenset of names from "
                        f"{sorted(CAPABILITIES)}, got {declared!r}")
    unknown = sorted(set(declared) - set(CAPABILITIES))
    if unknown:
        raise TypeError(f"task {name!r} declares unknown capabilities {unknown}; allowed: "
                        f"{sorted(CAPABILITIES)}")
    fields = set(getattr(task_or_class, "__dataclass_fields__", {}))
    lacking = {capability: missing for capability in sorted(declared)
               if (missing := [m for m in PROMISED_MEMBERS.get(capability, ())
                               if not hasattr(task_or_class, m) and m not in fields])}
    if lacking:
        raise TypeError(f"task {name!r} declares capabilities without the members they promise: "
                        + "; ".join(f"{c!r} needs {m}" for c, m in lacking.items()))


def has_capability(task: Any, capability: str) -> bool:
    if capability not in CAPABILITIES:
        raise KeyError(f"unknown capability {capability!r}; allowed: {sorted(CAPABILITIES)}")
    return capability in capabilities_of(task)
