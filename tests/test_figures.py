"""Shipped figures a reader understands without the code: each is rendered from tables of
the shape its analyzer writes and checked on its matplotlib objects (tests/figure_checks.py):
labelled axes, a legend entry for every series, a colourbar beside heatmaps, no line hidden
under another, every point inside the x-limits, the drop marked where a transition is given."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch

from plateau_lens import plots
from plateau_lens.sweep.figures import plateau_length_figure
from plateau_lens.transition import Transition

from figure_checks import check_figure, data_lines, is_colorbar

STEPS = [0, 1, 2, 4, 8, 16, 32, 50, 100, 150, 200]  # the trainer's log-spaced checkpoints
TRANSITION = Transition(plateau_start=8, plateau_end=50, drop_step=100, drop_end=150,
                        plateau_loss=1.0, final_loss=0.1)


def ablation_table(n_layers: int, n_heads: int) -> pd.DataFrame:
    """``analyze_run(run, ablation_sweep)``'s columns: every head, then every whole layer
    (``heads`` lists the layer's heads); a one-head layer's ablation equals its head's."""
    rows = []
    for step in STEPS:
        for layer in range(n_layers):
            for head in range(n_heads):
                change = 0.05 * (layer + 1 + head / 3) * np.log1p(step)
                rows += [dict(step=step, scope="heads", heads=f"L{layer}H{head}", condition="clean",
                              metric="masked_mse", value=0.1),
                         dict(step=step, scope="heads", heads=f"L{layer}H{head}", condition="ablated",
                              metric="masked_mse", value=0.1 + change)]
            whole = 0.05 * (layer + 1) * np.log1p(step) * (1 if n_heads == 1 else 1.5)
            heads = ",".join(f"L{layer}H{h}" for h in range(n_heads))
            rows += [dict(step=step, scope="layer", heads=heads, condition="clean", metric="masked_mse",
                          value=0.1),
                     dict(step=step, scope="layer", heads=heads, condition="ablated", metric="masked_mse",
                          value=0.1 + whole)]
    return pd.DataFrame(rows)


def probe_table() -> pd.DataFrame:
    hooks = ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]
    rows = []
    for step in STEPS:
        for index, hook in enumerate(hooks):
            for target in ("input", "masked_entry"):
                rows.append(dict(step=step, hook=hook, target=target, metric="mse",
                                 value=(1 + index) / (1 + step)))
            rows.append(dict(step=step, hook=hook, target="is_masked", metric="accuracy",
                             value=min(1.0, 0.5 + (1 + index) * step / 2000)))
    return pd.DataFrame(rows)


def llm_table() -> pd.DataFrame:
    steps = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 2000, 4000, 8000, 16000, 32000, 64000, 143000]
    return pd.DataFrame([dict(model="pythia-14m", step=s, cosine_similarity=0.9 - 0.025 * np.log1p(s),
                              repetition_frequency=0.1 + 0.04 * np.log1p(s)) for s in steps])


def training_metrics() -> pd.DataFrame:
    steps = np.arange(0, 201, 2)
    drop = 1 / (1 + np.exp((steps - 100) / 5))
    return pd.DataFrame(dict(step=steps, loss=0.1 + 0.9 * drop, masked_mse=0.05 + 0.2 * drop,
                             observed_mse=0.01 + 0.02 * drop))


def study_metrics(shift: float = 0.0) -> pd.DataFrame:
    """metrics.csv of an MWS run: loss, per-position accuracy, repetition, collapse, progress."""
    m = training_metrics()
    m["step"] = m["step"] + int(shift)
    m["accuracy_pos_0"], m["accuracy_pos_1"] = 1 - m["loss"] / 2, 1 - m["loss"]
    m["accuracy"] = 1 - 0.8 * m["loss"]
    m["repetition_frequency"], m["repetition_frequency_data"] = m["loss"] / 3, 0.05
    m["cosine_similarity"], m["attention_progress"] = 0.5 + m["loss"] / 3, 1 - m["loss"]
    return m


def sweep_frame() -> pd.DataFrame:
    """``plateau-lens sweep``'s summary: plateau length per run, three lr values × 3 seeds."""
    return pd.DataFrame([{"train.lr": lr, "train.seed": seed, "plateau_length": 100 + 50 * i + 5 * seed,
                          "status": "finished", "steps": 400}
                         for i, lr in enumerate([1e-4, 3e-4, 1e-3]) for seed in range(3)])


FIGURES = {
    "plateau_dynamics": lambda: plots.plateau_dynamics({"mws": study_metrics()},
                                                       transitions={"mws": TRANSITION}),
    "plateau_dynamics_two_runs": lambda: plots.plateau_dynamics(
        {"c=1": study_metrics(), "c=10": study_metrics(shift=-40)}, transitions={"c=1": TRANSITION}),
    "probe_accuracy_vs_step": lambda: plots.probe_accuracy_vs_step(
        pd.DataFrame([dict(step=s, metric=k, value=v) for s in STEPS
                      for k, v in (("accuracy", min(1, 0.3 + s / 300)), ("majority_baseline", 0.3))]),
        training_metrics(), TRANSITION),
    "collapse_by_site": lambda: plots.collapse_by_site(
        pd.DataFrame([dict(step=s, metric="cosine_similarity", site=site, layer=float(layer),
                           value=0.9 - 0.1 * layer - s / 1000)
                      for s in STEPS for site, layer in (("pre_att_h", 0), ("pre_lm_h", 1))]), TRANSITION),
    "patching_heatmaps": lambda: plots.patching_heatmaps(
        pd.DataFrame([dict(condition="patched", metric=metric, layer=layer, head=head,
                           value=0.1 * layer + 0.01 * head + (metric == "loss"))
                      for metric in ("loss", "masked_mse") for layer in range(2) for head in range(4)]),
        ["loss", "masked_mse"]),
    "probes_by_layer": lambda: plots.probes_by_layer(
        pd.DataFrame([dict(step=step, target=target, metric=metric, layer=float(layer),
                           hook=f"blocks.{layer}.hook_resid_post", value=(1 + layer) / (1 + step) + len(target))
                      for step in (0, 100, 200) for target in ("input", "masked_entry")
                      for metric in ("mse", "abs_cosine") for layer in range(3)]), ["input", "masked_entry"]),
    "sweep_plateau_length": lambda: plateau_length_figure(sweep_frame(), "train.lr", []),
    "loss_curve": lambda: plots.loss_curve(training_metrics(), transition=TRANSITION),
    "mc_training_curves": lambda: plots.mc_training_curves(training_metrics(), TRANSITION),
    "ablation_one_head_layers": lambda: plots.ablation_vs_step(ablation_table(2, 1), "masked_mse", TRANSITION),
    "ablation_two_head_layers": lambda: plots.ablation_vs_step(ablation_table(2, 2), "masked_mse", TRANSITION),
    "linear_probe_accuracy": lambda: plots.probe_vs_step(probe_table(), "accuracy", TRANSITION),
    "linear_probe_mse": lambda: plots.probe_vs_step(probe_table(), "mse", TRANSITION),
    "attention_maps": lambda: plots.attention_grid(
        {step: torch.softmax(torch.randn(2, 2, 6, 6, generator=torch.Generator().manual_seed(step)), -1)
         for step in (0, 100)}),
    "llm_series": lambda: plots.llm_series_panels(llm_table(), "pythia"),
}
MARKED = {"plateau_dynamics", "plateau_dynamics_two_runs", "probe_accuracy_vs_step", "collapse_by_site",
          "loss_curve", "mc_training_curves", "ablation_one_head_layers", "ablation_two_head_layers",
          "linear_probe_accuracy", "linear_probe_mse"}


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_figure_reads_without_the_code(name):
    figure = FIGURES[name]()
    figure.canvas.draw()  # layouts (tight, constrained) settle on a draw
    try:
        problems = check_figure(figure, TRANSITION.drop_step if name in MARKED else None)
        assert problems == [], problems
    finally:
        plt.close(figure)


def test_a_one_head_layer_is_drawn_once_and_named_as_both():
    figure = plots.ablation_vs_step(ablation_table(2, 1), "masked_mse")
    (axis,) = figure.axes
    assert len(data_lines(axis)) == 2  # L0H0 and L1H0; the layers are these heads
    labels = axis.get_legend_handles_labels()[1]
    assert "L0H0 (= layer 0)" in labels and "L1H0 (= layer 1)" in labels
    plt.close(figure)


def test_patching_heatmaps_have_labelled_colourbars():
    figure = FIGURES["patching_heatmaps"]()
    assert sorted(a.get_ylabel() for a in figure.axes if is_colorbar(a)) == [
        "loss, patched run", "masked_mse, patched run"]
    plt.close(figure)


def test_attention_maps_have_a_colourbar_from_0_to_1_and_position_labels():
    figure = FIGURES["attention_maps"]()
    colourbars = [a for a in figure.axes if is_colorbar(a)]
    assert len(colourbars) == 1 and colourbars[0]._colorbar.mappable.get_clim() == (0, 1)
    assert "attention weight" in colourbars[0].get_ylabel()
    labels = {a.get_xlabel() for a in figure.axes} | {a.get_ylabel() for a in figure.axes}
    assert "key position" in labels and any("query position" in text for text in labels)
    plt.close(figure)


def test_llm_series_labels_its_decades_and_keeps_the_last_point_off_the_edge():
    figure = FIGURES["llm_series"]()
    axis = figure.axes[0]
    labels = [tick.get_text() for tick in axis.get_xticklabels() if tick.get_text()]
    assert labels[0] == "0" and labels[-1] == "143k" and len(labels) >= 5, labels
    assert axis.get_xscale() == "symlog" and axis.get_xlim()[1] > 143000 * 1.2
    legend = axis.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["cosine similarity", "repetition frequency"]
    plt.close(figure)
