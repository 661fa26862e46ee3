"""One self-contained HTML page per run (or per seeds of one config, or per LLM checkpoint
series): the onset table on top, then one figure per measure on one step axis with the loss's
detected transition marked. Figures are embedded as base64 PNG; no server, no external file.

Measures (what applies to the source):

* toy run (``plateau-lens train`` directory): every numeric ``metrics.csv`` column (loss,
  accuracy, repetition, collapse ``cosine_similarity``, attention progress, LRMC's masked MSE,
  ...; row s = step s, joined by step), head scores per checkpoint (causal: previous-token,
  duplicate-token, induction, attention progress; LRMC's encoder: same row / same column /
  observed shares), essential dynamics, and the LLC on ``llc_checkpoints`` checkpoints;
* LLM series (``step{N}`` save_pretrained folders): repetition and collapse of
  ``plateau_lens.llm.analyze_series`` on the series' prompts, the pretraining loss of
  ``pretrain.json`` when present, head scores, essential dynamics and the LLC on token rows of
  the prompts.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..runs.layout import (METRICS_FILE, PRETRAIN_SUMMARY_FILE, PROMPTS_FILE, REPORT_CACHE_DIR,
                           REPORT_FILE, REPORT_TABLES, config_path)
from .essential_dynamics import checkpoint_features, component_curves, essential_dynamics, plot_essential_dynamics
from .head_scores import head_curves, head_scores_over_checkpoints, plot_head_scores
from .llc import LLCSettings, llc_over_checkpoints, plot_llc
from .onsets import MIN_CURVE_POINTS, onset_summary, onset_table

log = logging.getLogger("plateau_lens")

MIN_CHECKPOINTS = MIN_CURVE_POINTS
SKIPPED_METRIC_COLUMNS = ("step", "lr", "time", "wall_time", "seconds", "elapsed")
LOG_Y_COLUMNS = ("loss", "masked_mse", "observed_mse", "training_loss")


@dataclass
class Section:
    """One measure's figure, its tidy curves (``measure``, ``step``, ``value``) and notes."""

    title: str
    figure: object | None = None
    curves: pd.DataFrame = field(default_factory=pd.DataFrame)
    note: str = ""


def select_steps(steps: Sequence[int], count: int) -> list[int]:
    """``count`` checkpoints spread evenly over the step axis (nearest available to each of
    ``count`` evenly spaced steps), first and last included; on a log-spaced schedule
    (:func:`plateau_lens.plots.log_spaced`) evenly in log(1 + step), so that the early
    checkpoints, where a Pythia-style series changes most, are not all skipped."""
    from ..plots import log_spaced

    steps = sorted(steps)
    if count >= len(steps):
        return steps
    if log_spaced(steps):
        axis = np.log1p(np.asarray(steps, dtype=float))
        targets = np.linspace(axis[0], axis[-1], count)
        chosen = {steps[int(np.argmin(np.abs(axis - t)))] for t in targets}
    else:
        targets = np.linspace(steps[0], steps[-1], count)
        chosen = {min(steps, key=lambda s: (abs(s - t), s)) for t in targets}
    return sorted(chosen)


def figure_png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def metrics_figure(metrics: pd.DataFrame, columns: list[str], transition, title: str):
    """One panel per metrics.csv column against the step; the detected plateau shaded, the
    steepest drop dashed."""
    from matplotlib.figure import Figure

    from ..plots import step_axis

    n = len(columns)
    cols = min(3, n)
    rows = -(-n // cols)
    figure = Figure(figsize=(4.2 * cols, 3.0 * rows), layout="constrained")
    axes = np.atleast_1d(figure.subplots(rows, cols, squeeze=False)).ravel()
    for axis, column in zip(axes, columns):
        frame = metrics[["step", column]].dropna()
        axis.plot(frame["step"], frame[column], lw=1, label=column)
        if transition is not None:
            axis.axvspan(transition.plateau_start, transition.plateau_end, color="0.85",
                         label="plateau")
            axis.axvline(transition.drop_step, color="black", ls="--", lw=1, label="loss drop")
        if column in LOG_Y_COLUMNS and (frame[column] > 0).all():
            axis.set_yscale("log")
        axis.set_title(column)
        step_axis(axis, metrics["step"], "training step")
        axis.set_ylabel(column)
    axes[0].legend(fontsize=7)
    for axis in axes[n:]:
        axis.set_visible(False)
    figure.suptitle(title)
    return figure


def onset_figure(table: pd.DataFrame, transition, title: str,
                 steps: Sequence[int] | None = None):
    """Each measure's change: onset (dot) to end (bar), the loss drop dashed; ``steps`` (the
    checkpoints; default the table's onset and end steps) set the axis (log-scaled for a
    log-spaced schedule)."""
    from matplotlib.figure import Figure

    from ..plots import step_axis

    table = table.dropna(subset=["onset_step"]).copy()
    label = (table["measure"] if "seed" not in table
             else table["measure"] + " (seed " + table["seed"].astype(str) + ")")
    figure = Figure(figsize=(9, 0.28 * len(table) + 1.5), layout="constrained")
    axis = figure.subplots()
    y = np.arange(len(table))
    axis.hlines(y, table["onset_step"].astype(float), table["end_step"].astype(float),
                color="tab:blue", lw=3, label="change (onset → end)")
    axis.scatter(table["onset_step"].astype(float), y, color="tab:blue", zorder=3, s=14,
                 label="onset")
    if transition is not None:
        axis.axvline(transition.drop_step, color="black", ls="--", lw=1,
                     label=f"loss drop (step {transition.drop_step})")
        axis.axvline(transition.plateau_end, color="grey", ls=":", lw=1,
                     label=f"plateau end (step {transition.plateau_end})")
    axis.set_yticks(y, label.tolist(), fontsize=7)
    axis.invert_yaxis()
    if steps is None:
        steps = pd.concat([table["onset_step"], table["end_step"]]).astype(float)
    step_axis(axis, steps, "training step")
    axis.set_ylabel("measure")
    axis.legend(fontsize=7, loc="lower right")
    axis.set_title(title)
    return figure


def onset_options(steps: Sequence[int]) -> dict:
    """Change-point options for a schedule: onsets on a log(1 + step) grid where the checkpoints
    are log-spaced (:func:`plateau_lens.plots.log_spaced`), else on an even grid."""
    from ..plots import log_spaced

    return {"log_steps": bool(log_spaced(steps))}


def _time(timings: list, piece: str, started: float, checkpoints: int) -> None:
    seconds = time.perf_counter() - started
    timings.append({"piece": piece, "seconds": seconds, "checkpoints": checkpoints,
                    "seconds_per_checkpoint": seconds / max(checkpoints, 1)})


def run_sections(run, llc_checkpoints: int = 20, llc_settings: LLCSettings = LLCSettings(),
                 batch_size: int = 64, progress: bool = True, timings: list | None = None,
                 skipped: list | None = None) -> tuple[list[Section], object]:
    """The sections of one toy run and its detected transition (None when none is found);
    what does not apply is appended to ``skipped``, one line each."""
    from ..analysis.over_training import analysis_batch

    timings = [] if timings is None else timings
    skipped = [] if skipped is None else skipped
    steps = run.steps
    if len(steps) < MIN_CHECKPOINTS:
        raise ValueError(
            f"{run.path} has {len(steps)} checkpoint(s) (steps {steps}); the report needs at least "
            f"{MIN_CHECKPOINTS} to date a change (a plateau, a change and a final level): train "
            f"with a smaller train.checkpoint_every, or resume with more train.steps")
    transition = run.transition()
    sections = []
    metrics = run.metrics
    columns = [c for c in metrics.columns if c not in SKIPPED_METRIC_COLUMNS
               and pd.api.types.is_numeric_dtype(metrics[c]) and metrics[c].notna().sum() >= MIN_CHECKPOINTS]
    if columns:
        long = metrics.melt(id_vars="step", value_vars=columns, var_name="measure").dropna()
        sections.append(Section("Training metrics (metrics.csv)",
                                metrics_figure(metrics, columns, transition, METRICS_FILE), long))
    else:
        sections.append(Section("Training metrics (metrics.csv)",
                                note=f"no metrics.csv with {MIN_CHECKPOINTS}+ rows in {run.path}"))
    batch = analysis_batch(run, batch_size)
    started = time.perf_counter()
    scores = head_scores_over_checkpoints(run.models(steps), batch, progress=progress, total=len(steps))
    _time(timings, "head scores", started, len(steps))
    sections.append(_head_section(scores, transition, steps))
    started = time.perf_counter()
    feature_steps, features = checkpoint_features(run.models(steps), batch, progress, len(steps))
    dynamics = essential_dynamics(feature_steps, features, n_components=min(3, len(steps) - 1))
    _time(timings, "essential dynamics", started, len(steps))
    sections.append(Section("Essential dynamics", plot_essential_dynamics(dynamics, transition),
                            component_curves(dynamics),
                            note=_turning_note(dynamics)))
    if llc_checkpoints > 0:
        llc_steps = select_steps(steps, llc_checkpoints)
        started = time.perf_counter()
        estimates, traces = llc_over_checkpoints(run.models(llc_steps), batch, llc_settings,
                                                 seed=run.config.train.seed, progress=progress,
                                                 total=len(llc_steps))
        _time(timings, "LLC", started, len(llc_steps))
        sections.append(_llc_section(estimates, traces, transition, llc_settings))
    else:
        skipped.append(LLC_SKIPPED)
    return sections, transition


LLC_SKIPPED = "local learning coefficient: skipped (--llc-checkpoints 0)"


def _llc_section(estimates: pd.DataFrame, traces, transition, settings: LLCSettings) -> Section:
    """The LLC figure, curve and a note with the sampler's settings."""
    negative = int(estimates["negative_chains"].sum())
    return Section(
        "Local learning coefficient (devinterp SGLD)", plot_llc(estimates, traces, transition),
        pd.DataFrame({"measure": "LLC", "step": estimates["step"], "value": estimates["llc"]}),
        note=(f"{len(estimates)} checkpoints; ε = {settings.lr:g}, nβ = "
              f"{estimates['nbeta'].iloc[0]:.3g}, γ = {settings.localization:g}, minibatch m = "
              f"{settings.batch_size}, {settings.chains} chains × {settings.draws} draws after "
              f"{settings.burnin} burn-in; {negative} negative chain estimate(s)"))


def _head_section(scores: pd.DataFrame, transition, steps: Sequence[int]) -> Section:
    """Head scores with the onset of each metric's most rising head marked (the same fit as the
    onset table's)."""
    curves = head_curves(scores)
    onsets = onset_table(curves, **onset_options(steps))
    return Section("Head scores per checkpoint", plot_head_scores(scores, transition, onsets=onsets),
                   curves)


def _turning_note(dynamics) -> str:
    points = dynamics.turning_points
    explained = ", ".join(f"{c} {r:.0%}" for c, r in zip(dynamics.explained["component"],
                                                          dynamics.explained["explained_variance_ratio"]))
    turns = ", ".join(f"{s} ({a:.0f}°)" for s, a in zip(points["step"], points["turn_degrees"]))
    return f"explained variance: {explained}; turning points: {turns or 'none'}"


def series_sections(directory: Path, prompts_file: str | None = None, llc_checkpoints: int = 10,
                    llc_settings: LLCSettings = LLCSettings(batch_size=16), progress: bool = True,
                    timings: list | None = None, work_dir: Path | None = None,
                    skipped: list | None = None) -> tuple[list[Section], object]:
    """The sections of a local LLM checkpoint series (``step{N}`` folders); what does not apply
    is appended to ``skipped``, one line each."""
    import json

    from ..llm.checkpoints import local_steps
    from ..llm.reuse import iter_checkpoints
    from ..llm.prompts import load_prompts
    from ..llm.series import analyze_series
    from ..transition import detect_transition

    timings = [] if timings is None else timings
    skipped = [] if skipped is None else skipped
    steps = sorted(local_steps(directory))
    if len(steps) < MIN_CHECKPOINTS:
        raise ValueError(f"{directory} has {len(steps)} step{{N}} checkpoint folder(s) ({steps}); "
                         f"the report needs at least {MIN_CHECKPOINTS}")
    prompts_path = Path(prompts_file) if prompts_file else directory / PROMPTS_FILE
    if not prompts_path.is_file():
        raise FileNotFoundError(f"no prompts for the series: {prompts_path} does not exist; pass "
                                f"--prompts FILE (one prompt a line)")
    prompts = load_prompts(prompts_path, n=32)
    sections, transition = [], None
    summary = directory / PRETRAIN_SUMMARY_FILE
    loss_curve = pd.DataFrame()
    if summary.is_file():
        losses = json.loads(summary.read_text()).get("training_loss", {})
        loss_curve = pd.DataFrame({"step": [int(s) for s in losses], "value": list(losses.values())}
                                  ).dropna().sort_values("step")
        if len(loss_curve) >= 8:
            transition = detect_transition(loss_curve["value"].to_numpy(), steps=loss_curve["step"].to_numpy())
        else:
            skipped.append(f"loss transition: {len(loss_curve)} training-loss value(s) in {summary}, "
                           f"detecting a plateau and drop needs at least 8")
    else:
        skipped.append(f"training loss: not recorded ({summary} absent; "
                       f"examples/pretraining_series.py writes it), so no loss drop to lead")
    skipped.append("metrics.csv columns (accuracy, attention progress, ...): an LLM series has "
                   "none; its measures are repetition, collapse and the training loss")
    started = time.perf_counter()
    series = analyze_series("series", steps, prompts, work_dir or directory / "report_cache",
                            local_dir=directory, progress=progress)
    _time(timings, "repetition + collapse (analyze_series)", started, len(steps))
    long = series.melt(id_vars="step", value_vars=["repetition_frequency", "cosine_similarity"],
                       var_name="measure")
    if len(loss_curve):
        long = pd.concat([long, loss_curve.assign(measure="training_loss")], ignore_index=True)
    wide = long.pivot_table(index="step", columns="measure", values="value").reset_index()
    sections.append(Section("Training loss, repetition and collapse",
                            metrics_figure(wide, [c for c in wide.columns if c != "step"],
                                           transition, "series metrics"), long,
                            note=SERIES_METRICS_NOTE if len(loss_curve) else ""))
    first = next(iter_checkpoints(None, [steps[0]], local_dir=directory))[1]
    ids = [first.tokenizer(p, return_tensors="pt").input_ids[0] for p in prompts]
    flat = torch.cat(ids)
    width = 16
    tokens = flat[: len(flat) // width * width].view(-1, width)[:32]
    del first
    started = time.perf_counter()
    scores = head_scores_over_checkpoints(iter_checkpoints(None, steps, local_dir=directory),
                                          progress=progress, total=len(steps))
    _time(timings, "head scores", started, len(steps))
    sections.append(_head_section(scores, transition, steps))
    started = time.perf_counter()
    feature_steps, features = checkpoint_features(iter_checkpoints(None, steps, local_dir=directory),
                                                  tokens, progress, len(steps))
    dynamics = essential_dynamics(feature_steps, features, n_components=min(3, len(steps) - 1))
    _time(timings, "essential dynamics", started, len(steps))
    sections.append(Section("Essential dynamics", plot_essential_dynamics(dynamics, transition),
                            component_curves(dynamics), note=_turning_note(dynamics)))
    if llc_checkpoints == 0:
        skipped.append(LLC_SKIPPED)
    elif len(tokens) < 8:
        skipped.append(f"local learning coefficient: skipped, the prompts give {len(tokens)} rows "
                       f"of {width} tokens and the LLC needs at least 8 (more or longer prompts)")
    elif llc_checkpoints > 0:
        llc_settings = replace(llc_settings, batch_size=min(llc_settings.batch_size, len(tokens) // 2))
        llc_steps = select_steps(steps, llc_checkpoints)
        started = time.perf_counter()
        estimates, traces = llc_over_checkpoints(_causal_lms(directory, llc_steps), tokens, llc_settings, progress=progress,
                                                 total=len(llc_steps))
        _time(timings, "LLC", started, len(llc_steps))
        sections.append(_llc_section(estimates, traces, transition, llc_settings))
    return sections, transition


SERIES_METRICS_NOTE = ("training_loss: pretrain.json's mean over the updates since the previous "
                       "checkpoint (at step 1000 of Pythia's schedule: steps 513-1000); "
                       "repetition_frequency and cosine_similarity: the checkpoint's greedy "
                       "generations on the series' prompts (plateau-lens llm)")


def _causal_lms(directory: Path, steps: Sequence[int]):
    """``(step, AutoModelForCausalLM)`` of a local series, one at a time (the LLC samples a copy
    of a plain HF model)."""
    from transformers import AutoModelForCausalLM

    from ..llm.checkpoints import local_checkpoint_dir

    for step in steps:
        yield step, AutoModelForCausalLM.from_pretrained(str(local_checkpoint_dir(directory, step))).eval()


def render(title: str, sources: list[str], tables: list[tuple[str, pd.DataFrame]],
           sections: list[tuple[str, Section]], notes: list[str], skipped: Sequence[str] = ()
           ) -> str:
    """The page: title, sources, the onset tables, what does not apply (one line each), each
    section's figure (base64 PNG) and note."""
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:1200px;margin:auto}"
             "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;"
             "padding:2px 6px}img{max-width:100%}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>",
             "<p>" + "<br>".join(html.escape(s) for s in sources) + "</p>"]
    for heading, table in tables:
        parts += [f"<h2>{html.escape(heading)}</h2>", table.to_html(index=False, na_rep="—",
                                                                    float_format=lambda v: f"{v:.4g}")]
    if skipped:
        parts += ["<h2>Not shown: does not apply or skipped</h2><ul>"]
        parts += [f"<li>{html.escape(line)}</li>" for line in skipped] + ["</ul>"]
    for label, section in sections:
        parts.append(f"<h2>{html.escape(label)}: {html.escape(section.title)}</h2>")
        if section.figure is not None:
            parts.append(f"<img alt='{html.escape(section.title)}' "
                         f"src='data:image/png;base64,{figure_png(section.figure)}'>")
        if section.note:
            parts.append(f"<p>{html.escape(section.note)}</p>")
    if notes:
        parts += ["<h2>Notes</h2><ul>"] + [f"<li>{html.escape(n)}</li>" for n in notes] + ["</ul>"]
    parts.append("</body></html>")
    return "\n".join(parts)


LLC_CHECKPOINTS = {"run": 20, "series": 10}
"""The default number of checkpoints that get an LLC estimate: a toy run's, and an LLM
series' (an estimate there costs far more)."""


def build_report(sources: Sequence[str | Path], out: str | Path, llc_checkpoints: int | None = None,
                 llc_settings: LLCSettings = LLCSettings(), batch_size: int = 64,
                 prompts: str | None = None, progress: bool = True) -> Path:
    """Write ``out/report.html`` (and ``out/onsets.csv``, ``out/curves.csv``,
    ``out/timings.csv``) for one or more toy runs (seeds of one config: the onset table gets a
    ``seed`` column and a summary over seeds) or one LLM series. Returns the page's path.
    ``llc_checkpoints``: how many checkpoints get an LLC estimate (0: none; ``None``: 20 for
    runs, 10 for a series, :data:`LLC_CHECKPOINTS`). Every source is checked (kind, enough
    checkpoints) before any work."""
    from ..io import write_table, write_text
    from ..llm.checkpoints import local_steps
    from ..runs.load import load_run

    sources = [Path(s) for s in sources]
    if not sources:
        raise ValueError("give at least one run or series directory")
    if llc_checkpoints is not None and (isinstance(llc_checkpoints, bool) or
                                        not isinstance(llc_checkpoints, int) or llc_checkpoints < 0):
        raise ValueError(f"--llc-checkpoints must be an integer >= 0, got {llc_checkpoints!r}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} exists and is not a directory")
    kinds = []
    for source in sources:
        if config_path(source).is_file():
            run = load_run(source)
            if len(run.steps) < MIN_CHECKPOINTS:
                raise ValueError(
                    f"{source} has {len(run.steps)} checkpoint(s) (steps {run.steps}); the report "
                    f"needs at least {MIN_CHECKPOINTS} to date a change: train with a smaller "
                    f"train.checkpoint_every, or resume with more train.steps")
            kinds.append(("run", run))
        elif local_steps(source):
            kinds.append(("series", source))
        else:
            raise FileNotFoundError(f"{source} is neither a plateau-lens run (no config.json) nor "
                                    f"an LLM checkpoint series (no step{{N}} folders)")
    if len({kind for kind, _ in kinds}) > 1 or (kinds[0][0] == "series" and len(kinds) > 1):
        raise ValueError("give one LLM series, or one or more runs (seeds), not a mix")
    out.mkdir(parents=True, exist_ok=True)
    timings: list[dict] = []
    labelled, curves, transitions, notes, skipped = [], [], {}, [], []
    for kind, item in tqdm(kinds, desc="report", disable=not progress or len(kinds) == 1):
        if kind == "run":
            label = f"seed {item.config.train.seed}" if len(kinds) > 1 else item.path.name
            sections, transition = run_sections(
                item, LLC_CHECKPOINTS["run"] if llc_checkpoints is None else llc_checkpoints,
                llc_settings, batch_size, progress, timings, skipped)
            seed = item.config.train.seed
        else:
            label, seed = item.name, None
            sections, transition = series_sections(
                item, prompts, LLC_CHECKPOINTS["series"] if llc_checkpoints is None else llc_checkpoints,
                                                   llc_settings, progress=progress, timings=timings,
                                                   work_dir=out / REPORT_CACHE_DIR, skipped=skipped)
        transitions[seed] = transition
        notes.append(f"{label}: " + (f"loss transition: {transition.describe()}" if transition
                                     else "no plateau-and-drop found in the loss (or no loss recorded); leads are NA"))
        for section in sections:
            labelled.append((label, section))
            if len(section.curves):
                curves.append(section.curves.assign(seed=seed) if len(kinds) > 1 else section.curves)
    curve_frame = pd.concat(curves, ignore_index=True)
    # the grid is chosen from the checkpoints, as for the head-score figure's onsets
    checkpoint_steps = sorted({int(s) for kind, item in kinds
                               for s in (item.steps if kind == "run" else local_steps(item))})
    started = time.perf_counter()
    table = onset_table(curve_frame, transitions if len(kinds) > 1 else transitions[next(iter(transitions))],
                        **onset_options(checkpoint_steps))
    _time(timings, "onsets (ruptures)", started, curve_frame["measure"].nunique())
    tables = [("Onset table (lead_steps > 0: the measure changes before the loss's plateau ends)",
               table.drop(columns=["note"]))]
    if len(kinds) > 1:
        tables.insert(0, ("Onsets over seeds", onset_summary(table)))
    single = transitions[next(iter(transitions))] if len(kinds) == 1 else None
    labelled.insert(0, ("all", Section("Onset order", onset_figure(table, single, "onset order",
                                                                   checkpoint_steps))))
    timing_frame = pd.DataFrame(timings)
    tables.append(("Cost of each piece (this machine)", timing_frame))
    title = "plateau-lens report: " + ", ".join(str(s) for s in sources)
    page = render(title, [f"source: {s}" for s in sources], tables, labelled,
                  notes + [f"{row.measure}: {row.note}" for row in table.itertuples() if row.note],
                  list(dict.fromkeys(skipped)))
    path = out / REPORT_FILE
    write_text(path, page)
    write_table(table, out / REPORT_TABLES["onsets"])
    write_table(curve_frame, out / REPORT_TABLES["curves"])
    write_table(timing_frame, out / REPORT_TABLES["timings"])
    log.info("report: %s (%d measures, %d figures)", path, curve_frame["measure"].nunique(),
             sum(section.figure is not None for _, section in labelled))
    return path
