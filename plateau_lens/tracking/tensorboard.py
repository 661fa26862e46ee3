"""TensorBoard: event files in ``<run>/tensorboard`` (``tensorboard --logdir runs/``)."""

from __future__ import annotations

import json
from pathlib import Path

from ..runs.layout import TENSORBOARD_DIR
from .base import RunInfo, Tracker, require


def markdown_table(header: tuple[str, str], rows) -> str:
    return "\n".join([f"| {header[0]} | {header[1]} |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows])


class TensorBoardTracker(Tracker):
    """Scalars per metric at each logged step; the config, group and checkpoint locations as
    text; figures as images; the transition as ``transition/<field>`` scalars."""

    name = "tensorboard"

    @classmethod
    def check(cls, info: RunInfo) -> None:
        require("tensorboard", cls.name, "tensorboard")
        require("torch.utils.tensorboard", cls.name, "tensorboard")

    def __init__(self, info: RunInfo):
        super().__init__(info)
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(info.run_dir / TENSORBOARD_DIR))
        self.writer.add_text("config", f"```json\n{json.dumps(info.config, indent=2, sort_keys=True)}\n```")
        if info.group:
            self.writer.add_text("group", info.group)

    def log_metrics(self, step: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)

    def log_figure(self, name: str, path: Path, step: int) -> None:
        import matplotlib.image

        image = matplotlib.image.imread(path)  # [height, width, channel], floats in [0, 1]
        self.writer.add_image(f"figures/{name}", image[..., :3], step, dataformats="HWC")

    def log_checkpoints(self, checkpoints: dict[int, Path], step: int) -> None:
        self.writer.add_text("checkpoints", markdown_table(("step", "path"), sorted(checkpoints.items())), step)

    def log_transition(self, transition: dict[str, float] | None) -> None:
        if transition is None:
            self.writer.add_text("transition", "no transition detected")
            return
        for key, value in transition.items():
            self.writer.add_scalar(f"transition/{key}", value, 0)

    def close(self) -> None:
        self.writer.close()
