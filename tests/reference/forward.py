"""Independent plain-torch reference forward pass for plateau-lens' small transformers.

Written from the equations only (no import of ``plateau_lens``), to serve as a test oracle.
Everything is computed in float64: :func:`weights_from_state_dict` clones every parameter to
float64 and :func:`forward` returns float64 tensors.

Notation: b batch, p (or q / k) position, h head, e = d_head = d_model / n_heads, d d_model,
f d_mlp, v d_vocab_out.

Pre-norm block (GPT-2)::

    resid_mid  = x + O(Attn(LN1(x)))
    resid_post = resid_mid + W_out act(W_in LN2(resid_mid) + b_in) + b_out
    output     = W_U LN_f(resid_post[last block]) (+ b_U)

Post-norm block (BERT)::

    x0         = LN_emb(embed + pos_embed)
    resid_mid  = LN1(x + O(Attn(x)))
    resid_post = LN2(resid_mid + W_out act(W_in resid_mid + b_in) + b_out)
    output     = W_U resid_post[last block] (+ b_U)

Attention, per head::

    q, k, v    = x W_{Q,K,V} + b_{Q,K,V}          (heads: contiguous blocks of e columns)
    scores     = q k^T / sqrt(e)                  [query, key]
    softmax:  pattern = softmax_k(scores, future keys -> -inf if causal)
    linear:   pattern = scores, future keys -> 0 if causal (no normalisation)
    pattern    = pattern * M[:T, :T]               (optional pattern_multiplier, no renorm)
    z          = pattern v                         [b p h e]
    attn_out   = concat_h(z) W_O + b_O

Every named activation ("site", TransformerLens names) goes through ``_Sites.__call__``: an
optional edit replaces it, and the (edited) value is cached.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from einops import einsum, rearrange
from jaxtyping import Float, Int
from torch import Tensor

MASK_ID = -(2**63)  # "real" embedding: id of a masked (unobserved) entry
FIXED_POINT_SCALE = 2**20  # "real" embedding: value = id / 2**20


@dataclass
class RefConfig:
    n_layers: int
    n_heads: int
    d_model: int
    d_mlp: int
    attention: str = "softmax"  # "softmax" | "linear"
    causal: bool = True  # False = bidirectional encoder
    act_fn: str = "gelu_new"  # "gelu" (exact erf) | "gelu_new" (tanh approx) | "relu"
    eps: float = 1e-5  # LayerNorm eps
    norm: str = "pre"  # "pre" (GPT-2 style) | "post" (BERT style)
    embedding: str = "tokens"  # "tokens" | "real"
    pos: str = "learned"  # "learned" | "row_column" (needs m, n) | "sinusoidal" | "rotary" | "none"
    m: int | None = None
    n: int | None = None
    mlp: bool = True  # False: attention-only blocks
    tied: bool = False  # W_U = W_E^T (the state dict's head.weight must be that same matrix)
    rotary_base: float = 10000.0

    @property
    def d_head(self) -> int:
        assert self.d_model % self.n_heads == 0, "d_model must be divisible by n_heads"
        return self.d_model // self.n_heads


# --------------------------------------------------------------------------------------
# Parameters: project name -> reference name. Only the names live here; the reshapes into
# per-head form are in weights_from_state_dict.
# --------------------------------------------------------------------------------------

GLOBAL_NAMES: dict[str, str] = {
    "W_E": "tok_embed.weight",  # [vocab d]; "real": [2 d] = (value direction, mask vector)
    "b_E": "tok_embed.bias",  # "real" only
    "W_pos": "pos.weight",  # pos="learned": [n_ctx d]
    "W_row": "pos.row",  # pos="row_column": [m d]
    "W_col": "pos.column",  # pos="row_column": [n d]
    "embed_ln.w": "ln_embed.weight",  # norm="post" only (module ln_embed, hooks embed_ln.*)
    "embed_ln.b": "ln_embed.bias",
    "ln_final.w": "ln_out.weight",  # norm="pre" only
    "ln_final.b": "ln_out.bias",
    "W_U": "head.weight",  # [vocab_out d]
    "b_U": "head.bias",  # optional
}

LAYER_NAMES: dict[str, str] = {  # "{l}" = layer index; ref name is prefixed "blocks.{l}."
    "ln1.w": "layers.{l}.ln1.weight",  # pre: before attention; post: after attention
    "ln1.b": "layers.{l}.ln1.bias",
    "attn.W_Q": "layers.{l}.attn.q.weight",
    "attn.b_Q": "layers.{l}.attn.q.bias",
    "attn.W_K": "layers.{l}.attn.k.weight",
    "attn.b_K": "layers.{l}.attn.k.bias",
    "attn.W_V": "layers.{l}.attn.v.weight",
    "attn.b_V": "layers.{l}.attn.v.bias",
    "attn.W_O": "layers.{l}.attn.o.weight",
    "attn.b_O": "layers.{l}.attn.o.bias",
    "ln2.w": "layers.{l}.ln2.weight",  # pre: before the MLP; post: after the MLP
    "ln2.b": "layers.{l}.ln2.bias",
    "mlp.W_in": "layers.{l}.mlp.fc_in.weight",
    "mlp.b_in": "layers.{l}.mlp.fc_in.bias",
    "mlp.W_out": "layers.{l}.mlp.fc_out.weight",
    "mlp.b_out": "layers.{l}.mlp.fc_out.bias",
}


def _required_globals(cfg: RefConfig) -> list[str]:
    names = ["W_E", "W_U"]
    names += ["b_E"] if cfg.embedding == "real" else []
    names += {"learned": ["W_pos"], "row_column": ["W_row", "W_col"]}.get(cfg.pos, [])
    names += {"pre": ["ln_final.w", "ln_final.b"], "post": ["embed_ln.w", "embed_ln.b"]}.get(cfg.norm, [])
    return names


def _layer_names(cfg: RefConfig) -> dict[str, str]:
    """LAYER_NAMES less the norms (norm="none") and the MLP (mlp=False)."""
    names = dict(LAYER_NAMES)
    if cfg.norm == "none" or not cfg.mlp:
        names = {k: v for k, v in names.items() if not k.startswith("ln2")}
    if cfg.norm == "none":
        names = {k: v for k, v in names.items() if not k.startswith("ln1")}
    if not cfg.mlp:
        names = {k: v for k, v in names.items() if not k.startswith("mlp")}
    return names


def weights_from_state_dict(state_dict: dict[str, Tensor], cfg: RefConfig) -> dict[str, Tensor]:
    """Project state dict -> reference weights, cloned to float64, in TransformerLens layout.

    nn.Linear stores ``weight`` as [out in]; the reference keeps right-multiplication form:
    ``W_Q[h, d, e] = q.weight[(h e), d]`` (heads are contiguous blocks of d_head rows),
    ``W_O[h, e, d] = o.weight[d, (h e)]``, ``W_in = fc_in.weight^T``, ``W_U = head.weight^T``.
    Raises on a missing parameter or on a state-dict key that the config leaves unused.
    """
    for field in ("attention", "act_fn", "norm", "embedding", "pos"):
        _check_choice(cfg, field)
    sd = {k: v.detach().to(torch.float64).clone() for k, v in state_dict.items()}
    wanted = {ref: GLOBAL_NAMES[ref] for ref in _required_globals(cfg)}
    if "head.bias" in sd:
        wanted["b_U"] = "head.bias"
    for l in range(cfg.n_layers):
        wanted.update({f"blocks.{l}.{ref}": proj.format(l=l) for ref, proj in _layer_names(cfg).items()})
    missing = sorted(proj for proj in wanted.values() if proj not in sd)
    unused = sorted(set(sd) - set(wanted.values()))
    if missing or unused:
        raise KeyError(f"state dict does not match {cfg}: missing {missing}, unused {unused}")
    w = {ref: sd[proj] for ref, proj in wanted.items()}

    h = cfg.n_heads
    for l in range(cfg.n_layers):
        a = f"blocks.{l}.attn."
        for x in "QKV":
            w[a + f"W_{x}"] = rearrange(w[a + f"W_{x}"], "(h e) d -> h d e", h=h)
            w[a + f"b_{x}"] = rearrange(w[a + f"b_{x}"], "(h e) -> h e", h=h)
        w[a + "W_O"] = rearrange(w[a + "W_O"], "d (h e) -> h e d", h=h)
        if cfg.mlp:
            w[f"blocks.{l}.mlp.W_in"] = w[f"blocks.{l}.mlp.W_in"].T.contiguous()
            w[f"blocks.{l}.mlp.W_out"] = w[f"blocks.{l}.mlp.W_out"].T.contiguous()
    if cfg.tied:
        if not torch.equal(w["W_U"], w["W_E"]):
            raise ValueError("tied=True but the state dict's head.weight differs from tok_embed.weight")
        w["W_U"] = w["W_E"].T.contiguous()
    else:
        w["W_U"] = w["W_U"].T.contiguous()
    return w


# --------------------------------------------------------------------------------------
# Pieces
# --------------------------------------------------------------------------------------

_CHOICES = {
    "attention": ("softmax", "linear"),
    "act_fn": ("gelu", "gelu_new", "relu"),
    "norm": ("pre", "post", "none"),
    "embedding": ("tokens", "real"),
    "pos": ("learned", "row_column", "sinusoidal", "rotary", "none"),
}


def _check_choice(cfg: RefConfig, field: str) -> None:
    if getattr(cfg, field) not in _CHOICES[field]:
        raise ValueError(f"{field}={getattr(cfg, field)!r}, expected one of {_CHOICES[field]}")


def normalize(x: Float[Tensor, "... d"], eps: float) -> Float[Tensor, "... d"]:
    """(x - mean) / sqrt(var + eps), biased variance over the last axis."""
    centred = x - x.mean(-1, keepdim=True)
    var = (centred**2).mean(-1, keepdim=True)
    return centred / torch.sqrt(var + eps)


def layer_norm(x: Float[Tensor, "... d"], w: Tensor, b: Tensor, eps: float) -> Float[Tensor, "... d"]:
    """w * normalize(x) + b."""
    return normalize(x, eps) * w + b


def activation(x: Tensor, act_fn: str) -> Tensor:
    """gelu: x Phi(x) = 0.5 x (1 + erf(x / sqrt 2));
    gelu_new: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))); relu: max(x, 0)."""
    if act_fn == "gelu":
        return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    if act_fn == "gelu_new":
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    if act_fn == "relu":
        return torch.clamp(x, min=0.0)
    raise ValueError(f"unknown act_fn {act_fn!r}")


def site_names(cfg: RefConfig) -> list[str]:
    """Every site that forward caches (and that ``edits`` may name), in forward order."""
    names = ["hook_embed", "hook_pos_embed"] + (["embed_ln.hook_out"] if cfg.norm == "post" else [])
    mlp_sites = ("hook_resid_mid", "mlp.hook_pre", "mlp.hook_post", "hook_mlp_out") if cfg.mlp else ()
    for l in range(cfg.n_layers):
        names += [f"blocks.{l}.{s}" for s in (
            "hook_resid_pre", "attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_pattern",
            "attn.hook_z", "hook_attn_out", *mlp_sites, "hook_resid_post")]
    if cfg.norm == "pre":
        names += ["ln_final.hook_normalized", "ln_final.hook_out"]
    return names


class _Sites:
    """Applies ``edits[name]`` (if any) to an activation, caches the result, returns it."""

    def __init__(self, edits: dict[str, Callable[[Tensor], Tensor]] | None):
        self.edits = edits or {}
        self.cache: dict[str, Tensor] = {}

    def __call__(self, name: str, value: Tensor) -> Tensor:
        if name in self.edits:
            value = self.edits[name](value)
        self.cache[name] = value
        return value


def replace_slice(source: Tensor, index: tuple) -> Callable[[Tensor], Tensor]:
    """An edit that returns a copy of the activation with ``act[index] = source[index]``.

    E.g. ``replace_slice(clean["blocks.1.attn.hook_z"], (slice(None), slice(None), 2))``
    patches head 2 of a [batch pos head d_head] activation.
    """
    def edit(act: Tensor) -> Tensor:
        out = act.clone()
        out[index] = source[index].to(device=out.device, dtype=out.dtype)
        return out

    return edit


def embed(
    weights: dict[str, Tensor], cfg: RefConfig, inputs: Int[Tensor, "b p"]
) -> Float[Tensor, "b p d"]:
    """tokens: E[id]. real: value x = id / 2**20 -> x * E[0] + b_E; the mask id -> E[1]."""
    W_E = weights["W_E"]
    if cfg.embedding == "tokens":
        return W_E[inputs]
    masked = inputs == MASK_ID
    x = torch.where(masked, torch.zeros_like(inputs), inputs).to(torch.float64) / FIXED_POINT_SCALE
    observed = x[..., None] * W_E[0] + weights["b_E"]
    return torch.where(masked[..., None], W_E[1].expand_as(observed), observed)


def pos_embed(weights: dict[str, Tensor], cfg: RefConfig, n_pos: int) -> Float[Tensor, "p d"]:
    """learned: P[p]. row_column (m x n matrix, row-major): row[p // n] + column[p % n].
    sinusoidal (Vaswani et al. 2017): P[p, 2i] = sin(p w_i), P[p, 2i+1] = cos(p w_i),
    w_i = 10000^(-2i/d). rotary, none: 0 (rotary acts on q and k instead)."""
    p = torch.arange(n_pos)
    if cfg.pos == "learned":
        return weights["W_pos"][p]
    if cfg.pos in ("rotary", "none"):
        return torch.zeros(n_pos, cfg.d_model, dtype=torch.float64)
    if cfg.pos == "sinusoidal":
        table = torch.empty(n_pos, cfg.d_model, dtype=torch.float64)
        for i in range(0, cfg.d_model, 2):
            angle = p.double() / 10000.0 ** (i / cfg.d_model)
            table[:, i] = torch.sin(angle)
            if i + 1 < cfg.d_model:
                table[:, i + 1] = torch.cos(angle)
        return table
    assert cfg.m is not None and cfg.n is not None and n_pos <= cfg.m * cfg.n
    return weights["W_row"][p // cfg.n] + weights["W_col"][p % cfg.n]


def rotate(x: Float[Tensor, "b p h e"], base: float) -> Float[Tensor, "b p h e"]:
    """RoPE (Su et al. 2021) on adjacent pairs: (x_2i, x_2i+1) at position p turned by the
    angle p * theta_i, theta_i = base^(-2i/e), over the whole head dimension e."""
    e = x.shape[-1]
    p = torch.arange(x.shape[1], dtype=torch.float64)
    theta = base ** (-torch.arange(0, e, 2, dtype=torch.float64) / e)
    angle = (p[:, None] * theta[None, :])[None, :, None, :]  # [1 p 1 e/2]
    even, odd = x[..., 0::2], x[..., 1::2]
    turned_even = even * torch.cos(angle) - odd * torch.sin(angle)
    turned_odd = even * torch.sin(angle) + odd * torch.cos(angle)
    return torch.stack((turned_even, turned_odd), dim=-1).flatten(-2)


def attention(
    weights: dict[str, Tensor], cfg: RefConfig, l: int, x: Float[Tensor, "b p d"], site: _Sites,
    pattern_multiplier: Float[Tensor, "query key"] | None,
) -> Float[Tensor, "b p d"]:
    """Multi-head attention of block l on its (already normalised, for pre-norm) input x."""
    a, pre = f"blocks.{l}.attn.", f"blocks.{l}.attn.hook_"
    q = site(pre + "q", einsum(x, weights[a + "W_Q"], "b p d, h d e -> b p h e") + weights[a + "b_Q"])
    k = site(pre + "k", einsum(x, weights[a + "W_K"], "b p d, h d e -> b p h e") + weights[a + "b_K"])
    v = site(pre + "v", einsum(x, weights[a + "W_V"], "b p d, h d e -> b p h e") + weights[a + "b_V"])
    if cfg.pos == "rotary":
        q, k = rotate(q, cfg.rotary_base), rotate(k, cfg.rotary_base)
    scores = einsum(q, k, "b q h e, b k h e -> b h q k") / math.sqrt(cfg.d_head)
    T = x.shape[1]
    future = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)  # key > query
    if cfg.attention == "softmax":
        if cfg.causal:
            scores = scores.masked_fill(future, float("-inf"))
        pattern = torch.softmax(scores, dim=-1)
    else:  # linear: the scores themselves, future entries zeroed
        pattern = scores.masked_fill(future, 0.0) if cfg.causal else scores
    if pattern_multiplier is not None:
        pattern = pattern * pattern_multiplier[:T, :T].to(pattern)
    pattern = site(pre + "pattern", pattern)
    z = site(pre + "z", einsum(pattern, v, "b h q k, b k h e -> b q h e"))
    return einsum(z, weights[a + "W_O"], "b q h e, h e d -> b q d") + weights[a + "b_O"]


# --------------------------------------------------------------------------------------
# Forward
# --------------------------------------------------------------------------------------


def forward(
    weights: dict[str, Tensor],
    cfg: RefConfig,
    inputs: Int[Tensor, "batch pos"],
    *,
    pattern_multiplier: Float[Tensor, "query key"] | None = None,
    edits: dict[str, Callable[[Tensor], Tensor]] | None = None,
) -> tuple[Float[Tensor, "batch pos d_vocab_out"], dict[str, Tensor]]:
    """Run the model; return (output, cache of every site in :func:`site_names`).

    ``edits[name](activation)`` replaces that activation downstream; the cache holds the
    edited value. ``pattern_multiplier`` [query, key] multiplies every attention pattern
    (after mask/softmax, before the hook_pattern edit), sliced to the sequence length.
    """
    for field in _CHOICES:
        _check_choice(cfg, field)
    unknown = set(edits or {}) - set(site_names(cfg))
    if unknown:
        raise KeyError(f"edits name unknown sites: {sorted(unknown)}")
    site = _Sites(edits)
    eps = cfg.eps
    post = cfg.norm == "post"

    tok = site("hook_embed", embed(weights, cfg, inputs))
    pos = site("hook_pos_embed", pos_embed(weights, cfg, inputs.shape[1]).expand_as(tok))
    x = tok + pos
    if post:
        x = site("embed_ln.hook_out", layer_norm(x, weights["embed_ln.w"], weights["embed_ln.b"], eps))

    for l in range(cfg.n_layers):
        blk = f"blocks.{l}."

        def ln(name: str, t: Tensor) -> Tensor:
            if cfg.norm == "none":
                return t
            return layer_norm(t, weights[blk + name + ".w"], weights[blk + name + ".b"], eps)

        x = site(blk + "hook_resid_pre", x)
        attn_in = x if post else ln("ln1", x)
        attn_out = site(blk + "hook_attn_out",
                        attention(weights, cfg, l, attn_in, site, pattern_multiplier))
        if not cfg.mlp:  # attention-only block
            x = site(blk + "hook_resid_post", x + attn_out)
            continue
        mid = site(blk + "hook_resid_mid", ln("ln1", x + attn_out) if post else x + attn_out)
        mlp_in = mid if post else ln("ln2", mid)
        h_pre = site(blk + "mlp.hook_pre", mlp_in @ weights[blk + "mlp.W_in"] + weights[blk + "mlp.b_in"])
        h_post = site(blk + "mlp.hook_post", activation(h_pre, cfg.act_fn))
        mlp_out = site(blk + "hook_mlp_out", h_post @ weights[blk + "mlp.W_out"] + weights[blk + "mlp.b_out"])
        x = site(blk + "hook_resid_post", ln("ln2", mid + mlp_out) if post else mid + mlp_out)

    if cfg.norm == "pre":
        x = site("ln_final.hook_normalized", normalize(x, eps))
        x = site("ln_final.hook_out", x * weights["ln_final.w"] + weights["ln_final.b"])
    out = x @ weights["W_U"]
    if "b_U" in weights:
        out = out + weights["b_U"]
    return out, site.cache
