"""Independent plain-torch reference implementation (test oracle); imports nothing from plateau_lens."""

from .forward import (
    MASK_ID,
    RefConfig,
    forward,
    replace_slice,
    site_names,
    weights_from_state_dict,
)

__all__ = ["MASK_ID", "RefConfig", "forward", "replace_slice", "site_names", "weights_from_state_dict"]
