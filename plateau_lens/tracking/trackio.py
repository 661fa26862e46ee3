"""trackio (local): the project database in ``TRACKIO_DIR`` (default
``~/.cache/huggingface/trackio``); ``trackio show --project plateau-lens``."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import pandas as pd

from .base import RunInfo, Tracker, require

DEFAULT_PROJECT = "plateau-lens"


class TrackioTracker(Tracker):
    """Metrics per logged step; the config as the run config; the group (a sweep's name) as
    the trackio group; figures as images, checkpoint paths as a table and the transition as
    ``transition/<field>`` values, at the last logged step."""

    name = "trackio"

    @classmethod
    def check(cls, info: RunInfo) -> None:
        require("trackio", cls.name, "trackio")

    def __init__(self, info: RunInfo):
        super().__init__(info)
        import trackio

        self.trackio = trackio
        self.last_step = 0
        with contextlib.redirect_stdout(io.StringIO()):  # its banner would fill the log
            self.run = trackio.init(project=os.environ.get("TRACKIO_PROJECT", DEFAULT_PROJECT),
                                    name=info.name, group=info.group or None, config=info.config,
                                    embed=False, auto_log_cpu=False, auto_log_gpu=False, resume="allow")

    def log_metrics(self, step: int, values: dict[str, float]) -> None:
        self.last_step = max(self.last_step, step)
        self.run.log(values, step=step)

    def log_figure(self, name: str, path: Path, step: int) -> None:
        self.run.log({f"figures/{name}": self.trackio.Image(str(path))}, step=step)

    def log_checkpoints(self, checkpoints: dict[int, Path], step: int) -> None:
        table = pd.DataFrame({"step": list(checkpoints), "path": [str(p) for p in checkpoints.values()]})
        self.run.log({"checkpoints": self.trackio.Table(dataframe=table)}, step=step)

    def log_transition(self, transition: dict[str, float] | None) -> None:
        if transition is not None:
            self.run.log({f"transition/{k}": v for k, v in transition.items()}, step=self.last_step)

    def close(self) -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            self.run.finish()
