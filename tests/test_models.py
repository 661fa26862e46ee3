"""Models: attention direction, bridge/network weight sharing, fused vs materialised parity."""

import math
from pathlib import Path

import pytest
import torch

from plateau_lens import (ModelConfig, build_model, build_network, make_task, set_attention_bias,
                          wrap_in_bridge)
from plateau_lens.tasks import step_generator

ROOT = Path(__file__).resolve().parents[1]


def lrmc_setup(attention="softmax"):
    task = make_task("lrmc", m=4, n=4, rank=1)
    config = ModelConfig(n_layers=2, n_heads=2, d_model=16, attention=attention, act_fn="gelu")
    return task, config


def test_bidirectional_encoder_sees_the_last_position_from_the_first():
    task, config = lrmc_setup()
    model = build_model((task, config))
    assert model.cfg.attention_dir == "bidirectional"
    batch = task.sample(4, step_generator(0, 0))
    changed = batch.inputs.clone()
    changed[:, -1] = changed[:, -1] + 2**19  # a different real value at the last position
    first = model(batch.inputs)[:, 0]
    assert not torch.allclose(first, model(changed)[:, 0])


@pytest.mark.parametrize("attention", ["softmax", "linear"])
def test_causal_model_first_position_ignores_the_last(attention):
    task = make_task("mws")
    model = build_model((task, ModelConfig(d_model=32, attention=attention)))
    assert model.cfg.attention_dir == "causal"
    tokens = task.sample(4, step_generator(0, 0)).inputs
    changed = tokens.clone()
    changed[:, -1] = (changed[:, -1] + 1) % task.d_vocab
    out, out_changed = model(tokens), model(changed)
    assert torch.equal(out[:, 0], out_changed[:, 0])
    assert not torch.allclose(out[:, -1], out_changed[:, -1])


@pytest.mark.parametrize("attention", ["softmax", "linear"])
def test_bridge_matches_native_network_and_shares_its_weights(attention):
    task, config = lrmc_setup(attention)
    network = build_network(task, config, seed=1)
    bridge = wrap_in_bridge(network)
    inputs = task.sample(8, step_generator(0, 0)).inputs
    # fused scaled_dot_product_attention (network) vs materialised pattern (bridge)
    assert torch.allclose(network(inputs), bridge(inputs), atol=1e-5)
    assert {id(p) for p in bridge.parameters()} == {id(p) for p in network.parameters()}
    with torch.no_grad():  # one update on the network moves the bridge too
        for p in network.parameters():
            p.add_(0.01)
    assert torch.allclose(network(inputs), bridge(inputs), atol=1e-5)


def test_attention_bias_is_one_object_for_network_and_bridge():
    """Set on the network, the bridge computes with it too, and vice versa (no second copy
    that could disagree)."""
    task = make_task("mws", n_inputs=4)
    model = build_model((task, ModelConfig(d_model=16, n_heads=2)))
    inputs = task.sample(3, step_generator(0, 0)).inputs
    unbiased = model(inputs)
    multiplier = torch.full((8, 8), 3.0)
    set_attention_bias(model.network, multiplier)
    assert torch.allclose(model(inputs), model.network(inputs), atol=1e-6)
    assert not torch.allclose(model(inputs), unbiased, atol=1e-4)
    set_attention_bias(model, None)
    assert torch.allclose(model(inputs), unbiased, atol=1e-6)
    assert not any(name.startswith("plateau") for name in vars(model.bridge))


def test_seeded_init_is_deterministic():
    task, config = lrmc_setup()
    a, b = build_network(task, config, seed=3), build_network(task, config, seed=3)
    c = build_network(task, config, seed=4)
    for (name, pa), pb, pc in zip(a.named_parameters(), b.parameters(), c.parameters()):
        assert torch.equal(pa, pb), name
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters()))


def test_linear_attention_pattern_is_masked_scaled_scores():
    task = make_task("mws")
    model = build_model((task, ModelConfig(d_model=32, n_heads=2)))
    tokens = task.sample(2, step_generator(0, 0)).inputs
    _, cache = model.bridge.run_with_cache(tokens)
    q, k = cache["blocks.0.attn.hook_q"], cache["blocks.0.attn.hook_k"]
    q = q.reshape(2, 32, 2, 16).transpose(1, 2)
    k = k.reshape(2, 32, 2, 16).transpose(1, 2)
    expected = torch.tril(q @ k.transpose(-1, -2) / math.sqrt(16))
    assert torch.allclose(cache["blocks.0.attn.hook_pattern"], expected, atol=1e-6)


def test_hooks_cover_embedding_to_readout():
    task, config = lrmc_setup()
    model = build_model((task, config))
    _, cache = model.bridge.run_with_cache(task.sample(2, step_generator(0, 0)).inputs)
    for name in ["hook_embed", "hook_pos_embed", "blocks.0.hook_resid_pre",
                 "blocks.1.attn.hook_pattern", "blocks.1.hook_resid_post", "unembed.hook_in"]:
        assert name in cache, name
    assert cache["blocks.1.attn.hook_pattern"].shape == (2, 2, 16, 16)


def test_paper_lrmc_model_size():
    from plateau_lens import load_config

    config = load_config(ROOT / "tasks/lrmc.toml")
    assert (config.model.n_layers, config.model.n_heads, config.model.d_model,
            config.model.resolved_d_mlp) == (4, 8, 768, 3072)
    assert config.train.lr == 1e-4 and config.train.batch_size == 256
    assert config.train.steps == 50_000


@pytest.mark.parametrize("path", sorted(str(p) for p in (ROOT / "tasks").glob("*.toml")))
def test_every_shipped_config_builds_a_model_that_runs(path):
    """Each tasks/*.toml parses, and its model runs one forward on its own task's batch."""
    from plateau_lens import load_config

    config = load_config(path)
    task = config.make_task()
    model = build_model(config)
    data = task.sample(2, step_generator(0, 0))
    assert model(data.inputs).shape[:2] == (2, task.n_positions)


def test_bad_model_config():
    with pytest.raises(ValueError, match="d_model must be divisible by n_heads"):
        ModelConfig(d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="attention"):
        ModelConfig(attention="performer")
    with pytest.raises(ValueError, match="n_layers"):
        ModelConfig(n_layers=0)
    with pytest.raises(ValueError, match="pos_embedding"):
        ModelConfig(pos_embedding="sinusoidal")
    with pytest.raises(ValueError, match="needs a matrix task"):
        build_network(make_task("mws"), ModelConfig(pos_embedding="row_column"))


def test_row_column_position_embedding_is_row_plus_column():
    task = make_task("lrmc", m=3, n=5, rank=1)
    config = ModelConfig(n_layers=1, n_heads=2, d_model=16, attention="softmax",
                         pos_embedding="row_column")
    network = build_network(task, config, seed=0)
    model = wrap_in_bridge(network)
    batch = task.sample(2, step_generator(0, 0))
    output, cache = model.run_with_cache(batch.inputs)
    position = cache["hook_pos_embed"][0]
    for i in range(3):
        for j in range(5):  # row-major position 5·i + j
            assert torch.equal(position[5 * i + j], network.pos.row[i] + network.pos.column[j])
    assert torch.allclose(output, network(batch.inputs), atol=1e-6)
    assert model.W_pos.shape == (15, 16)
    assert sum(p.numel() for p in network.pos.parameters()) == (3 + 5) * 16
