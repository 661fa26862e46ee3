"""Every analyzer against an independent computation: the plain-torch reference forward of
``tests/reference`` (float64, written from the equations, validated against transformers),
numpy / scikit-learn / cvxpy, on models whose weights are all moved off their init."""

import numpy as np
import pandas as pd
import pytest
import torch

from perturbed import perturbed_model, reference, sample, task_metrics
from plateau_lens import (
    ModelConfig, ablate_heads, ablation_sweep, analyze_run, attention_progress,
    attention_structure, compare_to_nuclear_norm, copying_test, linear_probes, make_task,
    nuclear_norm_complete, patch_activations, patch_between_models, repetition,
    representation_collapse, swap_attention, train,
)
from plateau_lens.analysis import (ood_evaluation, permuted_positions, remaining_hooks, token_embedding_norms,
                                   wide)
from plateau_lens.analysis.attention_structure import mask_rows
from plateau_lens.analysis.fastpath.clean_pass import hook_activations
from plateau_lens.analysis.fastpath.partial_forward import forward_from_layer, runs_native_modules
from plateau_lens.analysis.probes import fit_least_squares, refined_least_squares
from plateau_lens.models.attention_bias import attention_bias_multiplier
from plateau_lens.runs.load import load_run
from reference import replace_slice

LRMC = make_task("lrmc", m=3, n=4, rank=1)
LRMC_CONFIG = ModelConfig(n_layers=2, n_heads=2, d_model=16, attention="softmax", act_fn="gelu")
MWS = make_task("mws", n_inputs=5)
MWS_CONFIG = ModelConfig(n_layers=2, n_heads=2, d_model=16, attention="linear")
BERT = make_task("lrmc", m=3, n=4, rank=1, encoding="tokens")
BERT_CONFIG = ModelConfig(n_layers=2, n_heads=2, d_model=16, attention="softmax", act_fn="gelu",
                          architecture="bert", mask_embedding="zero", layer_norm_eps=1e-12)
"""The matrix-completion study's architecture (post-LN, embedding LayerNorm, value tokens)."""
GPT = make_task("lrmc_gpt", m=2, n=3, rank=1)
GPT_CONFIG = ModelConfig(n_layers=2, n_heads=2, d_model=16, attention="softmax")
"""The study's GPT variant: the masked matrix, SEP, the full matrix, next-token prediction."""
MODELS = {"lrmc": (LRMC, LRMC_CONFIG), "mws": (MWS, MWS_CONFIG), "bert": (BERT, BERT_CONFIG),
          "gpt": (GPT, GPT_CONFIG)}
MATRIX_MODELS = ["lrmc", "bert"]
ALL = slice(None)


def metrics_of(frame, **where) -> dict[str, float]:
    """``{metric: value}`` of the rows matching every ``column=value``."""
    selected = frame
    for column, value in where.items():
        selected = selected[selected[column].isna()] if value is None else selected[selected[column] == value]
    return dict(zip(selected["metric"], selected["value"]))


def assert_metrics_equal(ours: dict, expected: dict, rel=1e-5, abs=1e-6):
    assert set(ours) >= set(expected), (sorted(ours), sorted(expected))
    for name, value in expected.items():
        assert ours[name] == pytest.approx(value, rel=rel, abs=abs), name


def ablated_pattern(pattern, heads, mode, causal, clean_pattern):
    """The reference's edit of ``hook_pattern``: the heads' patterns set to uniform over the
    attended keys (1/N, or 1/(i+1) under a causal mask) or to their batch mean."""
    new = pattern.clone()
    n_query, n_key = pattern.shape[-2:]
    for head in heads:
        if mode == "mean":
            new[:, head] = clean_pattern[:, head].mean(0)
        elif causal:
            new[:, head] = torch.tensor([[1.0 / (q + 1) if k <= q else 0.0 for k in range(n_key)]
                                         for q in range(n_query)], dtype=pattern.dtype)
        else:
            new[:, head] = 1.0 / n_key
    return new


def reference_ablation(model, batch, heads_by_layer, mode):
    _, clean_cache = reference(model, batch.inputs)
    causal = model.task.attention_dir == "causal"
    edits = {f"blocks.{layer}.attn.hook_pattern":
             (lambda p, heads=heads, layer=layer: ablated_pattern(
                 p, heads, mode, causal, clean_cache[f"blocks.{layer}.attn.hook_pattern"]))
             for layer, heads in heads_by_layer.items()}
    output, _ = reference(model, batch.inputs, edits)
    return task_metrics(model.task, output, batch)


# ----------------------------------------------------------------------------- ablation
@pytest.mark.parametrize("kind, mode", [(kind, mode) for kind in ("lrmc", "mws", "bert")
                                        for mode in ("uniform", "mean")] + [("gpt", "mean")])
def test_ablate_heads_equals_the_reference_with_replaced_patterns(kind, mode):
    task, config = MODELS[kind]
    model, batch = perturbed_model(task, config), sample(task, 16)
    clean, _ = reference(model, batch.inputs)
    for heads, by_layer in [([(0, 1)], {0: [1]}), ([(1, 0), (1, 1)], {1: [0, 1]}),
                            ([(0, 0), (1, 1)], {0: [0], 1: [1]})]:
        result = ablate_heads(model, batch, heads, mode=mode)
        assert_metrics_equal(metrics_of(result, condition="clean"), task_metrics(task, clean, batch))
        expected = reference_ablation(model, batch, by_layer, mode)
        assert_metrics_equal(metrics_of(result, condition="ablated"), expected)
        assert abs(expected["loss"] - task_metrics(task, clean, batch)["loss"]) > 1e-4
    assert remaining_hooks(model.bridge) == 0


SWEEP_CASES = [(kind, mode, path) for kind in ("lrmc", "mws") for mode in ("uniform", "mean")
               for path in ("native", "hooked")]
SWEEP_CASES += [("bert", "uniform", "native"), ("bert", "mean", "hooked"), ("gpt", "mean", "native")]


@pytest.mark.parametrize("kind, mode, path", SWEEP_CASES)
def test_ablation_sweep_rows_equal_the_reference(kind, mode, path):
    """Every row of the sweep (each head alone, each whole layer), on the native fast path
    and on the hooked path (forced by a no-op hook of the user's), equals the reference."""
    task, config = MODELS[kind]
    model, batch = perturbed_model(task, config, seed=1), sample(task, 16, seed=1)
    noop = [("hook_embed", lambda activation, hook: activation)] if path == "hooked" else []
    with model.bridge.hooks(fwd_hooks=noop):
        assert runs_native_modules(model) == (path == "native")
        sweep = ablation_sweep(model, batch, mode=mode, progress=False)
    n_metrics = len(task_metrics(task, reference(model, batch.inputs)[0], batch))
    assert len(sweep) == 2 * n_metrics * (4 + 2)  # clean + ablated, 4 heads + 2 layers
    for layer in range(2):
        for head in range(2):
            ours = metrics_of(sweep, scope="head", layer=layer, head=head, condition="ablated")
            assert_metrics_equal(ours, reference_ablation(model, batch, {layer: [head]}, mode))
        ours = metrics_of(sweep, scope="layer", layer=layer, head=None, condition="ablated")
        assert_metrics_equal(ours, reference_ablation(model, batch, {layer: [0, 1]}, mode))


def test_ablation_sweep_with_the_attention_bias_equals_the_reference():
    model, batch = perturbed_model(MWS, MWS_CONFIG, seed=2), sample(MWS, 16)
    model.set_attention_bias(attention_bias_multiplier(MWS, 2.5))
    assert runs_native_modules(model)
    sweep = ablation_sweep(model, batch, progress=False)
    assert_metrics_equal(metrics_of(sweep, scope="head", layer=1, head=0, condition="ablated"),
                         reference_ablation(model, batch, {1: [0]}, "uniform"))
    assert_metrics_equal(metrics_of(sweep, scope="head", layer=1, head=0, condition="clean"),
                         task_metrics(MWS, reference(model, batch.inputs)[0], batch))


def test_ablation_sweep_follows_the_bridge_when_a_parameter_is_no_longer_shared():
    model, batch = perturbed_model(LRMC, LRMC_CONFIG), sample(LRMC, 16)
    query = model.network.layers[0].attn.q
    query.weight = torch.nn.Parameter(torch.zeros_like(query.weight))  # the network's own now
    assert not runs_native_modules(model)
    sweep = ablation_sweep(model, batch, progress=False)
    single = ablate_heads(model, batch, [(0, 1)])
    assert_metrics_equal(metrics_of(sweep, scope="head", layer=0, head=1, condition="ablated"),
                         metrics_of(single, condition="ablated"), rel=1e-6, abs=1e-7)


@pytest.mark.parametrize("kind", MATRIX_MODELS)
def test_forward_from_layer_equals_the_full_pass_and_skips_earlier_blocks(kind):
    task, config = MODELS[kind]
    model = perturbed_model(task, ModelConfig(**{**config.to_dict(), "n_layers": 3}))
    batch = sample(task, 8)
    names = [f"blocks.{layer}.hook_resid_pre" for layer in range(3)]
    full, cache = model.bridge.run_with_cache(batch.inputs, names_filter=lambda n: n in names)
    calls = {}

    def count(activation, hook):
        layer = int(hook.name.split(".")[1])
        calls[layer] = calls.get(layer, 0) + 1

    for layer in range(3):
        calls.clear()
        with model.bridge.hooks(fwd_hooks=[(f"blocks.{l}.hook_resid_post", count) for l in range(3)]):
            resumed = forward_from_layer(model, cache[names[layer]], layer)
        assert torch.equal(resumed, full)
        assert calls == {later: 1 for later in range(layer, 3)}
    with pytest.raises(ValueError, match=r"layer must be in \[0, 2\]"):
        forward_from_layer(model, cache[names[0]], 3)


@pytest.mark.parametrize("kind", MATRIX_MODELS)
def test_native_residual_stream_equals_the_reference_and_user_hooks_are_honoured(kind):
    task, config = MODELS[kind]
    model, batch = perturbed_model(task, config), sample(task, 8)
    names = [f"blocks.{layer}.hook_resid_{kind}" for layer in range(2) for kind in ("pre", "post")]
    _, expected = reference(model, batch.inputs)
    native = hook_activations(model, batch.inputs, names)
    for name in names:
        assert torch.allclose(native[name].double(), expected[name], atol=1e-5), name

    def add_one(residual, hook):
        return residual + 1

    with model.bridge.hooks(fwd_hooks=[("blocks.0.hook_resid_post", add_one)]):
        hooked = hook_activations(model, batch.inputs, ["blocks.1.hook_resid_pre"])
    assert torch.allclose(hooked["blocks.1.hook_resid_pre"].double(),
                          expected["blocks.1.hook_resid_pre"] + 1, atol=1e-5)


def test_ablation_bad_input_is_refused_before_any_work_and_leaves_no_hooks():
    model, batch = perturbed_model(LRMC, LRMC_CONFIG), sample(LRMC, 8)
    cases = [
        (dict(heads=[(0, 2)]), r"head must be in \[0, 1\]"),
        (dict(heads=5), r"layer must be in \[0, 1\]"),
        (dict(heads=[(0.7, 0.2)]), r"\(layer, head\) integer pairs"),
        (dict(heads=[]), "heads is empty"),
        (dict(mode="zero"), "mode must be one of"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            ablate_heads(model, batch, **kwargs)
    with pytest.raises(ValueError, match="batch must be a MatrixBatch"):
        ablate_heads(model, sample(MWS, 4))
    with pytest.raises(ValueError, match="positions"):
        ablate_heads(model, sample(make_task("lrmc"), 4))
    with pytest.raises(ValueError, match="batch is empty"):
        ablation_sweep(model, batch[:0])
    tokens = perturbed_model(MWS, MWS_CONFIG)
    out_of_vocab = sample(MWS, 4)
    out_of_vocab.tokens[0, 0] = 99
    with pytest.raises(ValueError, match=r"token ids must be in \[0, 17\]"):
        ablate_heads(tokens, out_of_vocab)
    assert remaining_hooks(model.bridge) == 0


def test_hooks_are_removed_when_the_metric_raises(monkeypatch):
    import plateau_lens.analysis.ablation as ablation

    model, batch = perturbed_model(LRMC, LRMC_CONFIG), sample(LRMC, 8)
    calls = {"n": 0}
    real = ablation.finite_scalar_metrics

    def failing(*args):
        calls["n"] += 1
        if calls["n"] == 2:  # the ablated run, inside the hooks context
            raise RuntimeError("boom")
        return real(*args)

    monkeypatch.setattr(ablation, "finite_scalar_metrics", failing)
    with pytest.raises(RuntimeError, match="boom"):
        ablate_heads(model, batch, "all")
    assert calls["n"] == 2 and remaining_hooks(model.bridge) == 0


# ----------------------------------------------------------------------------- patching
PER_HEAD = ["attn.hook_z", "attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_pattern"]
POSITIONAL = ["hook_resid_pre", "hook_resid_post", "hook_attn_out", "hook_mlp_out"]


def site_index(hook: str, granularity: str, head, position):
    """The slice of one site, written out from the TransformerLens shapes: per-head vectors
    [b p h d], patterns [b h q k], the rest [b p d]."""
    if granularity == "layer":
        return (ALL,)
    pattern = hook.endswith("hook_pattern")
    if granularity == "head":
        return (ALL, head) if pattern else (ALL, ALL, head)
    return (ALL, ALL, position) if pattern else (ALL, position)


def check_patched_rows(result, source_cache, target_inputs, model, truth, corrupted=None,
                       positions=None):
    """Each ``patched`` site (restricted to ``positions`` when given) equals the reference
    run on ``target_inputs`` with that one site taken from ``source_cache``; returns the
    number of sites in the result."""
    patched = result[result["condition"] == "patched"]
    sites = patched.groupby(["hook", "head", "position"], dropna=False)
    for (hook, head, position), rows in sites:
        head = None if pd.isna(head) else int(head)
        position = None if pd.isna(position) else int(position)
        if positions is not None and position not in positions:
            continue
        granularity = "head" if head is not None else "position" if position is not None else "layer"
        index = site_index(hook, granularity, head, position)
        output, _ = reference(model, target_inputs, {hook: replace_slice(source_cache[hook], index)})
        expected = task_metrics(model.task, output, truth)
        if corrupted is not None:
            expected |= {f"{k}_vs_corrupted": v for k, v in task_metrics(model.task, output, corrupted).items()}
        assert_metrics_equal(dict(zip(rows["metric"], rows["value"])), expected)
    return sites.ngroups


@pytest.mark.parametrize("kind", ["lrmc", "mws"])
@pytest.mark.parametrize("direction", ["denoise", "noise"])
def test_patch_activations_equals_the_reference_at_every_site(kind, direction):
    task, config = MODELS[kind]
    model, clean = perturbed_model(task, config), sample(task, 8)
    if kind == "lrmc":
        corrupted = task.with_inputs(clean, matrix=-clean.matrix)  # the study's −X, same mask
    else:
        corrupted = sample(task, 8, seed=5)
    _, clean_cache = reference(model, clean.inputs)
    _, corrupted_cache = reference(model, corrupted.inputs)
    source_cache, target = ((clean_cache, corrupted) if direction == "denoise"
                            else (corrupted_cache, clean))
    n_positions = task.n_positions
    # every hook at every granularity; per position, the last block's hooks and three
    # positions (first, middle, last) checked against the reference, all counted
    last_block = [f"blocks.1.{hook}" for hook in PER_HEAD + POSITIONAL]
    for granularity, hooks in [("head", PER_HEAD), ("position", last_block),
                               ("layer", PER_HEAD + POSITIONAL)]:
        result = patch_activations(model, clean, corrupted if kind == "mws" else None, hooks=hooks,
                                   granularity=granularity, direction=direction, progress=False)
        positions = {0, n_positions // 2, n_positions - 1}
        sites = check_patched_rows(result, source_cache, target.inputs, model, clean, corrupted,
                                   positions if granularity == "position" else None)
        layers = 1 if granularity == "position" else 2
        sites_per_hook = {"head": 2, "position": n_positions, "layer": 1}[granularity]
        assert sites == layers * len(hooks) * sites_per_hook
        assert_metrics_equal(metrics_of(result, condition="clean"),
                             task_metrics(task, reference(model, clean.inputs)[0], clean))
    assert remaining_hooks(model.bridge) == 0


def minus_x(kind, task, clean):
    """The study's corruption written out: −X with the same mask (GPT variant: value token
    t ↦ 402 − t, MASK and SEP kept)."""
    if kind != "gpt":
        return task.with_inputs(clean, matrix=-clean.matrix)
    tokens = clean.tokens.clone()
    values = (tokens >= 1) & (tokens <= 401)
    tokens[values] = 402 - tokens[values]
    return type(clean)(tokens=tokens, prompt_length=clean.prompt_length, task_name=clean.task_name)


@pytest.mark.parametrize("kind, direction", [("bert", "denoise"), ("gpt", "noise")])
def test_patching_on_the_studys_variants_equals_the_reference(kind, direction):
    """The post-LN BERT and the GPT variant, with their default corruption (−X): every
    per-head site of each head, and every residual-stream site of each layer, against the
    reference (the full site sweep above runs on the pre-LN models)."""
    task, config = MODELS[kind]
    model, clean = perturbed_model(task, config, seed=8), sample(task, 8)
    corrupted = minus_x(kind, task, clean)
    _, clean_cache = reference(model, clean.inputs)
    _, corrupted_cache = reference(model, corrupted.inputs)
    source_cache, target = ((clean_cache, corrupted) if direction == "denoise"
                            else (corrupted_cache, clean))
    for granularity, hooks in [("head", PER_HEAD), ("layer", POSITIONAL)]:
        result = patch_activations(model, clean, hooks=hooks, granularity=granularity,
                                   direction=direction, progress=False)
        sites = check_patched_rows(result, source_cache, target.inputs, model, clean, corrupted)
        assert sites == 2 * len(hooks) * (2 if granularity == "head" else 1)
    assert remaining_hooks(model.bridge) == 0


def test_default_patching_is_per_head_hook_z_against_minus_x():
    """The default call patches each head's z (before the output projection) of every layer
    from X into −X, as a manual hook on that head would."""
    model, clean = perturbed_model(LRMC, LRMC_CONFIG, seed=3), sample(LRMC, 8)
    result = patch_activations(model, clean)
    corrupted = LRMC.with_inputs(clean, matrix=-clean.matrix)
    _, clean_cache = reference(model, clean.inputs)
    assert set(result.loc[result["condition"] == "patched", "hook"]) == {
        "blocks.0.attn.hook_z", "blocks.1.attn.hook_z"}
    assert check_patched_rows(result, clean_cache, corrupted.inputs, model, clean, corrupted) == 4

    def manual(z, hook):  # a manual hook on head 1 of layer 1, with TransformerLens' shapes
        z = z.clone()
        z[:, :, 1] = clean_z[:, :, 1]
        return z

    _, ours = model.bridge.run_with_cache(clean.inputs)
    clean_z = ours["blocks.1.attn.hook_z"]
    with model.bridge.hooks(fwd_hooks=[("blocks.1.attn.hook_z", manual)]):
        manual_output = model(corrupted.inputs)
    row = metrics_of(result, condition="patched", hook="blocks.1.attn.hook_z", head=1)
    assert_metrics_equal(row, task_metrics(LRMC, manual_output, clean))


@pytest.mark.parametrize("granularity", ["layer", "head", "position"])
def test_patch_between_models_equals_the_reference(granularity):
    source = perturbed_model(LRMC, LRMC_CONFIG, seed=4)
    target = perturbed_model(LRMC, LRMC_CONFIG, seed=5)
    batch = sample(LRMC, 8)
    hooks = {"head": PER_HEAD, "layer": PER_HEAD + POSITIONAL,
             "position": [f"blocks.0.{hook}" for hook in PER_HEAD + POSITIONAL]}[granularity]
    result = patch_between_models(source, target, batch, hooks=hooks, granularity=granularity,
                                  progress=False)
    _, source_cache = reference(source, batch.inputs)
    positions = {0, 5, LRMC.n_positions - 1} if granularity == "position" else None
    sites = check_patched_rows(result, source_cache, batch.inputs, target, batch, positions=positions)
    layers = 1 if granularity == "position" else 2
    assert sites == layers * len(hooks) * {"layer": 1, "head": 2, "position": LRMC.n_positions}[granularity]
    assert_metrics_equal(metrics_of(result, condition="source"),
                         task_metrics(LRMC, reference(source, batch.inputs)[0], batch))
    assert_metrics_equal(metrics_of(result, condition="target"),
                         task_metrics(LRMC, reference(target, batch.inputs)[0], batch))


def test_patching_bad_input_is_clear_and_leaves_no_hooks():
    model, batch = perturbed_model(LRMC, LRMC_CONFIG), sample(LRMC, 8)
    for kwargs, message in [(dict(hooks="blocks.0.attn.hook_zz"), "unknown hook name"),
                            (dict(hooks="blocks.7.hook_resid_post"), "unknown hook name"),
                            (dict(hooks="hook_resid_post", granularity="head"), "per-head hook"),
                            (dict(granularity="neuron"), "granularity must be one of"),
                            (dict(direction="sideways"), "direction must be one of"),
                            (dict(hooks=[]), "hooks is empty")]:
        with pytest.raises(ValueError, match=message):
            patch_activations(model, batch, **kwargs)
    with pytest.raises(ValueError, match="no default corruption"):
        patch_activations(perturbed_model(MWS, MWS_CONFIG), sample(MWS, 4))
    wider = perturbed_model(LRMC, ModelConfig(n_layers=2, n_heads=4, d_model=32, attention="softmax"))
    with pytest.raises(ValueError, match="n_heads: 4 != 2"):
        patch_between_models(wider, model, batch)
    assert remaining_hooks(model.bridge) == 0


# -------------------------------------------------------------------------------- probes
def assert_regression_probes_equal_lstsq(result, task, train_batch, test_batch, x_train, x_test,
                                         rel, **where):
    """The ``entry`` and ``observed_row`` probes' mse / mse_masked / mse_observed in ``result``
    (rows matching ``where``) against numpy.linalg.lstsq (no bias) on [n·m·n, d] features, with
    the targets written out: X's entries, and each entry's row of X with masked entries 0."""
    m, n = task.m, task.n
    targets = {
        "entry": lambda b: b.matrix.reshape(len(b), m * n, 1),
        "observed_row": lambda b: (b.matrix * b.observed).repeat_interleave(n, dim=1),
    }
    masked = (~test_batch.observed).reshape(-1).numpy()
    for name, values in targets.items():
        y_train = values(train_batch).reshape(len(x_train), -1).double().numpy()
        y_test = values(test_batch).reshape(len(x_test), -1).double().numpy()
        error = (x_test @ np.linalg.lstsq(x_train, y_train, rcond=None)[0] - y_test) ** 2
        ours = metrics_of(result, target=name, **where)
        assert ours["mse"] == pytest.approx(error.mean(), rel=rel), name
        assert ours["mse_masked"] == pytest.approx(error[masked].mean(), rel=rel), name
        assert ours["mse_observed"] == pytest.approx(error[~masked].mean(), rel=rel), name


@pytest.mark.parametrize("kind", MATRIX_MODELS)
def test_linear_probes_equal_numpy_lstsq_and_sklearn_on_reference_activations(kind):
    """Regression probes: least squares without bias (numpy.linalg.lstsq on the reference's
    residual stream); class probes: ridge regression on [F 1] onto one-hot labels, argmax
    (scikit-learn's Ridge, penalising the bias column like the closed form)."""
    from sklearn.linear_model import Ridge

    task, config = MODELS[kind]
    model = perturbed_model(task, config)
    train_batch, test_batch = sample(task, 256, seed=1), sample(task, 64, seed=2)
    result = linear_probes(model, train_batch, test_batch)
    _, train_cache = reference(model, train_batch.inputs)
    _, test_cache = reference(model, test_batch.inputs)
    m, n = task.m, task.n
    for hook in ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]:
        x_train = train_cache[hook].reshape(-1, 16).numpy()
        x_test = test_cache[hook].reshape(-1, 16).numpy()
        assert_regression_probes_equal_lstsq(result, task, train_batch, test_batch, x_train, x_test,
                                             rel=1e-6, hook=hook)
        rows = np.repeat(np.arange(m), n)
        labels_train = np.tile(rows, len(train_batch))
        labels_test = np.tile(rows, len(test_batch))
        with_bias = np.hstack([x_train, np.ones((len(x_train), 1))])
        ridge = Ridge(alpha=1e-3 * len(x_train), fit_intercept=False).fit(with_bias, np.eye(m)[labels_train])
        predicted = ridge.predict(np.hstack([x_test, np.ones((len(x_test), 1))])).argmax(1)
        assert metrics_of(result, hook=hook, target="row_index")["accuracy"] == pytest.approx(
            (predicted == labels_test).mean())
        assert set(result.loc[result["hook"] == hook, "layer"]) == {int(hook.split(".")[1])}


def test_probe_fit_matches_lstsq_on_ill_conditioned_features():
    """A post-LN model whose last LayerNorm gains span 1e-5..1 (bias 1), so the residual
    stream it writes has cond(F) ~5e5, near the ~1e5 of trained post-LN models (the later
    layers of tasks/lrmc_cpu.toml). On exactly the features the probes read, the regression
    metrics equal numpy.linalg.lstsq's (float64) to 1e-9 (measured: 4e-13): the fit is refined
    on F and the weights and predictions stay in float64. Measured without the refinement
    (the Gram matrix alone): 1.2e-8; with float32 weights and predictions: 1.0e-6."""
    task, config = MODELS["bert"]
    model = perturbed_model(task, config)
    with torch.no_grad():
        last_norm = model.network.layers[-1].ln2
        last_norm.weight.copy_(torch.logspace(-5, 0, config.d_model))
        last_norm.bias.fill_(1.0)
    train_batch, test_batch = sample(task, 256, seed=1), sample(task, 64, seed=2)
    hook = f"blocks.{config.n_layers - 1}.hook_resid_post"
    result = linear_probes(model, train_batch, test_batch, targets=["entry", "observed_row"], hooks=[hook])
    x_train, x_test = (hook_activations(model, batch.inputs, [hook])[hook].reshape(-1, config.d_model)
                       .double().numpy() for batch in (train_batch, test_batch))
    singular_values = np.linalg.svd(x_train, compute_uv=False)
    assert singular_values[0] / singular_values[-1] > 1e5  # the case this test is about
    assert_regression_probes_equal_lstsq(result, task, train_batch, test_batch, x_train, x_test, rel=1e-9)


def test_least_squares_recovers_a_planted_direction():
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(2000, 32, generator=generator)
    direction = torch.randn(32, 3, generator=generator)
    assert torch.allclose(fit_least_squares(features, features @ direction), direction, atol=1e-4)


def test_least_squares_on_rank_deficient_float32_features_ignores_rounding_noise():
    """Features of rank 4 in 32 dimensions (like embeddings), target linear + noise 0.1:
    the probe is the minimum-norm solution (numpy's pinv), not a fit of the float32
    rounding directions; linear_probes' path through the Gram blocks gives the same."""
    generator = torch.Generator().manual_seed(0)
    basis, readout = torch.randn(4, 32, generator=generator), torch.randn(4, 1, generator=generator)
    latent = torch.randn(4000, 4, generator=generator)
    features, targets = latent @ basis, latent @ readout + 0.1 * torch.randn(4000, 1, generator=generator)
    weights = fit_least_squares(features, targets)
    minimum_norm = np.linalg.pinv(basis.double().numpy()) @ readout.double().numpy()
    assert np.allclose(weights.numpy(), minimum_norm, atol=0.01)
    with_bias = torch.cat([features, torch.ones(len(features), 1)], 1).double()
    from_moments = refined_least_squares((with_bias.T @ with_bias)[:-1, :-1],
                                         (with_bias.T @ targets.double())[:-1], features, targets)
    assert torch.allclose(from_moments.float(), weights, atol=1e-6)


def test_probes_refuse_unknown_targets_and_per_head_hooks():
    model, batch = perturbed_model(LRMC, LRMC_CONFIG), sample(LRMC, 8)
    with pytest.raises(ValueError, match="targets must be a non-empty list"):
        linear_probes(model, batch, batch, targets=["rank"])
    for hook in ["blocks.0.attn.hook_z", "blocks.0.attn.hook_pattern"]:
        with pytest.raises(ValueError, match=r"probes read \[batch, pos, d\] activations"):
            linear_probes(model, batch, batch, hooks=[hook])
    with pytest.raises(ValueError, match="classifier must be one of"):
        linear_probes(model, batch, batch, classifier="svm")


# ------------------------------------------------------------------ collapse, repetition
@pytest.mark.parametrize("kind", ["lrmc", "mws", "bert", "gpt"])
def test_representation_collapse_equals_the_reference_at_every_site(kind):
    task, config = MODELS[kind]
    model, batch = perturbed_model(task, config), sample(task, 16)
    _, cache = reference(model, batch.inputs)
    positions = list(range(task.prompt_length, task.sequence_length - 1)) if kind in ("mws", "gpt") \
        else list(range(task.n_positions))
    result = representation_collapse(model, batch)
    # the read-out's input: ln_f's output, or on post-LN models (no final norm) the last block's
    readout_input = "blocks.1.hook_resid_post" if kind == "bert" else "ln_final.hook_out"
    sites = {("pre_lm_h", readout_input)} | {
        (site, f"blocks.{layer}.{suffix}") for layer in range(2) for site, suffix in
        [("pre_att_h", "hook_resid_pre"), ("post_att_h", "hook_attn_out"),
         ("post_att_res_h", "hook_resid_mid"), ("post_mlp_h", "hook_resid_post")]}
    assert set(zip(result["site"], result["hook"])) == sites
    for site, hook in sites:
        unit = torch.nn.functional.normalize(cache[hook][:, positions], dim=-1)
        pairs = [(unit[:, i] * unit[:, j]).sum(-1).mean().item()
                 for i in range(len(positions)) for j in range(i + 1, len(positions))]
        ours = result[(result["site"] == site) & (result["hook"] == hook)]["value"].item()
        assert ours == pytest.approx(np.mean(pairs), abs=1e-5), site


def reference_greedy(model, prompts, n_new):
    tokens = prompts
    for _ in range(n_new):
        logits, _ = reference(model, tokens)
        tokens = torch.cat([tokens, logits[:, -1].argmax(-1, keepdim=True)], dim=-1)
    return tokens


@pytest.mark.parametrize("kind", ["mws", "gpt"])
def test_repetition_equals_reference_greedy_generation(kind):
    task, config = MODELS[kind]
    model, batch = perturbed_model(task, config), sample(task, 32)
    generated = reference_greedy(model, batch.prompts, task.answer_length)[:, task.prompt_length:]
    result = metrics_of(repetition(model, batch))
    expected_repetition = (generated[:, 1:] == generated[:, :-1]).double().mean().item()
    assert result["repetition_frequency"] == pytest.approx(expected_repetition)
    answers = batch.answers
    assert result["repetition_frequency_data"] == pytest.approx(
        (answers[:, 1:] == answers[:, :-1]).double().mean().item())
    assert result["accuracy"] == pytest.approx((generated == answers).double().mean().item())
    for position in range(task.answer_length):
        assert result[f"accuracy_pos_{position}"] == pytest.approx(
            (generated[:, position] == answers[:, position]).double().mean().item())


# ------------------------------------------------------------ attention-based analyzers
def test_attention_progress_equals_the_hand_written_mask_on_reference_patterns():
    """MWS (window 2, 5 inputs): the row predicting y_1 (row 5) attends to x_1 (key 0); the
    row predicting y_i (row 5 + i - 1) to keys i-2, i-1 (0-indexed), written out by hand.
    Only the last layer is scored, as in the study."""
    model, batch = perturbed_model(MWS, MWS_CONFIG), sample(MWS, 16)
    model.set_attention_bias(attention_bias_multiplier(MWS, 2.5))
    _, cache = reference(model, batch.inputs)
    mask = torch.zeros(10, 10, dtype=torch.float64)
    mask[5, 0] = 1
    for i in range(1, 5):
        mask[5 + i, [i - 1, i]] = 1
    result = attention_progress(model, batch)
    assert set(result["layer"]) == {1}  # the study's GPTLinear returns the last block's map
    for layer in [1]:
        pattern = cache[f"blocks.{layer}.attn.hook_pattern"][:, :, 5:10].abs()
        expected = ((pattern * mask[5:10]).sum((-2, -1)) / pattern.sum((-2, -1))).mean(0)
        for head in range(2):
            ours = result[(result["layer"] == layer) & (result["head"] == head)]["value"].item()
            assert ours == pytest.approx(expected[head].item(), rel=1e-5)
    with pytest.raises(ValueError, match="defines none"):
        attention_progress(perturbed_model(LRMC, LRMC_CONFIG), sample(LRMC, 4))


@pytest.mark.parametrize("kind", MATRIX_MODELS)
def test_attention_structure_equals_shares_of_reference_patterns(kind):
    task, config = MODELS[kind]
    model, batch = perturbed_model(task, config), sample(task, 16)
    _, cache = reference(model, batch.inputs)
    m, n = task.m, task.n
    result = attention_structure(model, batch)
    for layer in range(2):
        pattern = cache[f"blocks.{layer}.attn.hook_pattern"].abs()
        share = pattern / pattern.sum(-1, keepdim=True)
        for head in range(2):
            expected = {name: 0.0 for name in ["same_row", "same_column", "self", "observed_keys"]}
            for q in range(m * n):
                for k in range(m * n):
                    weight = share[:, head, q, k]
                    if q == k:
                        expected["self"] += weight.mean().item()
                    elif q // n == k // n:
                        expected["same_row"] += weight.mean().item()
                    elif q % n == k % n:
                        expected["same_column"] += weight.mean().item()
                    observed = batch.observed.reshape(-1, m * n)[:, k].double()
                    expected["observed_keys"] += (weight * observed).mean().item()
            expected = {name: value / (m * n) for name, value in expected.items()}
            expected["masked_keys"] = 1 - expected["observed_keys"]
            assert_metrics_equal(metrics_of(result, layer=layer, head=head), expected, rel=1e-5)


def test_attention_structure_on_the_gpt_variant_equals_hand_written_shares():
    """2×3 GPT variant: inputs are the prompt (entries 0-5 at positions 0-5), SEP at 6, the
    answer's entries 0-4 at 7-11; the query at 6 + a predicts entry a (row a // 3, column
    a % 3). Shares of the reference's patterns, key by key."""
    model, batch = perturbed_model(GPT, GPT_CONFIG, seed=3), sample(GPT, 16)
    _, cache = reference(model, batch.inputs)
    result = attention_structure(model, batch)

    def entry(key):
        return key if key < 6 else (None if key == 6 else key - 7)

    for layer in range(2):
        pattern = cache[f"blocks.{layer}.attn.hook_pattern"].abs()
        share = pattern / pattern.sum(-1, keepdim=True)
        for head in range(2):
            expected = dict.fromkeys(["same_row", "same_column", "self", "observed_keys",
                                      "masked_keys", "separator", "answer_keys"], 0.0)
            for a in range(6):
                for key in range(12):
                    weight = share[:, head, 6 + a, key]
                    e = entry(key)
                    if e == a:
                        expected["self"] += weight.mean().item()
                    elif e is not None and e // 3 == a // 3:
                        expected["same_row"] += weight.mean().item()
                    elif e is not None and e % 3 == a % 3:
                        expected["same_column"] += weight.mean().item()
                    if key < 6:
                        shown = (batch.inputs[:, key] != 0).double()
                        expected["observed_keys"] += (weight * shown).mean().item()
                        expected["masked_keys"] += (weight * (1 - shown)).mean().item()
                    else:
                        expected["separator" if key == 6 else "answer_keys"] += weight.mean().item()
            expected = {name: value / 6 for name, value in expected.items()}
            assert_metrics_equal(metrics_of(result, layer=layer, head=head), expected, rel=1e-5)


def test_decoder_analyzers_run_on_the_gpt_variant():
    """The GPT variant is a decoder like MWS: its token probes (next / current token at every
    position, every block) equal scikit-learn's Ridge on [F 1] onto the one-hot tokens (the
    closed form's penalty 1e-3·n on every column), argmax, on the reference's residual stream;
    attention maps equal the reference's (ablation, patching, collapse and generation are
    checked against the reference above)."""
    from sklearn.linear_model import Ridge
    from plateau_lens.analysis.attention_structure import attention_patterns

    model = perturbed_model(GPT, GPT_CONFIG)
    train_batch, test_batch = sample(GPT, 64, seed=1), sample(GPT, 32, seed=2)
    probes = linear_probes(model, train_batch, test_batch)
    hooks = ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]
    assert set(probes["target"]) == {"next_token", "current_token"} and set(probes["hook"]) == set(hooks)
    caches = [reference(model, batch.inputs)[1] for batch in (train_batch, test_batch)]
    labels = {"current_token": lambda batch: batch.tokens[:, :-1], "next_token": lambda batch: batch.tokens[:, 1:]}
    for hook in hooks:
        x_train, x_test = (np.hstack([cache[hook].reshape(-1, 16).numpy(), np.ones((cache[hook].shape[0] * cache[hook].shape[1], 1))])
                           for cache in caches)
        for target, of in labels.items():
            y_train, y_test = of(train_batch).reshape(-1).numpy(), of(test_batch).reshape(-1).numpy()
            classes = np.unique(y_train)
            one_hot = (y_train[:, None] == classes[None]).astype(float)
            ridge = Ridge(alpha=1e-3 * len(x_train), fit_intercept=False).fit(x_train, one_hot)
            expected = (classes[ridge.predict(x_test).argmax(1)] == y_test).mean()
            assert metrics_of(probes, hook=hook, target=target)["accuracy"] == pytest.approx(expected), (hook, target)
    maps = attention_patterns(model, test_batch)
    _, cache = reference(model, test_batch.inputs)
    expected = cache["blocks.1.attn.hook_pattern"][:, 1].mean(0)  # layer 1, head 1
    ours = maps[(maps["layer"] == 1) & (maps["head"] == 1)]
    assert torch.allclose(torch.tensor(ours["value"].to_numpy()).reshape(12, 12), expected, atol=1e-6)
    assert remaining_hooks(model.bridge) == 0


def test_row_masking_hides_exactly_those_rows():
    """keep=None masks whole rows (the study's definition, all but one entry per row, is
    checked by hand in test_mc_analyses.py)."""
    batch = sample(LRMC, 8)
    masked = mask_rows(LRMC, batch, [0, 2], keep=None, rest="batch")
    assert not masked.observed[:, [0, 2]].any()
    assert torch.equal(masked.observed[:, 1], batch.observed[:, 1])
    with pytest.raises(ValueError, match="rows must be"):
        mask_rows(LRMC, batch, [3], keep=None)


@pytest.mark.parametrize("kind", MATRIX_MODELS)
def test_copying_test_equals_the_reference_on_filled_inputs(kind):
    task, config = MODELS[kind]
    model, batch = perturbed_model(task, config), sample(task, 16)
    result = metrics_of(copying_test(model, batch, fill_value=0.5))
    masked = ~batch.observed
    filled = torch.where(masked, 0.5, batch.matrix)
    if task.encoding == "tokens":  # value tokens: 1001 + round(100·x), all observed
        filled_ids = ((filled.double() * 100).round() + 1001).long().reshape(len(batch), -1)
    else:  # fixed point: x·2²⁰, all observed
        filled_ids = (filled.double() * 2**20).round().long().reshape(len(batch), -1)
    output, _ = reference(model, batch.inputs)
    filled_output, _ = reference(model, filled_ids)
    prediction = output[..., 0].reshape(masked.shape)
    filled_prediction = filled_output[..., 0].reshape(masked.shape)
    truth = batch.matrix.double()
    if task.encoding == "tokens":  # the target is X rounded to 2 decimals
        truth = torch.round(truth * 100) / 100
    expected = {
        "observed_mse": ((prediction - truth)[batch.observed] ** 2).mean().item(),
        "masked_mse": ((prediction - truth)[masked] ** 2).mean().item(),
        "masked_abs_pred": prediction[masked].abs().mean().item(),
        "fill_copy_mse": ((filled_prediction - 0.5)[masked] ** 2).mean().item(),
        "fill_true_mse": ((filled_prediction - truth)[masked] ** 2).mean().item(),
    }
    assert_metrics_equal(result, expected)


@pytest.mark.parametrize("kind", MATRIX_MODELS)
def test_swap_attention_equals_the_reference_with_mixed_weights(kind):
    task, config = MODELS[kind]
    pre = perturbed_model(task, config, seed=6)
    post = perturbed_model(task, config, seed=7)
    batch = sample(task, 16)
    result = swap_attention(pre, post, batch, parts=["qkv"])  # both parts: test_mc_analyses.py
    for condition, qkv, rest in [("pre", pre, pre), ("post", post, post),
                                 ("qkv_post+rest_pre", post, pre), ("qkv_pre+rest_post", pre, post)]:
        mixed = perturbed_model(task, config)
        state = {name: (qkv if any(f".attn.{x}." in name for x in "qkv") else rest).network.state_dict()[name]
                 for name in mixed.network.state_dict()}
        mixed.network.load_state_dict(state)
        expected = task_metrics(task, reference(mixed, batch.inputs)[0], batch)
        assert_metrics_equal(metrics_of(result, condition=condition), expected)
    losses = [metrics_of(result, condition=c)["loss"] for c in sorted(set(result["condition"]))]
    assert len(set(np.round(losses, 6))) == 4


# ------------------------------------------------------------------------- nuclear norm
def test_nuclear_norm_recovers_a_low_rank_matrix_exactly():
    rng = np.random.default_rng(0)
    matrix = rng.uniform(-1, 1, (7, 1)) @ rng.uniform(-1, 1, (1, 7))
    observed = np.ones((7, 7), dtype=bool)
    observed[[0, 2, 4, 5, 6], [1, 3, 0, 6, 2]] = False
    assert np.abs(nuclear_norm_complete(matrix, observed) - matrix).max() < 1e-4
    assert np.abs(nuclear_norm_complete(matrix, observed, lam=1e-4) - matrix).max() < 0.05


@pytest.mark.parametrize("kind", MATRIX_MODELS)
def test_compare_to_nuclear_norm_against_the_reference_and_cvxpy(kind):
    """The model's rows equal the reference forward on the same matrices; the baseline's
    rows equal a nuclear-norm minimisation written here with cvxpy (min ‖X‖* s.t. X = A on
    the observed entries)."""
    import cvxpy as cp

    from plateau_lens.tasks import step_generator

    encoding, config = MODELS[kind][0].encoding, MODELS[kind][1]
    task = make_task("lrmc", m=4, n=4, rank=1, encoding=encoding)
    model = perturbed_model(task, config)
    result = compare_to_nuclear_norm(model, p_values=[0.1, 0.3], n_matrices=6, progress=False)
    for index, p in enumerate([0.1, 0.3]):
        batch = make_task("lrmc", m=4, n=4, rank=1, p_mask=p, encoding=encoding).sample(
            6, step_generator(0, index))
        output, _ = reference(model, batch.inputs)
        masked = ~batch.observed
        truth = batch.matrix.double()
        if encoding == "tokens":  # the study's target and what the minimiser sees: X rounded
            truth = torch.round(truth * 100) / 100
        expected = ((output[..., 0].reshape(masked.shape) - truth)[masked] ** 2)
        ours = metrics_of(result, p_mask=p, condition="model")
        assert ours["masked_mse"] == pytest.approx(expected.mean().item(), rel=1e-5)
        assert ours["masked_mse_median"] == pytest.approx(np.median(expected.numpy()), rel=1e-5)
        errors = []
        for matrix, observed in zip(truth.numpy(), batch.observed.numpy()):
            completed = cp.Variable((4, 4))
            cp.Problem(cp.Minimize(cp.normNuc(completed)),
                       [completed[i, j] == matrix[i, j] for i, j in zip(*observed.nonzero())]).solve()
            errors += list(((completed.value - matrix)[~observed]) ** 2)
        baseline = metrics_of(result, p_mask=p, condition="nuclear_norm")["masked_mse"]
        assert baseline == pytest.approx(np.mean(errors), rel=1e-3, abs=1e-7)


# --------------------------------------------------------------------- run-level, schema
def test_analyze_run_over_checkpoints(tmp_path, small_lrmc_config):
    run = load_run(train(small_lrmc_config, tmp_path / "run", progress=False))
    result = analyze_run(run, {"ablation": lambda m, b: ablate_heads(m, b, "all"),
                               "structure": attention_structure}, steps=[0, 12], batch_size=16,
                         progress=False)
    assert set(result["step"]) == {0, 12} and set(result["analyzer"]) == {"ablation", "structure"}
    assert list(result.columns[:2]) == ["step", "analyzer"]
    # each step's rows are that checkpoint's: a model built afresh from it, on the same
    # held-out batch, gives the same values (analyze_run loads every step into one model)
    from plateau_lens.analysis import analysis_batch
    values = {}
    for step in (0, 12):
        ours = result[(result["step"] == step) & (result["analyzer"] == "ablation")]
        expected = ablate_heads(run.model(step), analysis_batch(run, 16), "all")
        assert ours["metric"].tolist() == expected["metric"].tolist()
        np.testing.assert_allclose(ours["value"].to_numpy(float), expected["value"].to_numpy(float), rtol=1e-6)
        values[step] = ours["value"].to_numpy(float)
    assert not np.allclose(values[0], values[12])  # the two checkpoints differ
    with pytest.raises(ValueError, match="no checkpoints"):
        analyze_run(run, attention_structure, steps=[])
    with pytest.raises(ValueError, match="no checkpoint in"):
        analyze_run(run, attention_structure, steps=[3])


def test_every_analyzer_returns_the_one_schema_and_wide_pivots_it():
    model, batch = perturbed_model(LRMC, LRMC_CONFIG), sample(LRMC, 8)
    frames = [ablate_heads(model, batch, [(0, 0)]), ablation_sweep(model, batch, progress=False),
              patch_activations(model, batch, progress=False), linear_probes(model, batch, batch),
              representation_collapse(model, batch), attention_structure(model, batch),
              copying_test(model, batch), swap_attention(model, model, batch)]
    for frame in frames:
        assert list(frame.columns[-7:]) == ["condition", "hook", "layer", "head", "position",
                                           "metric", "value"]
        assert str(frame["layer"].dtype) == "Int64"
    table = wide(ablate_heads(model, batch, [(0, 0)]), "clean")
    assert {"clean", "ablated", "change"} <= set(table.columns)
    row = table.set_index("metric").loc["loss"]
    assert row["change"] == pytest.approx(row["ablated"] - row["clean"])


# -------------------------------------------------------------------------------- allocator
FAULTS_PER_ALLOCATION = """
import resource, sys, torch
import plateau_lens.analysis  # the process reuse_freed_memory is for: the analysis stack loaded
if sys.argv[1] == "reuse":
    from plateau_lens.analysis.fastpath.allocator import reuse_freed_memory
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
    """In a process with the analysis stack imported, a 64 MiB buffer freed and allocated
    again costs 16 384 page faults (4 KiB pages) each time by default; with the heap kept,
    allocations after the warm-up cost none. (In a bare ``import torch`` process it still
    cost 16 384 with the heap kept: glibc placed each buffer anew above the last; see
    :mod:`plateau_lens.analysis.fastpath.allocator`.)"""
    import subprocess
    import sys

    def faults(mode):
        result = subprocess.run([sys.executable, "-c", FAULTS_PER_ALLOCATION, mode],
                                capture_output=True, text=True, check=True)
        return float(result.stdout)

    assert faults("system") > 10_000
    assert faults("reuse") < 100


def test_reuse_freed_memory_refuses_a_threshold_outside_a_c_int():
    from plateau_lens.analysis.fastpath.allocator import reuse_freed_memory

    for bad in (0, -1, 2 ** 31):
        with pytest.raises(ValueError, match=r"threshold_bytes must be in \[1, 2\*\*31 - 1\]"):
            reuse_freed_memory(bad)


VALUE_READOUT = r"matrix-completion tasks with a value read-out \(lrmc; not lrmc_gpt\)"


@pytest.mark.parametrize("analyzer, task, config, kind", [
    (repetition, LRMC, LRMC_CONFIG, r"tasks with answers to generate \(the algorithmic tasks, lrmc_gpt\)"),
    (attention_structure, MWS, MWS_CONFIG, r"matrix-completion tasks \(lrmc, lrmc_gpt\)"),
    (copying_test, MWS, MWS_CONFIG, VALUE_READOUT),
    (copying_test, GPT, GPT_CONFIG, VALUE_READOUT),
    (lambda model, batch: compare_to_nuclear_norm(model, n_matrices=2, progress=False), GPT,
     GPT_CONFIG, VALUE_READOUT),
    (lambda model, batch: ood_evaluation(model, n_matrices=2), GPT, GPT_CONFIG, VALUE_READOUT),
    (permuted_positions, GPT, GPT_CONFIG, VALUE_READOUT),
    (lambda model, batch: token_embedding_norms(model), GPT, GPT_CONFIG, VALUE_READOUT),
])
def test_an_analyzer_given_another_kind_of_task_says_which_kind_it_needs(analyzer, task, config, kind):
    """A ValueError naming the kind of task the analyzer is defined for and the task it got.
    repetition on LRMC used to fail with AttributeError ('MatrixBatch' object has no attribute
    'prompts'); copying_test, the nuclear-norm comparison, OOD, permuted positions and the
    embedding analyses on the GPT variant with AttributeErrors, shape errors or an n_ctx error."""
    model = perturbed_model(task, config)
    with pytest.raises(ValueError, match=f"is defined for {kind}, not task '{task.name}'"):
        analyzer(model, sample(task, 4))
