"""Onset order: when each curve starts to move, and its lead or lag on the loss drop.

Change points come from ``ruptures`` (Truong, Oudre & Vayatis 2020): an exact dynamic
programme (``ruptures.Dynp``) over a *continuous piecewise-linear* fit (cost ``"clinear"``).
A curve that sits on a plateau, changes, and settles is three linear pieces; its first
breakpoint is the **onset** (where it leaves the plateau), its second the **end** of the change.
Chen et al. (2023, arXiv 2309.07311) order structure onsets before capability onsets the same
way (a measure's first sharp change against the loss's); Olsson et al. (2022) date the
induction-head phase change by the step where the head score rises.

Steps may be unevenly spaced (log-spaced early checkpoints): each curve is linearly
interpolated onto ``grid_points`` evenly spaced steps before the fit, so a segment's length is
counted in steps, not in checkpoints. A schedule spread over decades (Pythia's 0, 1, 2, 4, …,
512, 1000, …) is instead interpolated onto a grid evenly spaced in log(1 + step)
(``log_steps=True``; the report sets it where :func:`plateau_lens.plots.log_spaced` holds): on a
linear grid its first nine checkpoints would share the first 15 % of the span and an early
change could not be dated.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd
from jaxtyping import Float

MIN_CURVE_POINTS = 6
"""Fewer checkpoints cannot show a plateau, a change and a final level (two points each)."""


def change_points(steps: Float[np.ndarray, "n"], values: Float[np.ndarray, "n"],
                  n_breakpoints: int = 2, grid_points: int = 100,
                  min_fraction: float = 0.03, jump: int = 2, log_steps: bool = False
                  ) -> list[int]:
    """The ``n_breakpoints`` change points of one curve, as steps (ascending).

    The curve is interpolated onto ``grid_points`` evenly spaced steps, standardised, and fitted
    by ``ruptures.Dynp(model="clinear")`` (continuous piecewise linear, exact) with segments of
    at least ``min_fraction`` of the span, breakpoints on every ``jump``-th grid point (so the
    resolution is ``jump / grid_points`` of the span: 2 % by default). With ``log_steps`` the grid
    is evenly spaced in log(1 + step) instead (resolution 2 % of the log span: about ×1.18 in
    1 + step over 0 to 3 500; steps must be >= 0). Raises ``ValueError`` for fewer than
    :data:`MIN_CURVE_POINTS` finite points or ``n_breakpoints`` < 1."""
    import ruptures

    if n_breakpoints < 1:
        raise ValueError(f"n_breakpoints must be >= 1, got {n_breakpoints}")
    if not 0 < min_fraction < 0.5:
        raise ValueError(f"min_fraction must be in (0, 0.5), got {min_fraction}")
    steps, values = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    if steps.shape != values.shape or steps.ndim != 1:
        raise ValueError(f"steps and values must be 1-d of one length, got {steps.shape} and "
                         f"{values.shape}")
    finite = np.isfinite(values) & np.isfinite(steps)
    steps, values = steps[finite], values[finite]
    order = np.argsort(steps)
    steps, values = steps[order], values[order]
    if len(steps) < MIN_CURVE_POINTS or steps[-1] <= steps[0]:
        raise ValueError(f"a change point needs at least {MIN_CURVE_POINTS} finite points over "
                         f"more than one step, got {len(steps)}")
    if log_steps:
        if steps[0] < 0:
            raise ValueError(f"log_steps needs steps >= 0, got {steps[0]:g}")
        grid = np.expm1(np.linspace(np.log1p(steps[0]), np.log1p(steps[-1]), grid_points))
        signal = np.interp(np.log1p(grid), np.log1p(steps), values)
    else:
        grid = np.linspace(steps[0], steps[-1], grid_points)
        signal = np.interp(grid, steps, values)
    spread = signal.std()
    signal = (signal - signal.mean()) / (spread if spread > 0 else 1.0)
    min_size = max(2, int(min_fraction * grid_points))
    fit = ruptures.Dynp(model="clinear", min_size=min_size, jump=jump).fit(signal[:, None])
    indices = fit.predict(n_bkps=n_breakpoints)[:-1]  # the last entry is len(signal)
    return [int(round(grid[i])) for i in indices]


def curve_onset(steps, values, **kwargs) -> dict:
    """``onset_step`` and ``end_step`` (first and last change points of :func:`change_points`),
    ``change`` = the curve's mean over its last segment minus over its first (sign = direction),
    in the curve's own units."""
    steps, values = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    points = change_points(steps, values, **kwargs)
    first = values[steps <= points[0]]
    last = values[steps >= points[-1]]
    return {"onset_step": points[0], "end_step": points[-1],
            "change": float(np.nanmean(last) - np.nanmean(first))}


def onset_table(curves: pd.DataFrame, transition=None, reference: str = "plateau_end",
                **kwargs) -> pd.DataFrame:
    """One row per measure (and ``seed``, if ``curves`` has one): its onset step, end step,
    change, and ``lead_steps`` = the reference step minus the onset (positive: the measure
    moves *before* the loss drop). Measures with too few points get NA and a ``note``.

    Args:
        curves: tidy frame with ``measure``, ``step``, ``value`` (and optionally ``seed``).
        transition: a :class:`~plateau_lens.transition.Transition`, or ``{seed: Transition}``;
            ``None`` (or a seed without one) leaves ``lead_steps`` NA.
        reference: the transition's field the lead is counted from: ``"plateau_end"`` (the
            last plateau step, default) or ``"drop_step"`` (steepest descent).
        kwargs: passed to :func:`change_points`.
    """
    missing = {"measure", "step", "value"} - set(curves.columns)
    if missing:
        raise ValueError(f"curves needs columns measure, step, value; missing {sorted(missing)}")
    if reference not in ("plateau_end", "drop_step"):
        raise ValueError(f"reference must be 'plateau_end' or 'drop_step', got {reference!r}")
    keys = ["seed", "measure"] if "seed" in curves else ["measure"]
    rows = []
    for key, group in curves.groupby(keys, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        labels = dict(zip(keys, key))
        found = transition.get(labels.get("seed")) if isinstance(transition, Mapping) else transition
        group = group.groupby("step", as_index=False)["value"].mean()
        try:
            onset = curve_onset(group["step"], group["value"], **kwargs)
            note = ""
        except ValueError as error:
            onset = {"onset_step": None, "end_step": None, "change": None}
            note = str(error)
        reference_step = None if found is None else getattr(found, reference)
        lead = (None if reference_step is None or onset["onset_step"] is None
                else reference_step - onset["onset_step"])
        rows.append({**labels, **onset, "reference_step": reference_step, "lead_steps": lead,
                     "note": note})
    table = pd.DataFrame(rows)
    for column in ("onset_step", "end_step", "reference_step", "lead_steps"):
        table[column] = table[column].astype("Int64")
    return table.sort_values([*keys[:-1], "onset_step", "measure"], na_position="last",
                             ignore_index=True)


def onset_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Across seeds: per measure, the number of seeds, mean / min / max lead in steps, and in
    how many seeds the measure moved before the reference (``lead_steps`` > 0)."""
    grouped = table.dropna(subset=["lead_steps"]).groupby("measure")["lead_steps"]
    return pd.DataFrame({"seeds": grouped.size(), "mean_lead": grouped.mean(),
                         "min_lead": grouped.min(), "max_lead": grouped.max(),
                         "seeds_leading": grouped.apply(lambda s: int((s > 0).sum()))}
                        ).reset_index().sort_values("mean_lead", ascending=False, ignore_index=True)
