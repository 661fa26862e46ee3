"""Validate the reference forward pass itself: against Hugging Face GPT-2 / BERT with random,
perturbed weights, and against hand-worked numbers for linear attention, the pattern
multiplier, edits, the "real" embedding and row/column positions."""

from __future__ import annotations

import math

import pytest
import torch

from .forward import MASK_ID, RefConfig, forward, replace_slice, site_names, weights_from_state_dict

transformers = pytest.importorskip("transformers")

D, H, L, VOCAB, N_CTX = 32, 4, 2, 50, 16


def _perturb(model: torch.nn.Module, seed: int, is_ln) -> None:
    """Add noise to every bias and every LayerNorm weight, so none is at its init value."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or is_ln(name):
                p.add_(0.2 * torch.randn(p.shape, generator=g, dtype=p.dtype))


def _max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max(1, max |b|): absolute below unit scale, relative to the scale above."""
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a.double() - b.double()).abs().max().item() / max(1.0, b.abs().max().item())


# --------------------------------------------------------------------------------------
# 1. GPT-2 (pre-norm, causal softmax, gelu_new)
# --------------------------------------------------------------------------------------


def gpt2_to_project(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """GPT-2 (Conv1D weights are [in out]) -> the project's parameter names (nn.Linear [out in])."""
    t = {k.removeprefix("transformer."): v for k, v in sd.items()}
    out = {"tok_embed.weight": t["wte.weight"], "pos.weight": t["wpe.weight"],
           "ln_out.weight": t["ln_f.weight"], "ln_out.bias": t["ln_f.bias"],
           "head.weight": sd["lm_head.weight"]}
    for l in range(L):
        g, p = f"h.{l}.", f"layers.{l}."
        W, b = t[g + "attn.c_attn.weight"], t[g + "attn.c_attn.bias"]
        for i, name in enumerate("qkv"):
            out[p + f"attn.{name}.weight"] = W[:, i * D:(i + 1) * D].T
            out[p + f"attn.{name}.bias"] = b[i * D:(i + 1) * D]
        pairs = {"attn.o": "attn.c_proj", "mlp.fc_in": "mlp.c_fc", "mlp.fc_out": "mlp.c_proj"}
        for ours, theirs in pairs.items():
            out[p + ours + ".weight"] = t[g + theirs + ".weight"].T
            out[p + ours + ".bias"] = t[g + theirs + ".bias"]
        for ours, theirs in {"ln1": "ln_1", "ln2": "ln_2"}.items():
            out[p + ours + ".weight"] = t[g + theirs + ".weight"]
            out[p + ours + ".bias"] = t[g + theirs + ".bias"]
    return out


def _run_gpt2(dtype):
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=VOCAB, n_positions=N_CTX, n_embd=D, n_layer=L, n_head=H,
        activation_function="gelu_new", layer_norm_epsilon=1e-5, resid_pdrop=0.0,
        embd_pdrop=0.0, attn_pdrop=0.0, initializer_range=0.3, bos_token_id=0, eos_token_id=0,
        attn_implementation="eager")
    model = transformers.GPT2LMHeadModel(config).eval().to(dtype)
    _perturb(model, 1, lambda n: ".ln_" in n)
    ids = torch.randint(0, VOCAB, (3, 11), generator=torch.Generator().manual_seed(2))
    seen: dict[str, torch.Tensor] = {}
    hooks = []
    for l, block in enumerate(model.transformer.h):
        hooks.append(block.attn.register_forward_hook(
            lambda m, i, o, l=l: seen.__setitem__(f"blocks.{l}.hook_attn_out", o[0])))
        hooks.append(block.mlp.register_forward_hook(
            lambda m, i, o, l=l: seen.__setitem__(f"blocks.{l}.hook_mlp_out", o)))
    with torch.no_grad():
        hf = model(ids, output_hidden_states=True, output_attentions=True)
    for h in hooks:
        h.remove()
    cfg = RefConfig(n_layers=L, n_heads=H, d_model=D, d_mlp=4 * D, act_fn="gelu_new", eps=1e-5)
    out, cache = forward(weights_from_state_dict(gpt2_to_project(model.state_dict()), cfg), cfg, ids)
    return hf, seen, out, cache


def gpt2_errors(dtype) -> dict[str, float]:
    """Max |reference - GPT-2| per compared quantity, GPT-2 run in ``dtype``."""
    hf, seen, out, cache = _run_gpt2(dtype)
    assert out.dtype == torch.float64
    errs = {"logits": _max_err(out, hf.logits)}
    for l in range(L):
        errs[f"hidden_states[{l}]"] = _max_err(cache[f"blocks.{l}.hook_resid_pre"], hf.hidden_states[l])
        errs[f"attentions[{l}]"] = _max_err(cache[f"blocks.{l}.attn.hook_pattern"], hf.attentions[l])
        for s in ("hook_attn_out", "hook_mlp_out"):
            errs[f"blocks.{l}.{s}"] = _max_err(cache[f"blocks.{l}.{s}"], seen[f"blocks.{l}.{s}"])
    errs["hidden_states[-1]"] = _max_err(cache["ln_final.hook_out"], hf.hidden_states[L])
    return errs


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_matches_gpt2(dtype, tol):
    errs = gpt2_errors(dtype)
    assert max(errs.values()) < tol, errs


# --------------------------------------------------------------------------------------
# 2. BERT (post-norm, bidirectional softmax, exact gelu)
# --------------------------------------------------------------------------------------


def bert_to_project(sd: dict[str, torch.Tensor], head: torch.nn.Linear) -> dict[str, torch.Tensor]:
    """BertModel -> the project's post-norm names; token type 0 folded into the positions."""
    e = "embeddings."
    out = {"tok_embed.weight": sd[e + "word_embeddings.weight"],
           "pos.weight": sd[e + "position_embeddings.weight"] + sd[e + "token_type_embeddings.weight"][0],
           "ln_embed.weight": sd[e + "LayerNorm.weight"], "ln_embed.bias": sd[e + "LayerNorm.bias"],
           "head.weight": head.weight.detach(), "head.bias": head.bias.detach()}
    for l in range(L):
        b, p = f"encoder.layer.{l}.", f"layers.{l}."
        names = {"attn.q": "attention.self.query", "attn.k": "attention.self.key",
                 "attn.v": "attention.self.value", "attn.o": "attention.output.dense",
                 "ln1": "attention.output.LayerNorm", "mlp.fc_in": "intermediate.dense",
                 "mlp.fc_out": "output.dense", "ln2": "output.LayerNorm"}
        for ours, theirs in names.items():
            for x in ("weight", "bias"):
                out[f"{p}{ours}.{x}"] = sd[f"{b}{theirs}.{x}"]
    return out


def bert_errors(dtype) -> dict[str, float]:
    """Max |reference - BERT| per compared quantity, BERT (and the read-out) run in ``dtype``."""
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=VOCAB, hidden_size=D, num_hidden_layers=L, num_attention_heads=H,
        intermediate_size=2 * D, hidden_act="gelu", layer_norm_eps=1e-12, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, type_vocab_size=1, max_position_embeddings=N_CTX,
        initializer_range=0.3, attn_implementation="eager")
    model = transformers.BertModel(config, add_pooling_layer=False).eval().to(dtype)
    _perturb(model, 1, lambda n: "LayerNorm" in n)
    head = torch.nn.Linear(D, 3).to(dtype)  # our own read-out
    ids = torch.randint(0, VOCAB, (3, 9), generator=torch.Generator().manual_seed(2))
    seen: dict[str, torch.Tensor] = {}
    for l, layer in enumerate(model.encoder.layer):
        layer.attention.output.register_forward_hook(
            lambda m, i, o, l=l: seen.__setitem__(f"blocks.{l}.hook_resid_mid", o))
        layer.intermediate.register_forward_hook(
            lambda m, i, o, l=l: seen.__setitem__(f"blocks.{l}.mlp.hook_post", o))
    with torch.no_grad():
        hf = model(ids, output_hidden_states=True, output_attentions=True)
        hf_out = head(hf.last_hidden_state)
    cfg = RefConfig(n_layers=L, n_heads=H, d_model=D, d_mlp=2 * D, causal=False, act_fn="gelu",
                    eps=1e-12, norm="post")
    out, cache = forward(weights_from_state_dict(bert_to_project(model.state_dict(), head), cfg), cfg, ids)
    errs = {"read-out": _max_err(out, hf_out),
            "last_hidden_state": _max_err(cache[f"blocks.{L - 1}.hook_resid_post"], hf.last_hidden_state),
            "hidden_states[0]": _max_err(cache["embed_ln.hook_out"], hf.hidden_states[0])}
    for l in range(L):
        errs[f"hidden_states[{l + 1}]"] = _max_err(cache[f"blocks.{l}.hook_resid_post"], hf.hidden_states[l + 1])
        errs[f"attentions[{l}]"] = _max_err(cache[f"blocks.{l}.attn.hook_pattern"], hf.attentions[l])
        for s in ("hook_resid_mid", "mlp.hook_post"):
            errs[f"blocks.{l}.{s}"] = _max_err(cache[f"blocks.{l}.{s}"], seen[f"blocks.{l}.{s}"])
    return errs


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_matches_bert(dtype, tol):
    errs = bert_errors(dtype)
    assert max(errs.values()) < tol, errs


# --------------------------------------------------------------------------------------
# Random project-style state dicts (for edits, shapes, the project's key set)
# --------------------------------------------------------------------------------------


def random_state_dict(cfg: RefConfig, d_vocab: int, d_out: int, n_ctx: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return 0.5 * torch.randn(shape, generator=g)

    d, f = cfg.d_model, cfg.d_mlp
    sd = {"tok_embed.weight": r(2 if cfg.embedding == "real" else d_vocab, d),
          "head.weight": r(d_out, d), "head.bias": r(d_out)}
    if cfg.embedding == "real":
        sd["tok_embed.bias"] = r(d)
    if cfg.pos == "learned":
        sd["pos.weight"] = r(n_ctx, d)
    else:
        sd["pos.row"], sd["pos.column"] = r(cfg.m, d), r(cfg.n, d)
    norms = ["ln_out"] if cfg.norm == "pre" else ["ln_embed"]
    for l in range(cfg.n_layers):
        p = f"layers.{l}."
        norms += [p + "ln1", p + "ln2"]
        for x in "qkvo":
            sd[p + f"attn.{x}.weight"], sd[p + f"attn.{x}.bias"] = r(d, d), r(d)
        sd[p + "mlp.fc_in.weight"], sd[p + "mlp.fc_in.bias"] = r(f, d), r(f)
        sd[p + "mlp.fc_out.weight"], sd[p + "mlp.fc_out.bias"] = r(d, f), r(d)
    for n in norms:
        sd[n + ".weight"], sd[n + ".bias"] = 1 + r(d), r(d)
    return sd


def _small(norm="pre", **kw):
    cfg = RefConfig(n_layers=2, n_heads=4, d_model=16, d_mlp=32, norm=norm, **kw)
    return cfg, weights_from_state_dict(random_state_dict(cfg, d_vocab=11, d_out=11, n_ctx=8), cfg)


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_cache_has_every_site_with_its_shape(norm):
    cfg, w = _small(norm)
    ids = torch.randint(0, 11, (2, 7))
    out, cache = forward(w, cfg, ids)
    assert out.shape == (2, 7, 11)
    assert list(cache) == site_names(cfg)
    b, p, d, h, e, f = 2, 7, 16, 4, 4, 32
    for name, t in cache.items():
        leaf = name.split(".")[-1]
        want = {"hook_q": (b, p, h, e), "hook_k": (b, p, h, e), "hook_v": (b, p, h, e),
                "hook_z": (b, p, h, e), "hook_pattern": (b, h, p, p), "hook_pre": (b, p, f)}.get(leaf)
        if leaf == "hook_post" and ".mlp." in name:
            want = (b, p, f)
        assert t.shape == (want or (b, p, d)), name
    with pytest.raises(KeyError):
        forward(w, cfg, ids, edits={"blocks.9.hook_resid_pre": lambda x: x})


# --------------------------------------------------------------------------------------
# 3. Linear attention and the pattern multiplier, worked by hand
# --------------------------------------------------------------------------------------


def hand_state_dict() -> dict[str, torch.Tensor]:
    """1 layer, 1 head, d_model 2. Tokens 0, 1 embed to e1, e2; positions embed to 0.
    LN1 (weight 1, bias (0, 1)) maps e1 -> (1, 0) and e2 -> (-1, 2) (up to eps).
    W_q = sqrt(2) I cancels the 1/sqrt(d_head) scale, so scores = a_q . a_k. W_k = W_v = W_o = I."""
    f64 = {"dtype": torch.float64}  # exact hand numbers need float64 (sqrt 2 in float32 is off by 1e-8)
    I2, z2 = torch.eye(2, **f64), torch.zeros(2, **f64)
    return {"tok_embed.weight": I2, "pos.weight": torch.zeros(3, 2, **f64),
            "layers.0.ln1.weight": torch.ones(2, **f64), "layers.0.ln1.bias": torch.tensor([0.0, 1.0], **f64),
            "layers.0.attn.q.weight": math.sqrt(2) * I2, "layers.0.attn.q.bias": z2,
            "layers.0.attn.k.weight": I2, "layers.0.attn.k.bias": z2,
            "layers.0.attn.v.weight": I2, "layers.0.attn.v.bias": z2,
            "layers.0.attn.o.weight": I2, "layers.0.attn.o.bias": torch.tensor([0.5, -0.5], **f64),
            "layers.0.ln2.weight": torch.ones(2, **f64), "layers.0.ln2.bias": z2,
            "layers.0.mlp.fc_in.weight": torch.zeros(4, 2, **f64), "layers.0.mlp.fc_in.bias": torch.zeros(4, **f64),
            "layers.0.mlp.fc_out.weight": torch.zeros(2, 4, **f64), "layers.0.mlp.fc_out.bias": z2,
            "ln_out.weight": torch.ones(2, **f64), "ln_out.bias": z2, "head.weight": torch.ones(1, 2, **f64)}


# inputs (0, 1, 0): attention inputs a = (1, 0), (-1, 2), (1, 0) = values v; a.a' = 1, -1, 5
HAND_IDS = torch.tensor([[0, 1, 0]])
M = torch.tensor([[1.0, 0.0, 0.0, 9.0], [0.5, 2.0, 0.0, 9.0], [0.0, 1.0, 3.0, 9.0], [9.0, 9.0, 9.0, 9.0]])
e6, e2 = math.exp(6), math.exp(2)
HAND = {  # (attention, causal, multiplier?) -> (pattern [q k], z [q e]); z row = sum_k pattern v_k
    ("linear", True, False): ([[1, 0, 0], [-1, 5, 0], [1, -1, 1]], [[1, 0], [-6, 10], [3, -2]]),
    ("linear", True, True): ([[1, 0, 0], [-0.5, 10, 0], [0, -1, 3]], [[1, 0], [-10.5, 20], [4, -2]]),
    ("linear", False, False): ([[1, -1, 1], [-1, 5, -1], [1, -1, 1]], [[3, -2], [-7, 10], [3, -2]]),
    ("softmax", True, False): (
        [[1, 0, 0], [1 / (1 + e6), e6 / (1 + e6), 0], [e2 / (2 * e2 + 1), 1 / (2 * e2 + 1), e2 / (2 * e2 + 1)]],
        [[1, 0], [(1 - e6) / (1 + e6), 2 * e6 / (1 + e6)], [(2 * e2 - 1) / (2 * e2 + 1), 2 / (2 * e2 + 1)]]),
    ("softmax", True, True): (  # multiplied after the softmax, rows no longer sum to 1
        [[1, 0, 0], [0.5 / (1 + e6), 2 * e6 / (1 + e6), 0], [0, 1 / (2 * e2 + 1), 3 * e2 / (2 * e2 + 1)]],
        [[1, 0], [(0.5 - 2 * e6) / (1 + e6), 4 * e6 / (1 + e6)], [(3 * e2 - 1) / (2 * e2 + 1), 2 / (2 * e2 + 1)]]),
}


@pytest.mark.parametrize("key", list(HAND))
def test_hand_worked_attention(key):
    attention, causal, multiply = key
    cfg = RefConfig(n_layers=1, n_heads=1, d_model=2, d_mlp=4, attention=attention, causal=causal,
                    eps=1e-12)
    w = weights_from_state_dict(hand_state_dict(), cfg)
    _, cache = forward(w, cfg, HAND_IDS, pattern_multiplier=M if multiply else None)
    pattern, z = (torch.tensor(x, dtype=torch.float64) for x in HAND[key])
    torch.testing.assert_close(cache["blocks.0.attn.hook_pattern"][0, 0], pattern, rtol=0, atol=1e-9)
    torch.testing.assert_close(cache["blocks.0.attn.hook_z"][0, :, 0], z, rtol=0, atol=1e-9)
    # attn_out = z W_o^T + b_o = z + (0.5, -0.5); resid_mid = embedding + attn_out
    attn_out = z + torch.tensor([0.5, -0.5], dtype=torch.float64)
    torch.testing.assert_close(cache["blocks.0.hook_attn_out"][0], attn_out, rtol=0, atol=1e-9)
    embedding = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(cache["blocks.0.hook_resid_mid"][0], embedding + attn_out, rtol=0, atol=1e-9)


# --------------------------------------------------------------------------------------
# 4. Edits
# --------------------------------------------------------------------------------------


def test_edits():
    cfg, w = _small()
    ids = torch.randint(0, 11, (2, 7), generator=torch.Generator().manual_seed(3))
    other = torch.randint(0, 11, (2, 7), generator=torch.Generator().manual_seed(4))
    clean, cache = forward(w, cfg, ids)
    corrupt, corrupt_cache = forward(w, cfg, other)

    # zeroing one head's pattern: cached as zeros, other heads untouched, output changes
    def zero_head_1(p):
        p = p.clone()
        p[:, 1] = 0
        return p

    out, c = forward(w, cfg, ids, edits={"blocks.0.attn.hook_pattern": zero_head_1})
    assert (c["blocks.0.attn.hook_pattern"][:, 1] == 0).all()
    assert torch.equal(c["blocks.0.attn.hook_pattern"][:, 0], cache["blocks.0.attn.hook_pattern"][:, 0])
    assert torch.equal(c["blocks.0.attn.hook_z"][:, :, 0], cache["blocks.0.attn.hook_z"][:, :, 0])
    assert (c["blocks.0.attn.hook_z"][:, :, 1] == 0).all()
    assert (out - clean).abs().max() > 1e-3

    # patching from the clean cache of the same input: bit-identical everywhere
    head2 = (slice(None), slice(None), 2)
    out, c = forward(w, cfg, ids, edits={
        "blocks.1.attn.hook_z": replace_slice(cache["blocks.1.attn.hook_z"], head2),
        "blocks.0.hook_resid_pre": replace_slice(cache["blocks.0.hook_resid_pre"], (slice(None),))})
    assert torch.equal(out, clean)
    assert all(torch.equal(c[k], cache[k]) for k in cache)

    # patching head 2 of layer 1 from another input: only that head's z changes, output changes
    out, c = forward(w, cfg, ids, edits={
        "blocks.1.attn.hook_z": replace_slice(corrupt_cache["blocks.1.attn.hook_z"], head2)})
    assert torch.equal(c["blocks.1.attn.hook_z"][:, :, 2], corrupt_cache["blocks.1.attn.hook_z"][:, :, 2])
    assert torch.equal(c["blocks.1.attn.hook_z"][:, :, :2], cache["blocks.1.attn.hook_z"][:, :, :2])
    assert torch.equal(c["blocks.1.hook_resid_pre"], cache["blocks.1.hook_resid_pre"])
    assert (out - clean).abs().max() > 1e-3

    # an edit on blocks.0.hook_resid_pre propagates: the whole residual from the other input
    # gives the other input's output; a shift at position 3 moves positions >= 3 only (causal)
    out, c = forward(w, cfg, ids, edits={"blocks.0.hook_resid_pre": lambda x: corrupt_cache["blocks.0.hook_resid_pre"]})
    assert torch.equal(out, corrupt)
    assert torch.equal(c["hook_embed"], cache["hook_embed"])

    def shift(x):
        x = x.clone()
        x[:, 3] += torch.linspace(-1, 1, x.shape[-1], dtype=x.dtype)  # not constant: LN would remove it
        return x

    out, c = forward(w, cfg, ids, edits={"blocks.0.hook_resid_pre": shift})
    assert torch.equal(c["blocks.0.hook_resid_pre"], shift(cache["blocks.0.hook_resid_pre"]))
    assert torch.equal(out[:, :3], clean[:, :3])
    assert ((out[:, 3:] - clean[:, 3:]).abs().amax(-1) > 1e-6).all()


# --------------------------------------------------------------------------------------
# 5. The "real" embedding and row/column positions, worked by hand
# --------------------------------------------------------------------------------------


def _embedding_model(m, n):
    cfg = RefConfig(n_layers=1, n_heads=1, d_model=2, d_mlp=4, embedding="real", pos="row_column", m=m, n=n)
    sd = random_state_dict(cfg, d_vocab=2, d_out=1, n_ctx=m * n)
    sd["tok_embed.weight"] = torch.tensor([[2.0, -1.0], [7.0, 8.0]])  # value direction; mask vector
    sd["tok_embed.bias"] = torch.tensor([0.5, 0.25])
    return cfg, sd


def test_real_embedding_and_row_column_2x2():
    cfg, sd = _embedding_model(2, 2)
    sd["pos.row"] = torch.tensor([[10.0, 20.0], [30.0, 40.0]])
    sd["pos.column"] = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    ids = torch.tensor([[int(1.5 * 2**20), MASK_ID, int(-0.25 * 2**20), 3 * 2**20]])  # 1.5, ?, -0.25, 3
    out, cache = forward(weights_from_state_dict(sd, cfg), cfg, ids)
    embed = torch.tensor([[3.5, -1.25], [7.0, 8.0], [0.0, 0.5], [6.5, -2.75]], dtype=torch.float64)
    pos = torch.tensor([[11.0, 22.0], [13.0, 24.0], [31.0, 42.0], [33.0, 44.0]], dtype=torch.float64)
    assert torch.equal(cache["hook_embed"][0], embed)
    assert torch.equal(cache["hook_pos_embed"][0], pos)
    assert torch.equal(cache["blocks.0.hook_resid_pre"][0], embed + pos)
    assert out.shape == (1, 4, 1)


def test_row_column_2x3():
    cfg, sd = _embedding_model(2, 3)
    sd["pos.row"] = torch.tensor([[100.0, 200.0], [300.0, 400.0]])
    sd["pos.column"] = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    ids = torch.tensor([[MASK_ID] * 6])
    _, cache = forward(weights_from_state_dict(sd, cfg), cfg, ids)
    pos = [[101, 202], [103, 204], [105, 206], [301, 402], [303, 404], [305, 406]]
    assert torch.equal(cache["hook_pos_embed"][0], torch.tensor(pos, dtype=torch.float64))
    assert torch.equal(cache["hook_embed"][0], torch.tensor([[7.0, 8.0]] * 6, dtype=torch.float64))


# --------------------------------------------------------------------------------------
# The project's key set (names and shapes only: no project forward is run here)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("task, pos", [
    ({"name": "mws", "n_inputs": 6}, "learned"),
    ({"name": "lrmc", "m": 3, "n": 4, "rank": 1, "p_mask": 0.3, "encoding": "tokens"}, "row_column"),
    ({"name": "lrmc", "m": 3, "n": 4, "rank": 1, "p_mask": 0.3, "encoding": "real"}, "learned"),
    ({"name": "lrmc", "m": 3, "n": 4, "rank": 1, "p_mask": 0.3, "encoding": "real"}, "row_column"),
])
def test_reads_the_projects_state_dict(task, pos):
    pl = pytest.importorskip("plateau_lens")
    net = pl.build_network(pl.make_task(**task), pl.ModelConfig(n_layers=2, n_heads=2, d_model=8, pos_embedding=pos))
    sd = net.state_dict()
    real = task.get("encoding") == "real"
    cfg = RefConfig(n_layers=2, n_heads=2, d_model=8, d_mlp=sd["layers.0.mlp.fc_in.weight"].shape[0],
                    embedding="real" if real else "tokens", pos=pos, m=task.get("m"), n=task.get("n"))
    w = weights_from_state_dict(sd, cfg)  # raises on a missing or unused key
    ids = torch.full((2, 12), MASK_ID) if real else torch.zeros(2, 12, dtype=torch.long)
    out, _ = forward(w, cfg, ids)
    assert out.shape == (2, 12, sd["head.weight"].shape[0])
