"""Property-based tests (Hypothesis) over the config schema and the analyzers' public
arguments: any generated input either works or raises our error type
(``plateau_lens.errors.PlateauLensError``) with a message naming the argument or field;
never another exception, never a non-finite number in a result (issue 36).

The example counts are bounded (``max_examples``) and there is no deadline, so the file runs
in well under a minute on two cores; a failure prints the smallest input that shows it.
"""

import math
import re

import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from perturbed import perturbed_model, sample
from plateau_lens import ModelConfig, ablate_heads, make_task, representation_collapse
from plateau_lens.analysis import (ablation_sweep, copying_test, linear_probes, next_token_probe,
                                   patch_activations, patch_between_models, swap_attention)
from plateau_lens.config import RunConfig, task_schema
from plateau_lens.tasks import task_class
from plateau_lens.errors import PlateauLensError
from plateau_lens.config import ModelConfig as ModelSchema
from plateau_lens.config import TrainConfig

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
BASE = {"task": {"name": "mws", "n_inputs": 5},
        "model": {"n_layers": 1, "n_heads": 2, "d_model": 16},
        "train": {"steps": 10, "batch_size": 8}}
TASK_NAMES = ["mws", "lrmc", "prefix_sum", "repeat", "addition", "lrmc_gpt", "lrmc_mixed", "permutation"]

ANY_VALUE = st.one_of(
    st.integers(min_value=-2**70, max_value=2**70),
    st.integers(min_value=-3, max_value=70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(), st.none(), st.text(max_size=6),
    st.sampled_from([math.nan, math.inf, -math.inf, 0, -1, 2**63, 10**12]),
    st.lists(st.integers(min_value=-3, max_value=40), max_size=4),
    st.sampled_from(["cpu", "cuda", "auto", "adam", "cosine", "gelu", "softmax", "real", "tokens"]),
)
"""Values of every kind, sizes of every magnitude (ints up to 2**70), nan and inf."""


def field_names(section: str, task_name: str) -> list[str]:
    model = {"train": TrainConfig, "model": ModelSchema}.get(section) or task_schema(task_class(task_name))
    return sorted(model.model_fields)


@SETTINGS
@given(data=st.data(), task_name=st.sampled_from(TASK_NAMES))
def test_any_config_works_or_names_the_field(data, task_name):
    values = {section: dict(table) for section, table in BASE.items()}
    values["task"] = {"name": task_name}
    changed = []
    for _ in range(data.draw(st.integers(1, 3))):
        section = data.draw(st.sampled_from(["train", "model", "task"]))
        name = data.draw(st.sampled_from(field_names(section, task_name)))
        values[section][name] = data.draw(ANY_VALUE)
        changed.append((section, name))
    try:
        config = RunConfig.from_dict(values)
    except PlateauLensError as error:
        message = str(error)
        assert any(re.search(rf"\b{name}\b", message) for _, name in changed), (changed, message)
        return
    # accepted: it must be usable as it is (a task can be made, the config round-trips)
    assert RunConfig.from_dict(config.to_dict()) == config
    config.make_task()


MWS = make_task("mws", n_inputs=5)
MODEL_CONFIG = ModelConfig(n_layers=2, n_heads=2, d_model=16, attention="softmax")


@pytest.fixture(scope="module")
def mws_model():
    return perturbed_model(MWS, MODEL_CONFIG)


ARGUMENT = st.one_of(  # every kind of value; the tests mix in mostly-valid ones so that each
    # argument's own check is reached with the others valid
    st.none(), st.integers(min_value=-3, max_value=12), st.floats(allow_nan=True),
    st.text(max_size=4), st.sampled_from(["all", "pre_lm_h", "post_mlp_h", "uniform", "mean"]),
    st.lists(st.integers(min_value=-2, max_value=12), max_size=4),
    st.lists(st.tuples(st.integers(-1, 2), st.integers(-1, 2)), max_size=3),
    st.lists(st.sampled_from(["pre_att_h", "pre_lm_h", "nope"]), max_size=3),
)


def assert_finite_result(frame) -> None:
    values = frame["value"].astype(float)
    assert all(math.isfinite(v) for v in values), frame


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(sites=st.one_of(st.none(), st.lists(st.sampled_from(["pre_att_h", "post_mlp_h", "pre_lm_h"]),
                                             min_size=1, max_size=2), ARGUMENT),
       layers=ARGUMENT,
       positions=st.one_of(st.none(), st.lists(st.integers(0, 10), min_size=2, max_size=4,
                                               unique=True), ARGUMENT))
def test_representation_collapse_arguments(mws_model, sites, layers, positions):
    try:
        frame = representation_collapse(mws_model, sample(MWS, 3), sites=sites, layers=layers,
                                        positions=positions)
    except PlateauLensError as error:
        message = str(error)
        assert re.search(r"\b(sites|layers|positions)\b", message), message
        return
    assert_finite_result(frame)


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(heads=st.one_of(
           st.lists(st.tuples(st.integers(0, 1), st.integers(0, 1)), min_size=1, max_size=2),
           st.lists(st.one_of(st.tuples(st.integers(-1, 2), st.integers(-1, 2)), st.integers(-1, 2),
                              st.text(max_size=2), st.tuples(st.integers(0, 1))),
                    min_size=1, max_size=3),
           ARGUMENT),
       mode=st.one_of(st.just("uniform"), st.just("mean"), ARGUMENT))  # mostly valid: heads' check is reached
def test_ablate_heads_arguments(mws_model, heads, mode):
    try:
        frame = ablate_heads(mws_model, sample(MWS, 3), heads=heads, mode=mode)
    except PlateauLensError as error:
        message = str(error)
        assert re.search(r"\b(heads|mode)\b", message), message
        return
    assert_finite_result(frame)
    assert torch.isfinite(torch.tensor(frame["value"].to_numpy())).all()


# --- the other public analyzers taking (model, batch, ...) ---------------------------------
# One generic check: a call either returns a frame whose values are all finite, or raises our
# error type with a message naming one of the arguments that were generated.

LRMC = make_task("lrmc", m=3, n=3, rank=1)
ANALYZER_SETTINGS = settings(max_examples=25, deadline=None, derandomize=True, report_multiple_bugs=False,
                             phases=[Phase.explicit, Phase.reuse, Phase.generate],  # no shrinking: bounded time
                             suppress_health_check=[HealthCheck.too_slow,
                                                    HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def lrmc_models():
    return perturbed_model(LRMC, MODEL_CONFIG), perturbed_model(LRMC, MODEL_CONFIG, seed=1)


def works_or_names(call, names: list[str]) -> None:
    """Run ``call()``; a refusal must be ours and name one of ``names``; a result must be finite."""
    try:
        frame = call()
    except PlateauLensError as error:
        message = str(error)
        assert re.search(rf"\b({'|'.join(names)})\b", message), message
        return
    assert_finite_result(frame)




def mostly(valid, *others):
    """A valid value 3 times in 4 (so that the other arguments' checks are reached with this
    one valid), else any value (``others`` or :data:`ARGUMENT`)."""
    valid = st.sampled_from(valid)
    return st.one_of(valid, valid, valid, st.one_of(*others, ARGUMENT).map(lambda value: value))


@ANALYZER_SETTINGS
@given(mode=mostly(["uniform", "mean"]), layers=mostly([True, False]))
def test_ablation_sweep_arguments(mws_model, mode, layers):
    works_or_names(lambda: ablation_sweep(mws_model, sample(MWS, 3), mode=mode, layers=layers,
                                          progress=False), ["mode", "layers"])


@ANALYZER_SETTINGS
@given(hooks=mostly(["attn.hook_z", "hook_resid_post", "blocks.0.hook_resid_pre"]),
       granularity=mostly(["layer", "head", "position"]),
       direction=mostly(["denoise", "noise"]),
       corrupted_size=st.sampled_from([3, 3, 2, 0]))
def test_patch_activations_arguments(lrmc_models, hooks, granularity, direction, corrupted_size):
    corrupted = None if corrupted_size == 0 else sample(LRMC, corrupted_size, seed=5)
    works_or_names(lambda: patch_activations(lrmc_models[0], sample(LRMC, 3), corrupted,
                                             hooks=hooks, granularity=granularity,
                                             direction=direction, progress=False),
                   ["hooks", "granularity", "direction", "corrupted_batch"])


@ANALYZER_SETTINGS
@given(hooks=mostly(["attn.hook_z", "hook_resid_post"]), granularity=mostly(["layer", "head"]))
def test_patch_between_models_arguments(lrmc_models, hooks, granularity):
    works_or_names(lambda: patch_between_models(*lrmc_models, sample(LRMC, 3), hooks=hooks,
                                                granularity=granularity, progress=False),
                   ["hooks", "granularity"])


@ANALYZER_SETTINGS
@given(targets=st.one_of(st.none(), st.lists(st.sampled_from(["X", "mask", "nope"]), max_size=2),
                         ARGUMENT),
       hooks=st.one_of(st.none(), st.just(["blocks.0.hook_resid_post"]), ARGUMENT),
       classifier=mostly(["least_squares"]))
def test_linear_probes_arguments(lrmc_models, targets, hooks, classifier):
    works_or_names(lambda: linear_probes(lrmc_models[0], sample(LRMC, 24), sample(LRMC, 8, seed=3),
                                         targets=targets, hooks=hooks, classifier=classifier),
                   ["targets", "hooks", "classifier"])


@ANALYZER_SETTINGS
@given(fill_value=st.one_of(st.none(), st.floats(-10, 10), ARGUMENT),
       matrix=mostly(["low_rank", "random"]), seed=mostly([0, 1]))
def test_copying_test_arguments(lrmc_models, fill_value, matrix, seed):
    works_or_names(lambda: copying_test(lrmc_models[0], sample(LRMC, 3), fill_value=fill_value,
                                        matrix=matrix, seed=seed),
                   ["fill_value", "matrix", "seed"])


@ANALYZER_SETTINGS
@given(parts=st.one_of(st.lists(st.sampled_from(["qkv", "attention"]), min_size=1, max_size=2),
                       ARGUMENT))
def test_swap_attention_arguments(lrmc_models, parts):
    works_or_names(lambda: swap_attention(*lrmc_models, sample(LRMC, 3), parts=parts),
                   ["parts", "part"])


@settings(max_examples=12, deadline=None, derandomize=True, report_multiple_bugs=False,
          phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(hook=st.one_of(st.none(), st.just("blocks.1.hook_attn_out"), ARGUMENT),
       hidden_units=mostly([4]), max_iter=mostly([5]))
def test_next_token_probe_arguments(mws_model, hook, hidden_units, max_iter):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's ConvergenceWarning at max_iter=5
        works_or_names(lambda: next_token_probe(mws_model, sample(MWS, 8), sample(MWS, 4, seed=2),
                                                hook=hook, hidden_units=hidden_units,
                                                max_iter=max_iter),
                       ["hook", "hidden_units", "max_iter"])


@pytest.mark.parametrize("analyzer", ["attention_progress", "attention_structure", "repetition"])
def test_batch_free_analyzers_are_finite(mws_model, lrmc_models, analyzer):
    """The analyzers with no argument but (model, batch): finite on a perturbed model."""
    import plateau_lens.analysis as analysis

    model, task = (mws_model, MWS) if analyzer != "attention_structure" else (lrmc_models[0], LRMC)
    assert_finite_result(getattr(analysis, analyzer)(model, sample(task, 3)))
