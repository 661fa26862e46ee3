"""Figures (seaborn); each function returns a matplotlib Figure."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from .io import atomic_write
from .transition import Transition


def loss_curve(metrics: pd.DataFrame, columns: list[str] | None = None,
               transition: Transition | None = None, title: str = "", log_y: bool = True):
    """Loss (and other metric) curves vs step, with the detected transition shaded."""
    if columns is None:
        columns = [c for c in ("loss", "masked_mse", "observed_mse", "accuracy") if c in metrics]
    tidy = metrics.melt(id_vars="step", value_vars=columns, var_name="metric", value_name="value")
    sns.set_theme(style="whitegrid")
    figure, axis = plt.subplots(figsize=(9, 4))
    sns.lineplot(data=tidy, x="step", y="value", hue="metric", ax=axis)
    if log_y and (tidy["value"] > 0).all():
        axis.set_yscale("log")
    if transition is not None:
        axis.axvspan(transition.plateau_start, transition.plateau_end, color="tab:orange",
                     alpha=0.15, label="plateau")
        axis.axvline(transition.drop_step, color="tab:red", ls="--", lw=1, label="drop")
        axis.axvline(transition.drop_end, color="tab:green", ls=":", lw=1, label="drop end")
    axis.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    axis.set_title(title)
    figure.tight_layout()
    return figure


def save(figure, path) -> Path:
    """Write ``figure`` as a PNG atomically (ordinary permissions) and close it."""
    path = Path(path)
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=120))
    plt.close(figure)
    return path


def attention_grid(patterns_by_step: dict[int, "object"], title: str = "batch-mean attention"):
    """Grid of batch-averaged attention maps: rows = (step, layer), columns = heads.

    ``patterns_by_step``: step → tensor [layer, head, query, key]
    (``plateau_lens.analysis.mean_attention_patterns``)."""
    steps = sorted(patterns_by_step)
    first = patterns_by_step[steps[0]]
    n_layers, n_heads = first.shape[0], first.shape[1]
    figure, axes = plt.subplots(len(steps) * n_layers, n_heads, squeeze=False,
                                figsize=(1.6 * n_heads + 1, 1.6 * len(steps) * n_layers + 0.5))
    for s, step in enumerate(steps):
        patterns = patterns_by_step[step]
        for layer in range(n_layers):
            for head in range(n_heads):
                axis = axes[s * n_layers + layer, head]
                sns.heatmap(patterns[layer, head].cpu().numpy(), ax=axis, cbar=False,
                            xticklabels=False, yticklabels=False, cmap="viridis", square=True)
                if head == 0:
                    axis.set_ylabel(f"step {step}\nL{layer}", fontsize=7)
                if s == 0 and layer == 0:
                    axis.set_title(f"H{head}", fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def probe_vs_step(probes: pd.DataFrame, metric: str = "mse", transition: Transition | None = None):
    """Probe metric per hook vs step, one panel per target (from ``analyze_run`` of probes)."""
    data = probes[probes["metric"] == metric]
    sns.set_theme(style="whitegrid")
    grid = sns.relplot(data=data, x="step", y="value", hue="hook", col="target", kind="line",
                       col_wrap=3, height=2.6, facet_kws={"sharey": False}, palette="viridis")
    grid.set_ylabels(metric)
    if transition is not None:
        for axis in grid.axes.flat:
            axis.axvline(transition.drop_step, color="tab:red", ls="--", lw=1)
    return grid.figure


def ablation_vs_step(ablations: pd.DataFrame, metric: str = "masked_mse",
                     transition: Transition | None = None):
    """Change in ``metric`` (ablated − clean) when each head (or layer) is ablated, vs step
    (from ``analyze_run`` of ``ablation_sweep``)."""
    data = ablations[ablations["metric"] == metric]
    table = data.pivot_table(index=["step", "scope", "heads"], columns="condition",
                             values="value").reset_index()
    table["change"] = table["ablated"] - table["clean"]
    table["site"] = table["heads"].where(table["scope"] != "layer",
                                         table["heads"].str.slice(0, 2) + " (all)")
    sns.set_theme(style="whitegrid")
    figure, axis = plt.subplots(figsize=(7, 4))
    sns.lineplot(data=table, x="step", y="change", hue="site", ax=axis, palette="tab20")
    axis.set_ylabel(f"Δ {metric} under ablation")
    if transition is not None:
        axis.axvline(transition.drop_step, color="tab:red", ls="--", lw=1)
    axis.legend(fontsize=6, ncol=2)
    figure.tight_layout()
    return figure
