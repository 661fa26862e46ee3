from .trainer import Trainer, TrainingDiverged, resume, train, train_or_resume

__all__ = ["Trainer", "TrainingDiverged", "resume", "train", "train_or_resume"]
