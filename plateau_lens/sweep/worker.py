"""What one worker does for one point: train it (or resume it from its newest checkpoint)
under the run's lock, with the torch thread count it was given, logging into the run
directory. Plain functions: the engine wraps them in Ray tasks, tests may call them directly."""

from __future__ import annotations

import contextlib
import os
import socket
import time
import traceback
from pathlib import Path
from typing import Any, Sequence

from ..runs.layout import SWEEP_LOG_FILE, analysis_path
from .rundir import RunLock, log, newest_checkpoint, read_status, write_status
from ..analysis import analyze_run
from ..config import load_config
from ..runs.load import load_run
from ..training import resume, train


def set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(max(1, int(threads)))


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".strip()


def close_killed_session(run_dir: Path, status: dict[str, Any], newest: int | None) -> None:
    """A session with no end record was killed (or its sweep was): what it left is its
    newest checkpoint, so record that as its end; its duration stays unknown."""
    sessions = status["sessions"]
    if sessions and sessions[-1].get("end_step") is None and sessions[-1].get("error") is None:
        sessions[-1].update(end_step=newest if newest is not None else sessions[-1]["start_step"],
                            killed=True)
        log(run_dir, f"session {len(sessions)} (pid {sessions[-1]['pid']}) ended without a "
                     f"record (killed); it left step {sessions[-1]['end_step']}")


def train_point(run_dir: str, config: dict[str, Any], threads: int, attempt: int = 1,
                lock_timeout: float = 120.0) -> dict[str, Any]:
    """Train ``config`` into ``run_dir`` to its last step: a fresh start when it has no
    checkpoint, else ``resume`` from the newest one. Records the session (start and end
    step, seconds, pid) in ``sweep_status.json`` and ``sweep.log``; re-raises any error after
    logging its traceback there."""

    set_threads(threads)
    run_dir = Path(run_dir)
    run_config = load_config(config)
    total = run_config.train.steps
    with RunLock(run_dir, timeout=lock_timeout):
        start = newest_checkpoint(run_dir)
        status = read_status(run_dir)
        close_killed_session(run_dir, status, start)
        if start is not None and start >= total:  # finished by an earlier (killed) sweep
            status.update(status="finished", error="")
            write_status(run_dir, status)
            return {"status": "finished", "steps_trained": 0, "seconds": 0.0}
        session = {"attempt": attempt, "start_step": start or 0, "end_step": None,
                   "seconds": None, "started": time.time(), "pid": os.getpid(),
                   "host": socket.gethostname(), "threads": threads}
        status["sessions"].append(session)
        status.update(status="running", attempts=status.get("attempts", 0) + 1, error="")
        write_status(run_dir, status)
        verb = "start" if start is None else "resume"
        log(run_dir, f"session {len(status['sessions'])}: {verb} at step {start or 0} of {total} "
                     f"(attempt {attempt}, {threads} torch thread(s))")
        began = time.perf_counter()
        try:
            with open(run_dir / SWEEP_LOG_FILE, "a") as output, \
                    contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
                if start is None:
                    train(run_config, run_dir, progress=False)
                else:
                    resume(run_dir, progress=False)
        except BaseException as error:
            seconds = time.perf_counter() - began
            interrupted = isinstance(error, KeyboardInterrupt)
            with open(run_dir / SWEEP_LOG_FILE, "a") as output:
                traceback.print_exc(file=output)
            log(run_dir, f"session {len(status['sessions'])}: "
                         f"{'interrupted' if interrupted else 'failed: ' + describe(error)} "
                         f"after {seconds:.1f} s")
            status = read_status(run_dir)
            status["sessions"][-1].update(seconds=seconds, end_step=newest_checkpoint(run_dir),
                                          error=describe(error))
            status.update(status="interrupted" if interrupted else "error", error=describe(error))
            write_status(run_dir, status)
            raise
        seconds = time.perf_counter() - began
        end = newest_checkpoint(run_dir)
        status = read_status(run_dir)
        status["sessions"][-1].update(end_step=end, seconds=seconds)
        status.update(status="finished", error="")
        write_status(run_dir, status)
        trained = end - (start or 0)
        log(run_dir, f"session {len(status['sessions'])}: finished at step {end} in {seconds:.1f} s "
                     f"({trained / seconds:.2f} steps/s)")
    return {"status": "finished", "steps_trained": trained, "seconds": seconds}


class AnalysisError(RuntimeError):
    """Analyzers of one run failed (the others ran and wrote their tables)."""


def analyze_point(run_dir: str, analyzers: Sequence[str], threads: int,
                  lock_timeout: float = 120.0) -> list[str]:
    """Run each named analyzer over every checkpoint of a finished run; one CSV per analyzer
    in ``run_dir/analysis/``, skipped when it already covers every checkpoint. An analyzer
    that fails does not stop the ones after it: its traceback goes to the run's log, and once
    all have run, :class:`AnalysisError` names every failed analyzer with its error (a retry
    then runs only those)."""
    import pandas as pd

    from .analyze import analyzer_function

    set_threads(threads)
    run_dir = Path(run_dir)
    written, failed = [], {}
    with RunLock(run_dir, timeout=lock_timeout):
        run = load_run(run_dir)
        for name in analyzers:
            path = analysis_path(run_dir, name)
            if path.is_file() and sorted(pd.read_csv(path)["step"].unique()) == run.steps:
                written.append(str(path))
                continue

            began = time.perf_counter()
            try:
                frame = analyze_run(run, {name: analyzer_function(name)}, progress=False)
            except Exception as error:  # noqa: BLE001 - recorded, raised with the others below
                failed[name] = describe(error)
                with open(run_dir / SWEEP_LOG_FILE, "a") as output:
                    traceback.print_exc(file=output)
                log(run_dir, f"analysis {name} failed: {failed[name]}")
                continue
            path.parent.mkdir(exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            frame.to_csv(tmp, index=False)
            os.replace(tmp, path)
            log(run_dir, f"analysis {name}: {len(run.steps)} checkpoints in "
                         f"{time.perf_counter() - began:.1f} s -> {path.name}")
            written.append(str(path))
    if failed:
        raise AnalysisError("; ".join(f"{name}: {message}" for name, message in failed.items()))
    return written
