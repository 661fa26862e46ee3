"""``architecture = "bert"`` is the matrix-completion study's model: a small model built this way,
its weights (all moved off their init) copied into a ``transformers.BertModel`` plus the study's
linear read-out, computes the same outputs, hidden states, attention patterns and sublayer
outputs; the full-size config has the study's parameter count and BERT's init."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from perturbed import perturbed_model
from plateau_lens import ModelConfig, load_config, make_task
from plateau_lens.models.build import build_network
from plateau_lens.tasks import step_generator

transformers = pytest.importorskip("transformers")

ROOT = Path(__file__).resolve().parents[1]
TASK = make_task("lrmc", m=3, n=4, rank=2, encoding="tokens")
CONFIG = ModelConfig(n_layers=2, n_heads=4, d_model=32, d_mlp=48, attention="softmax",
                     act_fn="gelu", layer_norm_eps=1e-12, architecture="bert",
                     mask_embedding="zero")


def to_bert(state: dict[str, torch.Tensor], config: ModelConfig, n_positions: int):
    """A ``BertModel`` (no pooler; token type 0 zeroed: the authors remove token-type
    embeddings) and an ``nn.Linear`` read-out holding the plateau-lens weights."""
    bert_config = transformers.BertConfig(
        vocab_size=state["tok_embed.weight"].shape[0], hidden_size=config.d_model,
        num_hidden_layers=config.n_layers, num_attention_heads=config.n_heads,
        intermediate_size=config.resolved_d_mlp, hidden_act="gelu",
        layer_norm_eps=config.layer_norm_eps, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, max_position_embeddings=n_positions,
        type_vocab_size=1, attn_implementation="eager")
    bert = transformers.BertModel(bert_config, add_pooling_layer=False).eval()
    theirs = {"embeddings.word_embeddings.weight": state["tok_embed.weight"],
              "embeddings.position_embeddings.weight": state["pos.weight"],
              "embeddings.token_type_embeddings.weight": torch.zeros(1, config.d_model),
              "embeddings.LayerNorm.weight": state["ln_embed.weight"],
              "embeddings.LayerNorm.bias": state["ln_embed.bias"]}
    names = {"attn.q": "attention.self.query", "attn.k": "attention.self.key",
             "attn.v": "attention.self.value", "attn.o": "attention.output.dense",
             "ln1": "attention.output.LayerNorm", "mlp.fc_in": "intermediate.dense",
             "mlp.fc_out": "output.dense", "ln2": "output.LayerNorm"}
    for layer in range(config.n_layers):
        for ours, hf in names.items():
            for kind in ("weight", "bias"):
                theirs[f"encoder.layer.{layer}.{hf}.{kind}"] = state[f"layers.{layer}.{ours}.{kind}"]
    missing, unexpected = bert.load_state_dict(theirs, strict=False)
    assert not unexpected and all("position_ids" in k or "token_type_ids" in k for k in missing), missing
    readout = torch.nn.Linear(config.d_model, 1)
    readout.load_state_dict({"weight": state["head.weight"], "bias": state["head.bias"]})
    return bert, readout


def run_bert(bert, readout, inputs):
    """Output and the activations we compare, from transformers' own modules."""
    seen = {}
    hooks = []
    for layer, block in enumerate(bert.encoder.layer):
        for module, name in [(block.attention.output.dense, "hook_attn_out"),
                             (block.attention.output, "hook_resid_mid"),
                             (block.output.dense, "hook_mlp_out")]:
            hooks.append(module.register_forward_hook(
                lambda m, i, o, key=f"blocks.{layer}.{name}": seen.__setitem__(key, o)))
    try:
        with torch.no_grad():
            result = bert(input_ids=inputs, attention_mask=torch.ones_like(inputs),
                          output_hidden_states=True, output_attentions=True)
            output = readout(result.last_hidden_state)
    finally:
        for hook in hooks:
            hook.remove()
    seen["embed_ln.hook_out"] = result.hidden_states[0]
    for layer in range(len(bert.encoder.layer)):
        seen[f"blocks.{layer}.hook_resid_pre"] = result.hidden_states[layer]
        seen[f"blocks.{layer}.hook_resid_post"] = result.hidden_states[layer + 1]
        seen[f"blocks.{layer}.attn.hook_pattern"] = result.attentions[layer]
    return output, seen


@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_bert_variant_equals_transformers_bert_with_the_studys_readout(dtype, tolerance):
    model = perturbed_model(TASK, CONFIG, seed=1)
    batch = TASK.sample(16, step_generator(0, 0))
    assert (batch.inputs == 0).any()  # MASK tokens (BERT's padding id) are in the input
    bert, readout = to_bert(model.network.state_dict(), CONFIG, TASK.n_positions)
    bert, readout = bert.to(dtype), readout.to(dtype)
    model.network.to(dtype)
    expected, activations = run_bert(bert, readout, batch.inputs)
    assert expected.abs().max() > 0.1
    assert (model.network(batch.inputs) - expected).abs().max().item() < tolerance
    output, cache = model.bridge.run_with_cache(batch.inputs)
    assert (output - expected).abs().max().item() < tolerance
    for name, value in activations.items():  # every hook means what BERT computes there
        assert (cache[name] - value).abs().max().item() < tolerance, name


def test_study_config_has_the_studys_parameter_count_and_bert_init(capsys):
    """tasks/lrmc.toml: 29 928 961 parameters, counted by hand from BERT's layout (2002-token
    vocabulary, 49 positions, embedding LayerNorm, 4 post-LN layers of d 768 / MLP 3072, the
    768 → 1 read-out), printed by ``plateau-lens train --dry-run``; N(0, 0.02) everywhere
    (output projections too: GPT-2 init would give 0.02/√8 = 0.0071), MASK's row 0, LayerNorms
    (1, 0), the read-out nn.Linear's default U(±1/√768)."""
    from plateau_lens.cli import dry_run, main

    v, p, d, f, layers = 2002, 49, 768, 3072, 4
    per_layer = 4 * (d * d + d) + (d * f + f) + (f * d + d) + 2 * 2 * d
    by_hand = v * d + p * d + 2 * d + layers * per_layer + d + 1
    assert by_hand == 29_928_961
    network = dry_run(load_config(ROOT / "tasks/lrmc.toml"))  # what `train --dry-run` prints
    printed = capsys.readouterr().out
    assert "parameters: 29 928 961" in printed and "architecture=bert" in printed
    assert sum(parameter.numel() for parameter in network.parameters()) == by_hand
    for name, parameter in network.named_parameters():
        if name.endswith(("q.weight", "k.weight", "v.weight", "o.weight", "fc_in.weight",
                          "fc_out.weight", "pos.weight")):
            assert parameter.std().item() == pytest.approx(0.02, rel=0.02), name
        elif name.startswith("layers") and name.endswith("bias"):
            assert not parameter.any(), name
    embed = network.tok_embed.weight
    assert not embed[0].any() and embed[1:].std().item() == pytest.approx(0.02, rel=0.01)
    for norm in [network.ln_embed] + [m for block in network.layers for m in (block.ln1, block.ln2)]:
        assert torch.equal(norm.weight, torch.ones(d)) and not norm.bias.any()
    bound = 1 / math.sqrt(d)
    assert network.head.weight.abs().max() <= bound and network.head.weight.std() > 0.8 * bound / math.sqrt(3)
    del network
    assert main(["train", str(ROOT / "tasks/mws.toml"), "--dry-run"]) == 0  # the CLI flag
    assert "parameters: 807 680" in capsys.readouterr().out  # minGPT 1 layer d 256, vocab 18


def test_mask_embedding_stays_zero_and_untrained():
    """MASK is BERT's padding id: its embedding row starts at 0 and gets no gradient, so a
    masked position carries only its position embedding (the study's setup)."""
    network = build_network(TASK, CONFIG, seed=0)
    initial = network.tok_embed.weight.detach().clone()
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-2)
    for step in range(3):
        batch = TASK.sample(8, step_generator(0, step))
        loss = TASK.loss(network(batch.inputs), batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert not network.tok_embed.weight[0].any()
    assert not torch.equal(network.tok_embed.weight[1:], initial[1:])  # the value rows learn
