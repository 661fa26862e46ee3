"""The sweep's own files inside an ordinary run directory, and the lock that keeps one
process at a time training it.

``sweep_point.json``   the run's name and swept values (written before it is trained)
``sweep_status.json``  status, attempts, error and one record per training session
                       (start step, end step, seconds, pid, host): what ``sweep.csv`` and the
                       "nothing trained twice" check read
``sweep.log``          a line per session start/resume/end/failure, with the training output
                       and tracebacks in between
``.sweep.lock``        held (``flock``) by the process training the run; the kernel releases
                       it when that process dies, however it dies
"""

from __future__ import annotations

import json
import os
import socket
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from ..runs.load import load_run
from ..runs.layout import SWEEP_LOCK_FILE, SWEEP_LOG_FILE, SWEEP_POINT_FILE, SWEEP_STATUS_FILE



class RunBusyError(RuntimeError):
    """Another live process holds the run's lock."""


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_json(path: Path, values: dict[str, Any]) -> None:
    """Atomic: a temp file in the same folder, then a rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(values, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def write_point(run_dir: Path, name: str, params: dict[str, Any]) -> None:
    write_json(Path(run_dir) / SWEEP_POINT_FILE, {"name": name, "params": params})


def read_point(run_dir: Path) -> dict[str, Any]:
    return read_json(Path(run_dir) / SWEEP_POINT_FILE)


def read_status(run_dir: Path) -> dict[str, Any]:
    status = {"status": "pending", "attempts": 0, "error": "", "sessions": []}
    status.update(read_json(Path(run_dir) / SWEEP_STATUS_FILE))
    return status


def write_status(run_dir: Path, status: dict[str, Any]) -> None:
    write_json(Path(run_dir) / SWEEP_STATUS_FILE, status)


def log(run_dir: Path, message: str) -> None:
    with open(Path(run_dir) / SWEEP_LOG_FILE, "a") as handle:
        handle.write(f"[{now()} {socket.gethostname()} pid {os.getpid()}] {message}\n")


def newest_checkpoint(run_dir: Path) -> int | None:
    """The newest checkpoint step of a run directory (None: no config or no checkpoint yet)."""

    try:
        steps = load_run(run_dir).steps
    except FileNotFoundError:
        return None
    return steps[-1] if steps else None


def is_finished(run_dir: Path, steps: int) -> bool:
    newest = newest_checkpoint(run_dir)
    return newest is not None and newest >= steps


class RunLock:
    """``with RunLock(run_dir):`` an exclusive ``flock`` on ``.sweep.lock`` holding the owner's
    pid and host. A process that finds it held waits up to ``timeout`` seconds (a killed
    sweep's worker is still dying), then raises :class:`RunBusyError` naming the holder."""

    def __init__(self, run_dir: Path, timeout: float = 120.0, poll: float = 0.5):
        self.path = Path(run_dir) / SWEEP_LOCK_FILE
        self.timeout, self.poll = timeout, poll
        self.handle = None

    def __enter__(self) -> "RunLock":
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # not inherited by child processes (O_CLOEXEC)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    holder = handle.read().strip() or "unknown process"
                    handle.close()
                    raise RunBusyError(f"{self.path.parent} is locked by {holder} "
                                       f"(still training it after {self.timeout:.0f} s)") from None
                time.sleep(self.poll)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        self.handle = handle
        return self

    def __exit__(self, *exc) -> None:
        import fcntl

        if self.handle is not None:
            fcntl.flock(self.handle.fileno(), fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None


def is_locked(run_dir: Path) -> bool:
    """Whether a live process holds the run's lock (checked without waiting)."""
    try:
        with RunLock(run_dir, timeout=0):
            return False
    except RunBusyError:
        return True
