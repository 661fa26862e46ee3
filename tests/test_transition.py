"""Transition detection on synthetic curves with known plateau/drop, and on a real run."""

import numpy as np
import pytest

from plateau_lens.transition import detect_transition


def synthetic(steps, plateau_start, drop_start, drop_end, high=0.2, low=0.002, initial=1.0,
              noise=0.0, seed=0):
    """log10-linear descent to `high` by plateau_start, flat, linear fall to `low`, flat."""
    log = np.interp(steps, [0, plateau_start, drop_start, drop_end, steps[-1]],
                    np.log10([initial, high, high, low, low]))
    log = log + np.random.default_rng(seed).normal(0, noise, len(steps))
    return 10**log


@pytest.mark.parametrize("noise", [0.0, 0.03])
@pytest.mark.parametrize("plateau_start,drop_start,drop_end", [
    (300, 1000, 1100), (100, 1500, 1520), (500, 700, 900)])
def test_synthetic_curves(noise, plateau_start, drop_start, drop_end):
    steps = np.arange(0, 2000, 5)
    losses = synthetic(steps, plateau_start, drop_start, drop_end, noise=noise)
    found = detect_transition(losses, steps=steps, tolerance=0.1)
    assert found is not None
    # tolerance 0.1 of a 2-decade drop = 0.2 decades: the plateau starts once the initial
    # descent (0.7 decades over plateau_start steps) is within 0.2 decades of the plateau
    expected_start = plateau_start * (1 - 0.2 / 0.7)
    slack = 40
    assert abs(found.plateau_start - expected_start) <= slack
    assert abs(found.plateau_end - (drop_start + 0.1 * (drop_end - drop_start))) <= slack
    assert drop_start - slack <= found.drop_step <= drop_end + slack
    assert abs(found.drop_end - (drop_end - 0.1 * (drop_end - drop_start))) <= slack
    assert found.plateau_loss == pytest.approx(0.2, rel=0.1)
    assert found.final_loss == pytest.approx(0.002, rel=0.1)


def test_no_transition_on_flat_or_smooth_curves():
    steps = np.arange(500)
    flat = 0.2 + np.random.default_rng(0).normal(0, 0.001, 500)
    assert detect_transition(flat, steps=steps) is None
    # a smooth power law falls 1 decade: above min_drop, so it is reported; shallow isn't
    shallow = 0.2 * (1 + steps) ** -0.05
    assert detect_transition(shallow, steps=steps) is None


def test_bad_input():
    with pytest.raises(ValueError, match="at least 8"):
        detect_transition(np.ones(3))
    with pytest.raises(ValueError, match="positive"):
        detect_transition(np.r_[np.ones(10), 0.0])
    import pandas as pd

    with pytest.raises(ValueError, match="columns"):
        detect_transition(pd.DataFrame({"step": [1], "mse": [1.0]}), "loss")
