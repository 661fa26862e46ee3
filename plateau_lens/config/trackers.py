"""Names of the experiment trackers a run config may list (``train.trackers``), each bound to
its adapter class by an import path (a string: validating a config imports no tracker
library, nor ``plateau_lens.tracking``, whose ``registry.tracker_class`` resolves it)."""

from __future__ import annotations

from typing import Sequence

TRACKERS: dict[str, str | type] = {
    "tensorboard": "plateau_lens.tracking.tensorboard:TensorBoardTracker",
    "wandb": "plateau_lens.tracking.wandb:WandbTracker",
    "mlflow": "plateau_lens.tracking.mlflow:MlflowTracker",
    "trackio": "plateau_lens.tracking.trackio:TrackioTracker",
}
"""Tracker name -> adapter (a ``plateau_lens.tracking.base.Tracker`` subclass or its
``"module:Class"`` path)."""

TRACKER_NAMES = tuple(TRACKERS)
"""The shipped trackers (``register_tracker`` adds more)."""


def register_tracker(name: str, adapter: str | type) -> None:
    """Make ``name`` a valid ``train.trackers`` entry bound to ``adapter`` (a ``Tracker``
    subclass or its ``"module:Class"`` path)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a tracker name must be a non-empty string, got {name!r}")
    TRACKERS[name] = adapter


def check_tracker_names(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` if every one is a known tracker, listed once; else ``ValueError`` naming
    ``train.trackers`` and the allowed names."""
    names = tuple(names)
    unknown = [n for n in names if n not in TRACKERS]
    if unknown:
        raise ValueError(f"train.trackers: unknown tracker(s) {unknown}; allowed: {sorted(TRACKERS)}")
    doubled = sorted({n for n in names if names.count(n) > 1})
    if doubled:
        raise ValueError(f"train.trackers lists {doubled} more than once")
    return names
