"""``Tracking``: the trackers of one training session, started before the first step and
guarded so that a tracker failing mid-run is dropped with one warning and the run goes on."""

from __future__ import annotations

import logging
import math
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

from ..runs.layout import FIGURE_DIR, LOSS_CURVE_FIGURE, list_checkpoints
from .base import RunInfo, Tracker, TrackerError
from .registry import tracker_class

log = logging.getLogger("plateau_lens")

FIGURE_GLOBS = ("*.png", f"{FIGURE_DIR}/*.png")
"""The run's figures: PNGs in the run directory and its ``figures/`` folder."""


def numeric_values(row: dict[str, Any]) -> dict[str, float]:
    """The loggable metrics of a metrics row: every finite number but ``step``."""
    values = {}
    for key, value in row.items():
        if key == "step" or isinstance(value, bool):
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            values[key] = number
    return values


class Tracking:
    """The trackers ``names`` for the run in ``run_dir``.

    ``Tracking(...)`` checks every tracker (library installed, settings valid) and writes
    nothing: raise ``TrackerError`` here, before training. ``start()`` starts them and logs
    the config; ``log_row`` each metrics row; ``finish`` the figures, checkpoint locations
    and transition, then closes them. A tracker that raises after it started is dropped
    with one warning; training is never stopped by a tracker."""

    def __init__(self, names: Sequence[str], run_dir: str | Path, config: dict[str, Any],
                 group: str = ""):
        self.info = RunInfo(run_dir=Path(run_dir), name=Path(run_dir).resolve().name, group=group,
                            config=config)
        self.classes = []
        for name in names:
            try:
                cls = tracker_class(name)
            except KeyError:
                raise TrackerError(f"train.trackers: unknown tracker {name!r}") from None
            cls.check(self.info)
            self.classes.append((name, cls))
        self.trackers: dict[str, Tracker] = {}
        self.started = False
        self.last_step = 0

    def __bool__(self) -> bool:
        return bool(self.classes)

    def start(self) -> None:
        """Start every tracker (once); a tracker that cannot start raises ``TrackerError``
        (the trackers started before it are closed)."""
        if self.started:
            return
        for name, cls in self.classes:
            try:
                self.trackers[name] = cls(self.info)
            except Exception as error:
                self.close()
                raise TrackerError(f"tracker {name!r} failed to start: {type(error).__name__}: "
                                   f"{error}") from error
        self.started = True

    def _each(self, action: Callable[[Tracker], None], what: str) -> None:
        for name, tracker in list(self.trackers.items()):
            try:
                action(tracker)
            except Exception as error:  # a tracker never stops the run
                del self.trackers[name]
                log.warning("tracker %r failed while logging %s (%s: %s); it is dropped for the rest "
                            "of this run, training goes on", name, what, type(error).__name__, error)
                try:
                    tracker.close()
                except Exception:
                    pass

    def log_row(self, row: dict[str, Any]) -> None:
        """One metrics row (as written to metrics.csv), at its step."""
        step = int(row["step"])
        self.last_step = max(self.last_step, step)
        values = numeric_values(row)
        self._each(lambda t: t.log_metrics(step, values), f"step {step}")

    def finish(self, metrics=None) -> None:
        """Log the run's figures, checkpoint locations and detected transition, then close."""
        if not self.trackers:
            self.started = False
            return
        run_dir = self.info.run_dir
        step = self.last_step
        checkpoints = {int(s): p.resolve() for s, p in list_checkpoints(run_dir).items()}
        self._each(lambda t: t.log_checkpoints(checkpoints, step), "checkpoint locations")
        transition = None
        if metrics is not None and len(metrics):
            transition = self._transition(metrics)
            values = None if transition is None else {k: float(v) for k, v in transition.to_dict().items()}
            self._each(lambda t: t.log_transition(values), "the transition")
        with tempfile.TemporaryDirectory() as scratch:
            figures = {p.stem: p for pattern in FIGURE_GLOBS for p in sorted(run_dir.glob(pattern))}
            if metrics is not None and len(metrics) and "loss" in metrics:
                figures.setdefault("loss_curve", self._loss_figure(metrics, transition, Path(scratch)))
            for name, path in figures.items():
                self._each(lambda t: t.log_figure(name, path, step), f"figure {name}")
        self.close()
        self.started = False  # a later session (trainer.run again) starts them afresh

    @staticmethod
    def _transition(metrics):
        """``plateau_lens.transition.detect_transition`` on the loss, or None."""
        from ..transition import detect_transition

        try:
            return detect_transition(metrics)
        except ValueError:  # too few points, a non-positive loss
            return None

    def _loss_figure(self, metrics, transition, folder: Path) -> Path:
        from .. import plots

        figure = plots.loss_curve(metrics, transition=transition, title=f"{self.info.name}: training curves")
        return plots.save(figure, folder / LOSS_CURVE_FIGURE)

    def close(self) -> None:
        for name, tracker in list(self.trackers.items()):
            try:
                tracker.close()
            except Exception as error:
                log.warning("tracker %r failed to close (%s: %s)", name, type(error).__name__, error)
        self.trackers.clear()
