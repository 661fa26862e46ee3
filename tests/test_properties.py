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
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perturbed import perturbed_model, sample
from plateau_lens import ModelConfig, ablate_heads, make_task, representation_collapse
from plateau_lens.config import RunConfig, task_schema
from plateau_lens.tasks import task_class
from plateau_lens.errors import PlateauLensError
from plateau_lens.models.config import ModelConfig as ModelSchema
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
