"""Allowed values have one definition, the section's ``typing.Literal`` (issue 33): a bad value's
message lists exactly the Literal's values, every value the Literal allows is built by the
code that reads it, and no module keeps a tuple that copies a Literal's values."""

import ast
import types
import typing
from pathlib import Path

import pytest
import torch

from plateau_lens.config import (ConfigError, InitConfig, ModelConfig, PretrainConfig, RunConfig,
                                 TrainConfig)
from plateau_lens.config.model import AttentionKind
from plateau_lens.config.run import Section
from plateau_lens.config.train import Optimizer, Precision, Schedule
from plateau_lens.tasks import task_class

PACKAGE = Path(__file__).resolve().parents[1] / "plateau_lens"
SECTION_MODELS = (ModelConfig, TrainConfig, InitConfig, PretrainConfig)
BAD = "no-such-value"


def literal_of(annotation) -> tuple | None:
    """The values of the Literal inside ``annotation`` (through Annotated and Optional)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return typing.get_args(annotation)
    if origin is typing.Annotated:
        return literal_of(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        found = [literal_of(arg) for arg in typing.get_args(annotation)]
        found = [values for values in found if values]
        return found[0] if len(found) == 1 else None
    return None


def literal_fields(model) -> dict[str, tuple]:
    hints = typing.get_type_hints(model, include_extras=True)
    return {name: values for name in model.model_fields
            if (values := literal_of(hints[name])) is not None}


def test_the_sections_literal_fields_are_found():
    """Guards the tests below against finding nothing to check."""
    found = {model.section: set(literal_fields(model)) for model in SECTION_MODELS}
    assert found["model"] >= {"attention", "act_fn", "mask_embedding", "pos_embedding",
                              "normalization", "architecture"}
    assert found["train"] >= {"optimizer", "schedule", "precision", "weight_decay_scope",
                              "eval_batch"}


@pytest.mark.parametrize("model", [m for m in SECTION_MODELS if literal_fields(m)],
                         ids=lambda model: model.section)
def test_a_bad_choice_is_refused_listing_exactly_the_literal_values(model):
    for name, values in literal_fields(model).items():
        with pytest.raises(ConfigError) as error:
            model(**{name: BAD})
        assert str(error.value) == f"{model.section}.{name} must be one of {list(values)}, got {BAD!r}"


@pytest.mark.parametrize("task, field", [("lrmc", "encoding"), ("lrmc", "factor_distribution"),
                                         ("lrmc_mixed", "encoding"),
                                         ("lrmc_gpt", "factor_distribution")])
def test_a_task_choice_is_refused_at_the_config_listing_its_literal(task, field):
    values = typing.get_args(typing.get_type_hints(task_class(task))[field])
    assert values  # the task field is a Literal
    with pytest.raises(ConfigError) as error:
        RunConfig.from_dict({"task": {"name": task, field: BAD}})
    assert str(error.value) == f"task.{field} must be one of {list(values)}, got {BAD!r}"
    for value in values:  # and every value the Literal allows builds the task
        assert getattr(RunConfig.from_dict({"task": {"name": task, field: value}}).make_task(),
                       field) == value


@pytest.mark.parametrize("optimizer", typing.get_args(Optimizer))
def test_every_optimizer_the_literal_allows_is_built(optimizer):
    from plateau_lens.training.optimizers import build_optimizer

    network = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    built = build_optimizer(network, TrainConfig(optimizer=optimizer), torch.device("cpu"))
    assert isinstance(built, torch.optim.Optimizer)
    expected = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
    if optimizer in expected:
        assert type(built) is expected[optimizer]


@pytest.mark.parametrize("schedule", typing.get_args(Schedule))
def test_every_schedule_the_literal_allows_is_built(schedule):
    from plateau_lens.training.optimizers import lr_factor

    assert lr_factor(10, schedule, 2, 20) == pytest.approx(
        {"constant": 1.0, "cosine": 0.5 * (1 + torch.cos(torch.tensor(torch.pi * 8 / 18)).item())}[schedule])


def test_every_attention_kind_is_built_and_a_bad_one_names_the_literal():
    from transformer_lens import TransformerBridgeConfig

    from plateau_lens.models.layers import PlateauAttention

    cfg = TransformerBridgeConfig(d_model=8, d_head=4, n_heads=2, n_layers=1, n_ctx=4, d_vocab=5,
                                  architecture="TransformerLensNative")
    for kind in typing.get_args(AttentionKind):
        assert PlateauAttention(cfg, kind=kind).kind == kind
    with pytest.raises(ValueError, match=rf"attention must be one of \{list(typing.get_args(AttentionKind))}"):
        PlateauAttention(cfg, kind=BAD)


def test_the_cli_precision_choices_are_the_literal(capsys):
    from plateau_lens.cli import main

    with pytest.raises(SystemExit):
        main(["train", "tasks/mws.toml", "--precision", BAD])
    choices = ", ".join(repr(value) for value in typing.get_args(Precision))
    assert f"invalid choice: {BAD!r} (choose from {choices})" in capsys.readouterr().err


def module_tuples_of_strings(path: Path) -> dict[str, frozenset]:
    """Module-level ``NAME = ("a", "b", ...)`` assignments of a source file."""
    found = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and isinstance(node.value, ast.Tuple)
                and node.value.elts and all(isinstance(e, ast.Constant) and isinstance(e.value, str)
                                            for e in node.value.elts)):
            found[node.targets[0].id] = frozenset(e.value for e in node.value.elts)
    return found


def test_no_module_keeps_a_tuple_that_copies_a_literal():
    from plateau_lens.tasks import TASKS

    literals = {frozenset(typing.get_args(Section)): "config.run.Section"}
    for model in SECTION_MODELS:
        literals.update({frozenset(values): f"{model.section}.{name}"
                         for name, values in literal_fields(model).items() if len(values) > 1})
    for name, cls in TASKS.items():
        for field, hint in typing.get_type_hints(cls).items():
            if (values := literal_of(hint)) and len(values) > 1:
                literals[frozenset(values)] = f"task {name}.{field}"
    assert len(literals) >= 12
    copies = [f"{path.relative_to(PACKAGE.parent)}: {name} copies {literals[values]}"
              for path in sorted(PACKAGE.rglob("*.py"))
              for name, values in module_tuples_of_strings(path).items() if values in literals]
    assert not copies


def test_a_plugin_task_s_literal_field_is_checked_by_the_config_schema():
    """A task class that checks nothing itself still gets its Literal field checked."""
    import dataclasses

    from plateau_lens.config import task_schema

    @dataclasses.dataclass(frozen=True)
    class Unchecked:
        mode: typing.Literal["a", "b"] = "a"

    schema = task_schema(Unchecked)
    assert schema(mode="b").mode == "b"
    with pytest.raises(ConfigError) as error:
        schema(mode="c")
    assert str(error.value) == "task.mode must be one of ['a', 'b'], got 'c'"
