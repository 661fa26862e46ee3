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


# --------------------------------------------------------------- loss-plateau study figures
def _accuracy_groups(frame: pd.DataFrame) -> pd.DataFrame:
    """Add the accuracy series the study plots: the first output (the early partial solution
    of MWS) beside the mean of the others."""
    columns = sorted((c for c in frame if c.startswith("accuracy_pos_")),
                     key=lambda c: int(c.rsplit("_", 1)[1]))
    frame = frame.copy()
    if columns:
        frame["first output"] = frame[columns[0]]
        frame["later outputs"] = frame[columns[1:]].mean(axis=1) if len(columns) > 1 else float("nan")
    return frame


PLATEAU_PANELS = (
    ("loss", ("loss",)),
    ("accuracy", ("first output", "later outputs", "accuracy")),
    ("repetition frequency", ("repetition_frequency", "repetition_frequency_data")),
    ("cosine similarity", ("cosine_similarity",)),
    ("attention progress", ("attention_progress",)),
)


def plateau_dynamics(runs: dict[str, pd.DataFrame], panels=PLATEAU_PANELS, title: str = "",
                     transitions: dict[str, Transition | None] | None = None, log_loss: bool = True):
    """The loss-plateau study's panels over training, one panel per measure (loss; accuracy
    of the first output beside the later ones; repetition frequency of the model beside the
    data's; cosine similarity of ``pre_lm_h``; attention progress; whatever ``panels`` adds).

    ``runs``: label → training metrics. One run: the series of a panel share it (hue =
    series); several runs: hue = run, and a panel's first series is drawn solid, the others
    dashed. ``transitions``: label → detected transition, shaded (one run) or marked."""
    sns.set_theme(style="whitegrid")
    frames = {label: _accuracy_groups(metrics) for label, metrics in runs.items()}
    panels = [(name, [c for c in columns if any(c in f for f in frames.values())])
              for name, columns in panels]
    panels = [(name, columns) for name, columns in panels if columns]
    figure, axes = plt.subplots(1, len(panels), figsize=(3.5 * len(panels), 3.3), squeeze=False)
    single = len(frames) == 1
    for axis, (name, columns) in zip(axes[0], panels):
        tidy = pd.concat([f.melt(id_vars="step", value_vars=[c for c in columns if c in f],
                                 var_name="series", value_name="value").assign(run=label)
                          for label, f in frames.items()], ignore_index=True)
        if single:
            sns.lineplot(data=tidy, x="step", y="value", hue="series", ax=axis,
                         legend=len(columns) > 1)
        else:
            sns.lineplot(data=tidy, x="step", y="value", hue="run", style="series", ax=axis,
                         legend=axis is axes[0][0] or len(columns) > 1)
        axis.set_ylabel(name)
        if name == "loss" and log_loss and (tidy["value"] > 0).all():
            from matplotlib.ticker import FormatStrFormatter

            axis.set_yscale("log")
            axis.yaxis.set_major_formatter(FormatStrFormatter("%.2g"))
            axis.yaxis.set_minor_formatter(FormatStrFormatter("%.2g"))
        for label, transition in (transitions or {}).items():
            if transition is None:
                continue
            if single:
                axis.axvspan(transition.plateau_start, transition.plateau_end, color="tab:orange",
                             alpha=0.12)
            axis.axvline(transition.drop_step, color="tab:red" if single else "0.6", ls="--", lw=1)
        if axis.get_legend() is not None:
            axis.legend(fontsize=6)
        axis.set_title(name)
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def collapse_by_site(table: pd.DataFrame, transition: Transition | None = None, title: str = ""):
    """Cosine similarity at each of the study's sites (``pre_att_h`` … ``pre_lm_h``) vs step,
    from ``analyze_run(run, representation_collapse)`` (Figs. 41–42)."""
    sns.set_theme(style="whitegrid")
    data = table[table["metric"] == "cosine_similarity"].copy()
    data["site"] = [f"{s} (L{int(l)})" if pd.notna(l) else s for s, l in zip(data["site"], data["layer"])]
    figure, axis = plt.subplots(figsize=(6.5, 4))
    sns.lineplot(data=data, x="step", y="value", hue="site", ax=axis, marker="o", markersize=3)
    axis.set_ylabel("mean pairwise cosine similarity")
    if transition is not None:
        axis.axvline(transition.drop_step, color="tab:red", ls="--", lw=1)
    axis.legend(fontsize=7)
    axis.set_title(title)
    figure.tight_layout()
    return figure


def probe_accuracy_vs_step(probes: pd.DataFrame, metrics: pd.DataFrame,
                           transition: Transition | None = None, title: str = ""):
    """The attention-output probe's held-out accuracy (and the majority baseline) vs step,
    beside the training loss (Fig. 20)."""
    sns.set_theme(style="whitegrid")
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    sns.lineplot(data=metrics, x="step", y="loss", ax=left)
    left.set_yscale("log")
    sns.lineplot(data=probes, x="step", y="value", hue="metric", ax=right, marker="o", markersize=3)
    right.set_ylabel("next-token probe accuracy")
    for axis in (left, right):
        if transition is not None:
            axis.axvline(transition.drop_step, color="tab:red", ls="--", lw=1)
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def llm_series_panels(results: pd.DataFrame, title: str = ""):
    """As the study's ``plot_llm.py``: one panel per model, cosine similarity (left axis,
    solid) and repetition frequency (right axis, red dashed) vs pretraining step on a log
    axis (symlog, so that step 0 is shown)."""
    sns.set_theme(style="whitegrid")
    models = list(dict.fromkeys(results["model"]))
    figure, axes = plt.subplots(1, len(models), figsize=(4.5 * len(models), 3.8), squeeze=False)
    for axis, model in zip(axes[0], models):
        data = results[results["model"] == model].sort_values("step")
        axis.plot(data["step"], data["cosine_similarity"], "o-", color="#440154", label="cosine sim.")
        axis.set_xscale("symlog", linthresh=1)
        axis.set_xlabel("pretraining step")
        axis.set_title(model)
        if "repetition_frequency" in data and data["repetition_frequency"].notna().any():
            twin = axis.twinx()
            twin.plot(data["step"], data["repetition_frequency"], "^--", color="red",
                      label="repetition freq.")
            twin.set_ylabel("repetition frequency")
            twin.grid(False)
        axis.set_ylabel("cosine similarity")
    figure.suptitle(title)
    figure.tight_layout()
    return figure
