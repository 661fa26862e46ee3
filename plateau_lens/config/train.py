"""The ``[train]`` section: online training (steps, batch, optimiser, schedule, checkpoint
cadence, device, precision, attention biasing, trackers) and the bounds on what a run may grow to."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from .base import Allowed, Float, Int, Label, StrictModel
from .trackers import TRACKER_NAMES, check_tracker_names

Optimizer = Literal["adam", "adamw", "sgd", "muon"]
"""``train.optimizer`` (see ``plateau_lens.training.optimizers``)."""
Schedule = Literal["constant", "cosine"]
"""``train.schedule``: after the linear warm-up, constant or a half cosine to 0."""
Precision = Literal["fp32", "bf16"]
"""``train.precision``: float32, or bfloat16 autocast (``torch.autocast``)."""

SEED_MAX = 2**63 - 1
STEPS_MAX = 10**10
"""train.steps: ~3 years at 100 steps/s; beyond it a number is a typo, not a plan."""
MAX_METRICS_ROWS = 1_000_000
"""Metrics rows a run may log (steps / log_every): every checkpoint carries them all, and
the trainer holds them in memory (~1 KB a row: 1 GB at the limit)."""
MAX_CHECKPOINTS = 100_000
"""Checkpoint files a run may write (steps / checkpoint_every)."""
SIZE_MAX = 2**20
"""Any batch size: a bound well above what fits; the memory estimate
(``plateau_lens.config.limits``) is the real limit."""


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
    optimizer: Optimizer = "adam"
    schedule: Schedule = "constant"
    warmup_steps: Int(ge=0, le=STEPS_MAX) = 0
    grad_clip: Annotated[Float(ge=0), Allowed(">= 0 (a finite number; 0 = off)")] = 0.0
    seed: Int(ge=0, le=SEED_MAX) = 0
    log_every: Int(ge=1, le=STEPS_MAX) = 10
    eval_batch_size: Int(ge=1, le=SIZE_MAX) = 64
    checkpoint_every: Int(ge=1, le=STEPS_MAX) = 50
    checkpoint_log_spaced: bool = True
    """Also checkpoint at steps 0, 1, 2, 4, 8, … below ``checkpoint_every``."""
    device: Annotated[str, Allowed("'cpu', 'cuda', 'cuda:N' or 'auto'")] = "cpu"
    precision: Precision = "fp32"
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
    (seed, step); "fixed": the same test batch (step 0's) all run long, so that differences
    between evaluations are the model's alone."""
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
