"""Find the plateau and the drop in a loss curve, from the curve alone."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Transition:
    """Steps of an abrupt transition and the loss levels around it.

    ``plateau_start``: the curve first comes down to within ``tolerance`` (a fraction of the
    drop, in log10 units; at least the smoothed curve's own scatter) of the plateau level;
    ``plateau_end``: last step before the drop within ``tolerance`` of it; ``drop_step``:
    steepest descent between the plateau's end and the first crossing of the halfway level;
    ``drop_end``: first step after it within ``tolerance`` of the final level.
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

    def describe(self) -> str:
        """One line for people: "steps a–b at loss L; steepest drop at step s; drop over by
        step e (loss F)" (losses to 4 significant digits)."""
        return (f"steps {self.plateau_start}–{self.plateau_end} at loss {self.plateau_loss:.4g}; "
                f"steepest drop at step {self.drop_step}; drop over by step {self.drop_end} "
                f"(loss {self.final_loss:.4g})")


def _rolling_median(values: np.ndarray, window: int) -> np.ndarray:
    return pd.Series(values).rolling(window, center=True, min_periods=1).median().to_numpy()


def _smoothed_scatter(log_values: np.ndarray, window: int) -> float:
    """Standard deviation of a rolling median of ``window`` points of the curve's
    point-to-point noise: σ from successive differences (1.4826 · MAD / √2, blind to slow
    trends) times √(π/2) / √window."""
    differences = np.diff(log_values)
    sigma = 1.4826 * np.median(np.abs(differences - np.median(differences))) / np.sqrt(2)
    return float(sigma * np.sqrt(np.pi / 2 / window))


def _modal_level(before: np.ndarray, final_level: float, tolerance: float, scatter: float) -> float:
    """The level where the curve spends most points before the drop (the plateau), in bins
    no narrower than the curve's own ``scatter``."""
    width = max(tolerance * (before.max() - final_level), scatter, 1e-6)
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
    band of a 2× drop). Final level = median of the last 5 % of the curve; plateau level =
    the modal level before the steepest descent; Δ = their difference. The plateau runs from
    the curve's first arrival within ``tolerance``·Δ (or 3σ of the smoothed noise, if larger)
    of its level to the last step within ``tolerance``·Δ before the descent. The drop step is
    the steepest descent between the plateau's end and the first crossing of the halfway
    level, so a drop in two phases is dated by its first; the drop ends when the curve first
    comes within ``tolerance``·Δ of the final level. Returns ``None`` when Δ < ``min_drop``
    decades (a 1.26× drop by default: cross-entropy losses keep an irreducible floor) or when
    the plateau is shorter than ``min_plateau`` × the logged span (a smooth decay has no
    plateau).

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
    if len(values) < MIN_POINTS:
        raise ValueError(f"need at least {MIN_POINTS} logged points to find a transition, got {len(values)}")
    if np.any(values <= 0):
        raise ValueError(f"{loss} must be positive to take its logarithm")
    for width in SMOOTHING_LADDER if smoothing is None else (smoothing,):
        found = _find_transition(np.asarray(steps), values, tolerance, min_drop, min_plateau, width)
        if found is not None:
            return found
    return None


SMOOTHING_LADDER = (0.03, 0.06, 0.12)
MIN_POINTS = 8  # fewer logged points cannot show a plateau, a drop and a final level


def _find_transition(steps: np.ndarray, values: np.ndarray, tolerance: float, min_drop: float,
                     min_plateau: float, smoothing: float) -> Transition | None:
    window = max(3, int(round(smoothing * len(values))) | 1)
    curve = _rolling_median(np.log10(values), window)
    half = max(1, window // 2)
    descent = np.full(len(curve), -np.inf)
    descent[half:-half] = curve[: -2 * half] - curve[2 * half :]
    steepest = int(np.argmax(descent))
    final_level = float(np.median(curve[-max(2, len(curve) // 20):]))

    # noise left in the smoothed curve (3 standard deviations of a median of `window`
    # points): the plateau's level and extent tolerate excursions this small even when the
    # tolerance band of a small drop is narrower
    scatter = 3 * _smoothed_scatter(np.log10(values), window)
    plateau_level = _modal_level(curve[: max(1, steepest)], final_level, tolerance, scatter)
    for _ in range(3):  # refine the plateau level on the plateau itself
        band = tolerance * max(plateau_level - final_level, 1e-12)
        end = steepest
        while end > 0 and curve[end] < plateau_level - band:
            end -= 1
        # the plateau starts where the curve first comes down to within the band (or the
        # curve's own scatter) of the plateau level; later excursions do not cut it short
        start = int(np.argmax(curve[: end + 1] <= plateau_level + max(band, scatter)))
        plateau_level = float(np.median(curve[start : end + 1]))
    # the drop is the steepest descent between the plateau's end and the curve's first
    # crossing of the halfway level (in log): a later, steeper descent of a drop in two
    # phases (a step, a slow stretch, another step) is not where the plateau ended
    halfway = np.nonzero(curve[end:] <= (plateau_level + final_level) / 2)[0]
    crossing = end + int(halfway[0]) if len(halfway) else steepest
    drop_index = end + int(np.argmax(descent[end : max(crossing, end) + 1]))
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
