"""Comparing two configs field by field (defaults filled in), as ``resume`` and the checkpoint
loader do to refuse a run whose checkpoints were trained under another config."""

from __future__ import annotations

import dataclasses

from ..tasks import make_task
from .init import InitConfig
from .model import ModelConfig
from .train import TrainConfig


def with_defaults(config: dict) -> dict:
    """Every table with its defaults filled in, so that a config written before a field
    existed compares equal to one that states the field's default. A table that no longer
    validates is compared as written."""
    filled: dict[str, dict] = {}
    builders = {"model": ModelConfig, "train": TrainConfig, "init": InitConfig}
    if "task" in config:
        try:
            params = dict(config["task"])
            name, source = params.pop("name"), params.pop("source", None)
            task = make_task(name, source, **params)
            origin = {} if source is None or source == name else {"source": source}
            filled["task"] = {"name": name, **origin, **dataclasses.asdict(task)}
        except (KeyError, TypeError, ValueError):
            filled["task"] = dict(config["task"])
    for section, model in builders.items():
        table = config.get(section, {})
        try:
            values = model(**table).model_dump()
            filled[section] = {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
        except (TypeError, ValueError):
            filled[section] = dict(table)
    return filled


def config_mismatch(found: dict, expected: dict, sections: tuple[str, ...] = ("task", "model"),
                    ignore: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """The fields of ``sections`` that differ between two configs, as
    ``'table.field: found != expected'`` (defaults filled in on both sides; ``ignore``:
    ``table.field`` names to leave out)."""
    found, expected = with_defaults(found), with_defaults(expected)
    names = found.get("task", {}).get("name"), expected.get("task", {}).get("name")
    if "task" in sections and names[0] != names[1]:  # another task: its fields would only add noise
        return [f"task.name: {names[0]!r} != {names[1]!r}"]
    problems = []
    for section in sections:
        a_table, b_table = found.get(section, {}), expected.get(section, {})
        for key in sorted(set(a_table) | set(b_table)):
            if f"{section}.{key}" in ignore:
                continue
            a, b = a_table.get(key), b_table.get(key)
            if a != b:
                problems.append(f"{section}.{key}: {a!r} != {b!r}")
    return problems
