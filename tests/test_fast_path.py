"""The analyzers' native fast path (``ablation_sweep``'s stacked copies, the shared clean pass,
chunks on several threads) against the plain hooked path, on every architecture variant of
our native models (pre-LN GPT-style blocks, and the post-LN BERT of ``architecture = "bert"``
with its embedding LayerNorm), with every weight moved off its init (LayerNorm gains and
biases too) and the work cut into many chunks on two threads."""

import dataclasses

import pytest
import torch

from perturbed import perturbed_model, sample
from plateau_lens import ModelConfig, ablate_heads, ablation_sweep, linear_probes, make_task
from plateau_lens.analysis.fastpath import parallel
from plateau_lens.analysis import probes as probes_module
from plateau_lens.analysis.ablation import clean_pass as hooked_clean_pass, sweep_targets
from plateau_lens.analysis.fastpath.clean_pass import shared_clean_pass
from plateau_lens.analysis.fastpath.clean_pass import hook_activations
from plateau_lens.analysis.fastpath.partial_forward import runs_native_modules
from plateau_lens.models.attention_bias import attention_bias_multiplier

LRMC = make_task("lrmc", m=3, n=4, rank=1)
LRMC_REAL = make_task("lrmc", m=3, n=4, rank=1, encoding="real")
MWS = make_task("mws", n_inputs=5)
GPT = make_task("lrmc_gpt", m=2, n=3, rank=1)
VARIANTS = {  # (task, config, attention bias c or None)
    "lrmc-softmax-gelu": (LRMC, ModelConfig(n_layers=3, n_heads=2, d_model=16,
                                            attention="softmax", act_fn="gelu"), None),
    "lrmc-real-rowcol-relu": (LRMC_REAL, ModelConfig(n_layers=3, n_heads=2, d_model=16, attention="softmax",
                                                     act_fn="relu", pos_embedding="row_column"), None),
    "mws-linear-bias": (MWS, ModelConfig(n_layers=3, n_heads=2, d_model=16, attention="linear"), 2.5),
    "mws-softmax-causal": (MWS, ModelConfig(n_layers=3, n_heads=2, d_model=16, attention="softmax"), None),
    "bert-post-ln": (LRMC, ModelConfig(n_layers=3, n_heads=2, d_model=16, attention="softmax", act_fn="gelu",
                                       architecture="bert"), None),
    "lrmc-gpt-causal": (GPT, ModelConfig(n_layers=3, n_heads=2, d_model=16, attention="softmax"), None),
}


@pytest.fixture
def many_chunks(monkeypatch):
    """Chunks of ~100 rows (2-3 samples of stacked copies, 8 of a clean pass) on two threads."""
    monkeypatch.setattr(parallel, "ROWS_PER_CHUNK", 100)
    monkeypatch.setattr(probes_module, "ROWS_PER_CHUNK", 100)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


def model_of(variant: str, seed: int = 0):
    task, config, bias = VARIANTS[variant]
    model = perturbed_model(task, config, seed=seed)
    if bias is not None:
        model.set_attention_bias(attention_bias_multiplier(task, bias))
    return model


def rows(frame, **where) -> dict[str, float]:
    for column, value in where.items():
        frame = frame[frame[column].isna()] if value is None else frame[frame[column] == value]
    return dict(zip(frame["metric"], frame["value"]))


def assert_close(ours: dict, expected: dict, rel=1e-5, abs=1e-6):
    assert ours.keys() == expected.keys()
    for name, value in expected.items():
        assert ours[name] == pytest.approx(value, rel=rel, abs=abs), name


@pytest.mark.parametrize("variant, mode", [
    ("lrmc-softmax-gelu", "uniform"), ("lrmc-softmax-gelu", "mean"),
    ("lrmc-real-rowcol-relu", "uniform"), ("mws-linear-bias", "mean"),
    ("mws-softmax-causal", "uniform"), ("bert-post-ln", "uniform"), ("bert-post-ln", "mean"),
    ("lrmc-gpt-causal", "uniform")])
def test_batched_sweep_equals_one_hooked_full_forward_per_ablation(variant, mode, many_chunks):
    """Every row of the batched sweep (stacked copies per layer, resumed at the layer, in
    chunks on two threads) equals ``ablate_heads``: one hooked forward of the whole bridge
    per ablation, its pattern hook replacing the heads' patterns (the clean metrics and mean
    patterns from one hooked clean pass)."""
    model = model_of(variant)
    batch = sample(model.task, 24, seed=3)
    assert runs_native_modules(model)
    sweep = ablation_sweep(model, batch, mode=mode, progress=False)
    with parallel.one_intra_op_thread(batch.inputs.device):  # the hooked bridge is faster so
        clean, means, _ = hooked_clean_pass(model, batch, mode)
        hooked_rows = {target[:3]: ablate_heads(model, batch, target[3], mode=mode, clean=clean,
                                                mean_patterns=means)
                       for target in sweep_targets(model)}
    for (scope, layer, head), hooked in hooked_rows.items():
        where = dict(scope=scope, layer=layer, head=head)
        assert_close(rows(sweep, condition="ablated", **where), rows(hooked, condition="ablated"))
        assert_close(rows(sweep, condition="clean", **where), clean)
        assert any(abs(rows(hooked, condition="ablated")[k] - clean[k]) > 1e-4 for k in clean)


@pytest.mark.parametrize("variant", ["lrmc-softmax-gelu", "mws-linear-bias", "bert-post-ln"])
def test_probes_on_the_shared_pass_equal_the_hooked_path(variant, many_chunks):
    model = model_of(variant, seed=1)
    train_batch, test_batch = sample(model.task, 48, seed=4), sample(model.task, 20, seed=5)
    fast = linear_probes(model, train_batch, test_batch)
    noop = [("hook_embed", lambda activation, hook: activation)]
    with model.bridge.hooks(fwd_hooks=noop), parallel.one_intra_op_thread(test_batch.inputs.device):
        assert not runs_native_modules(model)
        hooked = linear_probes(model, train_batch, test_batch)
    assert list(fast.columns) == list(hooked.columns) and len(fast) == len(hooked)
    labels = [c for c in fast.columns if c != "value"]
    assert fast[labels].astype(str).equals(hooked[labels].astype(str))
    assert fast["value"].to_numpy() == pytest.approx(hooked["value"].to_numpy(), rel=1e-4, abs=1e-6)


def test_shared_clean_pass_follows_weights_inputs_bias_and_edits(many_chunks):
    model, other = model_of("mws-softmax-causal", seed=0), model_of("mws-softmax-causal", seed=1)
    batch = sample(MWS, 12, seed=6)
    names = ["blocks.0.hook_resid_pre", "blocks.2.hook_resid_post"]

    def bridge_values(inputs):
        _, cache = model.bridge.run_with_cache(inputs, names_filter=lambda n: n in names)
        return [cache[name] for name in names]

    def check(values, expected):
        for ours, theirs in zip(values, expected):
            assert torch.allclose(ours, theirs, rtol=1e-5, atol=1e-5)

    first = shared_clean_pass(model, batch.inputs)
    assert shared_clean_pass(model, batch.inputs) is first  # shared while nothing changes
    check(hook_activations(model, batch.inputs, names).values(), bridge_values(batch.inputs))
    with torch.no_grad():
        model.network.load_state_dict(other.network.state_dict())  # weights changed in place
    assert shared_clean_pass(model, batch.inputs) is not first
    check(hook_activations(model, batch.inputs, names).values(), bridge_values(batch.inputs))
    model.set_attention_bias(attention_bias_multiplier(MWS, 0.5))
    check(hook_activations(model, batch.inputs, names).values(), bridge_values(batch.inputs))
    batch.inputs[0] = batch.inputs[1]  # the input tensor edited in place
    check(hook_activations(model, batch.inputs, names).values(), bridge_values(batch.inputs))
    hook_activations(model, batch.inputs, names)[names[1]].zero_()  # a consumer's in-place edit
    check(hook_activations(model, batch.inputs, names).values(), bridge_values(batch.inputs))
    assert shared_clean_pass(model, batch.inputs.clone()) is not shared_clean_pass(model, batch.inputs)


def test_probe_plan_is_shared_by_equal_tasks_and_not_by_different_ones():
    """``Run.model(step)`` builds a new task object per call: the probe targets of a batch pair
    are computed once for equal tasks (a loop over checkpoints), anew for a task with other
    settings or for new batches, and a task that is not a frozen dataclass of plain values
    is keyed by identity."""
    targets = ["entry", "row_index"]
    task = make_task("lrmc", m=3, n=3, rank=1)
    train_batch, test_batch = sample(task, 8, seed=1), sample(task, 4, seed=2)
    plan = probes_module.probe_plan(task, train_batch, test_batch, targets, "least_squares")
    same = make_task("lrmc", m=3, n=3, rank=1)
    assert same is not task
    assert probes_module.probe_plan(same, train_batch, test_batch, targets, "least_squares") is plan
    other = make_task("lrmc", m=3, n=3, rank=1, p_mask=0.5)
    assert probes_module.probe_plan(other, train_batch, test_batch, targets, "least_squares") is not plan
    assert probes_module.task_key(task) != probes_module.task_key(other)
    new_batch = sample(task, 8, seed=1)
    assert probes_module.probe_plan(task, new_batch, test_batch, targets, "least_squares") is not plan

    class NotADataclass:
        pass

    @dataclasses.dataclass(frozen=True)
    class TupleField:  # a field that is not a plain value
        sizes: tuple = (3, 3)

    @dataclasses.dataclass
    class Mutable:
        m: int = 3

    for kind in (NotADataclass, TupleField, Mutable):  # each keyed by identity
        first, second = kind(), kind()
        assert probes_module.task_key(first) == probes_module.task_key(first) != probes_module.task_key(second)


def test_run_parallel_runs_every_task_raises_the_first_error_and_restores_threads():
    threads = torch.get_num_threads()
    done = []
    parallel.run_parallel([lambda i=i: done.append(i) for i in range(7)], workers=2)
    assert sorted(done) == list(range(7))
    assert parallel.parallel_map(lambda x: x * x, list(range(5)), workers=2) == [0, 1, 4, 9, 16]

    def fail():
        raise RuntimeError("task failed")

    with pytest.raises(RuntimeError, match="task failed"):
        parallel.run_parallel([fail, lambda: None, lambda: None], workers=2)
    assert torch.get_num_threads() == threads
