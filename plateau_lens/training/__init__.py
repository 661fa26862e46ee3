from .checkpoint import CheckpointError, load_checkpoint
from .trainer import Trainer, resume, train

__all__ = ["CheckpointError", "load_checkpoint", "Trainer", "resume", "train"]
