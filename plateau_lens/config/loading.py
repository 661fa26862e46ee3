"""Reading a run config: a TOML or JSON file (or a dict) into a ``RunConfig``, and the
command line's ``--set table.field=value`` overrides, validated like the file itself.

Hand-written on purpose rather than through pydantic-settings: its TOML source reads one
file into one model but knows neither our JSON run records nor the ``path: table.field ...``
messages, and its CLI source parses its own flag syntax (``--train.lr``), not ``--set``
values read as TOML; what is left here is ``tomllib`` plus a few lines."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .base import ConfigError
from .run import SECTIONS, RunConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def load_config(source: str | Path | dict[str, Any] | RunConfig) -> RunConfig:
    """A ``RunConfig`` from a TOML or JSON path, a dict or a ``RunConfig``."""
    if isinstance(source, RunConfig):
        return source
    if isinstance(source, dict):
        return RunConfig.from_dict(source)
    path = Path(source)
    if path.is_dir():
        raise ConfigError(f"config {path} is a directory, not a config file: give a TOML file "
                          f"(e.g. tasks/mws.toml) or a run's config.json")
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    if path.suffix == ".json":
        try:
            values = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as error:
            raise ConfigError(f"config file {path} is not valid JSON: {error}") from None
    else:
        with path.open("rb") as handle:
            try:
                values = tomllib.load(handle)
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
                raise ConfigError(f"config file {path} is not valid TOML: {error}") from None
    try:
        return RunConfig.from_dict(values)
    except ConfigError as error:
        raise ConfigError([f"{path}: {line}" for line in error.problems]) from None


def parse_override(text: str) -> tuple[str, str, Any]:
    """``"train.lr=3e-4"`` -> ``("train", "lr", 0.0003)``. The value is read as a TOML value
    (numbers, true/false, "strings", [lists]); anything that is not TOML is a bare string."""
    key, sep, raw = text.partition("=")
    section, dot, name = key.strip().partition(".")
    if not sep or not dot or section not in SECTIONS or not name:
        raise ConfigError(f"--set expects <table>.<field>=<value> with table one of {list(SECTIONS)}, "
                          f"got {text!r}")
    try:
        value = tomllib.loads(f"value = {raw.strip()}")["value"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return section, name, value


def apply_overrides(config: RunConfig, overrides: list[str]) -> RunConfig:
    """``config`` with ``--set`` overrides applied (validated like the file itself)."""
    sections: dict[str, dict[str, Any]] = {}
    for text in overrides:
        section, name, value = parse_override(text)
        sections.setdefault(section, {})[name] = value
    if "name" in sections.get("task", {}):  # another task: its table starts afresh
        values = config.to_dict()
        values["task"] = sections.pop("task")
        config = RunConfig.from_dict(values)
    return config.replace(**sections) if sections else config
