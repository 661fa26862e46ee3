"""Names of the network components that ``[init]`` copies or freezes, and the parameter-name
patterns each covers. A plain table with no imports: ``[init]`` validates component names
with it, ``training.interventions`` copies and freezes by it, so it sits with the configs,
below the model code."""

COMPONENTS: dict[str, tuple[str, ...]] = {
    "embed": ("tok_embed.",),
    "pos_embed": ("pos.",),
    "embed_ln": ("ln_embed.",),  # the embedding LayerNorm of post-LN (architecture = "bert") models
    "attn": (".attn.",),
    "attn.q": (".attn.q.",),
    "attn.k": (".attn.k.",),
    "attn.v": (".attn.v.",),
    "attn.o": (".attn.o.",),
    "mlp": (".mlp.",),
    "ln1": (".ln1.",),
    "ln2": (".ln2.",),
    "ln_final": ("ln_out.",),
    "unembed": ("head.",),
}
"""Component name -> patterns: a pattern starting with "." matches inside a parameter name
(any layer), otherwise the name's prefix."""
