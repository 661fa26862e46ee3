"""What each reproduction took and showed when we ran it (README's tables come from here).

Only entries we ran are listed; every number is from the run named in ``command`` on the
2-core CPU machine of the project's CI (other jobs beside it where ``cost`` says so). An entry
not listed prints "not run here": its code is tested on shrunk configs, its result is unknown.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Measured:
    command: str
    """The command that was run (``plateau-lens reproduce ID --out DIR [...]``)."""
    cost: str
    """Wall time and machine."""
    status: str
    """What the run showed against the paper: "reproduced: ...", "partly: ...",
    "not reproduced: ..."."""


NOT_RUN = Measured(command="", cost="", status="not run here")

MEASURED: dict[str, Measured] = {
    "lp-fig2-mws": Measured(
        "plateau-lens reproduce lp-fig2-mws --out runs/lp", "time not recorded, 2 CPU cores",
        "reproduced: loss plateau to step 170, drop at 190, accuracy 1.0 at 400; on the "
        "plateau y1 is already learned (accuracy 1.0) while the later outputs sit at 0.09, "
        "repetition 0.44 (data 0.06), cosine of pre_lm_h 0.79 (final 0.005), attention "
        "progress 0.17 (final 0.73)"),
    "lp-fig17-reverse": Measured(
        "plateau-lens reproduce lp-fig17-reverse --out runs/lp --steps 100",
        "time not recorded, 2 CPU cores",
        "reproduced at 100 steps: plateau to step 18, drop at 28, accuracy 1.0; plateau "
        "repetition 0.24 (data 0.06), cosine 0.36 (final −0.01)"),
}
