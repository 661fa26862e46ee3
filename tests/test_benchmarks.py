"""The benchmark scripts' own logic: the time-to-transition summary on curves with a planted
drop, and one short training curve per implementation."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import time_to_transition  # noqa: E402


def planted_curve(drop_step: int, seconds_per_step: float, seed: int) -> pd.DataFrame:
    """Plateau at 0.1, a drop to 0.01 centred on ``drop_step`` (width ~20 steps), 1 % noise."""
    steps = np.arange(0, 2000, 10)
    loss = 0.01 + 0.09 / (1 + np.exp((steps - drop_step) / 5.0))
    loss *= 1 + 0.01 * np.random.default_rng(seed).standard_normal(len(steps))
    return pd.DataFrame({"step": steps, "seconds": steps * seconds_per_step, "loss": loss})


def test_time_to_transition_dates_the_planted_drops_in_wall_time():
    curves = pd.concat([planted_curve(1200, 0.5, 0).assign(implementation="reference"),
                        planted_curve(800, 0.1, 1).assign(implementation="plateau-lens")],
                       ignore_index=True)
    summary = time_to_transition.summarise(curves, "masked_mse").set_index("implementation")
    assert summary.loc["reference", "drop_step"] == pytest.approx(1200, abs=20)
    assert summary.loc["plateau-lens", "drop_step"] == pytest.approx(800, abs=20)
    assert summary.loc["reference", "seconds_to_drop"] == pytest.approx(600, abs=10)
    assert summary.loc["plateau-lens", "seconds_to_drop"] == pytest.approx(80, abs=2)
    assert time_to_transition.seconds_at(curves[curves.implementation == "reference"], 1205) == 602.5
    # a curve without a drop (or too short to tell) gets no drop columns, not an error
    flat = pd.DataFrame({"step": np.arange(5), "seconds": np.arange(5.0), "loss": np.full(5, 0.1),
                         "implementation": "reference"})
    assert "drop_step" not in time_to_transition.summarise(flat, "loss")


def test_train_curve_logs_steps_seconds_and_the_task_loss(tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text('[task]\nname = "lrmc"\nm = 3\nn = 3\nrank = 1\n'
                      '[model]\nn_layers = 1\nn_heads = 2\nd_model = 16\n'
                      '[train]\nbatch_size = 8\nlr = 1e-3\n')
    for impl in ("reference", "plateau-lens"):
        curve = time_to_transition.train_curve(impl, str(config), "cpu", "fp32", False, steps=7,
                                               log_every=3, time_limit=float("inf"))
        assert curve["step"] == [0, 3, 6]
        assert np.all(np.diff(curve["seconds"]) > 0)
        assert all(0 < value < 10 for value in curve["loss"])  # masked MSE of entries in [-1, 1]
    with pytest.raises(ValueError, match="impl must be one of"):
        time_to_transition.train_curve("bert", str(config), "cpu", "fp32", False, 2, 1, 1.0)


def test_sweep_breakdown_times_pieces_that_make_up_the_sweep(tmp_path):
    """benchmarks/sweep_breakdown.py on 3 checkpoints of tasks/lrmc_cpu.toml (the README's
    breakdown, at batch 128): it checks its timed copy of the attention against
    PlateauAttention (it exits otherwise) and prints every piece; "the rest" (the sweep minus
    its pieces) is between 0 and 30 %: the pieces add up to no more than the sweep (the
    attention's pieces counted twice made it -33 %) and to at least 70 % of it (measured: the
    rest is 8-9 %)."""
    import re
    import subprocess

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "sweep_breakdown.py"
    result = subprocess.run([sys.executable, str(script), "--run", str(tmp_path / "run"),
                             "--checkpoints", "3", "--batch-size", "128"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    shares = dict(re.findall(r"^\s+(.+?):\s+-?\d+ ms\s+(-?[\d.]+)%", result.stdout, flags=re.M))
    assert {"LayerNorms", "MLP: activation", "MLP: fc_in", "MLP: fc_out", "attention: QKᵀ",
            "attention: A·V", "attention: softmax", "the rest"} <= set(shares), result.stdout
    assert 0 <= float(shares["the rest"]) <= 30, result.stdout
