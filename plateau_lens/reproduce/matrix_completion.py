"""Reproductions of the matrix-completion study (Gopalani, Lubana & Hu, arXiv 2410.22244).

Every analysis comes in two sizes that share one runner:

* ``mc-…`` (device "gpu"): the study's setup (``tasks/lrmc.toml``: 7×7 rank 2, 50 000
  steps) and the study's checkpoints (4 000 on the plateau; 14 000, 16 000, 20 000 around
  the drop; 50 000 final), its matrix counts (512 for Fig. 3, 1 024 for OOD, 2 048 / 256
  for probes);
* ``mc-…-cpu`` (device "cpu"): ``tasks/lrmc_cpu.toml`` (the study's BERT at d_model 64 on
  4×4 rank 1, 10 000 steps, ~10 min on one free core), with checkpoints picked from the
  detected transition (:func:`milestones`).

All entries of one size train (or resume) one run, ``OUT/runs/lrmc`` or
``OUT/runs/lrmc_cpu`` (``…_N`` with ``--steps N``), so running several entries into the same
``--out`` trains once. Each writes ``OUT/ID.png`` (+ ``OUT/ID-part.png``) and ``OUT/ID.csv``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import pandas as pd

from ..analysis import (ablate_heads, ablation_sweep, analysis_batch, analyze_run,
                        attention_structure, compare_to_nuclear_norm, copying_test,
                        linear_probes, mask_rows, mean_attention_patterns,
                        nuclear_norm_lambda_sweep, ood_evaluation, patch_activations,
                        permuted_positions, positional_embedding_neighbours,
                        positional_embedding_norms, positional_embedding_tsne, probe_batches,
                        study_row_mask, swap_attention, token_embedding_norms,
                        token_embedding_pca, token_progress)
from ..config.components import COMPONENTS
from ..training.interventions import components_of
from ..io import write_table
from ..plots import (attention_grid, attention_structure_figure, condition_bars, curves_by_figure,
                     position_neighbours_figure, lambda_sweep_figure, loss_curve,
                     mc_training_curves, nuclear_norm_figure, ood_figure, patching_heatmaps,
                     permuted_positions_figure,
                     positional_embedding_figure, positional_tsne_progress_figure, probes_by_layer,
                     save, token_embedding_figure,
                     token_progress_figure)
from ..runs.load import Run
from .common import trained_run
from .registry import Context, Reproduction, register
from ..config import load_config

STUDY = "matrix-completion"


@dataclass(frozen=True)
class Setup:
    """One size of the study: the config it trains and the sizes of its analyses."""

    suffix: str
    config: str
    run_name: str
    device: str
    study_steps: dict[str, int] = field(default_factory=dict)
    """Named checkpoints of the study (used when the run has them), else from the transition."""
    batch_size: int = 256
    nuclear_matrices: int = 512
    nuclear_p_values: tuple[float, ...] = tuple(round(0.1 + 0.05 * i, 2) for i in range(11))
    lambda_matrices: int = 256
    ood_matrices: int = 1024
    probe_sizes: tuple[int, int] = (2048, 256)
    structure_points: int = 30
    """Checkpoints sampled for curves over the whole run (attention structure, positions)."""
    variant_overrides: dict[str, dict[str, dict]] = field(default_factory=dict)
    """Overrides of ``tasks/lrmc_gpt.toml`` / ``tasks/lrmc_mixed.toml`` for this size (key: the
    config's file name), e.g. a smaller model and fewer steps for the CPU."""
    width_configs: tuple[str, ...] = ()
    depth_configs: tuple[str, ...] = ()
    width_overrides: tuple[dict, ...] = ()
    depth_overrides: tuple[dict, ...] = ()

    def run(self, context: Context, name: str | None = None, config: str | None = None,
            **overrides) -> Run:
        """Train (or resume) this setup's run in ``OUT/runs`` (named by ``--steps`` when given)."""
        name = name or self.run_name
        if context.steps is not None:
            name = f"{name}_{context.steps}"
        return trained_run(context, config or self.config, name, **overrides)


STUDY_SETUP = Setup(
    suffix="", config="lrmc.toml", run_name="lrmc", device="gpu",
    study_steps={"early": 1000, "plateau": 4000, "mid_plateau": 10000, "pre_drop": 14000,
                 "post_drop": 16000, "late": 20000},
    # tasks/lrmc_sweeps/width_768.toml and depth_4.toml are tasks/lrmc.toml: its run is reused
    width_configs=("lrmc_sweeps/width_64.toml", "lrmc_sweeps/width_128.toml",
                   "lrmc_sweeps/width_256.toml", "lrmc.toml"),
    depth_configs=("lrmc_sweeps/depth_2.toml", "lrmc.toml", "lrmc_sweeps/depth_6.toml",
                   "lrmc_sweeps/depth_8.toml", "lrmc_sweeps/depth_12.toml"),
)
CPU_SETUP = Setup(
    suffix="-cpu", config="lrmc_cpu.toml", run_name="lrmc_cpu", device="cpu",
    nuclear_matrices=128, nuclear_p_values=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6),
    width_overrides=({"d_model": 64, "d_mlp": 256}, {"d_model": 128, "d_mlp": 512},
                     {"d_model": 256, "d_mlp": 1024}),
    depth_overrides=({"n_layers": 2}, {"n_layers": 4}, {"n_layers": 6}),
    # the variants at the CPU size: the GPT on 4x4 rank 1 (33 tokens) at d_model 128; mixed
    # sizes 3/4/5 on tasks/lrmc_cpu.toml's BERT (d_model 64, init 0.07, Adam 2e-3, batch 64)
    variant_overrides={
        "lrmc_gpt.toml": {
            "task": {"m": 4, "n": 4, "rank": 1},
            "model": {"d_model": 128, "d_mlp": 512, "max_positions": 33},
            "train": {"steps": 3000, "batch_size": 64, "lr": 1e-3, "log_every": 50,
                      "checkpoint_every": 250, "device": "cpu"}},
        "lrmc_mixed.toml": {
            "task": {"sizes": [3, 4, 5]},
            "model": {"d_model": 64, "d_mlp": 256, "init_std": 0.07},
            "train": {"steps": 10000, "batch_size": 64, "lr": 2e-3, "log_every": 50,
                      "checkpoint_every": 250, "device": "cpu"}}},
)
SETUPS = (STUDY_SETUP, CPU_SETUP)


# ------------------------------------------------------------------------------ checkpoints
def detected_transition(run: Run):
    """The run's transition in masked MSE, or None (none found, no masked MSE logged, or too
    few logged points: :meth:`Run.transition`)."""
    return run.transition("masked_mse")


def milestones(run: Run, setup: Setup) -> tuple[dict[str, int], str]:
    """Named checkpoints ``early``, ``plateau``, ``mid_plateau``, ``pre_drop``,
    ``post_drop``, ``late`` and ``final`` (in step order), and how they were chosen:

    * the study's steps (1 000, 4 000, 10 000, 14 000, 16 000, 20 000) when the run has
      checkpoints there (the study-size run);
    * else from the detected transition in masked MSE: early/plateau/mid_plateau at 25/50/75 %
      of the plateau, pre_drop the last checkpoint before the drop, post_drop halfway
      between drop and drop end, late at the drop's end;
    * else (no transition, e.g. a short ``--steps`` run) at 15, 30, 45, 55, 65 and 80 % of
      the run.
    """
    steps = run.steps
    if not steps:
        raise ValueError(f"run {run.path} has no checkpoints")
    final = steps[-1]
    if setup.study_steps and all(s in run.checkpoints for s in setup.study_steps.values()):
        chosen = dict(setup.study_steps)
        how = "the study's checkpoints"
    else:
        transition = detected_transition(run)
        if transition is not None and transition.plateau_end > transition.plateau_start:
            start, end = transition.plateau_start, transition.plateau_end
            before = [s for s in steps if s < transition.drop_step] or steps[:1]
            chosen = {"early": start + (end - start) // 4, "plateau": (start + end) // 2,
                      "mid_plateau": start + 3 * (end - start) // 4, "pre_drop": before[-1],
                      "post_drop": (transition.drop_step + transition.drop_end) // 2,
                      "late": transition.drop_end}
            how = (f"detected transition: plateau {start}-{end}, drop at {transition.drop_step}, "
                   f"over by {transition.drop_end}")
        else:
            fractions = {"early": 0.15, "plateau": 0.3, "mid_plateau": 0.45, "pre_drop": 0.55,
                         "post_drop": 0.65, "late": 0.8}
            chosen = {k: int(f * final) for k, f in fractions.items()}
            how = "no transition detected: fractions of the run"
    chosen = {name: run.nearest_step(step) for name, step in chosen.items()}
    chosen["final"] = final
    return dict(sorted(chosen.items(), key=lambda item: item[1])), how


def _unique_steps(points: dict[str, int], names: list[str]) -> list[int]:
    return sorted({points[name] for name in names})


def _spread(run: Run, count: int) -> list[int]:
    steps = run.steps
    stride = max(1, len(steps) // count)
    return sorted(set(steps[::stride]) | {steps[-1]})


def _label_steps(frame: pd.DataFrame, points: dict[str, int]) -> pd.DataFrame:
    names = {}
    for name, step in points.items():
        names.setdefault(step, name)
    frame.insert(1, "milestone", frame["step"].map(names))
    return frame


def _save(context: Context, entry_id: str, figures: dict[str, object],
          tables: dict[str, pd.DataFrame], note: str = "") -> dict[str, Path]:
    """``OUT/ID.png`` (first figure), ``OUT/ID-NAME.png`` (others), ``OUT/ID.csv`` (first
    table), ``OUT/ID-NAME.csv`` (others); ``note`` (how checkpoints were chosen) goes into
    every figure's footer."""
    written = {}
    for index, (name, figure) in enumerate(figures.items()):
        if note:
            figure.text(0.01, 0.003, note, fontsize=6, color="grey", ha="left", va="bottom")
        path = context.out / (f"{entry_id}.png" if index == 0 else f"{entry_id}-{name}.png")
        written["figure" if index == 0 else f"figure-{name}"] = Path(save(figure, path))
    for index, (name, table) in enumerate(tables.items()):
        path = context.out / (f"{entry_id}.csv" if index == 0 else f"{entry_id}-{name}.csv")
        write_table(table, path)
        written["table" if index == 0 else f"table-{name}"] = path
    return written


def _by_step(run: Run, analyzer: Callable, steps: list[int], batch=None,
             progress: bool = True) -> pd.DataFrame:
    return analyze_run(run, analyzer, steps=steps, batch=batch, progress=progress)


# ------------------------------------------------------------------------------- runners
def loss_curves(setup: Setup, entry_id: str, context: Context):
    run = setup.run(context)
    transition = detected_transition(run)
    figure = mc_training_curves(run.metrics, transition,
                                f"LRMC {run.task.m}×{run.task.n} rank {run.task.rank}: masked / "
                                f"observed MSE and mean |prediction| on masked entries")
    note = f"plateau: {transition.describe()}" if transition else "no plateau-and-drop detected"
    return _save(context, entry_id, {"loss": figure}, {"metrics": run.metrics}, note)


def nuclear_norm_comparison(setup: Setup, entry_id: str, context: Context):
    run = setup.run(context)
    final = run.steps[-1]
    table = compare_to_nuclear_norm(run.model(final), p_values=setup.nuclear_p_values,
                                    n_matrices=setup.nuclear_matrices, progress=context.progress)
    table.insert(0, "step", final)
    figure = nuclear_norm_figure(table, f"model (step {final}, trained at p = {run.task.p_mask}) vs "
                                        f"nuclear-norm minimisation, {setup.nuclear_matrices} matrices per p")
    return _save(context, entry_id, {"nuclear_norm": figure}, {"comparison": table})


def lambda_sweep(setup: Setup, entry_id: str, context: Context):
    from ..config import shipped_config

    task = load_config(shipped_config(setup.config)).make_task()
    table = nuclear_norm_lambda_sweep(task, n_matrices=setup.lambda_matrices, progress=context.progress)
    figure = lambda_sweep_figure(table, f"regularised nuclear-norm minimisation, {task.m}×{task.n} "
                                        f"rank {task.rank}, p = {task.p_mask}, {setup.lambda_matrices} matrices")
    return _save(context, entry_id, {"lambda": figure}, {"sweep": table})


def attention_maps(setup: Setup, entry_id: str, context: Context):
    run = setup.run(context)
    points, how = milestones(run, setup)
    steps = _unique_steps(points, ["plateau", "pre_drop", "post_drop", "late"])
    batch = analysis_batch(run, setup.batch_size)
    patterns = {step: mean_attention_patterns(run.model(step), batch) for step in steps}
    grid = attention_grid(patterns, "batch-mean attention (rows: step, layer; columns: heads)")
    structure = _by_step(run, attention_structure, _spread(run, setup.structure_points), batch,
                         context.progress)
    summary = structure[structure["metric"].isin(["same_row", "same_column"])]
    summary = summary.groupby(["step", "metric"], as_index=False)["value"].max()
    figure = attention_structure_figure(summary, detected_transition(run))
    return _save(context, entry_id, {"maps": grid, "structure": figure},
                 {"structure": _label_steps(structure, points)}, how)


def row_mask_attention(setup: Setup, entry_id: str, context: Context):
    run = setup.run(context)
    points, how = milestones(run, setup)
    steps = _unique_steps(points, ["plateau", "final"])
    rows, keep = study_row_mask(run.task)
    batch = mask_rows(run.task, analysis_batch(run, setup.batch_size), rows, keep)
    patterns = {step: mean_attention_patterns(run.model(step), batch) for step in steps}
    grid = attention_grid(patterns, f"rows {rows} masked except columns {keep}, all else observed")
    table = _by_step(run, attention_structure, steps, batch, context.progress)
    return _save(context, entry_id, {"maps": grid}, {"structure": _label_steps(table, points)},
                 f"{how}; rows {rows} keep columns {keep}")


def ablation_table(setup: Setup, entry_id: str, context: Context):
    run = setup.run(context)
    points, how = milestones(run, setup)
    steps = _unique_steps(points, ["early", "plateau", "pre_drop", "final"])
    batch = analysis_batch(run, setup.batch_size)
    frames = []
    for step, model in run.models(steps):
        whole = ablate_heads(model, batch, "all", mode="uniform")
        sweep = ablation_sweep(model, batch, mode="uniform", progress=False)
        frame = pd.concat([whole, sweep], ignore_index=True)
        frame.insert(0, "step", step)
        frames.append(frame)
    table = _label_steps(pd.concat(frames, ignore_index=True), points)
    layers = table[(table["scope"] != "head")].copy()
    layers["ablation"] = layers.apply(
        lambda r: "none" if r["condition"] == "clean" else
        ("all heads" if r["scope"] == "heads" else f"layer {int(r['layer'])}"), axis=1)
    layers = layers.drop_duplicates(["step", "ablation", "metric"])
    figure = condition_bars(layers, ["masked_mse", "observed_mse"], x="step", hue="ablation",
                            title="uniform attention (1/N) in all heads / one layer's heads")
    return _save(context, entry_id, {"ablation": figure}, {"ablation": table}, how)


def patching(setup: Setup, entry_id: str, context: Context):
    run = setup.run(context)
    points, how = milestones(run, setup)
    steps = _unique_steps(points, ["plateau", "final"])
    batch = analysis_batch(run, setup.batch_size)
    table = _label_steps(_by_step(run, lambda m, b: patch_activations(m, b, progress=False),
                                  steps, batch, context.progress), points)
    metrics = ["masked_mse", "masked_mse_vs_corrupted", "observed_mse", "observed_mse_vs_corrupted"]
    figures = {f"step{step}": patching_heatmaps(
        table[table["step"] == step], metrics,
        f"step {step}: clean X's per-head hook_z patched into the −X run (MSE vs X and vs −X)")
        for step in steps[::-1]}
    return _save(context, entry_id, figures, {"patching": table}, how)


def probes(setup: Setup, entry_id: str, context: Context):
    run = setup.run(context)
    points, how = milestones(run, setup)
    steps = _unique_steps(points, ["plateau", "post_drop", "final"])
    train_batch, test_batch = probe_batches(run, *setup.probe_sizes)
    targets = ["entry", "observed_row", "top_singular_vector", "top_singular_projector"]
    table = _label_steps(_by_step(run, lambda m, b: linear_probes(m, train_batch, b, targets=targets),
                                  steps, test_batch, context.progress), points)
    figure = probes_by_layer(table, targets, f"least-squares probes (no bias), {setup.probe_sizes[0]} "
                                             f"train / {setup.probe_sizes[1]} test matrices")
    return _save(context, entry_id, {"probes": figure}, {"probes": table}, how)


def copying(setup: Setup, entry_id: str, context: Context):
    run = setup.run(context)
    points, how = milestones(run, setup)
    steps = _unique_steps(points, ["plateau", "final"])
    batch = analysis_batch(run, setup.batch_size)

    def analyzer(model, batch):
        return pd.concat([copying_test(model, batch), copying_test(model, batch, matrix="random")],
                         ignore_index=True)

    table = _label_steps(_by_step(run, analyzer, steps, batch, context.progress), points)
    table["input"] = table["matrix"] + " @ step " + table["step"].astype(str)
    figure = condition_bars(table, ["observed_mse", "masked_abs_pred", "fill_copy_mse", "fill_true_mse"],
                            x="input", title="copying test: MASK input, and masked entries shown as −0.24")
    return _save(context, entry_id, {"copying": figure}, {"copying": table.drop(columns="input")}, how)


def swap(setup: Setup, entry_id: str, context: Context):
    run = setup.run(context)
    points, how = milestones(run, setup)
    pre, post = points["plateau"], points["final"]
    batch = analysis_batch(run, setup.batch_size)
    table = swap_attention(run.model(pre), run.model(post), batch)
    table.insert(0, "pre_step", pre)
    table.insert(1, "post_step", post)
    figure = condition_bars(table, ["masked_mse", "observed_mse"],
                            title=f"switching weights between step {pre} (pre) and {post} (post)")
    return _save(context, entry_id, {"swap": figure}, {"swap": table}, how)


def embeddings(setup: Setup, entry_id: str, context: Context):
    run = setup.run(context)
    final = run.steps[-1]
    model = run.model(final)
    parts = {"token_norm": token_embedding_norms(model), "token_pca": token_embedding_pca(model),
             "position_norm": positional_embedding_norms(model),
             "position_tsne": positional_embedding_tsne(model),
             "position_neighbours": positional_embedding_neighbours(model)}
    table = pd.concat([frame.assign(analysis=name) for name, frame in parts.items()], ignore_index=True)
    table.insert(0, "step", final)
    tokens = token_embedding_figure(parts["token_norm"], parts["token_pca"],
                                    f"value-token embeddings at step {final}")
    positions = positional_embedding_figure(parts["position_norm"], parts["position_tsne"],
                                            f"positional embeddings at step {final}")
    return _save(context, entry_id, {"tokens": tokens, "positions": positions}, {"embeddings": table})


def embedding_progress(setup: Setup, entry_id: str, context: Context):
    run = setup.run(context)
    points, how = milestones(run, setup)
    steps = _unique_steps(points, ["plateau", "mid_plateau", "pre_drop", "post_drop", "late", "final"])
    progress = _label_steps(token_progress(run, steps, progress=context.progress), points)
    tsne = _label_steps(_by_step(run, positional_embedding_tsne, steps, None, context.progress), points)
    neighbours = _by_step(run, positional_embedding_neighbours, _spread(run, setup.structure_points),
                          None, context.progress)
    tsne_figure = positional_tsne_progress_figure(
        tsne, "t-SNE of the positional embeddings, coloured by column")
    curve = position_neighbours_figure(neighbours, detected_transition(run))
    return _save(context, entry_id, {"tokens": token_progress_figure(
        progress, "token embeddings on the final checkpoint's top-2 PCs (uncentred, as the study)"),
        "positions": tsne_figure, "neighbours": curve},
        {"token_progress": progress, "position_tsne": tsne, "position_neighbours": neighbours}, how)


def permuted(setup: Setup, entry_id: str, context: Context):
    run = setup.run(context)
    points, how = milestones(run, setup)
    steps = sorted(set(points.values()))
    batch = analysis_batch(run, setup.batch_size)
    table = _label_steps(_by_step(run, lambda m, b: permuted_positions(m, b, progress=False),
                                  steps, batch, context.progress), points)
    figure = permuted_positions_figure(table, "masked_mse",
                                       "masked MSE with the positional embeddings shuffled",
                                       detected_transition(run))
    return _save(context, entry_id, {"permuted": figure}, {"permuted": table}, how)


def ood(setup: Setup, entry_id: str, context: Context):
    run = setup.run(context)
    final = run.steps[-1]
    table = ood_evaluation(run.model(final), n_matrices=setup.ood_matrices, progress=context.progress)
    table.insert(0, "step", final)
    figure = ood_figure(table, title=f"out-of-distribution MSE at step {final} "
                                     f"(trained: {run.task.m}×{run.task.n}, rank {run.task.rank}, "
                                     f"p = {run.task.p_mask}, U[-1, 1] factors)")
    return _save(context, entry_id, {"ood": figure}, {"ood": table})


COMPONENT_GROUPS = {"token embeddings": ("embed", "embed_ln"),
                    "positional embeddings": ("pos_embed", "embed_ln"),
                    "attention": ("attn", "ln1"), "MLP": ("mlp", "ln2")}
"""What the component-wise runs train from scratch (each attention / MLP with its norm; each
embedding with the embedding LayerNorm of a post-LN model, which the study's train_embed.py
trains with the embeddings: only attention, intermediate, output and read-out are frozen)."""


def component_wise(setup: Setup, entry_id: str, context: Context):
    full = setup.run(context)
    reference = str(full.checkpoints[full.steps[-1]].resolve())
    present = components_of(full.model(full.steps[-1]).network,
                            [name for name in COMPONENTS if "." not in name])
    curves = [full.metrics.assign(trained="all (full training)")]
    for label, trained in COMPONENT_GROUPS.items():
        copied = [name for name in present if name not in trained]
        run = setup.run(context, name=f"{setup.run_name}_only_{trained[0]}",
                        init={"checkpoint": reference, "components": copied, "freeze": True})
        curves.append(run.metrics.assign(trained=label))
    table = pd.concat(curves, ignore_index=True)
    figure = curves_by_figure(table, "trained", "component-wise training: one component from "
                              "scratch, the rest copied from the final checkpoint and frozen")
    return _save(context, entry_id, {"components": figure},
                 {"curves": table[["trained", "step", "loss", "masked_mse", "observed_mse"]]})


def sweep(setup: Setup, entry_id: str, context: Context, kind: str):
    configs = setup.width_configs if kind == "width" else setup.depth_configs
    overrides = setup.width_overrides if kind == "width" else setup.depth_overrides
    curves = []
    if configs:
        for config in configs:
            name = setup.run_name if config == setup.config else f"lrmc_{Path(config).stem}"
            run = setup.run(context, name=name, config=config)
            value = run.config.model.d_model if kind == "width" else run.config.model.n_layers
            curves.append(run.metrics.assign(**{kind: value}))
    for model in overrides:
        label = "_".join(f"{k}{v}" for k, v in model.items())
        run = setup.run(context, name=f"{setup.run_name}_{label}", model=model)
        value = run.config.model.d_model if kind == "width" else run.config.model.n_layers
        curves.append(run.metrics.assign(**{kind: value}))
    table = pd.concat(curves, ignore_index=True)
    figure = curves_by_figure(table, kind, f"masked MSE over training for each model {kind}",
                              palette="viridis")
    return _save(context, entry_id, {kind: figure},
                 {"curves": table[[kind, "step", "loss", "masked_mse", "observed_mse"]]})


VARIANT_CONFIGS = {"gpt": "lrmc_gpt.toml", "mixed-sizes": "lrmc_mixed.toml"}
"""Analysis key → the config its run trains (``tasks/``), overridden per size by
``Setup.variant_overrides``."""


def _variant_run(setup: Setup, context: Context, key: str) -> Run:
    config = VARIANT_CONFIGS[key]
    name = Path(config).stem + setup.suffix.replace("-", "_")
    return setup.run(context, name=name, config=config,
                     **setup.variant_overrides.get(config, {}))


def gpt_variant(setup: Setup, entry_id: str, context: Context):
    """The study's autoregressive variant (``src/gpt/``): teacher-forced accuracy and value
    MSE on observed vs masked entries of the full matrix after SEP (the study: it only learns
    to copy the observed entries), from the run's logged metrics. The attention analyzers run
    on its checkpoints as on any decoder; this entry does not call them."""
    run = _variant_run(setup, context, "gpt")
    accuracies = [c for c in ("observed_accuracy", "masked_accuracy", "generation_accuracy")
                  if c in run.metrics]
    errors = [c for c in ("loss", "observed_mse", "masked_mse") if c in run.metrics]
    accuracy_figure = loss_curve(run.metrics, accuracies, log_y=False,
                                 title="GPT variant: accuracy on observed / masked entries")
    error_figure = loss_curve(run.metrics, errors,
                              title="GPT variant: cross-entropy and value MSE")
    return _save(context, entry_id, {"accuracy": accuracy_figure, "errors": error_figure},
                 {"metrics": run.metrics})


def mixed_sizes(setup: Setup, entry_id: str, context: Context):
    """Mixed matrix sizes in one run (the study: 5x5, 7x7, 9x9 rank 1 are learned in an order):
    masked MSE per size over training (``masked_mse_MxM``, logged on the steps that drew it)."""
    run = _variant_run(setup, context, "mixed-sizes")
    columns = [c for c in run.metrics if c.startswith("masked_mse_")]
    figure = loss_curve(run.metrics, columns, title="mixed sizes: masked MSE per matrix size")
    return _save(context, entry_id, {"sizes": figure},
                 {"metrics": run.metrics[["step", *columns]]})


# ------------------------------------------------------------------------------ registry
@dataclass(frozen=True)
class Analysis:
    key: str
    figure: str
    shows: str
    runner: Callable
    sizes: tuple[Setup, ...] = SETUPS


ANALYSES = (
    Analysis("fig1-loss", "Fig. 1", "masked / observed MSE and mean |prediction| on masked "
             "entries over training: plateau (copying), then the drop", loss_curves),
    Analysis("fig3-nuclear-norm", "Fig. 3", "model vs nuclear-norm minimisation over p: MSE on all "
             "and on masked entries, nuclear norm of the output matrices", nuclear_norm_comparison),
    Analysis("nuclear-lambda", "λ sweep (cvx_nuc_norm.py)", "regularised nuclear-norm minimisation "
             "over the study's λ (5e-4 … 1e-2): observed / masked / all-entry MSE", lambda_sweep,
             (replace(STUDY_SETUP, device="cpu"), CPU_SETUP)),
    Analysis("fig4-attention", "Fig. 4", "batch-mean attention maps on the plateau, before, just "
             "after and after the drop; same-row / same-column shares over training", attention_maps),
    Analysis("attention-row-mask", "attention maps, rows masked (att_maps.py)", "attention with "
             "two rows masked except one entry each (all else observed)", row_mask_attention),
    Analysis("table1-ablation", "Table 1", "uniform attention in all heads / each layer before the "
             "drop (study: steps 1000, 4000, 14000) and at the end", ablation_table),
    Analysis("patching", "activation patching", "per-head hook_z of clean X patched into the −X "
             "run: MSE vs X and vs −X, masked / observed", patching),
    Analysis("probes", "probes", "least-squares probes per layer (2 048 / 256 matrices): entry, "
             "observed row, top singular vector (signed and sign-free), |cosine|", probes),
    Analysis("copying", "copying test", "masked entries as MASK or as −0.24, low-rank or random "
             "full-rank input: does the model copy?", copying),
    Analysis("swap", "switching (switch_models.py)", "Q/K/V, or the whole attention sublayer, "
             "from the plateau checkpoint with the rest from the final one, and back", swap),
    Analysis("embeddings", "embeddings (embed.py)", "token-embedding norms and PCA by value range; "
             "positional-embedding norms and t-SNE by column and row", embeddings),
    Analysis("embedding-progress", "token / position progress (embed.py)", "earlier token "
             "embeddings on the final top-2 PCs; position t-SNE per step; same-column neighbours "
             "over training", embedding_progress),
    Analysis("permuted-positions", "permuted positions (embed.py)", "loss with the positional "
             "embeddings shuffled (any position, rows only, columns only) at each milestone",
             permuted),
    Analysis("ood", "OOD (ood.py)", "total / observed / masked MSE on Gaussian (0.5) and Laplace "
             "(0.25) factors, other ranks, p and sizes", ood),
    Analysis("component-wise", "component-wise training", "one component (token / position "
             "embeddings, attention, MLP) trained from scratch, the rest copied from the final "
             "checkpoint and frozen", component_wise),
    Analysis("gpt", "GPT variant (src/gpt/)", "the masked matrix, SEP, the full matrix, next-token "
             "cross-entropy on a 2-layer 2-head causal GPT: accuracy and value MSE on observed vs "
             "masked entries (the study: it only learns to copy observed entries)", gpt_variant),
    Analysis("mixed-sizes", "mixed sizes", "5x5 / 7x7 / 9x9 rank 1 in one run (CPU: 3x3 / 4x4 / "
             "5x5): masked MSE per size over training (the study: learned in an order)",
             mixed_sizes),
    Analysis("width", "width sweep", "masked MSE over training for d_model 64 … 768",
             lambda setup, entry_id, context: sweep(setup, entry_id, context, "width")),
    Analysis("depth", "depth sweep", "masked MSE over training for 2 … 12 layers",
             lambda setup, entry_id, context: sweep(setup, entry_id, context, "depth")),
)


def _config_label(analysis: Analysis, setup: Setup) -> str:
    if analysis.key == "width":
        names = setup.width_configs or (f"{setup.config} with d_model 64/128/256",)
        return ", ".join(f"tasks/{n}" for n in names)
    if analysis.key == "depth":
        names = setup.depth_configs or (f"{setup.config} with 2/4/6 layers",)
        return ", ".join(f"tasks/{n}" for n in names)
    if analysis.key in VARIANT_CONFIGS:
        name = VARIANT_CONFIGS[analysis.key]
        overrides = setup.variant_overrides.get(name, {})
        changed = ", ".join(f"{key} {value}" for section in overrides.values()
                            for key, value in section.items()
                            if key not in ("log_every", "checkpoint_every", "device"))
        return f"tasks/{name}" + (f" with {changed}" if changed else "")
    return f"tasks/{setup.config}"


def _register_all() -> None:
    for analysis in ANALYSES:
        for setup in analysis.sizes:
            entry_id = f"mc-{analysis.key}{setup.suffix}"

            def run(context: Context, analysis=analysis, setup=setup, entry_id=entry_id):
                context.out.mkdir(parents=True, exist_ok=True)
                return analysis.runner(setup, entry_id, context)

            register(Reproduction(
                id=entry_id, study=STUDY, figure=analysis.figure, shows=analysis.shows,
                config=_config_label(analysis, setup), device=setup.device, run=run))


_register_all()

__all__ = ["ANALYSES", "CPU_SETUP", "STUDY_SETUP", "Setup", "milestones"]
