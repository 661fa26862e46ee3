"""Checkpoint files: written atomically, validated on load."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io import atomic_write

CHECKPOINT_FORMAT = "plateau-lens-checkpoint/1"
CHECKPOINT_DIR = "checkpoints"


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt, or of another model."""


def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}.pt"


def checkpoint_step(path: Path) -> int:
    return int(path.stem.split("_")[1])


def rng_states() -> dict[str, Any]:
    states = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
              "python": random.getstate()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(path: Path, *, step: int, config: dict, model: dict, optimizer: dict | None,
                    scheduler: dict | None) -> None:
    payload = {
        "format": CHECKPOINT_FORMAT, "step": step, "config": config, "model": model,
        "optimizer": optimizer, "scheduler": scheduler, "rng": rng_states(),
    }
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: Path, expected_config: dict | None = None,
                    map_location: str | torch.device = "cpu", mmap: bool = False) -> dict[str, Any]:
    """Load and validate a checkpoint; ``expected_config`` guards against another model's file.
    ``mmap``: map the file instead of reading it, so only the tensors used are read (the
    optimizer state, two thirds of a checkpoint, is never touched when loading weights)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=False, mmap=mmap)
    except Exception as error:  # torch raises several types for truncated/garbled files
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({error})") from error
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a plateau-lens checkpoint")
    if expected_config is not None:
        mismatched = config_mismatch(payload["config"], expected_config)
        if mismatched:
            raise CheckpointError(
                f"checkpoint {path} belongs to another model: {', '.join(mismatched)}"
            )
    return payload


def with_defaults(config: dict) -> dict:
    """The task and model tables with every default filled in, so that a config written before
    a field existed compares equal to one that states the field's default."""
    from ..config import ModelConfig
    from ..tasks import make_task

    filled = {}
    if "task" in config:
        params = dict(config["task"])
        try:
            task = make_task(params.pop("name"), **params)
            filled["task"] = {"name": task.name, **dataclasses.asdict(task)}
        except (KeyError, TypeError, ValueError):
            filled["task"] = dict(config["task"])
    if "model" in config:
        try:
            filled["model"] = dataclasses.asdict(ModelConfig.from_dict(dict(config["model"])))
        except (TypeError, ValueError):
            filled["model"] = dict(config["model"])
    return filled


def config_mismatch(found: dict, expected: dict) -> list[str]:
    """The task/model fields that differ between two configs, as 'field: found != expected'
    (defaults filled in on both sides)."""
    found, expected = with_defaults(found), with_defaults(expected)
    problems = []
    names = found.get("task", {}).get("name"), expected.get("task", {}).get("name")
    if names[0] != names[1]:  # another task: its other fields would only add noise
        return [f"task.name: {names[0]!r} != {names[1]!r}"]
    for section in ("task", "model"):
        keys = set(found.get(section, {})) | set(expected.get(section, {}))
        for key in sorted(keys):
            a, b = found.get(section, {}).get(key), expected.get(section, {}).get(key)
            if a != b:
                problems.append(f"{section}.{key}: {a!r} != {b!r}")
    return problems


def list_checkpoints(run_dir: Path) -> dict[int, Path]:
    directory = Path(run_dir) / CHECKPOINT_DIR
    if not directory.is_dir():
        return {}
    return {checkpoint_step(p): p for p in sorted(directory.glob("step_*.pt"))}
