"""Figures (seaborn); each function returns a matplotlib Figure."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from .transition import Transition  # noqa: E402


def loss_curve(metrics: pd.DataFrame, columns: list[str] | None = None,
               transition: Transition | None = None, title: str = "", log_y: bool = True):
    """Loss (and other metric) curves vs step, with the detected transition shaded."""
    if columns is None:
        columns = [c for c in ("loss", "masked_mse", "observed_mse", "accuracy") if c in metrics]
    tidy = metrics.melt(id_vars="step", value_vars=columns, var_name="metric", value_name="value")
    sns.set_theme(style="whitegrid")
    figure, axis = plt.subplots(figsize=(7, 4))
    sns.lineplot(data=tidy, x="step", y="value", hue="metric", ax=axis)
    if log_y and (tidy["value"] > 0).all():
        axis.set_yscale("log")
    if transition is not None:
        axis.axvspan(transition.plateau_start, transition.plateau_end, color="tab:orange",
                     alpha=0.15, label="plateau")
        axis.axvline(transition.drop_step, color="tab:red", ls="--", lw=1, label="drop")
        axis.axvline(transition.drop_end, color="tab:green", ls=":", lw=1, label="drop end")
        axis.legend()
    axis.set_title(title)
    figure.tight_layout()
    return figure


def save(figure, path) -> str:
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return str(path)
