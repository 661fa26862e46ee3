"""The configs that ship with plateau-lens: package data ``plateau_lens/configs`` (in the
repository a symlink to its top-level ``tasks/``), so a plain ``pip install`` has them as a
checkout does. ``plateau-lens demo`` and the reproduction entries read them from here."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

SHIPPED_CONFIGS = Path(str(importlib.resources.files("plateau_lens") / "configs"))
"""The folder of the shipped TOML configs."""


def shipped_config(name: str) -> Path:
    """The shipped config ``tasks/NAME`` (installed as ``plateau_lens/configs/NAME``)."""
    path = SHIPPED_CONFIGS / name
    if not path.is_file():
        raise FileNotFoundError(f"config {name!r} is not among the shipped configs in "
                                f"{SHIPPED_CONFIGS} (the repository's tasks/ folder)")
    return path
