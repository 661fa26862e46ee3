"""Atomic file output: a reader never sees a half-written file, and a killed write leaves
the previous version in place."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Callable

import pandas as pd

from .errors import PlateauLensError

TEMP_SUFFIX = ".tmp"


def _default_mode() -> int:
    """0o666 without the process umask: what ``open(path, "w")`` would give."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | Path, write: Callable[[str], object]) -> None:
    """Call ``write(tmp_path)`` then rename onto ``path``. The file gets the ordinary
    permissions of a new file (``mkstemp`` would leave it 0600)."""
    path = Path(path)
    with naming(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
        os.close(handle)
        try:
            write(tmp_name)
            os.chmod(tmp_name, _default_mode())
            with open(tmp_name, "rb") as written:
                os.fsync(written.fileno())
            os.replace(tmp_name, path)
        finally:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)


@contextlib.contextmanager
def naming(path: str | Path):
    """Give an ``OSError`` raised inside without a file name (a write that found the disk
    full: ``[Errno 28]`` names no file) the name of ``path``, so its message says where."""
    try:
        yield
    except OSError as error:
        if error.filename is None and error.errno is not None:
            raise OSError(error.errno, error.strerror or os.strerror(error.errno), str(path)) from error
        raise


def write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def write_table(frame: pd.DataFrame, path: str | Path) -> None:
    """Atomically write a DataFrame as CSV (or parquet for a ``.parquet`` path)."""
    if Path(path).suffix == ".parquet":
        atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))
    else:
        atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV written by ``write_table`` with every float exactly as written (pandas 3
    parses floats exactly by default; pandas 2 needs ``float_precision="round_trip"``)."""
    exact = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}
    return pd.read_csv(path, **exact)


def remove_stale_temp_files(directory: str | Path) -> list[Path]:
    """Delete the temp files (``.NAME.XXXX.tmp``) that killed atomic writes left behind."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    stale = sorted(directory.glob(f".*{TEMP_SUFFIX}"))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


class RunLockedError(PlateauLensError, RuntimeError):
    """Another process holds the run directory's lock."""


class RunLock:
    """An exclusive ``flock`` on ``<run_dir>/.plateau-lens.lock``, held for a run's lifetime.

    ``acquire`` never waits: a second trainer on the same directory is refused at once with
    the holder's PID (which the holder writes into the file with ``record_owner`` once it
    has validated the run; a refused resume therefore changes no byte on disk). The kernel
    drops the lock when its holder exits, even on ``kill -9``; the file itself stays and also
    marks the directory as a plateau-lens run.
    """

    FILE = ".plateau-lens.lock"

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / self.FILE
        self._handle = None

    @property
    def held(self) -> bool:
        return self._handle is not None

    def acquire(self) -> "RunLock":
        import fcntl

        if self._handle is not None:
            return self
        handle = open(self.path, "a+b")  # creates it if missing, never truncates
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read(64).decode("ascii", "replace").strip()
            handle.close()
            who = f"PID {holder}" if holder.isdigit() else "a process that is still starting"
            raise RunLockedError(
                f"{self.path.parent} is in use by another plateau-lens trainer ({who}); "
                f"wait for it to finish or stop it, or use another --out") from None
        self._handle = handle
        return self

    def record_owner(self) -> None:
        """Write this process's PID into the lock file (for the message a second trainer gets)."""
        with naming(self.path):
            self._handle.seek(0)
            self._handle.truncate()
            self._handle.write(f"{os.getpid()}\n".encode())
            self._handle.flush()

    def release(self) -> None:
        """Clear the PID (if this process wrote one) and drop the lock."""
        import fcntl

        if self._handle is None:
            return
        try:
            self._handle.seek(0)
            if self._handle.read(64).strip() == str(os.getpid()).encode():
                self._handle.truncate(0)
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
        finally:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
