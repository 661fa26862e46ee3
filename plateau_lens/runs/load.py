"""A saved run read back: its config, metrics table and lazily loaded checkpoints."""

from __future__ import annotations

import io
import logging
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import pandas as pd
import torch

from ..config import RunConfig, load_config
from ..errors import InputError
from ..io import read_table
from ..models.attention_bias import configured_attention_bias
from ..models.build import build_network, wrap_in_bridge
from ..models.handle import PlateauModel, set_attention_bias
from ..transition import MIN_POINTS, Transition, detect_transition
from .checkpoint import CheckpointError, load_checkpoint
from .layout import METRICS_FILE, WEIGHTS_SUFFIX, config_path, list_checkpoints, metrics_path

log = logging.getLogger("plateau_lens")


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch device this machine has; ``InputError`` naming it otherwise."""
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise InputError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r} ({error})") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} was asked for but CUDA is not available on this "
                         f"machine: use device='cpu'")
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise InputError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA "
                         f"device(s)")
    return resolved


@dataclass
class Run:
    """``run.config``, ``run.metrics``, ``run.steps`` and ``run.model(step)`` (a PlateauModel)."""

    path: Path
    config: RunConfig
    checkpoints: dict[int, Path]
    _metrics: pd.DataFrame | None = field(default=None, repr=False)
    allow_pickle: bool = field(default=False, repr=False)
    """Also load legacy pickle checkpoints (``step_N.pt``): runs any code in them, so only
    for runs you wrote; ``plateau-lens convert`` rewrites such a run without pickle."""

    @property
    def task(self):
        return self.config.make_task()

    @property
    def steps(self) -> list[int]:
        return sorted(self.checkpoints)

    @property
    def metrics(self) -> pd.DataFrame:
        """The metrics table. Checked against the newest checkpoint, which carries every row
        up to its step: a ``metrics.csv`` that lacks or alters any of them (truncated,
        damaged, deleted) is rebuilt from the checkpoint here, with a warning (``plateau-lens
        resume`` rewrites the file the same way); with no checkpoint to rebuild from, a
        damaged file is refused (``InputError``)."""
        if self._metrics is None:
            self._metrics = self._checked_metrics()
        return self._metrics

    def _checked_metrics(self) -> pd.DataFrame:
        path = metrics_path(self.path)
        try:
            text = path.read_text() if path.is_file() else None
        except (OSError, UnicodeDecodeError) as error:
            text, problem = None, f"unreadable ({type(error).__name__})"
        else:
            problem = "missing" if text is None else None
        rows = self._newest_rows()
        if rows is None:  # nothing to check against: a run without (readable) checkpoints
            if problem == "missing":
                return pd.DataFrame()
            if problem is not None:
                raise InputError(f"{path} is {problem} and no checkpoint of {self.path} carries "
                                 f"its rows")
            return _read_metrics(path)
        if problem is None and (not rows or text.startswith(metrics_text(rows))):
            return _read_metrics(path)
        log.warning("%s is %s: using the %d rows that checkpoint step %d carries (plateau-lens "
                    "resume rewrites the file the same way)", path, problem or "truncated or damaged",
                    len(rows), max(self.checkpoints))
        return read_table(io.StringIO(metrics_text(rows))) if rows else pd.DataFrame()

    def _newest_rows(self) -> list[dict] | None:
        """The metrics rows the newest checkpoint carries (None: no checkpoint, a legacy one,
        or one whose training state does not verify)."""
        if not self.checkpoints:
            return None
        newest = self.checkpoints[max(self.checkpoints)]
        if newest.suffix != WEIGHTS_SUFFIX:
            return None
        try:
            return load_checkpoint(newest, training_state=True).get("metrics")
        except CheckpointError as error:
            log.warning("cannot check %s against the newest checkpoint: %s", METRICS_FILE, error)
            return None

    def nearest_step(self, step: int) -> int:
        if not self.checkpoints:
            raise CheckpointError(f"run {self.path} has no checkpoints")
        return min(self.checkpoints, key=lambda s: (abs(s - step), s))

    def network(self, step: int, device: str | torch.device = "cpu"):
        """The native network at checkpoint ``step`` (exact step; see ``nearest_step``)."""
        payload = self._checkpoint(step, device)  # a missing or foreign file fails before any build
        network = build_network(self.task, self.config.model, self.config.train.seed)
        self._install(network, payload, step)
        return network.to(device).eval()

    def load_weights(self, model, step: int, device: str | torch.device = "cpu") -> None:
        """Copy checkpoint ``step``'s weights (and its attention bias, if the run used one)
        into ``model`` in place: a network, or a :class:`PlateauModel` from :meth:`model`."""
        network = model.network if isinstance(model, PlateauModel) else model
        self._install(network, self._checkpoint(step, device), step)

    def _checkpoint(self, step: int, device: str | torch.device) -> dict:
        if isinstance(step, bool) or not isinstance(step, numbers.Integral):
            raise InputError(f"step must be an integer checkpoint step, got {step!r} "
                             f"({type(step).__name__}); available: {self.steps}")
        check_device(device)
        if step not in self.checkpoints:
            raise CheckpointError(
                f"run {self.path} has no checkpoint at step {step}; available: {self.steps}")
        return load_checkpoint(self.checkpoints[step], self.config.to_dict(), device,
                               training_state=False, allow_pickle=self.allow_pickle)

    def _install(self, network, payload: dict, step: int) -> None:
        network.load_state_dict(payload["model"])
        set_attention_bias(network, configured_attention_bias(self.task, self.config.train, step))

    def model(self, step: int, device: str | torch.device = "cpu") -> PlateauModel:
        """A :class:`PlateauModel` with the weights of checkpoint ``step``."""
        network = self.network(step, device)
        return PlateauModel(bridge=wrap_in_bridge(network), task=self.task, network=network,
                            config=self.config.model)

    def models(self, steps: Iterable[int] | None = None,
               device: str | torch.device = "cpu") -> Iterator[tuple[int, PlateauModel]]:
        """``(step, model)`` for each checkpoint (all by default), reusing one model whose
        weights are overwritten in place at every step: keep results, not the model (use
        :meth:`model` for one of your own). Saves building a bridge per checkpoint."""
        steps = self.steps if steps is None else list(steps)
        if not steps:
            return
        model = self.model(steps[0], device)
        yield steps[0], model
        for step in steps[1:]:
            self.load_weights(model, step, device)
            yield step, model

    def transition(self, loss: str | None = None) -> Transition | None:
        """Detect the plateau and drop in this run's loss curve (LRMC: masked MSE); None
        when there is none, and where ``detect_transition`` itself raises on the curve: no
        such column or fewer than ``MIN_POINTS`` logged values (too short to tell), or a value
        ≤ 0 (no log scale; e.g. an exactly solved masked MSE of the GPT variant)."""
        if loss is None:
            loss = "masked_mse" if "masked_mse" in self.metrics else "loss"
        values = self.metrics[loss].dropna() if loss in self.metrics else pd.Series(dtype=float)
        if len(values) < MIN_POINTS or (values <= 0).any():
            return None
        return detect_transition(self.metrics, loss)


def metrics_text(rows: list[dict]) -> str:
    """Metrics rows as the text of a metrics table (what the trainer writes)."""
    return pd.DataFrame(rows).to_csv(index=False)


def _read_metrics(path: Path) -> pd.DataFrame:
    """A metrics.csv as a DataFrame (an empty file: an empty frame); ``InputError`` when it
    is not a table."""
    try:
        return read_table(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except (ValueError, pd.errors.ParserError) as error:
        raise InputError(f"{path} is not a readable metrics table ({type(error).__name__}: "
                         f"{error})") from None


def load_run(path: str | Path, allow_pickle: bool = False) -> Run:
    """Open a run directory written by ``plateau-lens train`` (``allow_pickle``: see ``Run``)."""
    path = Path(path)
    if not config_path(path).is_file():
        raise FileNotFoundError(f"{path} is not a plateau-lens run (no {config_path(path).name})")
    return Run(path=path, config=load_config(config_path(path)), checkpoints=list_checkpoints(path),
               allow_pickle=allow_pickle)
