"""Experiment trackers (TensorBoard, Weights & Biases offline, trackio, MLflow) that watch a
training run: ``train.trackers = ["tensorboard", ...]`` in a run config. See docs/trackers.md."""

from .base import RunInfo, Tracker, TrackerError
from ..config.trackers import TRACKER_NAMES, TRACKERS, check_tracker_names, register_tracker
from .registry import tracker_class
from .session import Tracking

__all__ = ["RunInfo", "Tracker", "TrackerError", "TRACKER_NAMES", "TRACKERS", "Tracking",
           "check_tracker_names", "register_tracker", "tracker_class"]
