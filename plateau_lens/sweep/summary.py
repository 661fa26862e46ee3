"""``sweep.csv``: one row per run directory under ``DIR/runs``, rebuilt from the run
directories alone (so ``--summarize`` gives the same table as the sweep that wrote them)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from .rundir import read_point, read_status
from ..runs.load import load_run
from ..runs.layout import SWEEP_FILE, SWEEP_SUMMARY_FILE, runs_dir

TRANSITION_COLUMNS = ("plateau_start", "plateau_end", "plateau_length", "drop_step", "drop_end")


def swept_fields(out: Path, rows: list[dict[str, Any]]) -> list[str]:
    """The swept fields in the sweep file's order (``sweep.json``), else as found."""
    recorded = json.loads((out / SWEEP_FILE).read_text()).get("fields", []) \
        if (out / SWEEP_FILE).is_file() else []
    fields = list(recorded)
    for row in rows:
        fields += [key for key in row["params"] if key not in fields]
    return fields


def session_totals(sessions: list[dict[str, Any]]) -> tuple[float, float]:
    """(wall seconds, steps/s) over the sessions that ended (a killed one records no end)."""
    ended = [s for s in sessions if s.get("seconds") is not None and s.get("end_step") is not None]
    seconds = sum(s["seconds"] for s in ended)
    steps = sum(s["end_step"] - s["start_step"] for s in ended)
    return seconds, (steps / seconds if seconds > 0 and steps > 0 else math.nan)


def read_metrics(run) -> pd.DataFrame:
    """``run.metrics``, or an empty table while a run at step 0 has written no row yet."""
    try:
        return run.metrics
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def summarize_run(run_dir: Path) -> dict[str, Any]:
    point, status = read_point(run_dir), read_status(run_dir)
    row: dict[str, Any] = {"run": run_dir.name, "params": point.get("params", {})}
    wall, rate = session_totals(status["sessions"])
    row.update({column: math.nan for column in TRANSITION_COLUMNS})
    row.update(status="pending", step=math.nan, steps=math.nan, attempts=status["attempts"],
               error=status.get("error", ""), final_loss=math.nan, final_accuracy=math.nan,
               steps_per_s=rate, wall_time_s=wall if status["sessions"] else math.nan,
               path=str(run_dir))
    try:
        run = load_run(run_dir)
    except FileNotFoundError:  # not started yet (or failed before writing its config)
        if status["status"] == "failed":
            row["status"] = "failed"
        return row
    row["steps"] = run.config.train.steps
    row["step"] = run.steps[-1] if run.steps else math.nan
    finished = bool(run.steps) and run.steps[-1] >= run.config.train.steps
    if finished:
        row.update(status="finished", error="")
    elif status["status"] == "failed":
        row["status"] = "failed"
    elif status["sessions"]:
        row["status"] = "unfinished"
    metrics = read_metrics(run)
    if not metrics.empty:
        loss = "masked_mse" if "masked_mse" in metrics else "loss"
        row["final_loss"] = float(metrics[loss].dropna().iloc[-1])
        if "accuracy" in metrics:
            row["final_accuracy"] = float(metrics["accuracy"].dropna().iloc[-1])
        found = run.transition()  # None also when too few points are logged to tell
        if found is not None:
            row.update({key: value for key, value in found.to_dict().items()
                        if key in TRANSITION_COLUMNS})
    return row


def summarize(out: str | Path, write: bool = True) -> pd.DataFrame:
    """The sweep table of ``out`` (written to ``out/sweep.csv`` unless ``write=False``)."""
    out = Path(out)
    runs = runs_dir(out)
    if not runs.is_dir():
        raise FileNotFoundError(f"{out} holds no sweep (no {runs} folder)")
    rows = [summarize_run(run_dir) for run_dir in sorted(runs.iterdir()) if run_dir.is_dir()]
    fields = swept_fields(out, rows)
    records = [{"run": row["run"], **{f: row["params"].get(f) for f in fields},
                **{k: v for k, v in row.items() if k not in ("run", "params")}} for row in rows]
    columns = ["run", *fields, "status", "step", "steps", *TRANSITION_COLUMNS, "final_loss",
               "final_accuracy", "steps_per_s", "wall_time_s", "attempts", "error", "path"]
    frame = pd.DataFrame(records, columns=columns)
    if write:
        tmp = out / f".{SWEEP_SUMMARY_FILE}.{os.getpid()}.tmp"
        frame.to_csv(tmp, index=False)
        os.replace(tmp, out / SWEEP_SUMMARY_FILE)
    return frame
