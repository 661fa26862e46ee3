"""Atomic file output: a reader never sees a half-written file, and a killed write leaves
the previous version in place."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

import pandas as pd

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


def write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def write_table(frame: pd.DataFrame, path: str | Path) -> None:
    """Atomically write a DataFrame as CSV (or parquet for a ``.parquet`` path)."""
    if Path(path).suffix == ".parquet":
        atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))
    else:
        atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))


def remove_stale_temp_files(directory: str | Path) -> list[Path]:
    """Delete the temp files (``.NAME.XXXX.tmp``) that killed atomic writes left behind."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    stale = sorted(directory.glob(f".*{TEMP_SUFFIX}"))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale
