import os

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def small_lrmc_config():
    from plateau_lens import load_config

    return load_config({
        "task": {"name": "lrmc", "m": 4, "n": 4, "rank": 1, "p_mask": 0.3},
        "model": {"n_layers": 2, "n_heads": 2, "d_model": 16, "attention": "softmax",
                  "act_fn": "gelu"},
        "train": {"steps": 12, "batch_size": 8, "lr": 1e-3, "log_every": 1,
                  "checkpoint_every": 4},
    })


@pytest.fixture
def small_mws_config():
    from plateau_lens import load_config

    return load_config({
        "task": {"name": "mws", "n_inputs": 6},
        "model": {"n_layers": 1, "n_heads": 1, "d_model": 16},
        "train": {"steps": 12, "batch_size": 8, "eval_batch_size": 4, "lr": 1e-3,
                  "log_every": 2, "checkpoint_every": 4},
    })
