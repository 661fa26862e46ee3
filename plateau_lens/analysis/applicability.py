"""Which public analyzer applies to a pretrained causal LM (GPT-NeoX/Pythia, OLMo, OLMo-2,
GPT-2) called with its defaults on a prompt batch (``plateau_lens.llm.prompt_batch``), and
what to pass where it does not. tests/test_architectures.py calls every analyzer on a tiny
model of each architecture and checks it against this table; docs/architectures.md holds
:func:`markdown_table`'s output (a test checks it is current)."""

from __future__ import annotations

ARCHITECTURES = {"gpt_neox": "GPT-NeoX (Pythia)", "olmo": "OLMo", "olmo2": "OLMo-2", "gpt2": "GPT-2"}
"""The pretrained architectures checked (key: the tests' fixture kind)."""

MATRIX = "matrix-completion tasks"

ON_PRETRAINED: dict[str, tuple[str | None, str]] = {
    "ablate_heads": (None, "uniform attention over the causal prefix in the chosen heads"),
    "ablation_sweep": (None, "every head and layer, one at a time"),
    "attention_patterns": (None, "every head's pattern (tidy)"),
    "mean_attention_patterns": (None, "every head's pattern averaged over the batch"),
    "representation_collapse": (None, "every site; on GPT-NeoX's parallel residual "
                                "post_att_res_h = hook_resid_pre + hook_attn_out"),
    "repetition": (None, "greedy generation from each prompt's first token"),
    "linear_probes": (None, "the prompt task's probe targets, every residual-stream hook"),
    "next_token_probe": (None, "probe of the next token from the attention output"),
    "patch_between_models": (None, "two checkpoints of one architecture"),
    "patch_activations": ("prompts have no default corruption", "pass corrupted_batch="
                          "prompt_batch(model, other_prompts, length=...)[0] (same count and length)"),
    "attention_progress": ("needs an optimal attention mask", "the loss-plateau tasks define the "
                           "mask; use attention_patterns on prompts"),
    "swap_attention": ("needs plateau-lens models", "use patch_between_models(pre, post, batch, "
                       "hooks='attn.hook_z')"),
    "attention_structure": (MATRIX, "a model trained on lrmc / lrmc_gpt"),
    **{name: (MATRIX, "a model trained on lrmc") for name in (
        "copying_test", "compare_to_nuclear_norm", "ood_evaluation", "permuted_positions",
        "token_embedding_norms", "token_embedding_pca", "positional_embedding_norms",
        "positional_embedding_tsne", "positional_embedding_neighbours")},
}
"""analyzer → (None where it works on every architecture above, else a fragment of the one-line
error it raises; what it computes there or what to pass instead). Not in the table: the run
readers ``analyze_run`` and ``token_progress`` (they take a plateau-lens run directory; an LLM
series is read with ``plateau_lens.llm``) and ``nuclear_norm_complete`` (a matrix solver)."""


def markdown_table() -> str:
    """The table for docs/architectures.md: one row per analyzer, a column per architecture."""
    header = ["analyzer", *ARCHITECTURES.values(), "note"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, (error, note) in ON_PRETRAINED.items():
        cell = "works" if error is None else "refuses"
        lines.append(f"| `{name}` | " + " | ".join([cell] * len(ARCHITECTURES)) + f" | {note} |")
    return "\n".join(lines) + "\n"
