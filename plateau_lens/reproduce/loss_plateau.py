"""Reproductions of the loss-plateau study (Gopalani & Hu, arXiv 2506.13688)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from .common import save_outputs, trained_run
from .registry import Context, Reproduction, register

STUDY = "loss-plateau"


def dynamics_figure(metrics: pd.DataFrame, transition, title: str):
    """The study's panels over training: loss; accuracy of the first output (the partial
    solution) beside the rest; repetition frequency (model vs data); cosine similarity of
    pre_lm_h; attention progress."""
    sns.set_theme(style="whitegrid")
    answer_columns = sorted((c for c in metrics if c.startswith("accuracy_pos_")),
                            key=lambda c: int(c.rsplit("_", 1)[1]))
    frame = metrics.copy()
    frame["y1 (first output)"] = frame[answer_columns[0]]
    frame["later outputs"] = frame[answer_columns[1:]].mean(axis=1)
    panels = [("loss", ["loss"]), ("accuracy", ["y1 (first output)", "later outputs", "accuracy"]),
              ("repetition", ["repetition_frequency", "repetition_frequency_data"]),
              ("collapse", ["cosine_similarity"]), ("attention progress", ["attention_progress"])]
    panels = [(name, [c for c in columns if c in frame]) for name, columns in panels]
    panels = [(name, columns) for name, columns in panels if columns]
    figure, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 3.2))
    for axis, (name, columns) in zip(axes, panels):
        tidy = frame.melt(id_vars="step", value_vars=columns, var_name="series", value_name=name)
        sns.lineplot(data=tidy, x="step", y=name, hue="series", ax=axis, legend=len(columns) > 1)
        if name == "loss":
            axis.set_yscale("log")
        if transition is not None:
            axis.axvspan(transition.plateau_start, transition.plateau_end, color="tab:orange", alpha=0.12)
            axis.axvline(transition.drop_step, color="tab:red", ls="--", lw=1)
        if len(columns) > 1:
            axis.legend(fontsize=7)
        axis.set_title(name)
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def mws_dynamics(context: Context):
    run = trained_run(context, "mws.toml", "mws")
    transition = run.transition()
    figure = dynamics_figure(run.metrics, transition,
                             "MWS (k = 2): loss plateau, partial solution, repetition, collapse")
    return save_outputs(context, "lp-fig2-mws", figure, run.metrics)


register(Reproduction(
    id="lp-fig2-mws", study=STUDY, figure="Fig. 2",
    shows="MWS training: loss plateau and drop, y1 learned first, repetition and collapse "
          "during the plateau, attention progress",
    config="tasks/mws.toml", device="cpu", cost="see README", status="see README",
    run=mws_dynamics))
