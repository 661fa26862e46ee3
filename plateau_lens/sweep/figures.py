"""Sweep figures: plateau length vs each swept parameter (each run a point, the mean with a
95 % t-interval over the runs that share the value), and loss curves overlaid by parameter."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from ..runs.load import load_run
from ..runs.layout import FIGURE_DIR

# two-sided 95 % Student t quantiles by degrees of freedom (1.96 beyond 30)
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
       9: 2.262, 10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 25: 2.060, 30: 2.042}


def t95(dof: int) -> float:
    if dof > 30:
        return 1.96
    return T95[max(k for k in T95 if k <= dof)]


def mean_interval(values: np.ndarray) -> tuple[float, float]:
    """Mean and the half-width of its 95 % t-interval (0 for a single value)."""
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return math.nan, math.nan
    if len(values) == 1:
        return float(values[0]), 0.0
    return float(values.mean()), t95(len(values) - 1) * float(values.std(ddof=1)) / math.sqrt(len(values))


def label(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def plateau_length_figure(frame: pd.DataFrame, field: str, others: list[str]):
    """Plateau length vs ``field``; one series per combination of the other non-seed fields.
    Finished runs without a detected drop are drawn as open triangles at their length."""
    values = sorted(frame[field].dropna().unique(), key=lambda v: (isinstance(v, str), v))
    positions = {value: index for index, value in enumerate(values)}
    groups = list(frame.groupby(others, dropna=False)) if others else [((), frame)]
    figure, axis = plt.subplots(figsize=(max(5, 1.2 * len(values) + 2), 4))
    width = 0.5 / max(1, len(groups))
    for index, (key, group) in enumerate(groups):
        offset = (index - (len(groups) - 1) / 2) * width
        color = f"C{index % 10}"
        key = key if isinstance(key, tuple) else (key,)
        name = ", ".join(f"{o.split('.')[-1]}={label(k)}" for o, k in zip(others, key)) or None
        means, halves, xs = [], [], []
        for value in values:
            runs = group[group[field] == value]
            x = positions[value] + offset
            lengths = runs["plateau_length"].to_numpy(dtype=float)
            jitter = np.linspace(-width / 4, width / 4, len(runs)) if len(runs) > 1 else np.zeros(1)
            found = ~np.isnan(lengths)
            axis.scatter((x + jitter)[: len(runs)][found], lengths[found], s=18, color=color,
                         alpha=0.6, zorder=3)
            censored = (runs["status"] == "finished").to_numpy() & ~found
            if censored.any():
                axis.scatter((x + jitter)[: len(runs)][censored], runs["steps"].to_numpy()[censored],
                             marker="^", facecolors="none", edgecolors=color, s=30, zorder=3)
            mean, half = mean_interval(lengths)
            if not math.isnan(mean):
                xs.append(x), means.append(mean), halves.append(half)
            if len(runs):  # how many of the runs the mean is over
                axis.text(x, 0.02, f"{int(found.sum())}/{len(runs)}", color=color, fontsize=7,
                          ha="center", transform=axis.get_xaxis_transform())
        if xs:
            axis.errorbar(xs, means, yerr=halves, color=color, marker="o", ms=7, capsize=4,
                          lw=1.5, label=name, zorder=4)
        elif name is not None:  # no run of the group dropped: name its triangles in the legend
            axis.scatter([], [], marker="^", facecolors="none", edgecolors=color,
                         label=f"{name} (no drop)")
    axis.set_xticks(range(len(values)), [label(v) for v in values])
    axis.set_xlabel(field)
    axis.set_ylabel("plateau length (steps)")
    axis.set_title(f"plateau length vs {field}\n(points: runs; bar: mean ± 95 % t-interval over the "
                   f"k/n runs with a detected drop; △: no drop, drawn at the run's length)",
                   fontsize=9)
    axis.grid(alpha=0.3)
    if len(groups) > 1:
        axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def loss_curves_figure(frame: pd.DataFrame, field: str):
    """Every run's loss curve, coloured by ``field`` (runs with the same value share a colour)."""
    from .summary import read_metrics

    values = sorted(frame[field].dropna().unique(), key=lambda v: (isinstance(v, str), v))
    colors = plt.cm.viridis(np.linspace(0, 0.9, max(1, len(values))))
    figure, axis = plt.subplots(figsize=(8, 4.5))
    column = "loss"
    for value, color in zip(values, colors):
        first = True
        for path in frame.loc[frame[field] == value, "path"]:
            metrics = read_metrics(load_run(path))
            if metrics.empty or "step" not in metrics:
                continue
            column = "masked_mse" if "masked_mse" in metrics else "loss"
            axis.plot(metrics["step"], metrics[column], color=color, lw=1, alpha=0.8,
                      label=label(value) if first else None)
            first = False
    axis.set_yscale("log")
    axis.set_xlabel("step")
    axis.set_ylabel(column)
    axis.set_title(f"{column} by {field}", fontsize=10)
    if axis.get_legend_handles_labels()[1]:
        axis.legend(title=field.split(".")[-1], fontsize=8, loc="center left",
                    bbox_to_anchor=(1.01, 0.5))
    axis.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def write_figures(frame: pd.DataFrame, fields: list[str], out: Path) -> list[Path]:
    """``figures/plateau_length_vs_<field>.png`` and ``figures/loss_curves_by_<field>.png``
    for each swept field (seeds only get their own figure when nothing else is swept)."""
    out = Path(out) / FIGURE_DIR
    done = frame[frame["status"].isin(["finished", "unfinished"])].copy()
    for field in fields:  # list values (e.g. init.components) as one label each
        done[field] = done[field].map(lambda v: "+".join(map(str, v)) if isinstance(v, list) else v)
    if done.empty:
        return []
    swept = [f for f in fields if not f.endswith(".seed")] or list(fields)
    written = []
    out.mkdir(parents=True, exist_ok=True)
    for field in swept:
        others = [f for f in swept if f != field]
        for name, figure in (
                (f"plateau_length_vs_{field}.png", plateau_length_figure(done, field, others)),
                (f"loss_curves_by_{field}.png", loss_curves_figure(done, field))):
            figure.savefig(out / name, dpi=120, bbox_inches="tight")
            plt.close(figure)
            written.append(out / name)
    return written
