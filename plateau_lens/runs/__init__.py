"""A run on disk: the directory layout (:mod:`.layout`: every file and folder name), the
checkpoint format (:mod:`.checkpoint`) and the handle that reads a run back (:mod:`.load`).
Names load on first use (``lazy_loader``)."""

from typing import TYPE_CHECKING

from ..lazy import lazy_package

__getattr__, __dir__, __all__ = lazy_package(__name__, __path__, {
    "checkpoint": ["CheckpointError", "CheckpointMismatch", "load_checkpoint"],
    "layout": ["checkpoint_path", "list_checkpoint_steps", "list_checkpoints"],
    "load": ["Run", "load_run"],
})

if TYPE_CHECKING:
    from .checkpoint import CheckpointError, CheckpointMismatch, load_checkpoint
    from .layout import checkpoint_path, list_checkpoint_steps, list_checkpoints
    from .load import Run, load_run
