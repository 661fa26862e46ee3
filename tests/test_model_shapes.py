"""Model shapes from the config (issue 33): attention-only blocks, one layer, sinusoidal /
rotary / no positions, no LayerNorm, tied unembedding. Each against the independent float64
reference forward (tests/reference/forward.py, written from the equations) on perturbed
weights, through both the bridge and the native training network; the reference's own new
pieces (RoPE, the sinusoidal table) against hand-worked numbers; invalid combinations refused
with the fields named."""

from __future__ import annotations

import math

import pytest
import torch

from perturbed import perturbed_model, reference
from plateau_lens import ModelConfig, build_model
from plateau_lens.config import ConfigError
from plateau_lens.tasks import make_task
from reference.forward import RefConfig, pos_embed, rotate

SHAPES = {
    "attn_only": dict(attn_only=True, n_layers=2),
    "one_layer_no_layernorm": dict(normalization="none", n_layers=1, act_fn="relu"),
    "sinusoidal": dict(pos_embedding="sinusoidal", n_layers=2),
    "rotary": dict(pos_embedding="rotary", n_layers=2),
    "no_positions": dict(pos_embedding="none", n_layers=1),
    "tied": dict(tied_embeddings=True, n_layers=1),
    "all_at_once": dict(attn_only=True, normalization="none", pos_embedding="rotary",
                        tied_embeddings=True, n_layers=2),
}


@pytest.mark.parametrize("attention", ["softmax", "linear"])
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_shape_matches_reference_forward(shape, attention):
    task = make_task("mws")
    config = ModelConfig(d_model=32, n_heads=4, attention=attention, **SHAPES[shape])
    model = perturbed_model(task, config, seed=3)
    inputs = task.sample(4, torch.Generator().manual_seed(0)).inputs
    expected, expected_cache = reference(model, inputs)
    with torch.no_grad():
        bridge_out, cache = model.bridge.run_with_cache(inputs)
        network_out = model.network(inputs)
    last = f"blocks.{config.n_layers - 1}.hook_resid_post"
    assert _error(bridge_out, expected) < 1e-4
    assert _error(network_out, expected) < 1e-4
    assert _error(cache[last], expected_cache[last]) < 1e-4


def _error(found: torch.Tensor, expected: torch.Tensor) -> float:
    """max |found - expected| / max(1, max |expected|) (linear attention without LayerNorm
    reaches 1e6 on perturbed weights: relative there)."""
    assert found.shape == expected.shape
    return (found.double() - expected).abs().max().item() / max(1.0, expected.abs().max().item())


def test_shapes_build_what_they_say():
    task = make_task("mws")
    attn_only = build_model((task, ModelConfig(attn_only=True)))
    assert not any("mlp" in name for name in attn_only.network.state_dict())
    bare = build_model((task, ModelConfig(normalization="none")))
    assert not any(name.startswith("ln") or ".ln" in name for name in bare.network.state_dict())
    tied = build_model((task, ModelConfig(tied_embeddings=True)))
    assert tied.network.head.weight is tied.network.tok_embed.weight
    assert tied.bridge.W_U.data_ptr() == tied.network.tok_embed.weight.data_ptr()
    sinusoidal = build_model((task, ModelConfig(pos_embedding="sinusoidal")))
    assert "pos.weight" not in sinusoidal.network.state_dict()  # a fixed buffer, nothing to train


def test_reference_rope_and_sinusoid_by_hand():
    """RoPE on e = 2 turns (1, 0) at position p to (cos p, sin p) (theta_0 = 1); on e = 4 the
    second pair turns by p / 100 (base 10^4). Sinusoidal table, d = 4, p = 1:
    (sin 1, cos 1, sin 0.01, cos 0.01)."""
    x = torch.zeros(1, 3, 1, 4, dtype=torch.float64)
    x[..., 0] = 1.0
    x[..., 2] = 1.0
    turned = rotate(x, 10000.0)[0, :, 0]
    for p in range(3):
        expected = [math.cos(p), math.sin(p), math.cos(p / 100), math.sin(p / 100)]
        assert torch.allclose(turned[p], torch.tensor(expected, dtype=torch.float64))
    table = pos_embed({}, RefConfig(n_layers=1, n_heads=1, d_model=4, d_mlp=4, pos="sinusoidal"), 2)
    assert torch.allclose(table[1], torch.tensor([math.sin(1), math.cos(1), math.sin(0.01),
                                                  math.cos(0.01)], dtype=torch.float64))


@pytest.mark.parametrize("fields, named", [
    (dict(architecture="bert", normalization="none"), "model.normalization"),
    (dict(architecture="bert", attn_only=True), "model.attn_only"),
    (dict(architecture="bert", pos_embedding="rotary"), "model.pos_embedding"),
    (dict(architecture="bert", tied_embeddings=True), "model.tied_embeddings"),
    (dict(attn_only=True, d_mlp=64), "model.d_mlp"),
    (dict(pos_embedding="rotary", d_model=12, n_heads=4), "even d_head"),
    (dict(pos_embedding="none", max_positions=64), "model.max_positions"),
    (dict(pos_embedding="alibi"), "pos_embedding"),
    (dict(normalization="rms"), "normalization"),
])
def test_invalid_combinations_name_the_fields(fields, named):
    with pytest.raises((ConfigError, ValueError), match=named):
        ModelConfig(**fields)


def test_tied_needs_matching_vocabularies():
    from plateau_lens.models.build import check_model_for_task
    with pytest.raises(ValueError, match="model.tied_embeddings"):
        check_model_for_task(make_task("lrmc"), ModelConfig(tied_embeddings=True))
