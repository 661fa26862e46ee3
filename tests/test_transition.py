"""Transition detection on synthetic curves with known plateau/drop, and on a real run."""

from pathlib import Path

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
    # a power law falls fast at first, then flattens: there is no plateau before the drop
    power_law = 0.2 * (1 + steps) ** -0.5
    assert detect_transition(power_law, steps=steps) is None
    shallow = 0.2 * (1 + steps) ** -0.03
    assert detect_transition(shallow, steps=steps) is None


def test_cross_entropy_with_a_floor():
    """MWS-like: CE 2.63 on the plateau, 1.34 after (half the positions are unpredictable)."""
    steps = np.arange(0, 400, 5)
    losses = synthetic(steps, 50, 280, 330, high=2.63, low=1.34, initial=2.9, noise=0.005)
    found = detect_transition(losses, steps=steps)
    assert found is not None and 270 <= found.drop_step <= 340


def test_bad_input():
    with pytest.raises(ValueError, match="at least 8"):
        detect_transition(np.ones(3))
    with pytest.raises(ValueError, match="positive"):
        detect_transition(np.r_[np.ones(10), 0.0])
    import pandas as pd

    with pytest.raises(ValueError, match="columns"):
        detect_transition(pd.DataFrame({"step": [1], "mse": [1.0]}), "loss")


def test_real_mws_run_has_a_detected_plateau_and_drop(tmp_path):
    """A short MWS (8 inputs, d_model 128) drops within ~250 steps on the CPU (~20 s)."""
    from plateau_lens import load_config, load_run, train

    config = load_config({
        "task": {"name": "mws", "n_inputs": 8}, "model": {"d_model": 128},
        "train": {"steps": 300, "batch_size": 64, "lr": 3e-4, "log_every": 5,
                  "checkpoint_every": 100}})
    run = load_run(train(config, tmp_path / "mws", progress=False))
    found = run.transition()
    assert found is not None
    assert found.plateau_start < found.plateau_end <= found.drop_step <= found.drop_end
    metrics = run.metrics.set_index("step")
    plateau = metrics.loc[found.plateau_start : found.plateau_end]
    after = metrics.loc[found.drop_end :]
    assert plateau["accuracy"].mean() < 0.5 < 0.9 < after["accuracy"].mean()
    assert plateau["loss"].mean() > 1.5 * after["loss"].mean()


@pytest.mark.parametrize("seed", range(5))
def test_noisy_one_batch_metric_is_found_by_wider_smoothing(seed):
    """LRMC-like masked MSE at batch 64: 0.108 until step 7 000, falls to 0.053 by 11 500,
    per-step scatter 0.05 decades (as measured on tasks/lrmc_cpu.toml) - more than the
    0.03-decade tolerance band, so the default 3 % window fails and a wider one is needed."""
    steps = np.arange(0, 13_000, 50)
    losses = synthetic(steps, 300, 7_000, 11_500, high=0.108, low=0.053, initial=0.2,
                       noise=0.05, seed=seed)
    assert detect_transition(losses, steps=steps, smoothing=0.03) is None
    found = detect_transition(losses, steps=steps)
    assert found is not None
    assert 6_000 <= found.plateau_end <= 8_500
    assert 10_000 <= found.drop_end <= 12_500
    assert found.drop_length == found.drop_end - found.plateau_end
    assert found.plateau_loss == pytest.approx(0.108, rel=0.1)
    # the same scatter on a curve without a plateau is still not a transition
    noisy_power_law = 0.2 * (1 + steps) ** -0.5 * 10 ** np.random.default_rng(seed).normal(0, 0.05, len(steps))
    assert detect_transition(noisy_power_law, steps=steps) is None


def two_phase(steps, seed):
    """LRMC-like drop in two phases (as seed 1 of tasks/lrmc_cpu.toml at batch 64): 0.11 until 6 000, a
    step to 0.078 by 6 300, a slow stretch, then a steeper step to 0.05 at 9 000-9 150."""
    log = np.interp(steps, [0, 300, 6_000, 6_300, 9_000, 9_150, steps[-1]],
                    np.log10([0.2, 0.11, 0.11, 0.078, 0.072, 0.05, 0.05]))
    return 10 ** (log + np.random.default_rng(seed).normal(0, 0.05, len(steps)))


@pytest.mark.parametrize("seed", range(5))
def test_drop_in_two_phases_is_found_where_the_plateau_ends(seed):
    """The later step is steeper, but the plateau ends at the first one."""
    steps = np.arange(0, 10_000, 50)
    found = detect_transition(two_phase(steps, seed), steps=steps)
    assert found is not None
    assert found.plateau_start <= 1_000  # noise does not cut the plateau short
    assert 5_500 <= found.plateau_end <= 6_300
    assert 5_800 <= found.drop_step <= 6_600
    assert found.drop_end >= 9_000
    assert found.plateau_loss == pytest.approx(0.11, rel=0.1)


def test_describe_is_the_line_the_demo_and_the_mc_loss_entry_print():
    """Transition.describe, written out by hand for one transition (losses to 4 digits)."""
    from plateau_lens.transition import Transition

    transition = Transition(plateau_start=0, plateau_end=170, drop_step=190, drop_end=210,
                            plateau_loss=2.63360, final_loss=0.046412)
    assert transition.describe() == ("steps 0–170 at loss 2.634; steepest drop at step 190; "
                                     "drop over by step 210 (loss 0.04641)")


def test_a_run_too_short_to_tell_has_no_transition_and_the_demo_says_so(tmp_path, small_mws_config, capsys):
    """Where detect_transition raises on a run's curve (fewer logged points than it needs, a
    value of 0, no such column), Run.transition() is None; and `plateau-lens demo` on a short
    run finishes, writes its figures and says no plateau-and-drop was found (it used to exit 2
    after training)."""
    from plateau_lens import train
    from plateau_lens.cli import main
    from plateau_lens.runs.load import load_run
    from plateau_lens.transition import MIN_POINTS

    short = train(small_mws_config.replace(train={"steps": 6}), tmp_path / "short", progress=False)
    metrics = load_run(short).metrics
    assert 0 < len(metrics) < MIN_POINTS
    with pytest.raises(ValueError, match="logged points"):
        detect_transition(metrics, "loss")
    assert load_run(short).transition() is None

    # enough points, but a value of 0 (an exactly solved masked MSE) or no such column
    longer = train(small_mws_config.replace(train={"steps": 20}), tmp_path / "longer", progress=False)
    run = load_run(longer)
    assert len(run.metrics) >= MIN_POINTS
    run.metrics.loc[3, "loss"] = 0.0
    with pytest.raises(ValueError, match="must be positive"):
        detect_transition(run.metrics, "loss")
    assert run.transition() is None and run.transition("no_such_column") is None

    config_path = tmp_path / "config.json"
    config_path.write_text(small_mws_config.to_json())
    demo = tmp_path / "demo"
    assert main(["demo", "--config", str(config_path), "--out", str(demo), "--steps", "6", "--quiet"]) == 0
    assert "no plateau-and-drop found" in capsys.readouterr().out
    for name in ["figures/loss_curve.png", "figures/attention_progress.png", "attention_progress.csv"]:
        assert (demo / name).is_file(), name


def test_the_demo_finds_its_default_config_from_any_directory(tmp_path, monkeypatch):
    """`plateau-lens demo` without --config reads the repository's tasks/mws.toml wherever it
    runs (a relative default failed outside the checkout)."""
    from plateau_lens import load_config
    from plateau_lens.cli import main
    from plateau_lens.runs.load import load_run

    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--out", "demo", "--steps", "2", "--quiet"]) == 0
    repository_config = load_config(Path(__file__).resolve().parents[1] / "tasks" / "mws.toml")
    assert load_run(tmp_path / "demo").config == repository_config.replace(train={"steps": 2})
