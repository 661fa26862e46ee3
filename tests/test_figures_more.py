"""The rest of the shipped figures, read without the code (tests/figure_checks.py): embedding,
out-of-distribution, nuclear-norm, λ-sweep, condition-bar, permuted-position and t-SNE /
progress figures of plateau_lens.plots, the sweep's loss curves over two real tiny runs, and
the developmental figures (essential dynamics, head scores, LLC), each from tables of the shape
their analyzer writes."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from plateau_lens import plots
from plateau_lens.development.essential_dynamics import EssentialDynamics, plot_essential_dynamics
from plateau_lens.development.head_scores import plot_head_scores
from plateau_lens.development.llc import plot_llc
from plateau_lens.development.report import metrics_figure, onset_figure
from plateau_lens.transition import Transition

from figure_checks import check_figure, is_colorbar

STEPS = [0, 1, 2, 4, 8, 16, 32, 50, 100, 150, 200]
TRANSITION = Transition(plateau_start=8, plateau_end=50, drop_step=100, drop_end=150,
                        plateau_loss=1.0, final_loss=0.1)
RNG = np.random.default_rng(0)


def token_tables():
    """``token_embedding_norms`` and ``token_embedding_pca`` (entry values −1 … 1)."""
    values = np.round(np.linspace(-1, 1, 21), 2)
    norms = pd.DataFrame(dict(entry_value=values, metric="l2_norm", value=1 + np.abs(values)))
    ranges = pd.cut(values, [-1.01, -0.5, 0, 0.5, 1.01]).astype(str)
    pca = pd.DataFrame([dict(entry_value=v, value_range=r, metric=pc, value=v * (k + 1) + 0.1 * k)
                        for v, r in zip(values, ranges) for k, pc in enumerate(("pc1", "pc2"))])
    return norms, pca


def position_tables(steps=None):
    """``positional_embedding_norms`` and ``positional_embedding_tsne`` of a 3 × 3 matrix."""
    rows = []
    norms = pd.DataFrame([dict(position=3 * r + c, row=r, column=c, metric="l2_norm", value=1 + 0.1 * r)
                          for r in range(3) for c in range(3)])
    for step in steps or [None]:
        for r in range(3):
            for c in range(3):
                for metric, value in (("tsne_1", c + 0.1 * r), ("tsne_2", r - 0.1 * c)):
                    row = dict(position=3 * r + c, row=r, column=c, metric=metric, value=value)
                    if step is not None:
                        row["step"] = step
                    rows.append(row)
    return norms, pd.DataFrame(rows)


def token_progress():
    _, pca = token_tables()
    return pd.concat([pca.assign(step=s, value=pca["value"] * (1 + s / 100)) for s in (0, 100, 200)])


def ood_table():
    conditions = ["in-distribution", "p_mask=0.5", "rank 3", "gaussian entries", "larger matrix"]
    rows = [dict(condition=c, metric=m, value=(np.nan if c == "larger matrix" else 0.01 * (i + 1) * (j + 1)))
            for i, c in enumerate(conditions) for j, m in enumerate(("loss", "observed_mse", "masked_mse"))]
    return pd.DataFrame(rows)


def nuclear_table():
    rows = []
    for p in (0.2, 0.4, 0.6):
        for condition, scale in (("model", 1.0), ("nuclear_norm_min", 2.0)):
            for metric in ("mse", "masked_mse", "nuclear_norm"):
                rows.append(dict(p_mask=p, condition=condition, metric=metric,
                                 value=scale * p * (3 if metric == "nuclear_norm" else 0.1)
                                 * (1.5 if metric == "masked_mse" else 1)))
    return pd.DataFrame(rows)


def lambda_table():
    rows = [dict(lam=lam, condition="regularised", metric=m, value=lam * (j + 1) + 0.01)
            for lam in (0.01, 0.1, 1.0) for j, m in enumerate(("observed_mse", "masked_mse", "mse"))]
    rows += [dict(lam=np.nan, condition="exact", metric=m, value=0.02 * (j + 1))
             for j, m in enumerate(("observed_mse", "masked_mse", "mse"))]
    return pd.DataFrame(rows)


def swap_table():
    return pd.DataFrame([dict(condition=c, metric=m, value=0.1 * (i + 1) * (j + 1))
                         for i, c in enumerate(("trained", "swapped attention", "random attention"))
                         for j, m in enumerate(("masked_mse", "observed_mse"))])


def permuted_table(with_steps: bool):
    rows = []
    for step in STEPS if with_steps else [None]:
        for scope, factor in ((None, 1), ("all", 5), ("within_row", 3)):
            row = dict(scope=scope, metric="masked_mse", value=factor * 0.1 / (1 + (step or 0) / 50))
            if step is not None:
                row["step"] = step
            rows.append(row)
    return pd.DataFrame(rows)


def dynamics():
    steps = np.array(STEPS, dtype=float)
    pc1, pc2 = np.tanh((steps - 100) / 30), np.exp(-((steps - 100) / 40) ** 2)
    trajectory = pd.DataFrame([dict(step=s, component=c, score=v, smoothed=v)
                               for c, values in (("PC1", pc1), ("PC2", pc2)) for s, v in zip(steps, values)])
    return EssentialDynamics(
        trajectory=trajectory,
        explained=pd.DataFrame(dict(component=["PC1", "PC2"], explained_variance_ratio=[0.7, 0.2])),
        turning_points=pd.DataFrame(dict(step=[100.0], angle=[80.0])),
        angles=pd.DataFrame(dict(step=steps, angle=np.nan)))


def head_scores():
    return pd.DataFrame([dict(step=s, metric=m, layer=l, head=h, value=(2 * l + h + 1) * np.log1p(s) / 30)
                         for s in STEPS for m in ("previous_token", "induction")
                         for l in range(2) for h in range(2)])


def llc_tables():
    estimates = pd.DataFrame(dict(step=STEPS, llc=np.log1p(STEPS), llc_std=0.1))
    traces = pd.DataFrame([dict(step=s, chain=c, draw=d, loss=1 / (1 + s) + 0.01 * d + 0.001 * c)
                           for s in (0, 100, 200) for c in range(2) for d in range(5)])
    return estimates, traces


def structure_summary():
    return pd.DataFrame([dict(step=s, metric=m, value=min(1, 0.2 + (i + 1) * s / 400))
                         for s in STEPS for i, m in enumerate(("same_row", "same_column"))])


def neighbours_table():
    rows = [dict(step=s, metric=m, value=min(1, 0.1 + (i + 1) * s / 300))
            for s in STEPS for i, m in enumerate(("same_column_neighbour", "same_row_neighbour"))]
    rows += [dict(step=s, metric=m, value=2 / 8) for s in STEPS for m in ("chance_same_column", "chance_same_row")]
    return pd.DataFrame(rows)


def curves_table(hue, values):
    """metrics.csv rows of several runs (log-spaced checkpoint rows, as the trainer writes)."""
    return pd.concat([pd.DataFrame(dict(step=STEPS, masked_mse=[(i + 1) / (1 + s) for s in STEPS], **{hue: v}))
                      for i, v in enumerate(values)], ignore_index=True)


def report_metrics():
    steps = np.arange(0, 201, 2)
    drop = 1 / (1 + np.exp((steps - 100) / 5))
    return pd.DataFrame(dict(step=steps, loss=0.1 + 0.9 * drop, accuracy=1 - 0.9 * drop))


def onsets():
    return pd.DataFrame(dict(measure=["loss", "ED PC1", "previous_token L0H1"], onset_step=[90, 60, 40],
                             end_step=[120, 110, 80]))


FIGURES = {
    "report_metrics": lambda: metrics_figure(report_metrics(), ["loss", "accuracy"], TRANSITION, "run"),
    "report_onsets": lambda: onset_figure(onsets(), TRANSITION, "onset order"),
    "attention_structure": lambda: plots.attention_structure_figure(structure_summary(), TRANSITION),
    "position_neighbours": lambda: plots.position_neighbours_figure(neighbours_table(), TRANSITION),
    "curves_by_component": lambda: plots.curves_by_figure(
        curves_table("trained", ["embeddings", "attention", "MLP"]), "trained", "component-wise training"),
    "curves_by_width": lambda: plots.curves_by_figure(curves_table("width", [16, 32, 64, 128]), "width",
                                                      "masked MSE for each width", palette="viridis"),
    "token_embedding": lambda: plots.token_embedding_figure(*token_tables()),
    "positional_embedding": lambda: plots.positional_embedding_figure(*position_tables()),
    "token_progress": lambda: plots.token_progress_figure(token_progress()),
    "positional_tsne_progress": lambda: plots.positional_tsne_progress_figure(position_tables([0, 200])[1]),
    "ood": lambda: plots.ood_figure(ood_table()),
    "nuclear_norm": lambda: plots.nuclear_norm_figure(nuclear_table()),
    "lambda_sweep": lambda: plots.lambda_sweep_figure(lambda_table()),
    "condition_bars": lambda: plots.condition_bars(swap_table(), ["masked_mse", "observed_mse"]),
    "permuted_positions_bars": lambda: plots.permuted_positions_figure(permuted_table(False)),
    "permuted_positions_vs_step": lambda: plots.permuted_positions_figure(permuted_table(True),
                                                                       transition=TRANSITION),
    "essential_dynamics": lambda: plot_essential_dynamics(dynamics(), TRANSITION),
    "head_scores": lambda: plot_head_scores(head_scores(), TRANSITION),
    "llc": lambda: plot_llc(*llc_tables(), TRANSITION),
}
MARKED = {"report_metrics", "report_onsets", "attention_structure", "position_neighbours", "permuted_positions_vs_step", "head_scores", "essential_dynamics", "llc"}


def draw(figure):
    if figure.canvas is None or not hasattr(figure.canvas, "get_renderer"):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        FigureCanvasAgg(figure)
    figure.canvas.draw()
    return figure


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_figure_reads_without_the_code(name):
    figure = draw(FIGURES[name]())
    try:
        problems = check_figure(figure, TRANSITION.drop_step if name in MARKED else None)
        assert problems == [], problems
    finally:
        plt.close(figure)


def test_sweep_loss_curves_of_two_tiny_runs_read_without_the_code(tmp_path):
    """``loss_curves_figure`` reads each run's metrics.csv from its directory: two real runs
    (lr 1e-3 and 3e-3), one curve and one legend entry each, the legend inside the canvas."""
    from plateau_lens import load_config, train
    from plateau_lens.sweep.figures import loss_curves_figure

    paths = []
    for lr in (1e-3, 3e-3):
        config = load_config({
            "task": {"name": "lrmc", "m": 3, "n": 3, "rank": 1},
            "model": {"n_layers": 1, "n_heads": 1, "d_model": 8, "attention": "softmax"},
            "train": {"steps": 4, "batch_size": 4, "eval_batch_size": 4, "lr": lr, "log_every": 1,
                      "checkpoint_every": 4, "checkpoint_log_spaced": False, "seed": 0}})
        paths.append(train(config, tmp_path / f"lr{lr:g}", progress=False))
    frame = pd.DataFrame({"train.lr": [1e-3, 3e-3], "path": paths})
    figure = draw(loss_curves_figure(frame, "train.lr"))
    try:
        assert check_figure(figure) == []
        (axis,) = figure.axes
        assert [t.get_text() for t in axis.get_legend().get_texts()] == ["0.001", "0.003"]
        assert axis.get_xlabel() and axis.get_ylabel() == "masked_mse"
    finally:
        plt.close(figure)


def test_lambda_sweep_names_the_exact_form_s_dotted_lines():
    """The exact nuclear-norm minimiser is drawn as dotted horizontal lines (which the generic
    check skips as markers): the legend must say what they are."""
    figure = draw(FIGURES["lambda_sweep"]())
    try:
        (axis,) = figure.axes
        dotted = [line for line in axis.get_lines() if line.get_linestyle() == ":" and len(line.get_xdata())]
        assert len(dotted) == 3  # one per metric of the exact form
        labels = [t.get_text() for t in axis.get_legend().get_texts()]
        assert any("exact" in text for text in labels), labels
        assert {"observed_mse", "masked_mse", "mse"} <= set(labels)
    finally:
        plt.close(figure)


def test_colourbar_coded_lines_need_no_legend_but_other_colours_do():
    """figure_checks accepts lines coloured from a colourbar's colormap (LLC traces) and still
    flags a line whose colour neither a legend nor a colourbar explains."""
    figure = draw(FIGURES["llc"]())
    try:
        assert check_figure(figure) == []
        traces = figure.axes[1]
        traces.plot([0, 4], [0.5, 0.6], color="tab:red")
        assert any("no legend entry" in p for p in check_figure(figure))
    finally:
        plt.close(figure)


def test_a_legend_proxy_is_not_taken_for_the_drop_mark():
    """seaborn's hue legend adds empty lines to the axes; np.all of their empty x data is True,
    so they once counted as a vertical line at any step. An unmarked curve must be flagged."""
    import seaborn as sns

    data = permuted_table(True).fillna({"scope": "none"})
    figure, axis = plt.subplots()
    sns.lineplot(data=data, x="step", y="value", hue="scope", ax=axis)
    axis.set(xscale="symlog", ylabel="masked_mse")
    try:
        assert any("not marked" in p for p in check_figure(draw(figure), TRANSITION.drop_step))
    finally:
        plt.close(figure)
