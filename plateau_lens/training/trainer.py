"""Online trainer: fresh batch each step, checkpoints on a schedule, resumable, tidy metrics.

Batch ``t`` is a pure function of (seed, t) (see ``step_generator``), the model init is a
function of the seed, and every checkpoint holds weights, optimizer, scheduler and RNG
states, so a resumed run reproduces an uninterrupted one (bit for bit on CPU).
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from ..config import RunConfig, load_config
from ..interventions import (
    configured_attention_bias, copy_components, freeze_components, set_attention_bias,
)
from ..models.build import build_network, wrap_in_bridge
from ..models.handle import PlateauModel
from ..tasks.base import step_generator
from ..io import write_table, write_text
from .checkpoint import (
    CHECKPOINT_DIR, CheckpointError, checkpoint_name, config_mismatch, list_checkpoints,
    load_checkpoint, restore_rng_states, save_checkpoint,
)
from .evaluation import training_log_row
from .optimizers import build_optimizer, build_schedule

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.csv"
EVAL_SEED_OFFSET = 10_000_019


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for but CUDA is not available")
    return torch.device(name)


def make_optimizer(network: torch.nn.Module, config: RunConfig, device: torch.device):
    """Optimizer and schedule (``plateau_lens.training.optimizers``)."""
    optimizer = build_optimizer(network, config.train, device)
    return optimizer, build_schedule(optimizer, config.train)


class Trainer:
    """Train ``config`` into ``run_dir``; ``Trainer.resume(run_dir)`` continues a run."""

    def __init__(self, config: RunConfig, run_dir: str | Path, network: torch.nn.Module | None = None):
        self.config = config
        self.run_dir = Path(run_dir)
        self.task = config.make_task()
        self.device = resolve_device(config.train.device)
        self.network = network if network is not None else build_network(
            self.task, config.model, config.train.seed)
        self.apply_init()
        self.network.to(self.device)
        self.optimizer, self.scheduler = make_optimizer(self.network, config, self.device)
        self.bias_applied = False
        self.step = 0
        self.rows: list[dict] = []
        self.checkpoint_steps = set(config.train.checkpoint_steps())
        self.forward = torch.compile(self.network) if config.train.compile else self.network
        self.model = PlateauModel(bridge=wrap_in_bridge(self.network), task=self.task,
                                  network=self.network, config=config.model)
        self.eval_batch = self.test_batch(0)

    def apply_init(self) -> None:
        """Component-wise / optimal init: copy reference components, freeze what is asked."""
        init = self.config.init
        if init.components:
            reference = load_checkpoint(Path(init.checkpoint))
            mismatched = config_mismatch({"model": reference["config"]["model"]},
                                         {"model": self.config.model.to_dict()})
            if mismatched:
                raise CheckpointError(
                    f"init.checkpoint {init.checkpoint} is of another model: {', '.join(mismatched)}")
            copy_components(self.network, reference["model"], init.components)
            if init.freeze:
                freeze_components(self.network, init.components)
        if init.freeze_at_init:
            freeze_components(self.network, init.freeze_at_init)

    def update_attention_bias(self) -> None:
        if self.bias_applied:
            return
        multiplier = configured_attention_bias(self.task, self.config.train, self.step)
        if multiplier is None:
            return
        set_attention_bias(self.network, multiplier)  # shared with the bridge
        self.bias_applied = True

    # ----------------------------------------------------------------- set-up / resume
    @classmethod
    def start(cls, config, run_dir: str | Path, network=None) -> "Trainer":
        config = load_config(config)
        run_dir = Path(run_dir)
        if list_checkpoints(run_dir):
            raise FileExistsError(
                f"{run_dir} already holds a run; use `plateau-lens resume {run_dir}` or another --out")
        trainer = cls(config, run_dir, network)  # loads any init checkpoint before touching disk
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text(run_dir / CONFIG_FILE, config.to_json())
        return trainer

    @classmethod
    def resume(cls, run_dir: str | Path) -> "Trainer":
        run_dir = Path(run_dir)
        config_path = run_dir / CONFIG_FILE
        if not config_path.is_file():
            raise FileNotFoundError(f"{run_dir} is not a plateau-lens run (no {CONFIG_FILE})")
        config = load_config(config_path)
        trainer = cls(config, run_dir)
        checkpoints = list_checkpoints(run_dir)
        for step in sorted(checkpoints, reverse=True):  # newest readable checkpoint wins
            try:
                payload = load_checkpoint(checkpoints[step], config.to_dict(), trainer.device)
            except CheckpointError as error:
                tqdm.write(f"skipping unreadable checkpoint: {error}")
                continue
            trainer.load_state(payload)
            break
        metrics_path = run_dir / METRICS_FILE
        if trainer.step and metrics_path.is_file():  # at step 0 the table is still empty
            frame = pd.read_csv(metrics_path)
            trainer.rows = frame[frame["step"] < trainer.step].to_dict("records")
        return trainer

    def load_state(self, payload: dict) -> None:
        self.network.load_state_dict(payload["model"])
        if payload.get("optimizer") is not None:
            self.optimizer.load_state_dict(payload["optimizer"])
        if payload.get("scheduler") is not None:
            self.scheduler.load_state_dict(payload["scheduler"])
        restore_rng_states(payload["rng"])
        self.step = int(payload["step"])

    # ----------------------------------------------------------------------- training
    def autocast(self):
        if self.config.train.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def save(self) -> None:
        """Metrics first, then the checkpoint: a checkpoint on disk implies its metrics are too
        (a kill between the two writes leaves the previous checkpoint as the resume point)."""
        write_table(pd.DataFrame(self.rows), self.run_dir / METRICS_FILE)
        save_checkpoint(
            self.run_dir / CHECKPOINT_DIR / checkpoint_name(self.step), step=self.step,
            config=self.config.to_dict(), model=self.network.state_dict(),
            optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict())

    def test_batch(self, step: int):
        """The test batch evaluated at ``step``: fresh (a pure function of seed and step, like
        the training batches) or, with ``eval_batch = "fixed"``, step 0's for every step."""
        train = self.config.train
        step = step if train.eval_batch == "fresh" else 0
        return self.task.sample(train.eval_batch_size,
                                step_generator(train.seed + EVAL_SEED_OFFSET, step, self.device),
                                self.device)

    def log_after_update(self, batch, lr: float) -> dict:
        """The row of step ``self.step``, measured as the study logs it: after this step's
        update, in eval mode, on this step's training batch and a test batch
        (``training_log_row``); ``lr`` is the learning rate the update used."""
        row = {"step": self.step, "lr": lr}
        self.network.eval()
        with self.autocast():
            row.update(training_log_row(self.model, batch, self.test_batch(self.step), self.forward))
        self.network.train()
        return row

    def run(self, stop_at: int | None = None, progress: bool = True) -> Path:
        """Train until ``config.train.steps`` (or ``stop_at``); returns the run directory."""
        train = self.config.train
        end = train.steps if stop_at is None else min(stop_at, train.steps)
        if self.step == 0 and 0 in self.checkpoint_steps and not list_checkpoints(self.run_dir):
            self.save()
        self.network.train()
        bar = tqdm(total=end, initial=self.step, disable=not progress, desc=self.task.name,
                   dynamic_ncols=True)
        while self.step < end:
            self.update_attention_bias()
            batch = self.task.sample(train.batch_size, step_generator(train.seed, self.step, self.device),
                                     self.device)
            with self.autocast():
                output = self.forward(batch.inputs)
                loss = self.task.loss(output, batch)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if train.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.network.parameters(), train.grad_clip)
            lr = self.scheduler.get_last_lr()[0]
            self.optimizer.step()
            self.scheduler.step()
            if self.step % train.log_every == 0:
                self.rows.append(self.log_after_update(batch, lr))
                bar.set_postfix(loss=f"{self.rows[-1]['loss']:.4g}")
            self.step += 1
            bar.update(1)
            if self.step in self.checkpoint_steps:
                self.save()
        bar.close()
        return self.run_dir


def train(config, out: str | Path, progress: bool = True, stop_at: int | None = None) -> Path:
    """Train a run from a config (TOML path, dict or ``RunConfig``) into ``out``."""
    return Trainer.start(config, out).run(stop_at=stop_at, progress=progress)


def resume(run_dir: str | Path, progress: bool = True, stop_at: int | None = None) -> Path:
    """Continue a run from its newest readable checkpoint."""
    return Trainer.resume(run_dir).run(stop_at=stop_at, progress=progress)
