"""Analyzers on models whose answer is known."""

import numpy as np
import pandas as pd
import pytest
import torch

from plateau_lens import (
    ModelConfig, ablate_heads, ablation_sweep, analyze_run, attention_structure, build_model,
    build_network, compare_to_nuclear_norm, copying_test, linear_probes, make_task,
    nuclear_norm_complete, patch_activations, patch_between_models, swap_attention, train,
    wrap_in_bridge,
)
import plateau_lens.analysis.ablation as ablation_module
from plateau_lens.interventions import set_attention_bias
from plateau_lens.analysis import remaining_hooks
from plateau_lens.analysis.attention_structure import mask_rows, uniform_baseline
from plateau_lens.analysis.partial_forward import forward_from_layer, hook_activations
from plateau_lens.analysis.probes import fit_least_squares, least_squares_from_moments
from plateau_lens.run import load_run
from plateau_lens.tasks import step_generator

LRMC = make_task("lrmc", m=4, n=4, rank=1)
CONFIG = ModelConfig(n_layers=2, n_heads=2, d_model=64, attention="softmax", act_fn="gelu")


def batch(task=LRMC, size=64, seed=0):
    return task.sample(size, step_generator(seed, 0))


def uniform_attention_model(task=LRMC, config=CONFIG):
    """Q = K = 0 everywhere: every softmax pattern is exactly uniform over attended keys."""
    network = build_network(task, config, seed=0)
    with torch.no_grad():
        for block in network.layers:
            for proj in (block.attn.q, block.attn.k):
                proj.weight.zero_()
                proj.bias.zero_()
    return wrap_in_bridge(network, task, config)


def sharp_attention_model(task=LRMC, config=CONFIG):
    network = build_network(task, config, seed=0)
    with torch.no_grad():
        for block in network.layers:
            block.attn.q.weight.mul_(60)
            block.attn.k.weight.mul_(60)
    return wrap_in_bridge(network, task, config)


# ----------------------------------------------------------------------------- ablation
def test_forward_from_layer_equals_the_full_pass_and_skips_earlier_blocks():
    model = build_model((LRMC, ModelConfig(n_layers=3, n_heads=2, d_model=32, attention="softmax")))
    data = batch(size=8)
    names = [f"blocks.{layer}.hook_resid_pre" for layer in range(3)]
    full, cache = model.run_with_cache(data.inputs, names_filter=lambda n: n in names)
    calls = {}

    def count(activation, hook):
        layer = int(hook.name.split(".")[1])  # the bridge names it blocks.{l}.hook_out
        calls[layer] = calls.get(layer, 0) + 1

    count_hooks = [(f"blocks.{layer}.hook_resid_post", count) for layer in range(3)]
    for layer in range(3):
        calls.clear()
        with model.hooks(fwd_hooks=count_hooks):
            resumed = forward_from_layer(model, cache[names[layer]], layer)
        assert torch.equal(resumed, full)
        assert calls == {later: 1 for later in range(layer, 3)}
    with pytest.raises(ValueError, match=r"layer must be in \[0, 2\]"):
        forward_from_layer(model, cache[names[0]], 3)


@pytest.mark.parametrize("mode", ["uniform", "mean"])
def test_ablating_uniform_attention_changes_nothing(mode):
    model, data = uniform_attention_model(), batch()
    result = ablate_heads(model, data, "all", mode=mode)
    assert set(result["metric"]) == {"loss", "masked_mse", "observed_mse", "masked_abs_pred"}
    assert np.allclose(result["clean"], result["ablated"], atol=1e-6)
    assert remaining_hooks(model) == 0


def test_ablating_causal_uniform_attention_changes_nothing():
    task = make_task("mws")
    config = ModelConfig(d_model=32, attention="softmax")
    model = uniform_attention_model(task, config)
    result = ablate_heads(model, batch(task), "all")
    assert set(result["metric"]) == {"loss", "accuracy"}
    assert np.allclose(result["clean"], result["ablated"], atol=1e-6)


def test_ablating_sharp_attention_changes_the_output():
    model, data = sharp_attention_model(), batch()
    result = ablate_heads(model, data, [(0, 1)]).set_index("metric")
    assert abs(result.loc["loss", "change"]) > 1e-3
    sweep = ablation_sweep(model, data)
    assert len(sweep) == 4 * (2 * 2 + 2)  # 4 metrics × (4 heads + 2 layers)
    assert set(sweep["scope"]) == {"head", "layer"}


@pytest.mark.parametrize("mode", ["uniform", "mean"])
@pytest.mark.parametrize("copies_per_forward", [None, 2, 1])
def test_ablation_sweep_rows_equal_single_full_ablations(mode, copies_per_forward, monkeypatch):
    """The sweep caches one clean pass and restarts each ablation at its layer, its copies
    stacked (all 3 per layer in one forward, or 2 + 1, or one each); every row equals
    ablating alone with a full forward."""
    model, data = sharp_attention_model(), batch()
    if copies_per_forward is not None:
        seq = data.inputs.shape[1]
        widest = seq * max(model.cfg.d_model, model.cfg.d_mlp, model.cfg.n_heads * seq)
        monkeypatch.setattr(ablation_module, "STACKED_ACTIVATION_BUDGET",
                            copies_per_forward * len(data) * widest)
        residual = torch.zeros(len(data), seq, model.cfg.d_model)
        assert ablation_module.copies_per_forward(model, residual, 3) == copies_per_forward
    sweep = ablation_sweep(model, data, mode=mode).set_index(["scope", "layer", "head", "metric"])
    for scope, layer, head, spec in [("head", 0, 1, [(0, 1)]), ("head", 1, 0, [(1, 0)]),
                                     ("layer", 1, None, 1), ("layer", 0, None, 0)]:
        single = ablate_heads(model, data, spec, mode=mode).set_index("metric")
        for metric in single.index:
            key = (scope, layer, np.nan if head is None else head, metric)
            row = sweep.loc[key] if head is not None else sweep.xs(
                (scope, layer, metric), level=["scope", "layer", "metric"]).iloc[0]
            assert row["ablated"] == pytest.approx(single.loc[metric, "ablated"], rel=1e-5, abs=1e-7)
        assert abs(single.loc["loss", "change"]) > 1e-4


@pytest.mark.parametrize("mode", ["uniform", "mean"])
def test_ablation_sweep_on_causal_linear_attention_equals_single_ablations(mode):
    """MWS with the study's linear attention (causal, no softmax): the sweep's shared patterns
    and stacked copies give the rows of single hooked ablations."""
    task = make_task("mws")
    config = ModelConfig(n_layers=2, n_heads=2, d_model=32, attention="linear")
    network = build_network(task, config, seed=0)
    with torch.no_grad():  # larger patterns, so that ablations change the loss visibly
        for block in network.layers:
            block.attn.q.weight.mul_(8)
            block.attn.k.weight.mul_(8)
    model, data = wrap_in_bridge(network, task, config), batch(task, size=32)
    sweep = ablation_sweep(model, data, mode=mode).set_index(["scope", "layer", "head", "metric"])
    for layer, head in [(0, 0), (1, 1)]:
        single = ablate_heads(model, data, [(layer, head)], mode=mode).set_index("metric")
        for metric in single.index:
            assert sweep.loc[("head", layer, head, metric), "ablated"] == pytest.approx(
                single.loc[metric, "ablated"], rel=1e-5, abs=1e-6)
    assert sweep["change"].abs().max() > 1e-4


def test_ablation_sweep_honours_hooks_of_the_users():
    """With a hook of the user's attached the sweep leaves the native fast path and takes the
    hooked forwards, so its rows are those of ablate_heads under the same hook."""
    model, data = sharp_attention_model(), batch()
    plain = ablation_sweep(model, data).set_index(["scope", "layer", "head", "metric"])

    def double_the_residual(residual, hook):
        return 2 * residual

    with model.hooks(fwd_hooks=[("blocks.0.hook_resid_post", double_the_residual)]):
        hooked = ablation_sweep(model, data).set_index(["scope", "layer", "head", "metric"])
        single = ablate_heads(model, data, [(1, 0)]).set_index("metric")
    assert remaining_hooks(model) == 0
    for metric in single.index:
        row = hooked.loc[("head", 1, 0, metric)]
        assert row["clean"] == pytest.approx(single.loc[metric, "clean"], rel=1e-5, abs=1e-7)
        assert row["ablated"] == pytest.approx(single.loc[metric, "ablated"], rel=1e-5, abs=1e-7)
    assert not np.allclose(hooked["clean"], plain["clean"], rtol=1e-3)


def test_ablation_sweep_sees_the_attention_bias_wherever_it_was_set():
    """A multiplier set on the bridge reaches the native network too (the sweep's fast path);
    one set on the network alone leaves the bridge's attention as it was, and the sweep then
    follows the bridge (hooked path): either way its rows are those of ablate_heads."""
    from plateau_lens.analysis.partial_forward import runs_native_modules

    multiplier = 1 + torch.rand(16, 16, generator=torch.Generator().manual_seed(0))
    data = batch()
    clean_loss = {}
    for set_on in ("bridge", "network"):
        model = sharp_attention_model()
        set_attention_bias(model if set_on == "bridge" else model.plateau_network, multiplier)
        assert runs_native_modules(model) == (set_on == "bridge")
        sweep = ablation_sweep(model, data).set_index(["scope", "layer", "head", "metric"])
        single = ablate_heads(model, data, [(0, 1)]).set_index("metric")
        for metric in single.index:
            row = sweep.loc[("head", 0, 1, metric)]
            assert row["clean"] == pytest.approx(single.loc[metric, "clean"], rel=1e-5, abs=1e-7)
            assert row["ablated"] == pytest.approx(single.loc[metric, "ablated"], rel=1e-5, abs=1e-7)
        clean_loss[set_on] = single.loc["loss", "clean"]
    unbiased = ablate_heads(sharp_attention_model(), data, [(0, 1)]).set_index("metric")
    assert abs(clean_loss["bridge"] - unbiased.loc["loss", "clean"]) > 1e-4
    assert clean_loss["network"] == unbiased.loc["loss", "clean"]


def test_ablation_sweep_follows_the_bridge_when_a_parameter_is_no_longer_shared():
    from plateau_lens.analysis.partial_forward import runs_native_modules

    model, data = sharp_attention_model(), batch()
    query = model.plateau_network.layers[0].attn.q
    query.weight = torch.nn.Parameter(torch.zeros_like(query.weight))  # the network's own now
    assert not runs_native_modules(model)
    sweep = ablation_sweep(model, data).set_index(["scope", "layer", "head", "metric"])
    single = ablate_heads(model, data, [(0, 1)]).set_index("metric")
    for metric in single.index:
        assert sweep.loc[("head", 0, 1, metric), "ablated"] == pytest.approx(
            single.loc[metric, "ablated"], rel=1e-5, abs=1e-7)


def test_native_residual_stream_equals_the_bridge_cache_and_user_hooks_are_honoured():
    model, data = sharp_attention_model(), batch(size=16)
    names = [f"blocks.{layer}.hook_resid_{kind}" for layer in range(2) for kind in ("pre", "post")]
    _, cache = model.run_with_cache(data.inputs, names_filter=lambda n: n in names)
    native = hook_activations(model, data.inputs, names)
    for name in names:
        assert torch.allclose(native[name], cache[name], atol=1e-5), name
    mixed = hook_activations(model, data.inputs, ["blocks.1.hook_resid_pre", "blocks.1.attn.hook_pattern"])
    assert mixed["blocks.1.attn.hook_pattern"].shape == (16, 2, 16, 16)

    def add_one(residual, hook):
        return residual + 1

    with model.hooks(fwd_hooks=[("blocks.0.hook_resid_post", add_one)]):
        hooked = hook_activations(model, data.inputs, ["blocks.1.hook_resid_pre"])
    assert torch.allclose(hooked["blocks.1.hook_resid_pre"], cache["blocks.1.hook_resid_pre"] + 1,
                          atol=1e-5)


def test_ablation_bad_input_leaves_no_hooks():
    model = sharp_attention_model()
    with pytest.raises(ValueError, match=r"head must be in \[0, 1\]"):
        ablate_heads(model, batch(), [(0, 2)])
    with pytest.raises(ValueError, match=r"layer must be in \[0, 1\]"):
        ablate_heads(model, batch(), 5)
    with pytest.raises(ValueError, match="mode"):
        ablate_heads(model, batch(), "all", mode="zero")
    with pytest.raises(ValueError, match="batch of a sequence task"):
        ablate_heads(model, batch(make_task("mws")), "all")
    with pytest.raises(ValueError, match="positions"):
        ablate_heads(model, batch(make_task("lrmc")), "all")
    assert remaining_hooks(model) == 0


def test_hooks_are_removed_when_the_metric_raises(monkeypatch):
    import plateau_lens.analysis.ablation as ablation

    model, data = sharp_attention_model(), batch()
    calls = {"n": 0}
    real = ablation.output_metrics

    def failing(*args):
        calls["n"] += 1
        if calls["n"] == 2:  # the ablated run, inside the hooks context
            raise RuntimeError("boom")
        return real(*args)

    monkeypatch.setattr(ablation, "output_metrics", failing)
    with pytest.raises(RuntimeError, match="boom"):
        ablate_heads(model, data, "all")
    assert remaining_hooks(model) == 0


# ----------------------------------------------------------------------------- patching
def test_patching_the_whole_final_residual_recovers_the_clean_run_exactly():
    model, data = sharp_attention_model(), batch()
    result = patch_activations(model, data, hooks="blocks.1.hook_resid_post", granularity="layer")
    clean = result[result["run"] == "clean"].iloc[0]
    corrupted = result[result["run"] == "corrupted"].iloc[0]
    patched = result[result["hook"] == "blocks.1.hook_resid_post"].iloc[0]
    for metric in ["masked_mse", "observed_mse", "masked_mse_vs_other"]:
        assert patched[metric] == pytest.approx(clean[metric], abs=1e-7)
    assert abs(corrupted["observed_mse"] - clean["observed_mse"]) > 1e-3
    # noising: the clean run with the corrupted final residual equals the corrupted run
    noised = patch_activations(model, data, hooks="blocks.1.hook_resid_post",
                               granularity="layer", direction="noise")
    row = noised[noised["hook"] == "blocks.1.hook_resid_post"].iloc[0]
    assert row["masked_mse"] == pytest.approx(corrupted["masked_mse"], abs=1e-7)
    assert remaining_hooks(model) == 0


def test_patching_per_head_and_position_shapes():
    model, data = sharp_attention_model(), batch(size=8)
    heads = patch_activations(model, data, hooks="attn.hook_z", granularity="head")
    patched = heads[heads["run"].str.startswith("patched")]
    assert len(patched) == 2 * 2 and set(patched["head"]) == {0, 1}
    positions = patch_activations(model, data, hooks="hook_resid_post", granularity="position")
    assert len(positions[positions["run"].str.startswith("patched")]) == 2 * 16
    # patching every head's z of the last layer equals patching the whole z
    whole = patch_activations(model, data, hooks="blocks.1.attn.hook_z", granularity="layer")
    assert whole.iloc[-1]["loss"] != patched.iloc[-1]["loss"]


def test_patching_between_identical_models_changes_nothing():
    model, data = sharp_attention_model(), batch()
    result = patch_between_models(model, model, data, hooks="attn.hook_z")
    target = result[result["run"] == "target"].iloc[0]
    for _, row in result[result["run"] == "patched"].iterrows():
        assert row["loss"] == pytest.approx(target["loss"], abs=1e-7)


def test_patching_bad_hook_name_is_clear_and_leaves_no_hooks():
    model = sharp_attention_model()
    with pytest.raises(ValueError, match="unknown hook name"):
        patch_activations(model, batch(), hooks="blocks.0.attn.hook_zz")
    with pytest.raises(ValueError, match="unknown hook name"):
        patch_activations(model, batch(), hooks="blocks.7.hook_resid_post")
    with pytest.raises(ValueError, match="per-head hook"):
        patch_activations(model, batch(), hooks="hook_resid_post", granularity="head")
    assert remaining_hooks(model) == 0


# -------------------------------------------------------------------------------- probes
def test_least_squares_recovers_a_planted_direction():
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(2000, 32, generator=generator)
    direction = torch.randn(32, 3, generator=generator)
    weights = fit_least_squares(features, features @ direction)
    assert torch.allclose(weights, direction, atol=1e-4)


def test_least_squares_on_rank_deficient_float32_features_ignores_rounding_noise():
    """Features of rank 4 in 32 dimensions (like embeddings), target linear + noise 0.1:
    the probe is the minimum-norm solution (small weights, test MSE ≈ 0.01), not a fit of
    the float32 rounding directions (weights ~1e4 with a plain lstsq)."""
    generator = torch.Generator().manual_seed(0)
    basis, readout = torch.randn(4, 32, generator=generator), torch.randn(4, 1, generator=generator)
    latent_train, latent_test = (torch.randn(n, 4, generator=generator) for n in (4000, 1000))
    noise_train, noise_test = (0.1 * torch.randn(n, 1, generator=generator) for n in (4000, 1000))
    weights = fit_least_squares(latent_train @ basis, latent_train @ readout + noise_train)
    minimum_norm = torch.linalg.pinv(basis) @ readout
    assert torch.allclose(weights, minimum_norm, atol=0.01)
    # linear_probes' path: the blocks of [F 1]ᵀ[F 1] and [F 1]ᵀy without the bias row/column
    features, targets = latent_train @ basis, latent_train @ readout + noise_train
    with_bias = torch.cat([features, torch.ones(len(features), 1)], 1).double()
    from_moments = least_squares_from_moments((with_bias.T @ with_bias)[:-1, :-1],
                                              (with_bias.T @ targets.double())[:-1])
    assert torch.allclose(from_moments, weights, atol=1e-6)
    test_mse = torch.mean((latent_test @ basis @ weights - latent_test @ readout - noise_test) ** 2)
    assert test_mse.item() == pytest.approx(0.01, rel=0.1)


def test_probe_reads_the_value_planted_by_the_embedding():
    """At the embeddings an observed entry is x·w + b + pos_p: exactly linear in x when every
    entry is observed and d > #positions; a masked position carries the mask vector instead."""
    all_observed = make_task("lrmc", m=4, n=4, rank=1, p_mask=0.0)
    model = build_model((all_observed, CONFIG))
    train_batch, test_batch = batch(all_observed, 512, 1), batch(all_observed, 128, 2)
    result = linear_probes(model, train_batch, test_batch, targets=["entry"],
                           hooks=["blocks.0.hook_resid_pre"])
    assert result.set_index("metric").loc["mse", "value"] < 1e-8
    model = build_model((LRMC, CONFIG))
    result = linear_probes(model, batch(size=512, seed=1), batch(size=128, seed=2),
                           targets=["is_masked", "column_index"], hooks=["blocks.0.hook_resid_pre"])
    scores = result.set_index("target")["value"]
    assert scores["is_masked"] == 1.0
    assert scores["column_index"] > 0.95
    logistic = linear_probes(model, batch(size=256, seed=1), batch(size=128, seed=2),
                             targets=["is_masked"], hooks=["blocks.0.hook_resid_pre"],
                             classifier="logistic")
    assert logistic["value"].iloc[0] == 1.0


def test_probes_report_every_layer_and_target():
    model = build_model((LRMC, CONFIG))
    result = linear_probes(model, batch(size=64, seed=1), batch(size=32, seed=2))
    assert sorted(result["layer"].unique()) == [0, 1, 2]
    assert set(result["target"]) == {"entry", "observed_row", "top_singular_vector",
                                     "row_index", "column_index", "is_masked"}
    with pytest.raises(ValueError, match="unknown probe target"):
        linear_probes(model, batch(), batch(), targets=["rank"])


# ------------------------------------------------------------------- attention structure
def test_uniform_attention_structure_matches_its_baseline():
    model, data = uniform_attention_model(), batch()
    result = attention_structure(model, data)
    expected = uniform_baseline(LRMC, data.observed.float().mean().item())
    for key, value in expected.items():
        assert np.allclose(result[key], value, atol=1e-6), key


def test_row_masking_hides_those_rows():
    data = mask_rows(LRMC, batch(), [0, 2])
    assert not data.observed[:, [0, 2]].any()
    with pytest.raises(ValueError, match="rows must be in"):
        mask_rows(LRMC, batch(), [4])


def test_copying_test_columns():
    result = copying_test(sharp_attention_model(), batch())
    assert {"observed_mse", "masked_abs_pred", "fill_copy_mse", "fill_true_mse"} <= set(result)


# ------------------------------------------------------------------------- nuclear norm
def test_nuclear_norm_recovers_a_low_rank_matrix():
    rng = np.random.default_rng(0)
    matrix = rng.uniform(-1, 1, (7, 1)) @ rng.uniform(-1, 1, (1, 7))
    observed = np.ones((7, 7), dtype=bool)
    observed[[0, 2, 4, 5, 6], [1, 3, 0, 6, 2]] = False
    completed = nuclear_norm_complete(matrix, observed)
    assert np.abs(completed - matrix).max() < 1e-4
    regularised = nuclear_norm_complete(matrix, observed, lam=1e-4)
    assert np.abs(regularised - matrix).max() < 0.05


def test_compare_to_nuclear_norm_table():
    result = compare_to_nuclear_norm(build_model((LRMC, CONFIG)), p_values=[0.2, 0.4],
                                     n_matrices=6, progress=False)
    assert len(result) == 4 and set(result["method"]) == {"model", "nuclear_norm"}
    assert (result[result["method"] == "nuclear_norm"]["masked_mse"] < 0.2).all()


# --------------------------------------------------------------------- surgery, run-level
def test_swap_attention_with_itself_is_identity_and_hybrids_mix_weights():
    pre, post = build_model((LRMC, CONFIG), seed=1), build_model((LRMC, CONFIG), seed=2)
    same = swap_attention(post, post, batch())
    assert np.allclose(same["loss"], same["loss"].iloc[0])
    mixed = swap_attention(pre, post, batch()).set_index("model")["loss"]
    assert len(set(np.round(mixed.values, 6))) == 4


def test_analyze_run_over_checkpoints(tmp_path, small_lrmc_config):
    run = load_run(train(small_lrmc_config, tmp_path / "run", progress=False))
    result = analyze_run(run, {"ablation": lambda m, b: ablate_heads(m, b, "all"),
                               "structure": attention_structure}, steps=[0, 12], batch_size=16,
                         progress=False)
    assert set(result["step"]) == {0, 12} and set(result["analyzer"]) == {"ablation", "structure"}
    with pytest.raises(ValueError, match="no checkpoints"):
        analyze_run(run, attention_structure, steps=[])
    with pytest.raises(ValueError, match="no checkpoint in"):
        analyze_run(run, attention_structure, steps=[3])
    assert isinstance(result, pd.DataFrame)


# -------------------------------------------------------------------------------- allocator
FAULTS_PER_ALLOCATION = """
import resource, sys, torch
if sys.argv[1] == "reuse":
    from plateau_lens.allocator import reuse_freed_memory
    assert reuse_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(2):  # warm-up: the heap grows to hold the buffer
    torch.ones(16 << 20)  # 64 MiB: above glibc's largest dynamic mmap threshold (32 MiB)
counts = []
for _ in range(10):
    before = faults()
    torch.ones(16 << 20)
    counts.append(faults() - before)
print(sorted(counts)[5])  # the median: now and then the heap grows once more
"""


@pytest.mark.skipif(__import__("platform").libc_ver()[0] != "glibc", reason="glibc mallopt only")
def test_reuse_freed_memory_stops_page_faults_on_repeated_buffers():
    """A 64 MiB buffer freed and allocated again costs 16 384 page faults (4 KiB pages) each
    time by default; with the heap kept, allocations after the warm-up cost none."""
    import subprocess
    import sys

    def faults(mode):
        result = subprocess.run([sys.executable, "-c", FAULTS_PER_ALLOCATION, mode],
                                capture_output=True, text=True, check=True)
        return float(result.stdout)

    assert faults("system") > 10_000
    assert faults("reuse") < 100


def test_reuse_freed_memory_refuses_a_threshold_outside_a_c_int():
    from plateau_lens.allocator import reuse_freed_memory

    for bad in (0, -1, 2 ** 31):
        with pytest.raises(ValueError, match=r"threshold_bytes must be in \[1, 2\*\*31 - 1\]"):
            reuse_freed_memory(bad)
