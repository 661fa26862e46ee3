from .checkpoint import CheckpointError, CheckpointMismatch, list_checkpoints, load_checkpoint
from .trainer import Trainer, TrainingDiverged, resume, train, train_or_resume

__all__ = ["CheckpointError", "CheckpointMismatch", "list_checkpoints", "load_checkpoint", "Trainer",
           "TrainingDiverged", "resume", "train", "train_or_resume"]
