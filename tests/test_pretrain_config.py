"""The LLM pretraining config (``plateau_lens.config.pretrain``): validated by the strict
means of the run config, with the [model]/[train] names where the concept is the same, old
names refused with the new one, and ``pretrain_series`` driven by what it says (issue 33)."""

import ast
import json
import math

import pytest
import torch

from plateau_lens.config import ConfigError, ModelConfig, PretrainConfig, TrainConfig
from plateau_lens.config.pretrain import pythia_like_schedule

SHARED_WITH_TRAIN = {"steps", "batch_size", "lr", "warmup_steps", "weight_decay", "betas",
                     "grad_clip", "seed"}
SHARED_WITH_MODEL = {"n_layers", "n_heads", "d_model", "d_mlp"}


def test_the_same_concepts_have_the_same_names_as_the_toy_config():
    assert SHARED_WITH_TRAIN <= set(PretrainConfig.model_fields) & set(TrainConfig.model_fields)
    assert SHARED_WITH_MODEL <= set(PretrainConfig.model_fields) & set(ModelConfig.model_fields)
    assert not {"warmup"} & set(PretrainConfig.model_fields)


def test_old_name_is_refused_naming_the_new_one():
    with pytest.raises(ConfigError) as error:
        PretrainConfig(warmup=4)
    assert str(error.value) == ("pretrain.warmup is now called pretrain.warmup_steps (the name "
                                "the other config sections use): rename the field")


def test_unknown_field_is_refused_naming_it_and_its_allowed_neighbours():
    with pytest.raises(ConfigError) as error:
        PretrainConfig(warmpu_steps=4, n_layers=2)
    message = str(error.value)
    assert message.startswith("unknown [pretrain] field(s) ['warmpu_steps']; allowed: [")
    assert message.endswith("did you mean ['warmup_steps']?")
    allowed = message.split("allowed: ")[1].split("]")[0] + "]"
    assert ast.literal_eval(allowed) == sorted(PretrainConfig.model_fields)  # the list is the fields, all of them


def test_steps_as_the_old_list_of_saved_steps_points_to_checkpoint_steps():
    with pytest.raises(ConfigError, match=r"pretrain\.steps is the number of optimiser updates.*"
                                          r"pretrain\.checkpoint_steps"):
        PretrainConfig(steps=[0, 1, 2, 4])


@pytest.mark.parametrize("values, message", [
    ({"lr": "1e-3"}, r"pretrain\.lr must be > 0 \(a finite number\), got '1e-3' \(a string\)"),
    ({"lr": math.nan}, r"pretrain\.lr must be > 0"),
    ({"warmup_steps": -1}, r"pretrain\.warmup_steps must be in \[0, 10000000000\] \(an integer\), got -1"),
    ({"n_heads": 3}, r"pretrain\.d_model must be divisible by n_heads=3"),
    ({"min_lr_ratio": 1.5}, r"pretrain\.min_lr_ratio must be in \[0, 1\], got 1\.5"),
    ({"steps": 10, "checkpoint_steps": [0, 11]}, r"pretrain\.checkpoint_steps must be .* \[0, steps=10\]"),
    ({"checkpoint_steps": []}, r"pretrain\.checkpoint_steps must be a non-empty list"),
    ({"betas": [0.9, 1.0]}, r"pretrain\.betas\[1\] must be"),
])
def test_bad_values_are_refused_naming_the_field(values, message):
    with pytest.raises(ConfigError, match=message):
        PretrainConfig(**values)


def test_save_steps_default_to_the_pythia_like_schedule_and_always_include_the_last():
    assert PretrainConfig(steps=64).save_steps() == [0, 1, 2, 4, 8, 16, 32, 64]
    assert PretrainConfig(steps=3500).save_steps() == pythia_like_schedule(3500)
    assert PretrainConfig(steps=10, checkpoint_steps=[5, 0, 5]).save_steps() == [0, 5, 10]


def test_learning_rate_warms_up_over_warmup_steps_then_decays_by_cosine():
    """Hand-worked: lr 1e-3, W = 4, total 20, floor 0.1: step s < W gives lr (s+1)/W; after,
    lr (0.1 + 0.9 · ½(1 + cos(π (s − W)/(20 − W))))."""
    from plateau_lens.llm.pretrain import learning_rate

    config = PretrainConfig(lr=1e-3, warmup_steps=4, min_lr_ratio=0.1, steps=20)
    expected = {0: 2.5e-4, 1: 5e-4, 3: 1e-3, 4: 1e-3, 12: 1e-3 * 0.55, 20: 1e-4}
    for step, value in expected.items():
        assert learning_rate(config, step, 20) == pytest.approx(value, rel=1e-12), step


def test_pretrain_series_refuses_a_bad_config_before_any_work(tmp_path):
    from plateau_lens.llm.pretrain import pretrain_series

    out = tmp_path / "series"
    with pytest.raises(ConfigError, match="pretrain.warmup is now called pretrain.warmup_steps"):
        pretrain_series(out, ["some text"], {"warmup": 3})
    with pytest.raises(TypeError, match="config must be a PretrainConfig or a dict"):
        pretrain_series(out, ["some text"], object())
    assert not out.exists()


def test_pretrain_series_trains_steps_updates_saves_its_steps_and_uses_its_betas(tmp_path, monkeypatch):
    from plateau_lens.llm.pretrain import pretrain_series

    seen = {}

    class RecordingAdamW(torch.optim.AdamW):
        def __init__(self, groups, **options):
            seen.update(options, decays=[g["weight_decay"] for g in groups])
            super().__init__(groups, **options)

        def step(self, closure=None):
            seen["updates"] = seen.get("updates", 0) + 1
            return super().step(closure)

    monkeypatch.setattr(torch.optim, "AdamW", RecordingAdamW)
    documents = ["the cat sat on the mat and the dog sat on the log " * 8] * 6
    config = PretrainConfig(n_layers=1, d_model=8, n_heads=2, d_mlp=16, vocab_size=300,
                            seq_len=8, batch_size=2, steps=5, checkpoint_steps=[0, 2],
                            warmup_steps=2, betas=(0.8, 0.9), weight_decay=0.3, lr=1e-3)
    summary = pretrain_series(tmp_path, documents, config)
    assert sorted(int(p.name[4:]) for p in tmp_path.glob("step*")) == [0, 2, 5]
    assert seen["updates"] == 5
    assert seen["betas"] == (0.8, 0.9) and seen["lr"] == 1e-3 and seen["decays"] == [0.3, 0.0]
    written = json.loads((tmp_path / "pretrain.json").read_text())
    assert written["config"]["warmup_steps"] == 2 and written["config"]["checkpoint_steps"] == [0, 2, 5]
    assert sorted(map(int, summary["training_loss"])) == [0, 2, 5]
