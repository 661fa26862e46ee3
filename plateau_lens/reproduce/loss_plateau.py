"""Reproductions of the loss-plateau study (Gopalani & Hu, arXiv 2506.13688): every figure
one command away, ``plateau-lens reproduce ID --out DIR``.

Each entry trains its runs (``tasks/*.toml``, into ``DIR/runs/NAME``, resuming what is
there; runs shared between entries — the MWS run of Fig. 2 is Figs. 3's baseline, Fig. 5's
reference, Fig. 20's and 41–42's checkpoints — are trained once per ``DIR``) and writes
``DIR/ID.png`` (the study's panels), ``DIR/ID.csv`` (every logged row, labelled by run) and
``DIR/ID_summary.csv`` (per run: the detected plateau and drop, final accuracy, and the
plateau-time measures behind the study's findings). Sweeps (Figs. 3, 4, 43, 26–29, 36–40)
run their points one after another; ``plateau-lens sweep`` runs the same grids in parallel.

Entries whose study size is too slow for a CPU train a reduced version by default (fewer
steps), say so in ``shows`` and take ``--steps`` for the full length.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..io import write_table
from ..runs.layout import PROMPTS_FILE, is_checkpoint_folder, series_step_dir
from ..plots import (PLATEAU_PANELS, collapse_by_site, llm_series_panels, plateau_dynamics,
                     probe_accuracy_vs_step)
from .common import save_outputs, trained_run
from .registry import Context, Reproduction, register
from ..analysis import analyze_run, next_token_probe, representation_collapse
from ..training.interventions import OPTIMAL_INIT
from ..llm import analyze_series, load_prompts
from ..tasks.base import step_generator

STUDY = "loss-plateau"

MWS = "mws.toml"
"""Fig. 2's run (tasks/mws.toml, run name ``mws``), shared by several entries."""


@dataclass(frozen=True)
class RunSpec:
    """One training run of an entry: ``tasks/config`` with ``overrides``, trained into
    ``DIR/runs/name`` and labelled ``label`` in the figure and tables."""

    label: str
    config: str
    name: str
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)


def summarize(label: str, metrics: pd.DataFrame, transition, steps: int) -> dict[str, Any]:
    """One summary row: the detected plateau and drop, the final numbers, and the measures
    behind the study's findings, averaged over the plateau (its second half for accuracy,
    where the partial solution has formed) and over the last 10 % of the run."""
    def mean(column, frame):
        return float(frame[column].mean()) if column in frame and len(frame) else float("nan")

    tail = metrics[metrics["step"] >= metrics["step"].max() * 0.9]
    row: dict[str, Any] = {"run": label, "steps": steps,
                           "final_loss": mean("loss", tail), "final_accuracy": mean("accuracy", tail)}
    if transition is None:
        row.update(plateau_start=None, plateau_end=None, drop_step=None, drop_end=None)
        plateau = metrics.iloc[0:0]
    else:
        row.update({k: v for k, v in transition.to_dict().items()
                    if k in ("plateau_start", "plateau_end", "drop_step", "drop_end", "plateau_loss")})
        plateau = metrics[metrics["step"].between(transition.plateau_start, transition.plateau_end)]
    late = plateau[plateau["step"] >= plateau["step"].median()] if len(plateau) else plateau
    positions = sorted((c for c in metrics if c.startswith("accuracy_pos_")),
                       key=lambda c: int(c.rsplit("_", 1)[1]))
    if positions:
        row["plateau_first_output_accuracy"] = mean(positions[0], late)
        row["plateau_later_outputs_accuracy"] = (
            float(late[positions[1:]].mean(axis=1).mean()) if len(late) and len(positions) > 1
            else float("nan"))
    for column in ("repetition_frequency", "repetition_frequency_data", "cosine_similarity",
                   "attention_progress", "entropy", "entropy_data"):
        if column in metrics:
            row[f"plateau_{column}"] = mean(column, plateau)
            row[f"final_{column}"] = mean(column, tail)
    return row


def train_runs(context: Context, specs: list[RunSpec]):
    """Train (or resume) each run; label → ``Run``."""
    return {spec.label: trained_run(context, spec.config, spec.name, **spec.overrides)
            for spec in specs}


def save_dynamics(context: Context, entry_id: str, runs: dict, title: str,
                  panels=PLATEAU_PANELS) -> dict[str, Path]:
    """The panels figure, every logged row (column ``run``) and the per-run summary."""
    metrics = {label: run.metrics for label, run in runs.items()}
    transitions = {label: run.transition() for label, run in runs.items()}
    figure = plateau_dynamics(metrics, panels, title, transitions)
    table = pd.concat([m.assign(run=label) for label, m in metrics.items()], ignore_index=True)
    written = save_outputs(context, entry_id, figure, table)
    summary = pd.DataFrame([summarize(label, metrics[label], transitions[label],
                                      run.config.train.steps) for label, run in runs.items()])
    summary_path = context.out / f"{entry_id}_summary.csv"
    write_table(summary, summary_path)
    return {**written, "summary": summary_path}


def dynamics_entry(entry_id: str, figure: str, shows: str, specs: list[RunSpec], title: str,
                   panels=PLATEAU_PANELS):
    """Register an entry that trains ``specs`` and plots the study's panels."""
    def run(context: Context) -> dict[str, Path]:
        return save_dynamics(context, entry_id, train_runs(context, specs), title, panels)

    configs = ", ".join(dict.fromkeys(f"tasks/{s.config}" for s in specs))
    return register(Reproduction(id=entry_id, study=STUDY, figure=figure, shows=shows,
                                 config=configs, device="cpu", run=run))


ENTROPY_PANEL = ("entropy", ("entropy", "entropy_data"))

# ------------------------------------------------------------------------- MWS (Fig. 2)
dynamics_entry(
    "lp-fig2-mws", "Fig. 2",
    "MWS training: loss plateau and drop, y1 learned first, repetition and collapse during "
    "the plateau, attention progress",
    [RunSpec("MWS k=2", MWS, "mws")],
    "MWS (k = 2): plateau, partial solution, repetition, collapse")

# ------------------------------------------------------- attention biasing (Figs. 3, 4, 43)
BIAS = [RunSpec("c=1 (none)", MWS, "mws")] + [
    RunSpec(f"c={c}", f"mws_bias_{name}.toml", f"mws_bias_{name}",
            {"train": {"steps": 1000}} if c < 1 else {})
    for c, name in ((0.2, "0_2"), (0.5, "0_5"), (2.5, "2_5"), (10, "10"))]
dynamics_entry(
    "lp-fig3-4-bias", "Figs. 3, 4",
    "attention biasing c ∈ {0.2, 0.5, 2.5, 10} from step 0 beside the unbiased run: c > 1 "
    "shortens the plateau and weakens repetition and collapse, c < 1 lengthens it. Reduced: "
    "c < 1 trains 1000 of the study's 2000 steps (--steps 2000)",
    BIAS,
    "Attention biasing: optimal entries × c")
dynamics_entry(
    "lp-fig43-bias-start", "Fig. 43",
    "attention biasing c = 10 switched on at step 0, 25, 50, 75 or 100: the drop follows the "
    "switch",
    [RunSpec("no bias", MWS, "mws"), RunSpec("c=10 from 0", "mws_bias_10.toml", "mws_bias_10")]
    + [RunSpec(f"c=10 from {t}", f"mws_bias_10_t{t}.toml", f"mws_bias_10_t{t}")
       for t in (25, 50, 75, 100)],
    "Attention biasing c = 10 from a later step")


# ------------------------------------------------------------------ optimal init (Fig. 5)
def optimal_init(context: Context) -> dict[str, Path]:
    """The reference is Fig. 2's trained MWS model (its final checkpoint); each variant
    copies and freezes the components of ``training.interventions.OPTIMAL_INIT`` from it and trains
    the rest from the seed-1 init."""

    reference = trained_run(context, MWS, "mws")
    checkpoint = str(reference.checkpoints[max(reference.steps)])
    specs = [RunSpec("random init (Fig. 2)", MWS, "mws")]
    for variant in ("mlp_ln2_unembed_lnf", "attn_qk_embed_ln1"):
        specs.append(RunSpec(
            f"optimal {variant}", "mws_optimal_init.toml", f"mws_optimal_init_{variant}",
            {"init": {"checkpoint": checkpoint, "components": list(OPTIMAL_INIT[variant])},
             "train": {"seed": 1}}))
    return save_dynamics(context, "lp-fig5-optimal-init", train_runs(context, specs),
                         "Optimal init: components copied from a trained model and frozen")


register(Reproduction(
    id="lp-fig5-optimal-init", study=STUDY, figure="Fig. 5",
    shows="MWS from an optimal init: MLP, ln_2, lm_head, ln_f (or attention Q/K, embeddings, "
          "ln_1) copied from Fig. 2's trained model and frozen, the rest trained from a new seed",
    config="tasks/mws.toml, tasks/mws_optimal_init.toml", device="cpu", run=optimal_init))

# ------------------------------------------------------------------- the other tasks
dynamics_entry(
    "lp-fig6-prefix-sum", "Figs. 6, 11, 12",
    "prefix sum: plateau, repetition, collapse, entropy of the outputs, attention progress "
    "({x_i, y_(i-1)} mask)",
    [RunSpec("prefix sum", "prefix_sum.toml", "prefix_sum")], "Prefix sum",
    PLATEAU_PANELS + (ENTROPY_PANEL,))
dynamics_entry(
    "lp-fig7-repeat", "Figs. 7, 21, 22",
    "repeat-1, -2, -4: plateau and repetition; collapse within blocks (k = 2, 4)",
    [RunSpec(f"repeat-{k}", f"repeat_{k}.toml", f"repeat_{k}") for k in (1, 2, 4)],
    "Repeat-k")
dynamics_entry(
    "lp-fig9-addition", "Figs. 9, 10",
    "4-digit addition: plateau, repetition, collapse over rows 9-12, entropy, attention "
    "progress with carry keys. Reduced: 3000 of the study's 10 000 steps (--steps 10000)",
    [RunSpec("addition", "addition.toml", "addition", {"train": {"steps": 3000}})],
    "4-digit addition (reversed sum)", PLATEAU_PANELS + (ENTROPY_PANEL,))
PER_LAYER_PROGRESS = PLATEAU_PANELS[:-1] + (
    ("attention progress", ("attention_progress_L0", "attention_progress_L1", "attention_progress")),)
dynamics_entry(
    "lp-fig13-permutation", "Figs. 13, 14",
    "permutation (2 layers): plateau, repetition, collapse over rows 33-48, attention "
    "progress per layer. Reduced: 1000 of the study's 2000 steps (--steps 2000)",
    [RunSpec("permutation", "permutation.toml", "permutation", {"train": {"steps": 1000}})],
    "Permutation (2 layers)", PER_LAYER_PROGRESS)
dynamics_entry(
    "lp-fig15-histogram", "Figs. 15, 16",
    "histogram (2 layers, grad clip 1.0): plateau, repetition, collapse over rows 16-31, "
    "layer-0 attention progress. Reduced: 1500 of the study's 5000 steps (--steps 5000)",
    [RunSpec("histogram", "histogram.toml", "histogram", {"train": {"steps": 1500}})],
    "Histogram (2 layers)")
dynamics_entry(
    "lp-fig17-reverse", "Fig. 17", "reverse: plateau, repetition, collapse (rows 16-31)",
    [RunSpec("reverse", "reverse.toml", "reverse")], "Reverse")
dynamics_entry(
    "lp-fig18-copy", "Fig. 18", "copy: plateau, repetition, collapse (rows 16-31)",
    [RunSpec("copy", "copy.toml", "copy")], "Copy")
CONCAT_PANELS = PLATEAU_PANELS[:3] + (
    ("cosine similarity", ("cosine_similarity_copies", "cosine_similarity_window2",
                           "cosine_similarity_window3", "cosine_similarity")),
    PLATEAU_PANELS[4])
dynamics_entry(
    "lp-fig19-concat", "Fig. 19",
    "concatenated MWS (copies, window-2, window-3 sums): learned segment by segment, "
    "collapse per segment. Reduced: 2000 of the study's 5000 steps (--steps 5000)",
    [RunSpec("concat MWS", "mws_concat.toml", "mws_concat", {"train": {"steps": 2000}})],
    "Concatenated MWS", CONCAT_PANELS)


# ----------------------------------------------------------- attention-output probe (Fig. 20)
PROBE_TRAIN, PROBE_TEST = 64, 1984
"""The study's effective split of its 2048 probe sequences (see ``next_token_probe``)."""
PROBE_SEED_OFFSET = 30_000_001


def probe_entry(context: Context) -> dict[str, Path]:
    run = trained_run(context, MWS, "mws")
    seed = run.config.train.seed + PROBE_SEED_OFFSET
    sequences = run.task.sample(PROBE_TRAIN + PROBE_TEST, step_generator(seed, 0))
    train, test = sequences[:PROBE_TRAIN], sequences[PROBE_TRAIN:]

    def probe(model, _batch):
        return next_token_probe(model, train, test)

    table = analyze_run(run, probe, batch=test[:1], progress=context.progress)
    transition = run.transition()
    figure = probe_accuracy_vs_step(table, run.metrics, transition,
                                    "MWS: next-token MLP probe of the attention output")
    written = save_outputs(context, "lp-fig20-probe", figure, table)
    return written


register(Reproduction(
    id="lp-fig20-probe", study=STUDY, figure="Fig. 20",
    shows="MLP probe (256 hidden, max_iter 2000) of the next token from the attention output "
          "at every checkpoint of Fig. 2's run (every 20 steps; the study probes every 10)",
    config="tasks/mws.toml", device="cpu",
    run=probe_entry))

# ------------------------------------------------------- varied configurations (Figs. 26-29)
CONFIGURATIONS = {
    "window k=3": {"task": {"window": 3}},
    "2 layers": {"model": {"n_layers": 2}},
    "2 heads": {"model": {"n_heads": 2}},
    "d_model 128": {"model": {"d_model": 128, "d_mlp": 512}},
}
"""The study's README says only "change the respective hyperparameter" of configs/mws.yaml
for Figs. 26-29; these four variations (window, depth, heads, width) are our choice."""
dynamics_entry(
    "lp-fig26-29-configs", "Figs. 26-29",
    "MWS with varied configurations (window k = 3, 2 layers, 2 heads, d_model 128; our "
    "choice of variations), beside Fig. 2's run",
    [RunSpec("k=2, 1 layer, 1 head, d 256", MWS, "mws")]
    + [RunSpec(label, MWS, "mws_" + label.replace(" ", "_").replace("=", ""), overrides)
       for label, overrides in CONFIGURATIONS.items()],
    "MWS with varied configurations")

# --------------------------------------------------------------- optimisation (Figs. 30-40)
dynamics_entry(
    "lp-fig30-softmax", "Fig. 30",
    "MWS with softmax attention (2000 steps). Reduced: 1000 steps (--steps 2000)",
    [RunSpec("softmax attention", "mws_softmax.toml", "mws_softmax", {"train": {"steps": 1000}})],
    "MWS, softmax attention")
dynamics_entry(
    "lp-fig31-sgd", "Fig. 31", "MWS trained with plain SGD (lr 1e-4, 400 steps, as configured)",
    [RunSpec("SGD lr 1e-4", "mws_sgd.toml", "mws_sgd")], "MWS, SGD")
dynamics_entry(
    "lp-fig32-33-muon", "Figs. 32, 33",
    "MWS trained with Muon (block matrices, lr 0.02) + AdamW (the rest, lr 1e-4). Reduced: "
    "1000 of the study's 100 000 steps",
    [RunSpec("Muon + AdamW", "mws_muon.toml", "mws_muon")], "MWS, Muon")
dynamics_entry(
    "lp-fig34-35-lr-schedule", "Figs. 34, 35",
    "MWS with 200 warm-up steps (factor s/200) then cosine decay over 400 steps",
    [RunSpec("warm-up 200 + cosine", "mws_lr_schedule.toml", "mws_lr_schedule")],
    "MWS, warm-up + cosine schedule",
    PLATEAU_PANELS + (("learning rate", ("lr",)),))
WEIGHT_DECAYS = (0.01, 0.1, 1.0)
dynamics_entry(
    "lp-fig36-40-adamw", "Figs. 36-40",
    "MWS with AdamW, weight decay 0.01, 0.1, 1.0 on the linear layers' weights (our choice of "
    "values: the study's README says only \"change the optimizer / hyperparameter\"), beside "
    "Adam",
    [RunSpec("Adam (Fig. 2)", MWS, "mws")]
    + [RunSpec(f"AdamW wd={wd}", "mws_adamw.toml", f"mws_adamw_wd{wd}",
               {"train": {"weight_decay": wd}}) for wd in WEIGHT_DECAYS],
    "MWS, AdamW with weight decay")


# ------------------------------------------------------- collapse at several sites (41-42)
def collapse_sites(context: Context) -> dict[str, Path]:
    run = trained_run(context, MWS, "mws")
    table = analyze_run(run, representation_collapse, batch_size=256, progress=context.progress)
    figure = collapse_by_site(table, run.transition(),
                              "MWS: cosine similarity at each site (rows 17-31)")
    return save_outputs(context, "lp-fig41-42-collapse-sites", figure, table)


register(Reproduction(
    id="lp-fig41-42-collapse-sites", study=STUDY, figure="Figs. 41, 42",
    shows="representation collapse at the study's five sites (pre_att_h, post_att_h, "
          "post_att_res_h, post_mlp_h, pre_lm_h) over Fig. 2's checkpoints",
    config="tasks/mws.toml", device="cpu",
    run=collapse_sites))

# ------------------------------------------------------------------ LLMs (Figs. 8, 23-25)
LLM_STEPS = (0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 2000, 4000, 8000, 10000)
PYTHIA = ("pythia-14m", "pythia-1b", "pythia-1.4b", "pythia-2.8b")
OLMO = "OLMo-2-1124-7B"
OLMO_REVISIONS = {150: "stage1-step150-tokens1B", 600: "stage1-step600-tokens3B"}


def llm_prompts(context: Context) -> list[str]:
    """``LOCAL/prompts.txt`` (one prompt per line) if given, else the first 100 ARC-Easy test
    questions (``datasets``; the hub or a filled cache)."""

    local = context.local_dir / PROMPTS_FILE if context.local_dir else None
    return load_prompts(local if local is not None and local.is_file() else "arc-easy", 100,
                        prompts_hint="LOCAL/prompts.txt with --local-dir LOCAL")


def local_steps(directory: Path, steps) -> list[int]:
    return [s for s in steps if is_checkpoint_folder(series_step_dir(directory, s))]


def llm_series(context: Context, models: dict[str, str], steps, entry_id: str,
               title: str, cosine_only: bool = False) -> dict[str, Path]:
    """``analyze_series`` for each model (label → hub name): from ``LOCAL/<label>/step{N}``
    with ``--local-dir`` (the steps present there), else from the hub."""

    prompts = llm_prompts(context)
    frames, missing = [], []
    for label, hub in models.items():
        if context.local_dir is not None:
            directory = context.local_dir / label
            found = local_steps(directory, steps)
            if not found:
                missing.append(str(directory))
                continue
            frame = analyze_series(label, found, prompts, context.out / "llm", local_dir=directory,
                                   device=context.device, progress=context.progress)
        else:
            frame = analyze_series(hub, list(steps), prompts, context.out / "llm",
                                   device=context.device, progress=context.progress)
        frames.append(frame.assign(model=label))
    if not frames:
        raise FileNotFoundError(
            f"no checkpoints under {', '.join(missing)} (expected step{{N}}/ folders written by "
            f"save_pretrained, N in {list(steps)})")
    if missing:
        print(f"skipped (no local checkpoints): {', '.join(missing)}")
    results = pd.concat(frames, ignore_index=True)
    if cosine_only:
        results = results.drop(columns=["repetition_frequency"])
    return save_outputs(context, entry_id, llm_series_panels(results, title), results)


def pythia_entry(context: Context) -> dict[str, Path]:
    return llm_series(context, {m: f"EleutherAI/{m}" for m in PYTHIA}, LLM_STEPS,
                      "lp-fig8-pythia", "Pythia: repetition and collapse early in pretraining")


def olmo_entry(context: Context) -> dict[str, Path]:
    if context.local_dir is None:
        raise ValueError(
            "lp-fig25-olmo reads local copies: on a machine with the Hugging Face hub, save each "
            f"revision with transformers, e.g. for N, R in {OLMO_REVISIONS}: "
            f"AutoModelForCausalLM.from_pretrained('allenai/{OLMO}', revision=R).save_pretrained("
            f"f'ckpts/{OLMO}/step{{N}}') and the same for AutoTokenizer; then run "
            f"`plateau-lens reproduce lp-fig25-olmo --out DIR --local-dir ckpts`")
    return llm_series(context, {OLMO: f"allenai/{OLMO}"}, tuple(OLMO_REVISIONS), "lp-fig25-olmo",
                      "OLMo-2 7B: collapse early in pretraining", cosine_only=True)


register(Reproduction(
    id="lp-fig8-pythia", study=STUDY, figure="Figs. 8, 23-25 (Pythia)",
    shows="Pythia 14m/1b/1.4b/2.8b at steps 0-10000: repetition frequency and cosine "
          "similarity of 8 greedy tokens on 100 ARC-Easy questions. Hub, or --local-dir LOCAL "
          "with LOCAL/<model>/step{N}/ (and optional LOCAL/prompts.txt)",
    config="(pretrained checkpoints)", device="gpu",
    run=pythia_entry))
register(Reproduction(
    id="lp-fig25-olmo", study=STUDY, figure="Figs. 8, 23-25 (OLMo)",
    shows="OLMo-2-1124-7B at stage1-step150-tokens1B and stage1-step600-tokens3B: cosine "
          "similarity. --local-dir LOCAL with LOCAL/OLMo-2-1124-7B/step150|step600/",
    config="(pretrained checkpoints)", device="gpu",
    run=olmo_entry))
