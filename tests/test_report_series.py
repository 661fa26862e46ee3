"""The report on a log-spaced (Pythia-style) checkpoint series: onsets dated on a log(1 + step)
grid, figures on a log step axis, each head-score panel marking its most rising head's onset.
References are curves with known breaks and the figures' own axes and annotations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from plateau_lens.development.head_scores import head_curves, plot_head_scores
from plateau_lens.development.onsets import change_points, onset_table
from plateau_lens.development.report import metrics_figure, onset_figure, onset_options
from plateau_lens.llm.pretrain import pythia_like_schedule

PYTHIA = np.asarray(pythia_like_schedule(3500), dtype=float)  # 0, 1, 2, 4, ..., 512, 1000, ..., 3500
EVEN = np.arange(0, 401, 4, dtype=float)


def log_ramp(start, end, high=1.0, low=0.1, steps=PYTHIA):
    """``high`` up to ``start``, linear in log(1 + step) down to ``low`` at ``end``, flat after."""
    return np.interp(np.log1p(steps), np.log1p([0, start, end, 3500]), [high, high, low, low])


def test_onsets_on_pythias_schedule_are_dated_on_a_log_grid():
    assert onset_options(PYTHIA) == {"log_steps": True} and onset_options(EVEN) == {"log_steps": False}
    onset, end = change_points(PYTHIA, log_ramp(16, 128), log_steps=True)
    # resolution 2 % of log(3501): a factor ~1.18 in 1 + step
    assert 16 / 1.25 <= onset <= 16 * 1.25 and 128 / 1.25 <= end <= 128 * 1.25
    onset, end = change_points(PYTHIA, log_ramp(256, 2000), log_steps=True)
    assert 256 / 1.25 <= onset <= 256 * 1.25 and 2000 / 1.25 <= end <= 2000 * 1.25
    # the even grid cannot resolve the early change: its earliest possible breakpoint is grid
    # point 4 (min_size 3, jump 2), step 141, far past step 16
    linear_onset, _ = change_points(PYTHIA, log_ramp(16, 128))
    assert linear_onset >= 141
    with pytest.raises(ValueError, match="log_steps needs steps >= 0"):
        change_points(PYTHIA - 5, log_ramp(16, 128), log_steps=True)


def test_report_figures_use_a_log_step_axis_on_a_log_spaced_schedule():
    for steps, scale in ((PYTHIA, "symlog"), (EVEN, "linear")):
        wide = pd.DataFrame({"step": steps, "training_loss": 9 - np.log1p(steps),
                             "repetition_frequency": np.linspace(1, 0, len(steps))})
        figure = metrics_figure(wide, ["training_loss", "repetition_frequency"], None, "series")
        assert [axis.get_xscale() for axis in figure.axes] == [scale, scale]
        assert figure.axes[0].get_yscale() == "log"  # the loss on a log axis
        table = pd.DataFrame({"measure": ["a", "b"], "onset_step": pd.array([8, 300], "Int64"),
                              "end_step": pd.array([64, 2000], "Int64")})
        assert onset_figure(table, None, "onsets", steps).axes[0].get_xscale() == scale


def test_head_score_figure_marks_the_onset_of_the_head_that_rises_most():
    rng = np.random.default_rng(0)
    rows = []
    for layer in range(2):
        for head in range(2):
            for metric in ("previous_token", "induction"):
                values = 0.02 + rng.normal(0, 0.002, len(PYTHIA))
                if (metric, layer, head) == ("induction", 1, 0):
                    values = log_ramp(256, 1500, high=0.02, low=0.45)  # forms from step 256
                if (metric, layer, head) == ("induction", 0, 1):
                    values = log_ramp(64, 512, high=0.3, low=0.05)     # fades: not the rising one
                rows += [{"step": s, "metric": metric, "layer": layer, "head": head, "value": v}
                         for s, v in zip(PYTHIA, values)]
    scores = pd.DataFrame(rows)
    onsets = onset_table(head_curves(scores), **onset_options(PYTHIA)).set_index("measure")
    figure = plot_head_scores(scores, onsets=onsets.reset_index())
    induction_axis = next(a for a in figure.axes if a.get_title() == "induction")
    texts = [t.get_text() for t in induction_axis.texts]
    step = int(onsets.loc["induction L1H0", "onset_step"])
    assert 256 / 1.25 <= step <= 256 * 1.25
    assert texts == [f"onset L1H0: step {step}\n(change {onsets.loc['induction L1H0', 'change']:+.3f})"]
    assert any(list(line.get_xdata()) == [step, step] for line in induction_axis.lines)
    assert induction_axis.get_xscale() == "symlog"


def test_llc_checkpoints_are_spread_in_log_steps_on_a_log_spaced_schedule():
    from plateau_lens.development.report import select_steps

    # by hand: log(1 + 3500) / 5 = 1.632; targets e^(1.632 k) - 1 = 0, 4.1, 25, 133, 684, 3500;
    # nearest in log(1 + step): 0, 4, 32, 128, 512, 3500
    assert select_steps(PYTHIA.astype(int).tolist(), 6) == [0, 4, 32, 128, 512, 3500]
    assert select_steps(list(range(0, 401, 4)), 5) == [0, 100, 200, 300, 400]


def test_head_score_figure_says_when_no_head_rises():
    rows = [{"step": s, "metric": "induction", "layer": 0, "head": head, "value": v}
            for head in range(2) for s, v in zip(PYTHIA, log_ramp(256, 1500, high=0.011,
                                                                   low=0.002 + 0.001 * head))]
    scores = pd.DataFrame(rows)
    onsets = onset_table(head_curves(scores), log_steps=True)
    axis = plot_head_scores(scores, onsets=onsets).axes[0]
    largest = onsets["change"].max()
    assert largest < 0
    assert [t.get_text() for t in axis.texts] == [f"no head's score rises (largest change {largest:+.4f})"]
