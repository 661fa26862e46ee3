"""Calibration of the LLC sampler: a sweep over SGLD step size ε and inverse temperature nβ on
one checkpoint, each setting's diagnostics, and the setting a stated rule picks.

The estimator is Lau et al.'s λ̂ = nβ (E_w[L_m(w)] − L_n(w*)) (arXiv 2308.12108), sampled by
devinterp's SGLD (:func:`plateau_lens.development.llc.estimate_llc`). The diagnostics follow
devinterp's calibration advice and Hoogland et al. 2024 (arXiv 2402.02364, appendix on
hyperparameters): a trustworthy setting has chains that do not diverge, a loss trace that is
flat after burn-in (stationary), no negative estimate, and an estimate that does not change
when ε is made smaller (a too large ε inflates λ̂ by discretisation; a too small ε has not
mixed within the draws and underestimates it, with a trace still rising).

Selection rule (:func:`choose_llc_setting`), for each nβ over the sweep's ε in increasing order:

1. *usable*: no chain diverged, no chain's estimate is negative, and every chain's drift
   (|mean of the last third of its draws − mean of the first third| / the chain's trace
   std) is below 1;
2. ``change_to_next``: for two neighbouring usable step sizes ε < ε', the relative change
   |λ̂(ε') − λ̂(ε)| / max(|λ̂(ε)|, |λ̂(ε')|); the row is *stable* when it is ≤ ``agreement``;
3. *chosen*: of the first nβ (in the sweep's order) that has a stable row, the stable row
   with the smallest change: the flattest stretch of λ̂(ε), where the estimate depends least
   on the step size. Its smaller ε is taken: it carries less step-size bias, and its
   agreement with the larger ε shows it has mixed. None when no row is stable: no step size
   of the sweep can then be trusted, and the table says why.

On the known-answer regression (λ = d/2; tests/test_development.py) λ̂ rises with ε at every
step of a log grid (too small ε: not mixed; too large: discretisation and minibatch-noise
inflation), so "λ̂ stops changing" never holds exactly; the flattest stretch is where it is
right.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from .llc import LLCSettings, estimate_llc

SETTING_COLUMNS = ["lr", "nbeta", "llc", "llc_std", "negative_chains", "loss_first_third",
                   "loss_last_third", "max_drift", "diverged", "nonstationary", "usable",
                   "change_to_next", "stable", "chosen"]


@dataclass(frozen=True)
class LLCCalibration:
    """``table``: one row per (ε, nβ) with :data:`SETTING_COLUMNS` (λ̂ mean/std over chains,
    the trace's mean loss over the first and last third of the draws averaged over chains,
    the largest per-chain drift, the flags, and ``chosen``); ``traces``: tidy (lr, nbeta,
    chain, draw, loss); ``chosen``: the picked settings or None; ``reason``: why."""

    table: pd.DataFrame
    traces: pd.DataFrame
    chosen: LLCSettings | None
    reason: str


def chain_drift(trace: pd.DataFrame) -> pd.Series:
    """Per chain: |mean of the last third of the draws − mean of the first third| over the
    chain's trace standard deviation (0: flat; ≥ 1: still moving, not stationary)."""
    draws = trace["draw"].max() + 1

    def drift(chain: pd.DataFrame) -> float:
        first = chain.loc[chain["draw"] < draws / 3, "loss"].mean()
        last = chain.loc[chain["draw"] >= 2 * draws / 3, "loss"].mean()
        return float(abs(last - first) / max(chain["loss"].std(), 1e-12))

    return trace.groupby("chain")[["draw", "loss"]].apply(drift)


def choose_llc_setting(table: pd.DataFrame, agreement: float = 0.2) -> tuple[pd.DataFrame, int | None, str]:
    """Apply the module's selection rule to a sweep table (columns lr, nbeta, llc,
    negative_chains, max_drift, diverged): returns the table with ``nonstationary``,
    ``usable``, ``change_to_next``, ``stable`` and ``chosen``, the chosen row's index (or
    None) and the reason."""
    if not 0 < agreement < 1:
        raise ValueError(f"agreement must be in (0, 1), got {agreement!r}")
    table = table.copy()
    table["nonstationary"] = ~(table["max_drift"] < 1)
    table["usable"] = (~table["diverged"].astype(bool) & (table["negative_chains"] == 0)
                       & ~table["nonstationary"] & np.isfinite(table["llc"]))
    table["change_to_next"] = np.nan
    for _, group in table.groupby("nbeta", sort=False):
        ordered = group.sort_values("lr")
        for smaller, larger in zip(ordered.index[:-1], ordered.index[1:]):
            if table.at[smaller, "usable"] and table.at[larger, "usable"]:
                a, b = table.at[smaller, "llc"], table.at[larger, "llc"]
                table.at[smaller, "change_to_next"] = abs(b - a) / max(abs(a), abs(b), 1e-12)
    table["stable"] = table["change_to_next"] <= agreement
    table["chosen"] = False
    for nbeta in table["nbeta"].unique():  # the sweep's order: the caller's preference
        stable = table[(table["nbeta"] == nbeta) & table["stable"]]
        if len(stable):
            index = stable["change_to_next"].idxmin()
            table.at[index, "chosen"] = True
            row = table.loc[index]
            larger = table[(table["nbeta"] == nbeta) & (table["lr"] > row["lr"])]["lr"].min()
            return table, index, (
                f"ε = {row['lr']:g}, nβ = {nbeta:.3g}: chains finite, positive and flat (max "
                f"drift {row['max_drift']:.2f}); λ̂ = {row['llc']:.3g} changes least "
                f"({row['change_to_next']:.0%}, within {agreement:.0%}) to ε = {larger:g}")
    return table, None, (
        "no setting is stable (two neighbouring usable step sizes whose λ̂ agree within "
        f"{agreement:.0%}): widen the sweep, or lengthen burn-in and draws")


def llc_calibration(network: torch.nn.Module,
                    loss: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor],
                    n_examples: int, lrs: Sequence[float] = (1e-4, 1e-3, 1e-2),
                    nbetas: Sequence[float | None] = (None,),
                    settings: LLCSettings = LLCSettings(), seed: int = 0,
                    agreement: float = 0.2) -> LLCCalibration:
    """Estimate λ̂ at every (ε in ``lrs``) × (nβ in ``nbetas``; None: m/log m) with the rest of
    ``settings`` (chains, draws, burn-in, γ, m), on ``network``'s weights and ``loss``
    (as for :func:`~plateau_lens.development.llc.estimate_llc`), and pick one by the module's
    rule. ``nbetas`` is in order of preference."""
    lrs, nbetas = list(lrs), list(nbetas)
    if not lrs or not all(isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0 for lr in lrs):
        raise ValueError(f"lrs must be a non-empty list of finite numbers > 0, got {lrs!r}")
    if len(set(lrs)) != len(lrs):
        raise ValueError(f"lrs must not repeat a step size, got {lrs!r}")
    if not nbetas or not all(b is None or (isinstance(b, (int, float)) and b > 0) for b in nbetas):
        raise ValueError(f"nbetas must be a non-empty list of numbers > 0 or None, got {nbetas!r}")
    if not 0 < agreement < 1:
        raise ValueError(f"agreement must be in (0, 1), got {agreement!r}")
    rows, traces = [], []
    for nbeta in nbetas:
        for lr in sorted(lrs):
            setting = replace(settings, lr=lr, nbeta=nbeta)
            row = {"lr": lr, "nbeta": setting.resolved_nbeta()}
            try:
                result = estimate_llc(network, loss, n_examples, setting, seed)
            except RuntimeError:  # a chain's loss went non-finite
                rows.append(row | {"llc": np.nan, "llc_std": np.nan, "negative_chains": 0,
                                   "loss_first_third": np.nan, "loss_last_third": np.nan,
                                   "max_drift": np.nan, "diverged": True})
                continue
            trace = result.trace
            third = settings.draws / 3
            rows.append(row | {
                "llc": result.llc, "llc_std": result.llc_std,
                "negative_chains": int((result.per_chain < 0).sum()),
                "loss_first_third": float(trace.loc[trace["draw"] < third, "loss"].mean()),
                "loss_last_third": float(trace.loc[trace["draw"] >= 2 * third, "loss"].mean()),
                "max_drift": float(chain_drift(trace).max()),
                "diverged": not bool(np.isfinite(trace["loss"]).all())})
            traces.append(trace.assign(lr=lr, nbeta=result.nbeta))
    table, index, reason = choose_llc_setting(pd.DataFrame(rows), agreement)
    chosen = None if index is None else replace(settings, lr=float(table.at[index, "lr"]),
                                                nbeta=float(table.at[index, "nbeta"]))
    all_traces = (pd.concat(traces, ignore_index=True)[["lr", "nbeta", "chain", "draw", "loss"]]
                  if traces else pd.DataFrame(columns=["lr", "nbeta", "chain", "draw", "loss"]))
    return LLCCalibration(table[SETTING_COLUMNS], all_traces, chosen, reason)
