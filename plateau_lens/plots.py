"""Figures (seaborn); each function returns a matplotlib Figure."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .io import atomic_write
from .transition import Transition

STEP_LABEL = "training step (updates)"


def log_spaced(steps) -> bool:
    """Checkpoint steps spread over decades (0, 1, 2, 4, …, 1000, …): most successive ratios
    of the positive steps at least 1.5 and the positive range over two decades."""
    positive = np.unique(np.asarray([s for s in steps if s > 0], dtype=float))
    if len(positive) < 4 or positive[-1] / positive[0] < 100:
        return False
    return float(np.median(positive[1:] / positive[:-1])) >= 1.5


def step_axis(axis, steps, label: str = STEP_LABEL) -> None:
    """Label the x-axis and, for log-spaced checkpoints, put it on a symlog scale (step 0
    stays visible); a margin on both sides keeps the first and last points off the edge."""
    axis.set_xlabel(label)
    steps = np.asarray(sorted(set(float(s) for s in steps)))
    if len(steps) == 0:
        return
    if log_spaced(steps):
        axis.set_xscale("symlog", linthresh=1)
        axis.set_xlim(-0.5 if steps[0] <= 0 else steps[0] / 1.5, steps[-1] * 1.5)
    else:
        span = max(steps[-1] - steps[0], 1.0)
        axis.set_xlim(steps[0] - 0.03 * span, steps[-1] + 0.03 * span)


def mark_drop(axis, transition: "Transition | None") -> None:
    """The detected drop as a labelled red dashed line."""
    if transition is not None:
        axis.axvline(transition.drop_step, color="tab:red", ls="--", lw=1,
                     label=f"drop (step {transition.drop_step})")


def loss_curve(metrics: pd.DataFrame, columns: list[str] | None = None,
               transition: Transition | None = None, title: str = "", log_y: bool = True):
    """Loss (and other metric) curves vs step, with the detected transition shaded."""
    if columns is None:
        columns = [c for c in ("loss", "masked_mse", "observed_mse", "accuracy") if c in metrics]
    # rows a metric was not logged on (e.g. per-size metrics of mixed-size runs) are left out
    tidy = metrics.melt(id_vars="step", value_vars=columns, var_name="metric",
                        value_name="value").dropna(subset=["value"])
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
    step_axis(axis, tidy["step"])
    axis.set_ylabel("value (log scale)" if axis.get_yscale() == "log" else "value")
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
    """Grid of batch-averaged attention maps: rows = (step, layer), columns = heads; rows of
    a map are query positions, columns key positions, colour the attention weight (one
    colourbar, 0 to 1).

    ``patterns_by_step``: step → tensor [layer, head, query, key]
    (``plateau_lens.analysis.mean_attention_patterns``)."""
    steps = sorted(patterns_by_step)
    first = patterns_by_step[steps[0]]
    n_layers, n_heads, n_positions = first.shape[0], first.shape[1], first.shape[-1]
    figure, axes = plt.subplots(len(steps) * n_layers, n_heads, squeeze=False, layout="constrained",
                                sharex=True, sharey=True,  # one query / key position axis for all
                                figsize=(1.9 * n_heads + 1.6, 1.7 * len(steps) * n_layers + 0.9))
    ticks = list(range(0, n_positions, max(1, n_positions // 4)))
    for s, step in enumerate(steps):
        patterns = patterns_by_step[step]
        for layer in range(n_layers):
            for head in range(n_heads):
                axis = axes[s * n_layers + layer, head]
                image = axis.imshow(patterns[layer, head].float().cpu().numpy(), cmap="viridis",
                                    vmin=0, vmax=1, interpolation="nearest")
                axis.set_xticks(ticks)
                axis.set_yticks(ticks)
                axis.tick_params(labelsize=6)
                axis.grid(False)
                if head == 0:
                    axis.set_ylabel(f"step {step}, L{layer}\nquery position", fontsize=7)
                if s * n_layers + layer == len(steps) * n_layers - 1:
                    axis.set_xlabel("key position", fontsize=7)
                if s == 0 and layer == 0:
                    axis.set_title(f"head {head}", fontsize=8)
    figure.colorbar(image, ax=axes, shrink=0.8, label="attention weight")
    figure.suptitle(title)
    return figure


def probe_vs_step(probes: pd.DataFrame, metric: str = "mse", transition: Transition | None = None):
    """Probe metric per hook vs step, one panel per target (from ``analyze_run`` of probes),
    as many columns as targets (at most 3) beside the hook legend; the drop marked."""
    data = probes[probes["metric"] == metric]
    n_targets = data["target"].nunique()
    sns.set_theme(style="whitegrid")
    grid = sns.relplot(data=data, x="step", y="value", hue="hook", style="hook", markers=True,
                       col="target", kind="line", col_wrap=min(3, max(n_targets, 1)), height=2.8,
                       aspect=1.3 if n_targets > 1 else 2.0, facet_kws={"sharey": False}, palette="viridis")
    for axis in grid.axes.flat:
        step_axis(axis, data["step"])
        axis.set_ylabel(metric)
        mark_drop(axis, transition)
    return grid.figure


def ablation_vs_step(ablations: pd.DataFrame, metric: str = "masked_mse",
                     transition: Transition | None = None):
    """Change in ``metric`` (ablated − clean) when each head (solid) or each whole layer
    (dashed) is ablated, vs step (from ``analyze_run`` of ``ablation_sweep``). A layer of one
    head is that head: it is drawn once, as "L0H0 (= layer 0)", not twice on top of itself."""
    data = ablations[ablations["metric"] == metric]
    table = data.pivot_table(index=["step", "scope", "heads"], columns="condition",
                             values="value").reset_index()
    table["change"] = table["ablated"] - table["clean"]
    single = table["heads"].str.contains(",", regex=False).eq(False)
    one_head_layers = set(table.loc[(table["scope"] == "layer") & single, "heads"])
    table = table[~((table["scope"] == "layer") & table["heads"].isin(one_head_layers))].copy()
    table["site"] = table["heads"].where(table["scope"] != "layer",
                                         table["heads"].str.slice(0, 2) + " (all heads)")
    table["site"] = [f"{h} (= layer {h[1:h.index('H')]})" if h in one_head_layers else site
                     for h, site in zip(table["heads"], table["site"])]
    table["ablated"] = table["scope"].map({"heads": "one head", "layer": "whole layer"}).fillna(table["scope"])
    sns.set_theme(style="whitegrid")
    figure, axis = plt.subplots(figsize=(8, 4))
    sns.lineplot(data=table, x="step", y="change", hue="site", style="ablated", ax=axis,
                 palette="tab20", marker="o", markersize=3)
    axis.set_ylabel(f"Δ {metric} (ablated − clean)")
    step_axis(axis, table["step"])
    mark_drop(axis, transition)
    axis.legend(fontsize=6, ncol=1 + len(axis.get_legend_handles_labels()[0]) // 16,
                loc="center left", bbox_to_anchor=(1.01, 0.5))
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
            from matplotlib.ticker import FormatStrFormatter, LogLocator

            axis.set_yscale("log")
            axis.yaxis.set_major_formatter(FormatStrFormatter("%.2g"))
            if tidy["value"].max() / tidy["value"].min() > 3:  # label 2 and 5 only: no overlap
                axis.yaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
            axis.yaxis.set_minor_formatter(FormatStrFormatter("%.2g"))
        for label, transition in (transitions or {}).items():
            if transition is None:
                continue
            first = name == panels[0][0]
            if single:
                axis.axvspan(transition.plateau_start, transition.plateau_end, color="tab:orange",
                             alpha=0.12, label="plateau" if first else None)
            axis.axvline(transition.drop_step, color="tab:red" if single else "0.6", ls="--", lw=1,
                         label=f"drop (step {transition.drop_step})" if first and single else None)
        if name == panels[0][0] and single and any(t is not None for t in (transitions or {}).values()):
            axis.legend()
        step_axis(axis, tidy["step"])
        if axis.get_legend() is not None:
            axis.legend(fontsize=6)
        axis.set_title(name)
    figure.suptitle(title)
    figure.tight_layout()
    return figure


# ------------------------------------------------------------ matrix-completion study figures
def _finish(figure, title: str = ""):
    if title:
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
    step_axis(axis, data["step"])
    mark_drop(axis, transition)
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
    step_axis(left, metrics["step"])
    step_axis(right, probes["step"])
    for axis in (left, right):
        if transition is not None:
            axis.axvline(transition.drop_step, color="tab:red", ls="--", lw=1)
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def _step_ticks(steps) -> list[int]:
    """Tick positions for a symlog step axis: 0 (if shown), the powers of ten inside the
    series' range, and its last step."""
    steps = sorted(set(int(x) for x in steps))
    if len(steps) <= 6:
        return steps
    ticks = [0] if steps[0] <= 0 else []
    power = 1
    while power <= steps[-1]:
        if power >= max(steps[0], 1) and power < steps[-1] / 2:
            ticks.append(power)
        power *= 10
    return ticks + [steps[-1]]


def _step_text(step: int) -> str:
    return f"{step // 1000}k" if step >= 1000 and step % 1000 == 0 else str(step)


def llm_series_panels(results: pd.DataFrame, title: str = ""):
    """As the study's ``plot_llm.py``: one panel per model, cosine similarity (left axis,
    solid) and repetition frequency (right axis, red dashed) vs pretraining step on a log
    axis (symlog, so that step 0 is shown), ticks at the series' own steps, one legend."""
    sns.set_theme(style="whitegrid")
    models = list(dict.fromkeys(results["model"]))
    figure, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 4), squeeze=False)
    for axis, model in zip(axes[0], models):
        data = results[results["model"] == model].sort_values("step")
        axis.plot(data["step"], data["cosine_similarity"], "o-", color="#440154", label="cosine similarity")
        axis.set_xscale("symlog", linthresh=1)
        steps = data["step"].to_numpy()
        axis.set_xlim(-0.5 if steps.min() <= 0 else steps.min() / 1.5, steps.max() * 1.6)
        ticks = _step_ticks(steps)
        axis.set_xticks(ticks, [_step_text(t) for t in ticks], fontsize=8)
        axis.minorticks_off()
        axis.set_xlabel("pretraining step (log scale)")
        axis.set_title(model)
        handles, labels = axis.get_legend_handles_labels()
        if "repetition_frequency" in data and data["repetition_frequency"].notna().any():
            twin = axis.twinx()
            twin.plot(data["step"], data["repetition_frequency"], "^--", color="red",
                      label="repetition frequency")
            twin.set_ylabel("repetition frequency")
            twin.grid(False)
            more_handles, more_labels = twin.get_legend_handles_labels()
            handles, labels = handles + more_handles, labels + more_labels
        axis.set_ylabel("cosine similarity")
        axis.legend(handles, labels, fontsize=7, loc="best")
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def _mark_transition(axis, transition: Transition | None) -> None:
    if transition is not None:
        axis.axvspan(transition.plateau_start, transition.plateau_end, color="tab:orange", alpha=0.12)
        axis.axvline(transition.drop_step, color="tab:red", ls="--", lw=1)


def mc_training_curves(metrics: pd.DataFrame, transition: Transition | None = None, title: str = ""):
    """The matrix-completion study's Fig. 1: masked and observed MSE (log scale) and the mean
    |prediction| on masked entries over training (columns of a run's metrics.csv)."""
    sns.set_theme(style="whitegrid")
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    errors = [c for c in ("loss", "masked_mse", "observed_mse") if c in metrics]
    tidy = metrics.melt(id_vars="step", value_vars=errors, var_name="metric", value_name="MSE")
    sns.lineplot(data=tidy, x="step", y="MSE", hue="metric", ax=axes[0])
    if (tidy["MSE"] > 0).all():
        axes[0].set_yscale("log")
    if "masked_abs_pred" in metrics:
        sns.lineplot(data=metrics, x="step", y="masked_abs_pred", ax=axes[1], color="tab:purple")
    axes[1].set_ylabel("mean |prediction|, masked entries")
    for axis in axes:
        _mark_transition(axis, transition)
        step_axis(axis, metrics["step"])
    return _finish(figure, title)


def token_embedding_figure(norms: pd.DataFrame, pca: pd.DataFrame, title: str = ""):
    """Token embeddings: ℓ2 norm over the value (``token_embedding_norms``) and the top-2
    principal components coloured by value range (``token_embedding_pca``)."""
    sns.set_theme(style="whitegrid")
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    sns.lineplot(data=norms, x="entry_value", y="value", ax=axes[0])
    axes[0].set(xlabel="matrix entry value", ylabel="ℓ2 norm of the token embedding")
    points = _pc_table(pca)
    sns.scatterplot(data=points, x="pc1", y="pc2", hue="value_range", palette="viridis", ax=axes[1], s=14)
    axes[1].set(xlabel="PC1 of the token embeddings", ylabel="PC2 of the token embeddings")
    axes[1].legend(fontsize=7, title="entry value range")
    return _finish(figure, title)


def _pc_table(frame: pd.DataFrame) -> pd.DataFrame:
    keys = [c for c in ("step", "entry_value", "value_range") if c in frame]
    data = frame[frame["metric"].isin(["pc1", "pc2"])]
    return data.pivot_table(index=keys, columns="metric", values="value").reset_index()


def positional_embedding_figure(norms: pd.DataFrame, tsne: pd.DataFrame, title: str = ""):
    """Positional embeddings: ℓ2 norm per position, and the t-SNE layout coloured by column
    and by row (``positional_embedding_norms`` / ``positional_embedding_tsne``)."""
    sns.set_theme(style="whitegrid")
    figure, axes = plt.subplots(1, 3, figsize=(14, 4))
    sns.lineplot(data=norms, x="position", y="value", ax=axes[0], marker="o")
    n_columns = int(norms["column"].max()) + 1
    for start in range(0, len(norms), n_columns):
        axes[0].axvline(start - 0.5, color="grey", lw=0.5)
    axes[0].set(ylabel="ℓ2 norm", xlabel="position (row-major)")
    points = tsne.pivot_table(index=["position", "row", "column"], columns="metric",
                              values="value").reset_index()
    for axis, key in zip(axes[1:], ("column", "row")):
        sns.scatterplot(data=points, x="tsne_1", y="tsne_2", hue=key, palette="tab10", ax=axis, s=60)
        axis.set(title=f"t-SNE, coloured by {key}", xlabel="t-SNE 1 (no units)", ylabel="t-SNE 2 (no units)")
        axis.legend(fontsize=7, title=key, ncol=2)
    return _finish(figure, title)


def _scatter_by_step(points: pd.DataFrame, x: str, y: str, hue: str, palette: str, size: int,
                     title: str = ""):
    """One scatter panel per ``step`` of ``points`` (columns step, x, y, hue); the legend on
    the last panel."""
    sns.set_theme(style="whitegrid")
    steps = sorted(points["step"].unique())
    figure, axes = plt.subplots(1, len(steps), figsize=(3.4 * len(steps), 3.4), squeeze=False)
    for axis, step in zip(axes[0], steps):
        sns.scatterplot(data=points[points["step"] == step], x=x, y=y, hue=hue, palette=palette,
                        ax=axis, s=size, legend=step == steps[-1])
        axis.set_title(f"step {step}")
    if len(steps):
        axes[0, -1].legend(fontsize=6, title=hue)
    return _finish(figure, title)


def token_progress_figure(progress: pd.DataFrame, title: str = ""):
    """Earlier checkpoints' token embeddings on the final checkpoint's top-2 PCs, one panel
    per step (``token_progress``)."""
    return _scatter_by_step(_pc_table(progress), "pc1", "pc2", "value_range", "viridis", 10, title)


def positional_tsne_progress_figure(tsne: pd.DataFrame, title: str = ""):
    """t-SNE of the positional embeddings of several checkpoints, coloured by column, one
    panel per step (``positional_embedding_tsne`` with a ``step`` column)."""
    points = tsne.pivot_table(index=["step", "position", "row", "column"], columns="metric",
                              values="value").reset_index()
    return _scatter_by_step(points, "tsne_1", "tsne_2", "column", "tab10", 40, title)


def attention_structure_figure(summary: pd.DataFrame, transition: Transition | None = None,
                               title: str = ""):
    """The largest per-head attention share on same-row / same-column entries vs step (the
    study's Sec. 4 attention structure; ``attention_structure`` rows reduced to the max over
    heads: columns step, metric, value)."""
    sns.set_theme(style="whitegrid")
    figure, axis = plt.subplots(figsize=(7, 3.6))
    sns.lineplot(data=summary, x="step", y="value", hue="metric", marker="o", ax=axis)
    axis.set_ylabel("largest per-head attention share")
    step_axis(axis, summary["step"])
    mark_drop(axis, transition)
    axis.legend(title="keys in the query's", fontsize=8)
    return _finish(figure, title)


def position_neighbours_figure(neighbours: pd.DataFrame, transition: Transition | None = None,
                               title: str = ""):
    """``positional_embedding_neighbours`` vs step: the fraction of positions whose nearest
    position vector is in the same column / row, the chance levels as dotted lines."""
    sns.set_theme(style="whitegrid")
    figure, axis = plt.subplots(figsize=(7, 3.6))
    measured = neighbours[~neighbours["metric"].str.startswith("chance_")]
    sns.lineplot(data=measured, x="step", y="value", hue="metric", ax=axis, marker="o")
    for index, (metric, chance) in enumerate(
            neighbours[neighbours["metric"].str.startswith("chance_")].groupby("metric")["value"]):
        axis.axhline(chance.mean(), ls=":", lw=1.2, color=f"C{index + 2}", label=metric)
    step_axis(axis, measured["step"])
    mark_drop(axis, transition)
    axis.legend(fontsize="small")
    axis.set_ylabel("fraction of positions")
    axis.set_title("nearest position vector in the same column / row (chance: dotted)")
    return _finish(figure, title)


def curves_by_figure(table: pd.DataFrame, hue: str, title: str, palette: str | None = None):
    """Masked MSE over training, one curve per value of ``hue`` (component-wise training,
    width / depth sweeps: the runs' metrics.csv rows with a ``hue`` column)."""
    sns.set_theme(style="whitegrid")
    figure, axis = plt.subplots(figsize=(8, 4))
    sns.lineplot(data=table, x="step", y="masked_mse", hue=hue, palette=palette, ax=axis)
    axis.set(yscale="log", ylabel="masked-entry MSE", title=title)
    step_axis(axis, table["step"])
    return _finish(figure)


def permuted_positions_figure(frame: pd.DataFrame, metric: str = "masked_mse", title: str = "",
                              transition: Transition | None = None):
    """Task metric with shuffled positional embeddings (``permuted_positions``), per
    permutation scope, beside the unshuffled model; vs step when ``frame`` has one (log-spaced
    checkpoints on a symlog axis, the drop marked)."""
    sns.set_theme(style="whitegrid")
    data = frame[frame["metric"] == metric].copy()
    data["scope"] = data["scope"].fillna("none (clean)")
    figure, axis = plt.subplots(figsize=(7, 4))
    if "step" in data and data["step"].nunique() > 1:
        sns.lineplot(data=data, x="step", y="value", hue="scope", marker="o", ax=axis)
        step_axis(axis, data["step"])
        mark_drop(axis, transition)
        axis.legend(title="positions shuffled", fontsize=8)
    else:
        sns.barplot(data=data, x="scope", y="value", ax=axis, errorbar="sd")
        axis.set_xlabel("positions shuffled (scope)")
    axis.set_ylabel(metric)
    axis.set_yscale("log")
    return _finish(figure, title)


def ood_figure(table: pd.DataFrame, metrics: tuple[str, ...] = ("loss", "observed_mse", "masked_mse"),
               title: str = ""):
    """Total / observed / masked MSE per test distribution (``ood_evaluation``); conditions
    the model cannot take (NaN) are marked n/a."""
    sns.set_theme(style="whitegrid")
    data = table[table["metric"].isin(metrics)].copy()
    order = list(dict.fromkeys(data["condition"]))
    figure, axis = plt.subplots(figsize=(max(7, 0.55 * len(order) + 2), 4.2))
    sns.barplot(data=data, x="condition", y="value", hue="metric", order=order, ax=axis)
    axis.set_yscale("log")
    axis.set_ylabel("MSE")
    missing = data.groupby("condition", sort=False)["value"].apply(lambda v: v.isna().all())
    bottom = axis.get_ylim()[0]
    for index, name in enumerate(order):
        if missing.get(name, False):
            axis.text(index, bottom, "n/a", ha="center", va="bottom", fontsize=7, rotation=90)
    axis.tick_params(axis="x", rotation=60, labelsize=8)
    return _finish(figure, title)


def nuclear_norm_figure(table: pd.DataFrame, title: str = ""):
    """The study's Fig. 3: MSE (all entries and masked) and the nuclear norm of the
    completed matrices vs p, model vs nuclear-norm minimisation (``compare_to_nuclear_norm``)."""
    sns.set_theme(style="whitegrid")
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    errors = table[table["metric"].isin(["mse", "masked_mse"])]
    sns.lineplot(data=errors, x="p_mask", y="value", hue="condition", style="metric", marker="o",
                 ax=axes[0])
    axes[0].set(yscale="log", ylabel="MSE", title="MSE")
    norms = table[table["metric"] == "nuclear_norm"]
    sns.lineplot(data=norms, x="p_mask", y="value", hue="condition", marker="o", ax=axes[1])
    axes[1].set(ylabel="mean nuclear norm", title="nuclear norm")
    return _finish(figure, title)


def lambda_sweep_figure(table: pd.DataFrame, title: str = ""):
    """Regularised nuclear-norm minimisation over λ (``nuclear_norm_lambda_sweep``): observed,
    masked and all-entry MSE, with the exact form as horizontal lines."""
    sns.set_theme(style="whitegrid")
    metrics = ["observed_mse", "masked_mse", "mse"]
    data = table[table["metric"].isin(metrics)]
    figure, axis = plt.subplots(figsize=(7, 4))
    regularised = data[data["condition"] == "regularised"]
    sns.lineplot(data=regularised, x="lam", y="value", hue="metric", marker="o", ax=axis,
                 hue_order=metrics)
    palette = dict(zip(metrics, sns.color_palette(n_colors=3)))
    exact = data[data["condition"] == "exact"]
    for _, row in exact.iterrows():
        axis.axhline(row["value"], ls=":", color=palette[row["metric"]], lw=1)
    if not exact.empty:  # name the dotted lines: the exact (constrained) form, same colours
        axis.plot([], [], ls=":", color="0.3", lw=1, label="exact form (dotted, same colours)")
        axis.legend(title="metric", fontsize=8)
    axis.set(xscale="log", yscale="log", xlabel="regularisation strength λ", ylabel="MSE")
    return _finish(figure, title)


def probes_by_layer(probes: pd.DataFrame, targets: list[str], title: str = ""):
    """The study's probe figure: test MSE and mean |cosine| (vector targets) per layer, one
    column per target, one line per step (``linear_probes``, optionally with ``step``)."""
    sns.set_theme(style="whitegrid")
    data = probes[probes["target"].isin(targets)].copy()
    # the residual stream's depth: block l's resid_pre is l (0 = embeddings), its resid_post l + 1
    after_block = ~data["hook"].astype(str).str.endswith("hook_resid_pre") if "hook" in data else True
    data["layer"] = data["layer"].astype(float).fillna(-1) + after_block
    hue = "step" if "step" in data else None
    figure, axes = plt.subplots(2, len(targets), figsize=(3.6 * len(targets), 6), squeeze=False)
    for column, target in enumerate(targets):
        for row, metric in enumerate(("mse", "abs_cosine")):
            axis = axes[row, column]
            subset = data[(data["target"] == target) & (data["metric"] == metric)]
            if subset.empty:
                axis.set_visible(False)
                continue
            sns.lineplot(data=subset, x="layer", y="value", hue=hue, marker="o", ax=axis,
                         palette="viridis" if hue else None, legend=column == 0 and row == 0)
            axis.set(title=f"{target}: {metric}", xlabel="layer (0 = embeddings)", ylabel=metric)
    return _finish(figure, title)


def condition_bars(table: pd.DataFrame, metrics: list[str], x: str = "condition",
                   hue: str | None = None, log_y: bool = True, title: str = ""):
    """One panel per metric, bars per ``x`` (e.g. model variants of ``swap_attention``,
    copying-test inputs, ablation steps)."""
    sns.set_theme(style="whitegrid")
    figure, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 4), squeeze=False)
    for axis, metric in zip(axes[0], metrics):
        subset = table[table["metric"] == metric]
        sns.barplot(data=subset, x=x, y="value", hue=hue, ax=axis)
        if log_y and (subset["value"] > 0).all():
            axis.set_yscale("log")
        axis.set(title=metric, ylabel=metric, xlabel=x.replace("_", " "))
        axis.tick_params(axis="x", rotation=45, labelsize=8)
    return _finish(figure, title)


def patching_heatmaps(frame: pd.DataFrame, metrics: list[str], title: str = ""):
    """Per-head activation patching (``patch_activations`` at ``attn.hook_z``): one layer ×
    head heatmap per metric of the patched runs."""
    sns.set_theme(style="white")
    patched = frame[frame["condition"] == "patched"]
    figure, axes = plt.subplots(1, len(metrics), figsize=(4.4 * len(metrics), 3.4), squeeze=False)
    for axis, metric in zip(axes[0], metrics):
        grid = patched[patched["metric"] == metric].pivot_table(index="layer", columns="head",
                                                                values="value")
        sns.heatmap(grid, ax=axis, annot=grid.size <= 64, fmt=".2g", cmap="viridis", cbar=True,
                    annot_kws={"fontsize": 6}, cbar_kws={"label": f"{metric}, patched run"})
        axis.set(title=metric, xlabel="head", ylabel="layer")
    return _finish(figure, title)
