"""Run configuration: ``[task]``, ``[model]``, ``[train]`` and ``[init]`` tables of a TOML file.

Every table is a strict pydantic model (``plateau_lens.schema``): exact types (a float field
takes an int, nothing else converts: ``lr = "1e-3"``, ``compile = "no"`` and
``components = "attn"`` are refused), unknown fields refused, every number finite and in
range. A bad value raises ``ConfigError`` naming ``<table>.<field>``, what it allows and what
it got, before any work starts.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
import typing
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from .limits import check_memory, check_task_size
from .models.components import COMPONENTS
from .models.config import ModelConfig
from .schema import Allowed, ConfigError, Float, Int, Label, StrictModel, type_name
from .tasks import TaskImportError, make_task, task_class, task_names, task_source
from .tracking.registry import TRACKER_NAMES, check_tracker_names

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SECTIONS = ("task", "model", "train", "init")
RESUME_MUTABLE = frozenset({"train.steps", "train.device", "train.compile", "train.trackers",
                            "train.tracker_group"})
"""Fields a resumed run may change (how long and where it runs, where it is watched); any
other difference between a run's config and its checkpoints is refused."""

SEED_MAX = 2**63 - 1
STEPS_MAX = 10**10
"""train.steps: ~3 years at 100 steps/s; beyond it a number is a typo, not a plan."""
MAX_METRICS_ROWS = 1_000_000
"""Metrics rows a run may log (steps / log_every): every checkpoint carries them all, and
the trainer holds them in memory (~1 KB a row: 1 GB at the limit)."""
MAX_CHECKPOINTS = 100_000
"""Checkpoint files a run may write (steps / checkpoint_every)."""
SIZE_MAX = 2**20
"""Any batch size: a bound well above what fits; the memory estimate (``plateau_lens.limits``)
is the real limit."""


def _check_device(value: str) -> str:
    if value in ("cpu", "cuda", "auto"):
        return value
    if value.startswith("cuda:") and value[5:].isdigit():
        return value
    raise ValueError(f"train.device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {value!r}")


class TrainConfig(StrictModel):
    """Online training: a fresh batch every step, Adam by default (the studies' setup)."""

    section: ClassVar[str] = "train"

    steps: Int(ge=1, le=STEPS_MAX) = 400
    batch_size: Int(ge=1, le=SIZE_MAX) = 256
    lr: Float(gt=0) = 1e-4
    optimizer: Literal["adam", "adamw", "sgd", "muon"] = "adam"
    schedule: Literal["constant", "cosine"] = "constant"
    warmup_steps: Int(ge=0, le=STEPS_MAX) = 0
    grad_clip: Annotated[Float(ge=0), Allowed(">= 0 (a finite number; 0 = off)")] = 0.0
    seed: Int(ge=0, le=SEED_MAX) = 0
    log_every: Int(ge=1, le=STEPS_MAX) = 10
    eval_batch_size: Int(ge=1, le=SIZE_MAX) = 64
    checkpoint_every: Int(ge=1, le=STEPS_MAX) = 50
    checkpoint_log_spaced: bool = True
    """Also checkpoint at steps 0, 1, 2, 4, 8, … below ``checkpoint_every``."""
    device: Annotated[str, Allowed("'cpu', 'cuda', 'cuda:N' or 'auto'")] = "cpu"
    precision: Literal["fp32", "bf16"] = "fp32"
    compile: bool = False
    attention_bias: Annotated[Float(gt=0), Label("attention_bias (c)")] = 1.0
    """Attention biasing c: optimal attention entries × c (loss-plateau study); 1 = off."""
    attention_bias_start: Int(ge=0, le=STEPS_MAX) = 0
    """First step at which the attention bias is applied."""
    weight_decay: Float(ge=0) = 0.0
    """Decoupled weight decay of ``adamw`` (linear-layer weights only) and of ``muon``'s
    AdamW part (see ``plateau_lens.training.optimizers``)."""
    weight_decay_scope: Literal["linear", "all"] = "linear"
    """``adamw``: "linear" (the study's minGPT rule: weights of linear layers only) or "all"
    (every parameter, ``torch.optim.AdamW(model.parameters())`` as Nanda et al. 2023 train
    their grokking transformer)."""
    betas: Annotated[tuple[Float(ge=0, lt=1), Float(ge=0, lt=1)], Field(strict=False),
                     Allowed("two numbers in [0, 1), e.g. [0.9, 0.98]")] = (0.9, 0.999)
    """(β₁, β₂) of ``adam`` and ``adamw`` (PyTorch's default; Nanda et al. 2023: (0.9, 0.98))."""
    muon_lr: Float(gt=0) = 0.02
    """``muon``: learning rate of the block matrices (``lr`` is the AdamW part's)."""
    muon_weight_decay: Float(ge=0) = 0.0
    eval_batch: Literal["fresh", "fixed"] = "fresh"
    """"fresh" (the study's): a new test batch at every evaluation, a pure function of
    (seed, step); "fixed": the same test batch all run long."""
    trackers: Annotated[tuple[str, ...], Field(strict=False),
                        Allowed(f"a list of tracker names from {list(TRACKER_NAMES)}")] = ()
    """Experiment trackers that watch the run (``plateau_lens.tracking``), e.g. ``["tensorboard"]``."""
    tracker_group: str = ""
    """Group the run belongs to in its trackers (a sweep sets its own name); "" = none."""

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        return _check_device(value)

    @field_validator("trackers")
    @classmethod
    def _known_trackers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return check_tracker_names(value)

    def is_checkpoint_step(self, step: int) -> bool:
        """Whether a checkpoint is written after ``step`` updates: every ``checkpoint_every``,
        the last step, and (``checkpoint_log_spaced``) the powers of two below
        ``checkpoint_every``. Constant memory, whatever ``steps`` is."""
        if not 0 <= step <= self.steps:
            return False
        if step % self.checkpoint_every == 0 or step == self.steps:
            return True
        return (self.checkpoint_log_spaced and step < min(self.checkpoint_every, self.steps)
                and step & (step - 1) == 0)

    def next_checkpoint_step(self, after: int) -> int | None:
        """The first checkpoint step > ``after`` (None past the last)."""
        if after >= self.steps:
            return None
        candidates = [min((max(after, -1) // self.checkpoint_every + 1) * self.checkpoint_every,
                          self.steps)]
        if self.checkpoint_log_spaced:
            power = 1 if after < 1 else 1 << after.bit_length()
            if power < min(self.checkpoint_every, self.steps):
                candidates.append(power)
        return min(candidates)

    def checkpoint_steps(self) -> list[int]:
        """Steps (number of completed updates) at which a checkpoint is written (a list as
        long as the run has checkpoints: :data:`MAX_CHECKPOINTS` at most)."""
        steps, step = [0] if self.is_checkpoint_step(0) else [], 0
        while (step := self.next_checkpoint_step(step)) is not None:
            steps.append(step)
        return steps

    @model_validator(mode="after")
    def _bounded_run(self) -> "TrainConfig":
        """What grows with the run must fit: the metrics rows every checkpoint carries, and
        the number of checkpoint files."""
        rows = self.steps // self.log_every
        if rows > MAX_METRICS_ROWS:
            raise ValueError(
                f"train.steps / train.log_every = {self.steps} / {self.log_every} gives {rows} "
                f"metrics rows; at most {MAX_METRICS_ROWS} fit (every checkpoint carries them all): "
                f"raise train.log_every to >= {-(-self.steps // MAX_METRICS_ROWS)} or lower train.steps")
        checkpoints = self.steps // self.checkpoint_every
        if checkpoints > MAX_CHECKPOINTS:
            raise ValueError(
                f"train.steps / train.checkpoint_every = {self.steps} / {self.checkpoint_every} gives "
                f"{checkpoints} checkpoints; at most {MAX_CHECKPOINTS}: raise train.checkpoint_every "
                f"to >= {-(-self.steps // MAX_CHECKPOINTS)} or lower train.steps")
        return self


ComponentList = Annotated[tuple[str, ...], Field(strict=False),
                          Allowed(f"a list of component names from {sorted(COMPONENTS)}")]


class InitConfig(StrictModel):
    """Component-wise / optimal-init training: copy ``components`` from a reference
    ``checkpoint`` (frozen if ``freeze``) and freeze ``freeze_at_init`` at their random init."""

    section: ClassVar[str] = "init"

    checkpoint: str = ""
    components: ComponentList = ()
    freeze: bool = True
    freeze_at_init: ComponentList = ()

    @field_validator("components", "freeze_at_init")
    @classmethod
    def _known_components(cls, value: tuple[str, ...], info) -> tuple[str, ...]:
        unknown = [c for c in value if c not in COMPONENTS]
        if unknown:
            raise ValueError(f"init.{info.field_name}: unknown component(s) {unknown}; "
                             f"allowed: {sorted(COMPONENTS)}")
        return value

    @model_validator(mode="after")
    def _components_need_a_checkpoint(self) -> "InitConfig":
        if self.components and not self.checkpoint:
            raise ValueError("init.components needs init.checkpoint (a reference checkpoint path)")
        return self

    @property
    def active(self) -> bool:
        return bool(self.components or self.freeze_at_init)


# ------------------------------------------------------------------------------ [task]
def _task_field_type(annotation: Any) -> Any:
    """Config-level type of a task dataclass field: ints are counts, sizes or token ids
    (>= 0), floats are finite; each task's own ``__post_init__`` checks its exact ranges."""
    if annotation is bool:
        return bool
    if annotation is int:
        return Int(ge=0)
    if annotation is float:
        return Float()
    if annotation is str:
        return str
    return Any  # e.g. lrmc_mixed's sizes: the task's __post_init__ checks it


@functools.lru_cache(maxsize=None)
def task_schema(cls: type) -> type[StrictModel]:
    """A strict model with the fields (types, defaults) of a task class (a dataclass)."""
    from pydantic import create_model

    hints = typing.get_type_hints(cls)
    fields = {f.name: (_task_field_type(hints.get(f.name, Any)),
                       f.default if f.default is not dataclasses.MISSING else ...)
              for f in dataclasses.fields(cls)}
    schema = create_model(f"{cls.__name__}Params", __base__=StrictModel, **fields)
    schema.section = "task"
    return schema


def validate_task(task: Any) -> dict[str, Any]:
    """The ``[task]`` table, type-checked field by field, then built once (the task class
    checks its ranges); returns the table as given (values normalised, no defaults added),
    with ``source`` (``"module:Class"``) added for a task that is not shipped, so that a run
    finds its task again in a process where nothing registered it."""
    if not isinstance(task, dict):
        raise ConfigError(f"task must be a table with a 'name' field (e.g. [task] name = \"mws\"), "
                          f"got {task!r} ({type_name(task)})")
    if "name" not in task:
        raise ConfigError(f"[task] needs a 'name' field, one of {task_names()} or a "
                          f"'module:ClassName' path")
    name, source = task["name"], task.get("source")
    if source is not None and not isinstance(source, str):
        raise ConfigError(f"task.source must be a 'module:ClassName' string, got {source!r}")
    try:
        cls = task_class(name, source)
        source = task_source(name, source)
    except (ValueError, TypeError) as error:
        field = "task.source" if isinstance(error, TaskImportError) and source is not None \
            and ":" not in name else "task.name"
        message = str(error)
        if message.startswith("task name "):
            raise ConfigError("task.name " + message[len("task name "):]) from None
        raise ConfigError(f"{field}: {message}") from None
    params = {k: v for k, v in task.items() if k not in ("name", "source")}
    schema = task_schema(cls)
    unknown = sorted(set(params) - set(schema.model_fields))
    if unknown:
        raise ConfigError(f"unknown [task] field(s) {unknown} for task {name!r}; "
                          f"allowed: {sorted(schema.model_fields)}")
    checked = schema(**params).model_dump(include=set(params))
    try:
        built = make_task(name, source, **checked)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"task.{error}") from None
    check_task_size(built, checked)
    origin = {} if source is None or source == name else {"source": source}
    return {"name": name, **origin, **{k: checked[k] for k in params}}


# ------------------------------------------------------------------------------ run
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
            raise ConfigError(f"unknown config table(s) {unknown}; allowed: task, model, train, init")
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


# ------------------------------------------------------------------- comparing configs
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
