from .attention_progress import attention_progress, attention_progress_score
from .over_training import analysis_batch, analyze_run

__all__ = ["attention_progress", "attention_progress_score", "analysis_batch", "analyze_run"]
