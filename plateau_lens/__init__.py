"""plateau-lens: reproduce and dissect abrupt learning (loss plateaus, sudden drops)."""

from .config import RunConfig, TrainConfig, load_config
from .models import ModelConfig, build_model, build_network, wrap_in_bridge
from .tasks import TASKS, make_task
from .training import CheckpointError, resume, train

__version__ = "0.1.0"

__all__ = [
    "RunConfig", "TrainConfig", "load_config", "ModelConfig", "build_model", "build_network",
    "wrap_in_bridge", "TASKS", "make_task", "CheckpointError", "resume", "train",
]
