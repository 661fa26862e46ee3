"""A saved run: its config, metrics table and lazily loaded checkpoints."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import pandas as pd
import torch

from .config import RunConfig, load_config
from .interventions import configured_attention_bias
from .models.build import build_network, wrap_in_bridge
from .models.handle import PlateauModel, set_attention_bias
from .training.checkpoint import CheckpointError, list_checkpoints, load_checkpoint
from .training.trainer import CONFIG_FILE, METRICS_FILE
from .transition import MIN_POINTS, Transition, detect_transition


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
        if self._metrics is None:
            path = self.path / METRICS_FILE
            self._metrics = pd.read_csv(path) if path.is_file() else pd.DataFrame()
        return self._metrics

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


def load_run(path: str | Path, allow_pickle: bool = False) -> Run:
    """Open a run directory written by ``plateau-lens train`` (``allow_pickle``: see ``Run``)."""
    path = Path(path)
    if not (path / CONFIG_FILE).is_file():
        raise FileNotFoundError(f"{path} is not a plateau-lens run (no {CONFIG_FILE})")
    return Run(path=path, config=load_config(path / CONFIG_FILE), checkpoints=list_checkpoints(path),
               allow_pickle=allow_pickle)
