"""Sweep files: a base config, fixed overrides, a grid and zipped lists, validated into points.

```toml
base = "../mws.toml"                    # relative to this file's folder

[set]                                    # the same for every point (optional)
train.steps = 300

[grid]                                   # every combination of these lists
train.attention_bias = [0.2, 0.5, 2.5, 10]
train.seed = [0, 1]

[[zip]]                                  # lists that vary together (optional, any number)
model.d_model = [64, 128, 256]
model.d_mlp = [256, 512, 1024]
```

Keys are ``section.field`` with the section one of task, model, train, init. Every field
and value is checked through the public config API (``RunConfig.replace``) before any work,
so an error names the field and the allowed values.
"""

from __future__ import annotations

import itertools
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from ..config import SECTIONS, load_config
from ..errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SWEEP_KEYS = ("base", "set", "grid", "zip")
MAX_NAME = 120
MAX_POINTS = 10_000
"""Runs one sweep file may define (the product of the [grid] lists' lengths times each
[[zip]] group's): each point is a whole training run with its own directory, so a bigger
grid is a mistake (or belongs in several sweeps); checked before any point is built."""


class SweepError(InputError):
    """A sweep file (or sweep option) that cannot be run; the message names the field or the
    run. A :class:`~plateau_lens.errors.PlateauLensError`, like every refusal of ours."""


@dataclass(frozen=True)
class Point:
    """One run of a sweep: its directory name, the swept values and the full config."""

    name: str
    params: dict[str, Any]
    config: Any  # plateau_lens.config.RunConfig


@dataclass(frozen=True)
class Sweep:
    path: Path
    base: Path
    fields: tuple[str, ...]
    fixed: dict[str, Any]
    points: tuple[Point, ...]


def flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"seed": [0, 1]}}`` and ``{"train.seed": [0, 1]}`` → ``{"train.seed": [0, 1]}``."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def split_field(key: str, where: str) -> tuple[str, str]:
    parts = key.split(".")
    if len(parts) != 2 or parts[0] not in SECTIONS or not parts[1]:
        raise SweepError(f"{where}: {key!r} is not a config field; write section.field with "
                         f"section one of {', '.join(SECTIONS)} (e.g. train.seed)")
    return parts[0], parts[1]


def overrides(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    sections: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        section, name = key.split(".")
        sections.setdefault(section, {})[name] = value
    return sections


def apply(base, values: dict[str, Any], where: str, whole_run: bool = False):
    """``base`` with ``values`` (dotted keys) set; a config error is re-raised naming ``where``.
    ``whole_run``: the config is a run's, so the model is also checked against its task
    (``check_model_for_task``, as ``train`` does)."""
    from ..models.build import check_model_for_task

    try:
        config = base.replace(**overrides(values))
        if whole_run:
            check_model_for_task(config.make_task(), config.model)
        return config
    except (ValueError, TypeError, KeyError) as error:
        raise SweepError(f"{where}: {error}") from error


def check_name(base, key: str, value: Any, where: str) -> None:
    """Refuse an unknown field at once; a value that is only wrong in combination with
    another swept field is left to the check of each run's full config."""
    try:
        base.replace(**overrides({key: value}))
    except (ValueError, TypeError, KeyError) as error:
        if str(error).startswith("unknown"):
            raise SweepError(f"{where}: {key}: {error}") from error


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    if isinstance(value, (list, tuple)):
        return "+".join(format_value(v) for v in value) or "none"
    return re.sub(r"[^A-Za-z0-9._+-]", "-", str(value)) or "empty"


def short_names(fields: list[str]) -> dict[str, str]:
    """The field name without its section, unless two swept fields share it."""
    last = [f.split(".")[1] for f in fields]
    return {f: (n if last.count(n) == 1 else f) for f, n in zip(fields, last)}


def point_name(params: dict[str, Any], shorts: dict[str, str]) -> str:
    name = "__".join(f"{shorts[f]}={format_value(v)}" for f, v in params.items())
    if len(name) > MAX_NAME:
        import hashlib

        digest = hashlib.sha1(name.encode()).hexdigest()[:10]
        name = f"{name[:MAX_NAME - 11]}-{digest}"
    return name


def check_list(key: str, values: Any, where: str) -> list:
    if not isinstance(values, list):
        raise SweepError(f"{where}: {key} must be a list of values, got {values!r} "
                         f"(put a value that is the same for every run under [set])")
    if not values:
        raise SweepError(f"{where}: {key} is an empty list; give at least one value")
    return values


def check_point_count(path: Path, axes: list[list], grid_keys: list[str], zips: list[dict]) -> None:
    """Raise ``SweepError`` naming every axis and its length when the sweep would define more
    than :data:`MAX_POINTS` runs (before the product is built)."""
    count = math.prod(len(axis) for axis in axes)
    if count > MAX_POINTS:
        names = [f"[grid] {key}" for key in grid_keys] + [
            f"[[zip]] #{index + 1} ({', '.join(group)})" for index, group in enumerate(zips) if group]
        lengths = ", ".join(f"{name}: {len(axis)}" for name, axis in zip(names, axes))
        raise SweepError(f"{path}: the grid defines {count} runs ({lengths}), more than the "
                         f"{MAX_POINTS} one sweep may hold; shorten the lists or split the sweep")


def read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise SweepError(f"sweep file {path} does not exist")
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise SweepError(f"sweep file {path} is not valid TOML: {error}") from error


def load_sweep(path: str | Path) -> Sweep:
    """Parse and validate a sweep file; every point's config is built (and so checked)."""

    path = Path(path)
    values = read_toml(path)
    unknown = sorted(set(values) - set(SWEEP_KEYS))
    if unknown:
        raise SweepError(f"{path}: unknown sweep key(s) {unknown}; allowed: {', '.join(SWEEP_KEYS)}")
    if not isinstance(values.get("base"), str):
        raise SweepError(f"{path}: 'base' must name a base config, e.g. base = \"../mws.toml\" "
                         f"(relative to the sweep file's folder)")
    base_path = (path.parent / values["base"]).resolve()
    if not base_path.is_file():
        raise SweepError(f"{path}: base config {values['base']!r} does not exist (looked for "
                         f"{base_path}; base is relative to the sweep file's folder)")
    try:
        base = load_config(base_path)
    except (ValueError, TypeError) as error:
        raise SweepError(f"base config {base_path}: {error}") from error

    fixed = flatten(values.get("set", {}))
    grid = flatten(values.get("grid", {}))
    zips = values.get("zip", [])
    zips = [zips] if isinstance(zips, dict) else zips
    if not isinstance(zips, list) or not all(isinstance(z, dict) for z in zips):
        raise SweepError(f"{path}: zip must be a table ([zip]) or tables ([[zip]]) of lists")
    zips = [flatten(z) for z in zips]
    if not grid and not any(zips):
        raise SweepError(f"{path}: nothing to sweep; give lists under [grid] (or [[zip]]), "
                         f"e.g. train.seed = [0, 1, 2]")

    seen: dict[str, str] = {}
    for where, table in [("[set]", fixed), ("[grid]", grid)] + [
            (f"[[zip]] #{i + 1}", z) for i, z in enumerate(zips)]:
        for key in table:
            split_field(key, where)
            if key in seen:
                raise SweepError(f"{key} is given twice ({seen[key]} and {where})")
            seen[key] = where

    base = apply(base, fixed, "[set]")
    axes: list[list[dict[str, Any]]] = []
    for key, options in grid.items():
        check_list(key, options, "[grid]")
        check_name(base, key, options[0], "[grid]")
        axes.append([{key: value} for value in options])
    for index, group in enumerate(zips):
        where = f"[[zip]] #{index + 1}"
        for key, options in group.items():
            check_list(key, options, where)
            check_name(base, key, options[0], where)
        lengths = {key: len(options) for key, options in group.items()}
        if len(set(lengths.values())) > 1:
            listed = ", ".join(f"{k} has {n}" for k, n in lengths.items())
            raise SweepError(f"{where}: zipped lists must have the same length; {listed}")
        if lengths:
            count = next(iter(lengths.values()))
            axes.append([{k: group[k][i] for k in group} for i in range(count)])

    check_point_count(path, axes, list(grid), zips)
    fields = list(grid) + [key for group in zips for key in group]
    shorts = short_names(fields)
    points: list[Point] = []
    names: dict[str, dict[str, Any]] = {}
    for combination in itertools.product(*axes):
        params = {key: value for part in combination for key, value in part.items()}
        params = {key: params[key] for key in fields}
        name = point_name(params, shorts)
        if name in names:
            raise SweepError(f"two points get the same run name {name!r}: {names[name]} and "
                             f"{params} (repeated values?)")
        names[name] = params
        config = apply(base, params, f"run {name} ({', '.join(f'{k} = {v!r}' for k, v in params.items())})",
                       whole_run=True)
        if config.train.trackers and not config.train.tracker_group:  # one group per sweep
            config = config.replace(train={"tracker_group": path.stem})
        points.append(Point(name=name, params=params, config=config))
    return Sweep(path=path, base=base_path, fields=tuple(fields), fixed=fixed, points=tuple(points))
