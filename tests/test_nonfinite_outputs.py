"""Analyzers that read a model's output refuse a non-finite one (issue 36): with every weight
finite, a read-out that overflows float32 (the final LayerNorm's bias 1e30, every read-out
weight 1e10: each logit sums terms of ~1e40 > 3.4e38, so it is inf, and softmax/argmax of it
are nan/token 0) must end in InputError, never in a table of metrics computed from inf."""

import pytest
import torch

from perturbed import perturbed_model, sample
from plateau_lens import ModelConfig, make_task
from plateau_lens.analysis import (ablate_heads, ablation_sweep, copying_test, patch_activations,
                                   permuted_positions, repetition, swap_attention)
from plateau_lens.errors import InputError, check_finite_weights

CONFIG = ModelConfig(n_layers=1, n_heads=2, d_model=16, attention="softmax")
MWS = make_task("mws", n_inputs=5)
LRMC = make_task("lrmc", m=3, n=3, rank=1)


def overflowing(task, seed=0):
    """A perturbed model whose weights are finite but whose output is inf on every input."""
    model = perturbed_model(task, CONFIG, seed=seed)
    with torch.no_grad():
        model.network.ln_out.bias.fill_(1e30)
        model.network.head.weight.fill_(1e10)
    check_finite_weights(model)  # the weights themselves pass the weight check
    assert not torch.isfinite(model(sample(task, 2).inputs)).any()  # independent: the output overflows
    return model


@pytest.fixture(scope="module")
def mws_overflow():
    return overflowing(MWS)


@pytest.fixture(scope="module")
def lrmc_overflow():
    return overflowing(LRMC)


CASES = {
    "ablate_heads": lambda mws, lrmc: ablate_heads(mws, sample(MWS, 3)),
    "ablation_sweep": lambda mws, lrmc: ablation_sweep(mws, sample(MWS, 3), progress=False),
    "repetition": lambda mws, lrmc: repetition(mws, sample(MWS, 3)),
    "patch_activations": lambda mws, lrmc: patch_activations(lrmc, sample(LRMC, 3), progress=False),
    "copying_test": lambda mws, lrmc: copying_test(lrmc, sample(LRMC, 3)),
    "permuted_positions": lambda mws, lrmc: permuted_positions(lrmc, sample(LRMC, 3), n_permutations=2,
                                                               progress=False),
    "swap_attention": lambda mws, lrmc: swap_attention(perturbed_model(LRMC, CONFIG, seed=1), lrmc,
                                                       sample(LRMC, 3)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_overflowing_output_is_refused(mws_overflow, lrmc_overflow, name):
    with pytest.raises(InputError, match=r"not finite on this input \(\d+ nan, \d+ inf"):
        CASES[name](mws_overflow, lrmc_overflow)


def test_finite_output_still_measured():
    """The check refuses only non-finite outputs: the same analyzers on the perturbed model
    without the overflow return finite tables."""
    mws, lrmc = perturbed_model(MWS, CONFIG), perturbed_model(LRMC, CONFIG)
    for name, call in CASES.items():
        frame = call(mws, lrmc)
        assert torch.isfinite(torch.tensor(frame["value"].astype(float).to_numpy())).all(), name
