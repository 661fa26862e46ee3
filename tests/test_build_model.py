"""One ``build_model``: every form of a run config builds the same initial network, and it is
the network the trainer starts from (checkpoint 0 of a run, read from the file)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from plateau_lens import build_model, load_config, train
from plateau_lens.runs.layout import checkpoint_path

SETTINGS = {
    "task": {"name": "mws", "n_inputs": 4},
    "model": {"n_layers": 1, "n_heads": 2, "d_model": 16},
    "train": {"steps": 1, "batch_size": 4, "eval_batch_size": 4, "seed": 3, "log_every": 1,
              "checkpoint_every": 1},
}


def weights(model) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in model.network.state_dict().items()}


def test_every_form_of_a_config_builds_the_trainers_initial_network(tmp_path):
    config = load_config(SETTINGS)
    path = tmp_path / "config.toml"
    path.write_text('[task]\nname = "mws"\nn_inputs = 4\n[model]\nn_layers = 1\nn_heads = 2\n'
                    'd_model = 16\n[train]\nsteps = 1\nbatch_size = 4\neval_batch_size = 4\n'
                    'seed = 3\nlog_every = 1\ncheckpoint_every = 1\n')
    train(config, tmp_path / "run", progress=False)
    initial = load_file(checkpoint_path(tmp_path / "run", 0))  # the file, not our loader
    forms = {"RunConfig": build_model(config), "dict": build_model(SETTINGS),
             "TOML path": build_model(path),
             "(task, ModelConfig)": build_model((config.make_task(), config.model), seed=3)}
    for form, model in forms.items():
        built = weights(model)
        assert set(built) == set(initial), form
        for name, tensor in built.items():
            assert torch.equal(tensor, initial[name]), f"{form}: {name} differs from checkpoint 0"
    other_seed = weights(build_model(config, seed=4))
    assert any(not torch.equal(other_seed[name], initial[name]) for name in initial)


def test_a_pair_without_a_model_config_is_refused():
    config = load_config(SETTINGS)
    with pytest.raises(ValueError, match="needs a ModelConfig"):
        build_model((config.make_task(), {"d_model": 16}))
