"""What every tracker adapter does: start before training, take each metrics row, and at the
end the run's figures, checkpoint locations and detected transition."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class TrackerError(RuntimeError):
    """A tracker cannot start (library missing, bad settings); raised before training."""


@dataclass(frozen=True)
class RunInfo:
    """What a tracker is told about the run it watches."""

    run_dir: Path
    name: str
    """The run's name in the tracker: its directory's name."""
    group: str
    """The group (a sweep's name) or ""."""
    config: dict[str, Any]
    """The resolved config (``RunConfig.to_dict()``)."""


def require(module: str, tracker: str, extra: str) -> Any:
    """Import ``module`` or raise ``TrackerError`` saying which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise TrackerError(
            f"train.trackers: {tracker!r} needs the {module.split('.')[0]} package, which is not "
            f"installed ({error}); install it with: pip install 'plateau-lens[{extra}]'") from None


class Tracker:
    """Base of the adapters. ``check`` (a classmethod) validates settings without writing
    anything; ``__init__`` starts the tracker's run; the rest log into it."""

    name = "tracker"

    @classmethod
    def check(cls, info: RunInfo) -> None:
        """Raise ``TrackerError`` if this tracker cannot start (nothing written)."""

    def __init__(self, info: RunInfo):
        self.info = info

    def log_metrics(self, step: int, values: dict[str, float]) -> None:
        raise NotImplementedError

    def log_figure(self, name: str, path: Path, step: int) -> None:
        raise NotImplementedError

    def log_checkpoints(self, checkpoints: dict[int, Path], step: int) -> None:
        """Where the checkpoints are (step -> path); the files are not uploaded."""
        raise NotImplementedError

    def log_transition(self, transition: dict[str, float] | None) -> None:
        """The detected transition (``Transition.to_dict()``), or None when none was found."""
        raise NotImplementedError

    def close(self) -> None:
        """Flush and end the tracker's run."""
