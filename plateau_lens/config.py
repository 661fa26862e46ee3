"""Run configuration: ``[task]``, ``[model]`` and ``[train]`` tables of a TOML file."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .models.config import ModelConfig
from .tasks import make_task
from .tasks.base import check_choice, check_int

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class TrainConfig:
    """Online training: a fresh batch every step, Adam by default (the studies' setup)."""

    steps: int = 400
    batch_size: int = 256
    lr: float = 1e-4
    optimizer: str = "adam"
    schedule: str = "constant"
    warmup_steps: int = 0
    grad_clip: float = 0.0
    seed: int = 0
    log_every: int = 10
    eval_batch_size: int = 64
    checkpoint_every: int = 50
    checkpoint_log_spaced: bool = True
    """Also checkpoint at steps 0, 1, 2, 4, 8, … below ``checkpoint_every``."""
    device: str = "cpu"
    precision: str = "fp32"
    compile: bool = False
    attention_bias: float = 1.0
    """Attention biasing c: optimal attention entries × c (loss-plateau study); 1 = off."""
    attention_bias_start: int = 0
    """First step at which the attention bias is applied."""
    weight_decay: float = 0.0
    """Decoupled weight decay of ``adamw`` (linear-layer weights only) and of ``muon``'s
    AdamW part (see ``plateau_lens.training.optimizers``)."""
    muon_lr: float = 0.02
    """``muon``: learning rate of the block matrices (``lr`` is the AdamW part's)."""
    muon_weight_decay: float = 0.0
    eval_batch: str = "fresh"
    """"fresh" (the study's): a new test batch at every evaluation, a pure function of
    (seed, step); "fixed": the same test batch all run long."""

    def __post_init__(self) -> None:
        check_int("steps", self.steps, 1)
        check_int("batch_size", self.batch_size, 1)
        check_int("eval_batch_size", self.eval_batch_size, 1)
        check_int("log_every", self.log_every, 1)
        check_int("checkpoint_every", self.checkpoint_every, 1)
        check_int("warmup_steps", self.warmup_steps, 0)
        check_int("seed", self.seed, 0)
        check_int("attention_bias_start", self.attention_bias_start, 0)
        if not self.attention_bias > 0:
            raise ValueError(f"attention_bias (c) must be > 0, got {self.attention_bias!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if self.grad_clip < 0:
            raise ValueError(f"grad_clip must be >= 0 (0 = off), got {self.grad_clip!r}")
        check_choice("optimizer", self.optimizer, ("adam", "adamw", "sgd", "muon"))
        check_choice("schedule", self.schedule, ("constant", "cosine"))
        check_choice("eval_batch", self.eval_batch, ("fresh", "fixed"))
        for name in ("weight_decay", "muon_weight_decay"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not self.muon_lr > 0:
            raise ValueError(f"muon_lr must be > 0, got {self.muon_lr!r}")
        check_choice("precision", self.precision, ("fp32", "bf16"))
        if not (self.device in ("cpu", "cuda", "auto") or self.device.startswith("cuda:")):
            raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {self.device!r}")

    def checkpoint_steps(self) -> list[int]:
        """Steps (number of completed updates) at which a checkpoint is written."""
        steps = set(range(0, self.steps + 1, self.checkpoint_every)) | {self.steps}
        if self.checkpoint_log_spaced:
            power = 1
            while power < min(self.checkpoint_every, self.steps):
                steps.add(power)
                power *= 2
        return sorted(steps)


@dataclass(frozen=True)
class InitConfig:
    """Component-wise / optimal-init training: copy ``components`` from a reference
    ``checkpoint`` (frozen if ``freeze``) and freeze ``freeze_at_init`` at their random init."""

    checkpoint: str = ""
    components: tuple[str, ...] = ()
    freeze: bool = True
    freeze_at_init: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        from .interventions import COMPONENTS

        object.__setattr__(self, "components", tuple(self.components))
        object.__setattr__(self, "freeze_at_init", tuple(self.freeze_at_init))
        for field_name in ("components", "freeze_at_init"):
            unknown = [c for c in getattr(self, field_name) if c not in COMPONENTS]
            if unknown:
                raise ValueError(
                    f"init.{field_name}: unknown component(s) {unknown}; allowed: {sorted(COMPONENTS)}")
        if self.components and not self.checkpoint:
            raise ValueError("init.components needs init.checkpoint (a reference checkpoint path)")

    @property
    def active(self) -> bool:
        return bool(self.components or self.freeze_at_init)


@dataclass(frozen=True)
class RunConfig:
    task: dict[str, Any]
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    init: InitConfig = field(default_factory=InitConfig)

    def __post_init__(self) -> None:
        if "name" not in self.task:
            raise ValueError("[task] needs a 'name' field")
        self.make_task()  # validates the task parameters

    def make_task(self):
        params = dict(self.task)
        return make_task(params.pop("name"), **params)

    def to_dict(self) -> dict[str, Any]:
        values = {"task": dict(self.task), "model": self.model.to_dict(), "train": asdict(self.train)}
        if self.init.active:
            values["init"] = {k: list(v) if isinstance(v, tuple) else v
                              for k, v in asdict(self.init).items()}
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "RunConfig":
        unknown = sorted(set(values) - {"task", "model", "train", "init"})
        if unknown:
            raise ValueError(f"unknown config table(s) {unknown}; allowed: task, model, train, init")
        init = dict(values.get("init", {}))
        bad_init = sorted(set(init) - set(InitConfig.__dataclass_fields__))
        if bad_init:
            raise ValueError(
                f"unknown [init] field(s) {bad_init}; allowed: {sorted(InitConfig.__dataclass_fields__)}")
        train = dict(values.get("train", {}))
        bad = sorted(set(train) - set(TrainConfig.__dataclass_fields__))
        if bad:
            raise ValueError(
                f"unknown [train] field(s) {bad}; allowed: {sorted(TrainConfig.__dataclass_fields__)}"
            )
        return cls(
            task=dict(values.get("task", {})),
            model=ModelConfig.from_dict(dict(values.get("model", {}))),
            train=TrainConfig(**train),
            init=InitConfig(**init),
        )

    def replace(self, **sections: dict[str, Any]) -> "RunConfig":
        """A copy with some fields overridden, e.g. ``replace(train={"steps": 10})``."""
        values = self.to_dict()
        for section, updates in sections.items():
            values[section] = {**values.get(section, {}), **updates}
        return RunConfig.from_dict(values)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def load_config(source: str | Path | dict[str, Any] | RunConfig) -> RunConfig:
    """A ``RunConfig`` from a TOML path, a dict or a ``RunConfig``."""
    if isinstance(source, RunConfig):
        return source
    if isinstance(source, dict):
        return RunConfig.from_dict(source)
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    if path.suffix == ".json":
        return RunConfig.from_dict(json.loads(path.read_text()))
    with path.open("rb") as handle:
        try:
            values = tomllib.load(handle)
        except tomllib.TOMLDecodeError as error:
            raise ValueError(f"config file {path} is not valid TOML: {error}") from error
    return RunConfig.from_dict(values)
