"""Run a sweep's points as Ray tasks, on a local Ray (default) or on a cluster (``address``).

Ray core tasks, one per point: each trains an ordinary run directory (``worker.train_point``)
and, with ``analyzers``, a second task analyses its checkpoints. The driver only schedules:
it keeps at most ``workers`` tasks in flight, retries a failed task once, records a second
failure in the run directory, shows the progress bar and rebuilds ``sweep.csv``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from .rundir import RunBusyError, RunLock, is_finished, log, read_status, write_point, write_status
from .spec import Point, Sweep, SweepError
from .summary import summarize
from .worker import analyze_point, describe, train_point
from ..runs.load import load_run
from ..runs.layout import (SWEEP_ANALYSIS_FILE, SWEEP_FILE, SWEEP_SUMMARY_FILE, named_run_dir,
                           runs_dir)

INSTALL_HINT = ('plateau-lens sweep runs on Ray, which is not installed here: '
                'pip install "plateau-lens[sweep]"   (or: pip install "ray[client]>=2.40")')
MAX_ATTEMPTS = 2  # a failed run is retried once
OBJECT_STORE_BYTES = 128 * 1024**2  # the tasks return small dicts; keep /dev/shm free


class RayMissing(RuntimeError):
    pass


def import_ray():
    try:
        import ray
    except ImportError as error:
        raise RayMissing(INSTALL_HINT) from error
    return ray


@dataclass
class Outcome:
    finished: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    analysis_failed: dict[str, str] = field(default_factory=dict)
    interrupted: bool = False
    summary: pd.DataFrame | None = None
    figures: list[Path] = field(default_factory=list)
    analysis: Path | None = None


def flat_config(values: dict[str, Any]) -> dict[str, Any]:
    return {f"{section}.{key}": value for section, table in values.items()
            for key, value in table.items()}


def check_existing(sweep: Sweep, out: Path) -> None:
    """Refuse (before anything is written) when the sweep would give an existing run
    directory another config."""

    for point in sweep.points:
        run_dir = named_run_dir(out, point.name)
        try:
            existing = load_run(run_dir).config
        except FileNotFoundError:
            continue
        old, new = flat_config(existing.to_dict()), flat_config(point.config.to_dict())
        changed = [f"{key}: {old.get(key)!r} in the run, {new.get(key)!r} in the sweep file"
                   for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]
        if changed:
            raise SweepError(
                f"run {point.name} ({run_dir}) already exists with another config: "
                f"{'; '.join(changed)}. Restore the sweep file, use another --out, or delete "
                f"that run directory")


def prepare(sweep: Sweep, out: Path) -> None:
    runs_dir(out).mkdir(parents=True, exist_ok=True)
    record = {"sweep_file": str(sweep.path), "base": str(sweep.base), "fields": list(sweep.fields),
              "set": sweep.fixed, "runs": [p.name for p in sweep.points]}
    (out / SWEEP_FILE).write_text(json.dumps(record, indent=2, default=str))
    for point in sweep.points:
        run_dir = named_run_dir(out, point.name)
        run_dir.mkdir(exist_ok=True)
        write_point(run_dir, point.name, point.params)


def task_error(error: BaseException) -> str:
    """The error a task raised (``RayTaskError.cause``), or what happened to its worker."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException):
        return describe(cause)
    name = type(error).__name__
    if "Crashed" in name or "Died" in name:
        return f"{name}: the worker process died (killed, or out of memory)"
    lines = str(error).strip().splitlines()
    return f"{name}: {lines[-1] if lines else ''}"


class Progress:
    """``runs: 5/10 done, 2 running, 1 failed |█████     | [01:23]`` on stderr."""

    def __init__(self, total: int, done: int, enabled: bool):
        from ..progress import progress_bar

        self.done, self.failed, self.running, self.analyzing = done, 0, 0, 0
        self.bar = progress_bar(total=total, initial=done, desc="runs", disable=not enabled,
                        bar_format="{desc} |{bar}| [{elapsed}]", mininterval=1.0, dynamic_ncols=True,
                        file=sys.stderr)
        self.refresh()

    def refresh(self) -> None:
        text = (f"runs: {self.done}/{self.bar.total} done, {self.running} running, "
                f"{self.failed} failed")
        if self.analyzing:
            text += f", {self.analyzing} analysing"
        if text != getattr(self, "text", None):  # redraw on change only (logs stay short)
            self.text = text
            self.bar.n = self.done + self.failed
            self.bar.set_description_str(text, refresh=True)

    def close(self) -> None:
        self.refresh()
        self.bar.close()


def check_reachable(address: str, timeout: float = 10.0) -> None:
    """Fail fast when nothing listens at a ``host:port`` or ``ray://host:port`` address
    (ray.init would keep retrying for minutes); ``auto`` is left to Ray."""
    import socket

    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if address == "auto" or not host or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as error:
        raise SweepError(f"no Ray cluster answers at --address {address} ({error}); start one "
                         f"with `ray start --head` (docs/sweeps.md: On a Ray cluster) or leave --address out to "
                         f"run on a local Ray") from None


def check_local_gpus(gpus_per_run: float) -> None:
    """A local Ray offers the GPUs torch sees; a run asking for more would wait forever."""
    if gpus_per_run > 0:
        import torch

        available = torch.cuda.device_count()
        if gpus_per_run > available:
            raise SweepError(f"--gpus-per-run {gpus_per_run:g}: this machine has {available} "
                             f"GPU(s) for a local Ray, so no run could start; leave it out "
                             f"(0: CPU) or give --address of a cluster with GPUs")


def start_ray(ray, address: str | None, workers: int) -> None:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no network calls from a laptop sweep
    if address is None:
        ray.init(address="local", num_cpus=workers, include_dashboard=False,
                 log_to_driver=False, logging_level=logging.ERROR,
                 object_store_memory=OBJECT_STORE_BYTES)
    else:
        # clusters started by recent Ray use token authentication; the token (RAY_AUTH_TOKEN
        # or ~/.ray/auth_token) is only sent when RAY_AUTH_MODE says so
        token = os.environ.get("RAY_AUTH_TOKEN") or (Path.home() / ".ray" / "auth_token").is_file()
        if token and "RAY_AUTH_MODE" not in os.environ:
            os.environ["RAY_AUTH_MODE"] = "token"
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)


def run_sweep(sweep: Sweep, out: str | Path, *, workers: int | None = None,
              address: str | None = None, threads: int | None = None, gpus_per_run: float = 0.0,
              analyzers: Sequence[str] = (), progress: bool = True,
              lock_timeout: float = 120.0) -> Outcome:
    """Train every unfinished point of ``sweep`` into ``out/runs/<name>`` and write
    ``out/sweep.csv`` and ``out/figures``. Local Ray with ``workers`` processes (default: the
    number of cores, each with cores // workers torch threads) unless ``address`` is given."""
    ray = import_ray()
    out = Path(out)
    check_existing(sweep, out)
    cores = os.cpu_count() or 1
    if address is None:
        workers = workers or cores
        threads = threads or max(1, cores // workers)
        cpus_per_task = 1  # the local Ray has exactly `workers` CPU slots
        check_local_gpus(gpus_per_run)
    else:
        check_reachable(address)
        threads = threads or 1
        cpus_per_task = threads
    if workers is not None and workers < 1:
        raise SweepError(f"--workers must be >= 1, got {workers}")
    out.mkdir(parents=True, exist_ok=True)
    try:
        driver_lock = RunLock(out, timeout=0)
        driver_lock.__enter__()
    except RunBusyError as error:
        raise SweepError(f"another sweep is running on {out}: {error}") from None
    try:
        prepare(sweep, out)
        return drive(ray, sweep, out, address, workers, threads, cpus_per_task, gpus_per_run,
                     list(analyzers), progress, lock_timeout)
    finally:
        driver_lock.__exit__(None, None, None)


def drive(ray, sweep: Sweep, out: Path, address, workers, threads, cpus_per_task, gpus_per_run,
          analyzers, progress, lock_timeout) -> Outcome:
    outcome = Outcome()
    run_dirs = {p.name: named_run_dir(out, p.name) for p in sweep.points}
    finished = [p for p in sweep.points if is_finished(run_dirs[p.name], p.config.train.steps)]
    done = {p.name for p in finished}
    jobs: deque[tuple[str, Point, int]] = deque(("analyze", p, 1) for p in finished if analyzers)
    jobs.extend(("train", p, 1) for p in sweep.points if p.name not in done)
    outcome.finished = [p.name for p in finished]
    bar = Progress(len(sweep.points), len(finished), progress)
    stop = StopRequest()
    inflight: dict[Any, tuple[str, Point, int]] = {}
    try:
        if jobs:
            start_ray(ray, address, workers or 0)
            stop.install()  # after ray.init, which sets a SIGTERM handler of its own
        options = {"num_cpus": cpus_per_task, "max_retries": 0}
        train_task = ray.remote(train_point).options(num_gpus=gpus_per_run, **options)
        analyze_task = ray.remote(analyze_point).options(**options)
        limit = workers or len(sweep.points) * 2
        while (jobs or inflight) and not stop.requested:
            while jobs and len(inflight) < limit:
                kind, point, attempt = job = jobs.popleft()
                run_dir = str(run_dirs[point.name])
                if kind == "train":
                    ref = train_task.remote(run_dir, point.config.to_dict(), threads, attempt,
                                            lock_timeout)
                else:
                    ref = analyze_task.remote(run_dir, analyzers, threads, lock_timeout)
                inflight[ref] = job
            bar.running = sum(kind == "train" for kind, _, _ in inflight.values())
            bar.analyzing = len(inflight) - bar.running
            bar.refresh()
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=1.0)
            for ref in ready:
                kind, point, attempt = inflight.pop(ref)
                run_dir = run_dirs[point.name]
                try:
                    ray.get(ref)
                except Exception as error:  # the task's error, or its worker's death
                    message = task_error(error)
                    if attempt < MAX_ATTEMPTS:
                        log(run_dir, f"driver: {kind} attempt {attempt} failed ({message}); retrying")
                        jobs.append((kind, point, attempt + 1))
                    elif kind == "train":
                        record_failure(run_dir, message, attempt)
                        outcome.failed[point.name] = message
                        bar.failed += 1
                        update_summary(out)
                    else:
                        log(run_dir, f"driver: analysis failed after {attempt} attempts: {message}")
                        outcome.analysis_failed[point.name] = message
                    continue
                if kind == "train":
                    outcome.finished.append(point.name)
                    bar.done += 1
                    update_summary(out)
                    if analyzers:
                        jobs.append(("analyze", point, 1))
    except KeyboardInterrupt:  # during ray.init, or a second Ctrl-C
        stop.requested = True
    finally:
        stop.restore()
        try:
            if stop.requested:
                outcome.interrupted = True
                if address is not None:
                    cancel(ray, inflight)
        finally:
            bar.running = bar.analyzing = 0
            bar.close()
            if ray.is_initialized():
                ray.shutdown()  # a local Ray goes down, its workers with it
    return finish(sweep, out, analyzers, outcome)


def update_summary(out: Path) -> None:
    """Rewrite sweep.csv during the sweep; a problem with it must not stop the runs."""
    try:
        summarize(out)
    except Exception as error:  # noqa: BLE001 - reported, and rebuilt at the end
        print(f"warning: could not update {out / SWEEP_SUMMARY_FILE}: {describe(error)}", file=sys.stderr)


def cancel(ray, inflight: dict) -> None:
    """Cancel this sweep's tasks on a cluster (which, unlike a local Ray, keeps running)."""
    for ref in inflight:
        try:
            ray.cancel(ref, force=True)
        except Exception:  # noqa: BLE001 - already finished, or its worker already gone
            pass


class StopRequest:
    """Ctrl-C (SIGINT) or SIGTERM asks the driver loop to stop at its next turn (within a
    second) rather than raising inside a Ray call; a second Ctrl-C raises at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested = False
        self.previous: dict[int, Any] = {}

    def __call__(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self) for s in self.SIGNALS}

    def restore(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous = {}


def record_failure(run_dir: Path, message: str, attempts: int) -> None:
    status = read_status(run_dir)
    status.update(status="failed", error=message)
    write_status(run_dir, status)
    log(run_dir, f"driver: failed after {attempts} attempts: {message}")


def finish(sweep: Sweep, out: Path, analyzers: list[str], outcome: Outcome) -> Outcome:
    from .analyze import analysis_table
    from .figures import write_figures

    outcome.summary = summarize(out)
    try:
        outcome.figures = write_figures(outcome.summary, list(sweep.fields), out)
    except Exception as error:  # noqa: BLE001 - the table is written; say what went wrong
        print(f"warning: no figures: {describe(error)}", file=sys.stderr)
    if analyzers:
        table = analysis_table(out, analyzers, list(sweep.fields))
        if not table.empty:
            tmp = out / f".{SWEEP_ANALYSIS_FILE}.tmp"
            table.to_csv(tmp, index=False)
            os.replace(tmp, out / SWEEP_ANALYSIS_FILE)
            outcome.analysis = out / SWEEP_ANALYSIS_FILE
    return outcome
