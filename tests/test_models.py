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
    # set through the bridge: the native network computes with it too
    set_attention_bias(model.bridge, multiplier)
    assert torch.allclose(model.network(inputs), model(inputs), atol=1e-6)
    assert not torch.allclose(model.network(inputs), unbiased, atol=1e-4)
    set_attention_bias(model.bridge, None)
    assert torch.allclose(model.network(inputs), unbiased, atol=1e-6)
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
    assert model(data.inputs).shape[:2] == data.inputs.shape  # (mixed sizes: the drawn one's)


def test_bad_model_config():
    with pytest.raises(ValueError, match="d_model must be divisible by n_heads"):
        ModelConfig(d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="attention"):
        ModelConfig(attention="performer")
    with pytest.raises(ValueError, match="n_layers"):
        ModelConfig(n_layers=0)
    with pytest.raises(ValueError, match="pos_embedding"):
        ModelConfig(pos_embedding="alibi")
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


# ------------------------------------------------------------ architectures: gpt2 and bert
def fingerprint(network) -> tuple[float, float, int]:
    """Σ w·sin(i) and Σ w² over every initial weight in state-dict order, and their number:
    any change of value, order or shape moves the first."""
    flat = torch.cat([p.detach().double().flatten() for p in network.state_dict().values()])
    weights = torch.sin(torch.arange(flat.numel(), dtype=torch.float64))
    return (flat * weights).sum().item(), flat.pow(2).sum().item(), flat.numel()


PRE_LN_FINGERPRINTS = {  # computed with plateau-lens before the bert architecture existed
    ("tasks/mws.toml", 0): (4.7927607102866, 1024.0479381043183, 807680),
    ("tasks/mws.toml", 7): (-17.679805502150852, 1024.479428049215, 807680),
    ("tasks/lrmc_cpu_real.toml", 0): (-3.586272572472148, 1352.9563490581234, 795905),
    ("tasks/lrmc_cpu_rank2.toml", 1): (16.240578120008728, 1354.1672760953882, 797057),
    # the earlier tasks/lrmc.toml, now the named pre-LN option
    ("tasks/lrmc_preln.toml", 0): (-23.88584459100018, 14123.481849409844, 28393729),
}


@pytest.mark.parametrize("path, seed", sorted(PRE_LN_FINGERPRINTS))
def test_pre_ln_configs_build_the_same_initial_weights_as_before(path, seed):
    from plateau_lens import load_config

    network = build_model(load_config(ROOT / path), seed=seed).network
    ours = fingerprint(network)
    expected = PRE_LN_FINGERPRINTS[(path, seed)]
    assert ours[2] == expected[2]
    assert ours[0] == pytest.approx(expected[0], rel=1e-9, abs=1e-9)
    assert ours[1] == pytest.approx(expected[1], rel=1e-12)


def test_pre_ln_variants_build_the_same_initial_weights_as_before():
    """The token encoding with a zero MASK row, and row/column positions, pre-LN."""
    tokens = build_network(make_task("lrmc", m=4, n=4, rank=1, encoding="tokens"),
                           ModelConfig(n_layers=3, n_heads=2, d_model=16, attention="softmax",
                                       act_fn="gelu", mask_embedding="zero"), seed=5)
    assert fingerprint(tokens) == pytest.approx((9.707541889206443, 127.35512984628326, 42177),
                                                rel=1e-9)
    row_column = build_network(make_task("lrmc", m=3, n=5, rank=1),
                               ModelConfig(n_layers=2, n_heads=2, d_model=16, attention="softmax",
                                           act_fn="gelu", pos_embedding="row_column"), seed=5)
    assert fingerprint(row_column) == pytest.approx((6.367545530145678, 81.67618220518912, 6785),
                                                    rel=1e-9)


BERT_VARIANTS = {
    "tokens": (make_task("lrmc", m=3, n=4, rank=2, encoding="tokens"),
               ModelConfig(n_layers=2, n_heads=2, d_model=16, attention="softmax", act_fn="gelu",
                           architecture="bert", mask_embedding="zero", layer_norm_eps=1e-12)),
    "real_row_column": (make_task("lrmc", m=3, n=4, rank=2),
                        ModelConfig(n_layers=2, n_heads=2, d_model=16, attention="softmax",
                                    act_fn="gelu", architecture="bert", pos_embedding="row_column")),
    "causal_linear": (make_task("mws", n_inputs=5),
                      ModelConfig(n_layers=2, n_heads=2, d_model=16, attention="linear",
                                  architecture="bert")),
}


def close(ours, expected, tolerance=1e-5) -> bool:
    """|ours − expected| ≤ tolerance relative to the expected scale (≥ 1): float32 vs float64."""
    return (ours.double() - expected).abs().max().item() <= tolerance * max(1.0, expected.abs().max().item())


@pytest.mark.parametrize("variant", sorted(BERT_VARIANTS))
def test_post_ln_hooks_equal_the_reference_at_every_site(variant):
    """Every site of the reference's post-LN forward (``embed_ln.hook_out``, ``hook_resid_mid``
    = LN1's output, ``hook_resid_post`` = LN2's output, …), the bridge's output and the
    native fast path's residual stream equal the reference; there is no ln_final, and the
    read-out input is the last block's output. The token embedding alone is
    ``embed.hook_out``: on post-LN models TransformerLens aliases ``hook_embed`` to the
    embedding LayerNorm's output (BERT's embeddings output), as for its own BERT."""
    from perturbed import perturbed_model, reference, reference_config, sample
    from plateau_lens.analysis.fastpath.partial_forward import native_clean_pass
    from plateau_lens.metrics import readout_input_hook
    from reference import site_names

    task, config = BERT_VARIANTS[variant]
    model = perturbed_model(task, config, seed=2)
    batch = sample(task, 8)
    expected_output, expected = reference(model, batch.inputs)
    output, cache = model.bridge.run_with_cache(batch.inputs)
    assert close(output.double(), expected_output)
    for name in site_names(reference_config(model)):
        ours = "embed.hook_out" if name == "hook_embed" else name
        assert close(cache[ours].double(), expected[name]), name
    assert model.bridge.hook_dict["hook_embed"] is model.bridge.hook_dict["embed_ln.hook_out"]
    assert not any(name.startswith("ln_final") for name in model.bridge.hook_dict)
    assert readout_input_hook(model.bridge) == "blocks.1.hook_resid_post"
    native_output, residuals, patterns = native_clean_pass(model.network, batch.inputs,
                                                           keep_patterns=True)
    assert close(native_output.double(), expected_output)
    for layer in range(2):
        assert close(residuals[layer].double(), expected[f"blocks.{layer}.hook_resid_pre"])
        assert close(patterns[layer].double(), expected[f"blocks.{layer}.attn.hook_pattern"])
    assert close(residuals[2].double(), expected["blocks.1.hook_resid_post"])


def test_architecture_is_validated_and_the_embedding_layernorm_is_a_component():
    from plateau_lens.training.interventions import component_parameters

    with pytest.raises(ValueError, match=r"architecture must be one of \['gpt2', 'bert'\]"):
        ModelConfig(architecture="t5")
    with pytest.raises(ValueError, match="max_positions"):
        ModelConfig(max_positions=0)
    task, config = BERT_VARIANTS["tokens"]
    bert = build_network(task, config)
    assert set(component_parameters(bert, ["embed_ln"])) == {"ln_embed.weight", "ln_embed.bias"}
    assert "layers.0.ln1.weight" in component_parameters(bert, ["ln1"])
    with pytest.raises(ValueError, match=r"\['ln_final'\] select no parameter"):
        component_parameters(bert, ["ln_final"])
    with pytest.raises(ValueError, match=r"\['embed_ln'\] select no parameter"):
        component_parameters(build_network(*lrmc_setup()), ["embed_ln"])


def test_a_7x7_model_is_asked_about_other_sizes_with_enough_positions():
    """The OOD question of the study: a model built for 7×7 takes 7×9 and 9×9 inputs once
    its position table is long enough (built so, or extended after training)."""
    from plateau_lens.models import with_max_positions

    task = make_task("lrmc", m=7, n=7, rank=2, encoding="tokens")
    config = ModelConfig(n_layers=1, n_heads=2, d_model=16, attention="softmax",
                         architecture="bert", mask_embedding="zero")
    wide = make_task("lrmc", m=7, n=9, rank=2, encoding="tokens")
    batch, wide_batch = task.sample(4, step_generator(0, 0)), wide.sample(4, step_generator(0, 0))
    model = build_model((task, config))
    with pytest.raises(ValueError, match="input length 63 exceeds n_ctx=49"):
        model(wide_batch.inputs)
    extended = with_max_positions(model, 81)
    assert torch.equal(extended(batch.inputs), model(batch.inputs))  # the same model on 7×7
    assert extended(wide_batch.inputs).shape == (4, 63, 1)
    assert extended(make_task("lrmc", m=9, n=9, encoding="tokens").sample(
        2, step_generator(0, 0)).inputs).shape == (2, 81, 1)
    assert torch.equal(extended.network.pos.weight[:49], model.network.pos.weight)
    assert extended.network.pos.weight[49:].std().item() == pytest.approx(0.02, rel=0.3)
    built = build_model((task, ModelConfig(n_layers=1, n_heads=2, d_model=16,
                                           architecture="bert", max_positions=63)))
    assert built.network.cfg.n_ctx == 63 and built(wide_batch.inputs).shape == (4, 63, 1)
    with pytest.raises(ValueError, match="max_positions must be >= the task's 49 positions"):
        build_network(task, ModelConfig(max_positions=30))


SWEEPS = {"width": ("d_model", [64, 128, 256, 768]), "depth": ("n_layers", [2, 4, 6, 8, 12])}


def test_width_and_depth_sweep_configs_are_the_study_run_with_one_size_changed():
    """tasks/lrmc_sweeps/{width,depth}_*.toml: tasks/lrmc.toml with d_model (and d_mlp = 4d)
    or n_layers changed and nothing else; the smallest builds and runs."""
    from plateau_lens import load_config

    study = load_config(ROOT / "tasks/lrmc.toml").to_dict()
    files = sorted((ROOT / "tasks/lrmc_sweeps").glob("*.toml"))
    assert len(files) == 9
    for kind, (field, values) in SWEEPS.items():
        for value in values:
            config = load_config(ROOT / f"tasks/lrmc_sweeps/{kind}_{value}.toml")
            changed = {field: value} | ({"d_mlp": 4 * value} if kind == "width" else {})
            assert config.to_dict() == study | {"model": study["model"] | changed}
    config = load_config(ROOT / "tasks/lrmc_sweeps/width_64.toml")
    task = config.make_task()
    model = build_model(config)
    assert model(task.sample(2, step_generator(0, 0)).inputs).shape == (2, 49, 1)
