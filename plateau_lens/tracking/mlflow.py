"""MLflow: a local file store ``<run>/mlruns`` by default (``mlflow ui --backend-store-uri
<run>/mlruns``), or the store ``MLFLOW_TRACKING_URI`` names."""

from __future__ import annotations

import os
import time
from pathlib import Path
from urllib.parse import urlparse

from ..runs.layout import CONFIG_FILE, FIGURE_DIR, MLFLOW_DIR
from .base import RunInfo, Tracker, TrackerError, require

DEFAULT_EXPERIMENT = "plateau-lens"
BATCH = 100  # MLflow's log_batch takes at most 100 params / 1000 metrics


def tracking_uri(info: RunInfo) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or (info.run_dir.resolve() / MLFLOW_DIR).as_uri()


def flat(values: dict, prefix: str = "") -> dict[str, str]:
    """``{"train": {"lr": 1e-4}}`` -> ``{"train.lr": "0.0001"}`` (MLflow params are strings)."""
    out = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out |= flat(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = str(value)
    return out


class MlflowTracker(Tracker):
    """Metrics per logged step; the config as params (``train.lr``, …) and as the artifact
    ``config.json``; the group (a sweep's name) as the experiment (unless
    ``MLFLOW_EXPERIMENT_NAME`` is set) and the ``group`` tag; figures as artifacts under
    ``figures/``; checkpoint paths as ``checkpoints.json``; the transition as
    ``transition.<field>`` metrics."""

    name = "mlflow"

    @classmethod
    def check(cls, info: RunInfo) -> None:
        require("mlflow", cls.name, "mlflow")
        uri = tracking_uri(info)
        scheme = urlparse(uri).scheme
        if scheme in ("", "file"):
            # MLflow 3 keeps its file store only on request; a local store needs no server
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            return
        from mlflow.tracking._tracking_service.utils import _tracking_store_registry

        try:
            _tracking_store_registry.get_store_builder(uri)
        except Exception as error:
            raise TrackerError(f"train.trackers 'mlflow': MLFLOW_TRACKING_URI {uri!r} is not usable here "
                               f"({type(error).__name__}); use a local folder (file:///...) or a "
                               f"server (http://...)") from None

    def __init__(self, info: RunInfo):
        super().__init__(info)
        from mlflow import MlflowClient

        self.client = MlflowClient(tracking_uri(info))
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or info.group or DEFAULT_EXPERIMENT
        experiment = self.client.get_experiment_by_name(name)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(name)
        tags = {"run_dir": str(info.run_dir.resolve())} | ({"group": info.group} if info.group else {})
        self.run_id = self.client.create_run(experiment_id, run_name=info.name, tags=tags).info.run_id
        self.client.log_dict(self.run_id, info.config, CONFIG_FILE)
        from mlflow.entities import Param

        params = [Param(k, v) for k, v in flat(info.config).items()]
        for start in range(0, len(params), BATCH):
            self.client.log_batch(self.run_id, params=params[start:start + BATCH])

    def log_metrics(self, step: int, values: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, step) for k, v in values.items()])

    def log_figure(self, name: str, path: Path, step: int) -> None:
        self.client.log_artifact(self.run_id, str(path), FIGURE_DIR)

    def log_checkpoints(self, checkpoints: dict[int, Path], step: int) -> None:
        self.client.log_dict(self.run_id, {str(s): str(p) for s, p in sorted(checkpoints.items())},
                             "checkpoints.json")

    def log_transition(self, transition: dict[str, float] | None) -> None:
        if transition is None:
            self.client.set_tag(self.run_id, "transition", "none detected")
            return
        for key, value in transition.items():
            self.client.log_metric(self.run_id, f"transition.{key}", value, step=0)

    def close(self) -> None:
        self.client.set_terminated(self.run_id)
