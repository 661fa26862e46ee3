"""Find the plateau and the drop in a loss curve, from the curve alone."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Transition:
    """Steps of an abrupt transition and the loss levels around it.

    ``plateau_start``–``plateau_end``: the loss stays within ``tolerance`` (a fraction of the
    drop, in log10 units) of the plateau level; ``drop_end``: first step after the steepest
    descent within the same tolerance of the final level; ``drop_step``: steepest descent.
    """

    plateau_start: int
    plateau_end: int
    drop_step: int
    drop_end: int
    plateau_loss: float
    final_loss: float

    @property
    def plateau_length(self) -> int:
        return self.plateau_end - self.plateau_start

    @property
    def drop_length(self) -> int:
        """Steps from the plateau's end to the drop's end: small against
        ``plateau_length`` for an abrupt transition, comparable or larger for a gradual one."""
        return self.drop_end - self.plateau_end

    def to_dict(self) -> dict:
        return asdict(self) | {"plateau_length": self.plateau_length, "drop_length": self.drop_length}


def _rolling_median(values: np.ndarray, window: int) -> np.ndarray:
    return pd.Series(values).rolling(window, center=True, min_periods=1).median().to_numpy()


def _modal_level(before: np.ndarray, final_level: float, tolerance: float) -> float:
    """The level where the curve spends most points before the drop (the plateau)."""
    width = max(tolerance * (before.max() - final_level), 1e-6)
    bins = np.floor((before - before.min()) / width).astype(int)
    modal_bin = np.bincount(bins).argmax()
    return float(np.median(before[bins == modal_bin]))


def detect_transition(metrics: pd.DataFrame | np.ndarray, loss: str = "loss", *,
                      steps: np.ndarray | None = None, tolerance: float = 0.1,
                      min_drop: float = 0.1, min_plateau: float = 0.05,
                      smoothing: float | None = None) -> Transition | None:
    """Locate the plateau and the sudden drop in a loss curve.

    Works on log10(loss), smoothed by a centred rolling median over ``smoothing`` × the
    number of points; by default 3 %, then 6 % and 12 % if nothing is found (one-batch metrics
    such as LRMC's masked MSE at batch 64 scatter by ~0.05 decades, more than the tolerance
    band of a 2× drop). The drop is the steepest descent over that window; its size is
    Δ = plateau level − final level (final = median of the last 5 % of the curve). The
    plateau is the stretch before the drop where the curve stays within ``tolerance``·Δ of
    its level; the drop ends when the curve first comes within ``tolerance``·Δ of the
    final level. Returns ``None`` when Δ < ``min_drop`` decades (a 1.26× drop by default:
    cross-entropy losses keep an irreducible floor) or when the plateau is shorter than
    ``min_plateau`` × the logged span (a smooth decay has no plateau).

    Args:
        metrics: a DataFrame with ``step`` and ``loss`` columns, or an array of losses.
        loss: the column to use (e.g. ``"masked_mse"``).
        steps: the steps of an array input (default 0, 1, 2, …).
    """
    if isinstance(metrics, pd.DataFrame):
        if loss not in metrics or "step" not in metrics:
            raise ValueError(f"metrics needs 'step' and {loss!r} columns, has {list(metrics.columns)}")
        frame = metrics[["step", loss]].dropna().sort_values("step")
        steps, values = frame["step"].to_numpy(), frame[loss].to_numpy(dtype=float)
    else:
        values = np.asarray(metrics, dtype=float)
        steps = np.arange(len(values)) if steps is None else np.asarray(steps)
    if len(values) < 8:
        raise ValueError(f"need at least 8 logged points to find a transition, got {len(values)}")
    if np.any(values <= 0):
        raise ValueError(f"{loss} must be positive to take its logarithm")
    for width in SMOOTHING_LADDER if smoothing is None else (smoothing,):
        found = _find_transition(np.asarray(steps), values, tolerance, min_drop, min_plateau, width)
        if found is not None:
            return found
    return None


SMOOTHING_LADDER = (0.03, 0.06, 0.12)


def _find_transition(steps: np.ndarray, values: np.ndarray, tolerance: float, min_drop: float,
                     min_plateau: float, smoothing: float) -> Transition | None:
    window = max(3, int(round(smoothing * len(values))) | 1)
    curve = _rolling_median(np.log10(values), window)
    half = max(1, window // 2)
    descent = np.full(len(curve), -np.inf)
    descent[half:-half] = curve[: -2 * half] - curve[2 * half :]
    drop_index = int(np.argmax(descent))
    final_level = float(np.median(curve[-max(2, len(curve) // 20):]))

    plateau_level = _modal_level(curve[: max(1, drop_index)], final_level, tolerance)
    for _ in range(3):  # refine the plateau level on the plateau itself
        band = tolerance * max(plateau_level - final_level, 1e-12)
        end = drop_index
        while end > 0 and curve[end] < plateau_level - band:
            end -= 1
        start = end
        while start > 0 and abs(curve[start - 1] - plateau_level) <= band:
            start -= 1
        plateau_level = float(np.median(curve[start : end + 1]))
    if plateau_level - final_level < min_drop:
        return None
    if steps[end] - steps[start] < min_plateau * (steps[-1] - steps[0]):
        return None
    band = tolerance * (plateau_level - final_level)
    after = np.nonzero(curve[drop_index:] <= final_level + band)[0]
    drop_end = drop_index + int(after[0]) if len(after) else len(curve) - 1
    return Transition(
        plateau_start=int(steps[start]), plateau_end=int(steps[end]),
        drop_step=int(steps[drop_index]), drop_end=int(steps[drop_end]),
        plateau_loss=float(10**plateau_level), final_loss=float(10**final_level),
    )
