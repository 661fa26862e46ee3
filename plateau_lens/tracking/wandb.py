"""Weights & Biases, offline by default (no account): ``<run>/wandb/offline-run-*``; upload
later with ``wandb sync`` if you like. ``WANDB_MODE=online`` logs live (needs ``wandb login``)."""

from __future__ import annotations

import netrc
import os
from pathlib import Path

from .base import RunInfo, Tracker, TrackerError, require

MODES = ("offline", "online", "disabled")
DEFAULT_PROJECT = "plateau-lens"


def has_api_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


class WandbTracker(Tracker):
    """History rows per logged step; the config as the run config; the group (a sweep's
    name) as the W&B group; figures as images; checkpoint paths and the transition in the
    run summary (``checkpoints``, ``transition``)."""

    name = "wandb"

    @classmethod
    def mode(cls) -> str:
        return os.environ.get("WANDB_MODE", "offline")

    @classmethod
    def check(cls, info: RunInfo) -> None:
        require("wandb", cls.name, "wandb")
        mode = cls.mode()
        if mode not in MODES:
            raise TrackerError(f"train.trackers 'wandb': WANDB_MODE must be one of {list(MODES)}, got {mode!r}")
        if mode == "online" and not has_api_key():
            raise TrackerError("train.trackers 'wandb': WANDB_MODE=online needs an account (run `wandb "
                               "login` or set WANDB_API_KEY); or unset WANDB_MODE to log offline")

    def __init__(self, info: RunInfo):
        super().__init__(info)
        import wandb

        self.wandb = wandb
        self.run = wandb.init(
            mode=self.mode(), dir=str(info.run_dir), project=os.environ.get("WANDB_PROJECT", DEFAULT_PROJECT),
            name=info.name, group=info.group or None, config=info.config, reinit="create_new",
            settings=wandb.Settings(console="off", silent=True, x_disable_stats=True, save_code=False,
                                    disable_git=True))

    def log_metrics(self, step: int, values: dict[str, float]) -> None:
        self.run.log(values, step=step)

    def log_figure(self, name: str, path: Path, step: int) -> None:
        self.run.log({f"figures/{name}": self.wandb.Image(str(path))}, step=step)

    def log_checkpoints(self, checkpoints: dict[int, Path], step: int) -> None:
        self.run.summary["checkpoints"] = {str(s): str(p) for s, p in sorted(checkpoints.items())}

    def log_transition(self, transition: dict[str, float] | None) -> None:
        self.run.summary["transition"] = transition if transition is not None else "none detected"

    def close(self) -> None:
        self.run.finish()
