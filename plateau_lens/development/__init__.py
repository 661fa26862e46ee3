"""Developmental analyses over a checkpoint series: essential dynamics (Hoogland et al. 2024),
head-type scores per head and checkpoint, the local learning coefficient with devinterp,
change-point onsets with ruptures, and the one-page report aligning them on one step axis.
Names load on first use (``lazy_loader``); devinterp and ruptures are the ``development`` extra."""

from typing import TYPE_CHECKING

from ..lazy import lazy_package

__getattr__, __dir__, __all__ = lazy_package(__name__, __path__, {
    "essential_dynamics": ["EssentialDynamics", "checkpoint_features", "essential_dynamics",
                           "plot_essential_dynamics"],
    "head_scores": ["HEAD_TYPES", "causal_head_scores", "head_scores",
                    "head_scores_over_checkpoints", "repeated_random_tokens"],
    "calibration": ["LLCCalibration", "choose_llc_setting", "llc_calibration"],
    "llc": ["LLCEstimate", "LLCSettings", "estimate_llc", "llc_over_checkpoints"],
    "onsets": ["change_points", "onset_summary", "onset_table"],
})

if TYPE_CHECKING:
    from .essential_dynamics import (EssentialDynamics, checkpoint_features, essential_dynamics,
                                     plot_essential_dynamics)
    from .head_scores import (HEAD_TYPES, causal_head_scores, head_scores,
                              head_scores_over_checkpoints, repeated_random_tokens)
    from .calibration import LLCCalibration, choose_llc_setting, llc_calibration
    from .llc import LLCEstimate, LLCSettings, estimate_llc, llc_over_checkpoints
    from .onsets import change_points, onset_summary, onset_table
