"""Every figure of the two studies one command away: ``plateau-lens reproduce --list``."""

from . import loss_plateau  # noqa: F401  (registers its entries)
from . import matrix_completion  # noqa: F401  (registers its entries)
from .registry import REGISTRY, Context, Reproduction, get, register, table

__all__ = ["REGISTRY", "Context", "Reproduction", "get", "register", "table"]
