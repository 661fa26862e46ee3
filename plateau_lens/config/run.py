"""The whole run: ``[task]``, ``[model]``, ``[train]`` and ``[init]`` together in one
``RunConfig``, validated section by section with every problem reported at once."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, get_args

from pydantic import Field, field_validator, model_validator

from ..tasks import make_task, task_names
from .base import ConfigError, StrictModel, type_name
from .init import InitConfig
from .limits import check_memory
from .model import ModelConfig
from .task import validate_task
from .train import TrainConfig

Section = Literal["task", "model", "train", "init"]
"""The tables of a run config."""
SECTIONS: tuple[str, ...] = get_args(Section)
RESUME_MUTABLE = frozenset({"train.steps", "train.device", "train.compile", "train.trackers",
                            "train.tracker_group"})
"""Fields a resumed run may change (how long and where it runs, where it is watched); any
other difference between a run's config and its checkpoints is refused."""


class RunConfig(StrictModel):
    """A run: ``task`` (a table with ``name``), ``model``, ``train`` and ``init``."""

    task: Annotated[dict[str, Any], Field(strict=False)]
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    init: InitConfig = InitConfig()

    @field_validator("task", mode="before")
    @classmethod
    def _valid_task(cls, task: Any) -> dict[str, Any]:
        return validate_task(task)

    @model_validator(mode="after")
    def _fits_the_machine(self) -> "RunConfig":
        check_memory(self.make_task(), self.model, self.train)
        return self

    def make_task(self):
        params = dict(self.task)
        return make_task(params.pop("name"), params.pop("source", None), **params)

    def to_dict(self) -> dict[str, Any]:
        values = {"task": dict(self.task), "model": self.model.to_dict(),
                  "train": {k: list(v) if isinstance(v, tuple) else v  # as JSON reads it back
                            for k, v in self.train.model_dump().items()}}
        if self.init.active:
            values["init"] = {k: list(v) if isinstance(v, tuple) else v
                              for k, v in self.init.model_dump().items()}
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "RunConfig":
        """Validate every table; all problems are reported together in one ``ConfigError``."""
        if not isinstance(values, dict):
            raise ConfigError(f"a config is a table of [task], [model], [train], [init], got {values!r}")
        unknown = sorted(set(values) - set(SECTIONS))
        if unknown:
            raise ConfigError(f"unknown config table(s) {unknown}; allowed: {', '.join(SECTIONS)}")
        if "task" not in values:
            raise ConfigError(f"the config needs a [task] table with a 'name' field, one of "
                              f"{task_names()} or a 'module:ClassName' path")
        sections: dict[str, Any] = {}
        problems = []
        builders = {"task": validate_task, "model": lambda v: ModelConfig(**v),
                    "train": lambda v: TrainConfig(**v), "init": lambda v: InitConfig(**v)}
        for name in SECTIONS:
            if name not in values:
                continue
            table = values[name]
            if name != "task" and not isinstance(table, dict):
                problems.append(f"[{name}] must be a table of fields, got {table!r} ({type_name(table)})")
                continue
            try:
                sections[name] = builders[name](table)
            except ConfigError as error:
                problems += error.problems
        if problems:
            raise ConfigError(problems)
        return cls(**sections)

    def replace(self, **sections: dict[str, Any]) -> "RunConfig":
        """A copy with some fields overridden, e.g. ``replace(train={"steps": 10})``."""
        values = self.to_dict()
        for section, updates in sections.items():
            values[section] = {**values.get(section, {}), **updates}
        return RunConfig.from_dict(values)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)
