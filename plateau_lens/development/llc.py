"""Local learning coefficient (LLC) over checkpoints, sampled with devinterp's SGLD.

The LLC λ(w*) (Lau, Furman, Wang, Murfet & Wei 2023, arXiv 2308.12108; used for stages by
Hoogland et al. 2024, arXiv 2402.02364) is estimated as

    λ̂(w*) = nβ · ( E_w[ L_m(w) ] − L_n(w*) ),

the expectation over the localized tempered posterior ∝ exp(−nβ L_n(w) − γ/2 ‖w − w*‖²),
sampled by SGLD (``devinterp.slt.sampler.sample_single_chain`` with
``devinterp.optim.SGMCMC.sgld``: devinterp's own sampler, no SGLD written here). L_m is the
minibatch loss at each draw after burn-in, L_n(w*) the loss of the checkpoint on the whole
evaluation set. The loss is the task's training loss (LRMC: MSE over all entries; GPT tasks
and LLMs: next-token cross-entropy): any ``loss(network, indices) -> scalar``.

Trust the number only when the chains' loss traces are flat after burn-in and every chain's
estimate is positive (:func:`plateau_lens.development.calibration.llc_calibration` sweeps step
sizes and nβ on one checkpoint and picks a setting by a stated rule).
"""

from __future__ import annotations

import functools
import gc
import math
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm


@dataclass(frozen=True)
class LLCSettings:
    """SGLD settings: step size ε (``lr``), inverse temperature ``nbeta`` (None: devinterp's
    default n/log n for the batch size m, ``devinterp.utils.default_nbeta``), localization γ,
    chains, draws after ``burnin`` steps, minibatch size m. ε = 1e-3 is what
    :func:`~plateau_lens.development.calibration.llc_calibration` chooses at these settings on
    MWS checkpoints before and after the drop (docs/development.md, Findings)."""

    lr: float = 1e-3
    nbeta: float | None = None
    localization: float = 100.0
    chains: int = 2
    draws: int = 60
    burnin: int = 20
    batch_size: int = 64

    def __post_init__(self):
        for name in ("lr", "localization"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"LLCSettings.{name} must be a finite number >= 0, got {value!r}")
        if self.lr <= 0:
            raise ValueError(f"LLCSettings.lr must be > 0, got {self.lr}")
        if self.nbeta is not None and not self.nbeta > 0:
            raise ValueError(f"LLCSettings.nbeta must be > 0 or None, got {self.nbeta!r}")
        for name in ("chains", "draws", "batch_size"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ValueError(f"LLCSettings.{name} must be an int >= 1, got {getattr(self, name)!r}")
        if not (isinstance(self.burnin, int) and self.burnin >= 0):
            raise ValueError(f"LLCSettings.burnin must be an int >= 0, got {self.burnin!r}")

    def resolved_nbeta(self) -> float:
        from devinterp.utils import default_nbeta

        return float(self.nbeta) if self.nbeta is not None else float(default_nbeta(self.batch_size))


@dataclass(frozen=True)
class LLCEstimate:
    """``llc``: mean over chains; ``llc_std``: their standard deviation; ``per_chain``;
    ``trace``: tidy (chain, draw, loss) minibatch losses after burn-in; ``init_loss`` = L_n(w*)."""

    llc: float
    llc_std: float
    per_chain: np.ndarray
    trace: pd.DataFrame
    init_loss: float
    nbeta: float


class _Indices(torch.utils.data.Dataset):
    """Examples by index: devinterp's loader hands ``{"input_ids": indices}`` to the loss."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict:
        return {"input_ids": torch.tensor(index)}


class _Sampled(torch.nn.Module):
    """The sampled copy's container: devinterp treats any module with ``cfg.n_heads`` as a
    TransformerLens model (``.to(device, print_details=False)``), which our native networks
    and HF models do not accept; this plain wrapper calls the network unchanged."""

    def __init__(self, network: torch.nn.Module):
        super().__init__()
        self.network = network

    def forward(self, *args, **kwargs):
        return self.network(*args, **kwargs)


@contextmanager
def _tqdm_bars(shown: bool):
    """devinterp draws one tqdm bar per chain (``devinterp.slt.sampler.trange``) and has no
    option against it: with ``shown`` False, that name is bound to ``trange(...,
    disable=True)`` for the block and restored after. (tqdm's ``TQDM_DISABLE`` is read when
    tqdm is imported, not per bar.)"""
    if shown:
        yield
        return
    from devinterp.slt import sampler

    original = sampler.trange
    sampler.trange = functools.partial(original, disable=True)
    try:
        yield
    finally:
        sampler.trange = original


def estimate_llc(network: torch.nn.Module, loss: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor],
                 n_examples: int, settings: LLCSettings = LLCSettings(), seed: int = 0,
                 device: str = "cpu", progress: bool = True) -> LLCEstimate:
    """λ̂ at ``network``'s weights (module docstring). ``loss(network, indices)`` is the mean loss
    of the evaluation examples ``indices`` (a 1-d long tensor) under ``network``'s weights;
    devinterp samples a copy, ``network`` is not changed. ``progress=False`` hides devinterp's
    per-chain bars."""
    from devinterp.optim.sgmcmc import SGMCMC
    from devinterp.slt.sampler import sample_single_chain

    if n_examples < settings.batch_size:
        raise ValueError(f"n_examples ({n_examples}) must be >= settings.batch_size "
                         f"({settings.batch_size})")
    nbeta = settings.resolved_nbeta()
    with torch.no_grad():
        init_loss = float(loss(network, torch.arange(n_examples, device=device)))
    draws: list[tuple[int, int, float]] = []

    def on_draw(*, loss, draw, chain, **_):
        draws.append((chain, draw, float(loss.mean())))

    def evaluate(model, data):
        return loss(model, data["input_ids"]), {}

    sampled = _Sampled(network)
    params = {name: None for name, _ in sampled.named_parameters()}
    # devinterp runs gc.collect() twice per chain; with torch, transformers and pandas loaded
    # that full collection scans millions of objects (seconds each on a loaded core, the
    # largest cost of a cheap estimate). Freezing the objects that exist now moves them out
    # of the collector's scans for the sampling; new garbage is still collected.
    gc.freeze()
    try:
        with _tqdm_bars(progress):
            for chain in range(settings.chains):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # devinterp's nbeta advice
                    sample_single_chain(
                        sampled, _Indices(n_examples), evaluate, params, num_draws=settings.draws,
                        num_burnin_steps=settings.burnin, sampling_method=SGMCMC.sgld,
                        sampling_method_kwargs={"lr": settings.lr, "nbeta": nbeta,
                                                "localization": settings.localization},
                        chain=chain, seed=seed + chain, dataloader_seed=seed + chain, device=device,
                        callbacks=[on_draw], batch_size=settings.batch_size)
    finally:
        gc.unfreeze()
    trace = pd.DataFrame(draws, columns=["chain", "draw", "loss"])
    if trace.empty or trace.groupby("chain").size().min() < settings.draws:
        failed = settings.chains - trace["chain"].nunique() if len(trace) else settings.chains
        raise RuntimeError(f"SGLD diverged (non-finite loss) in {failed} chain(s) at lr "
                           f"{settings.lr}: lower LLCSettings.lr or raise localization")
    per_chain = nbeta * (trace.groupby("chain")["loss"].mean().to_numpy() - init_loss)
    return LLCEstimate(float(per_chain.mean()), float(per_chain.std()), per_chain, trace,
                       init_loss, nbeta)


def task_loss(model, batch) -> Callable[[torch.nn.Module, torch.Tensor], torch.Tensor]:
    """``loss(network, indices)`` = the task's training loss on ``batch[indices]`` (a
    PlateauModel's task: LRMC MSE, GPT tasks cross-entropy)."""
    task = model.task

    def loss(network, indices):
        rows = batch[indices.cpu()]
        return task.loss(network(rows.inputs), rows)

    return loss


def token_loss(tokens: torch.Tensor) -> Callable[[torch.nn.Module, torch.Tensor], torch.Tensor]:
    """``loss(network, indices)`` = next-token cross-entropy of a causal LM (HF-style output
    with ``.logits``, or a logits tensor) on ``tokens[indices]``."""

    def loss(network, indices):
        rows = tokens[indices.cpu()]
        output = network(rows)
        logits = getattr(output, "logits", output)
        return torch.nn.functional.cross_entropy(logits[:, :-1].float().flatten(0, 1),
                                                 rows[:, 1:].flatten())

    return loss


def batch_size_of(batch) -> int:
    return len(batch) if isinstance(batch, torch.Tensor) else len(batch.inputs)


def llc_over_checkpoints(models: Iterable[tuple[int, object]], batch,
                         settings: LLCSettings = LLCSettings(), seed: int = 0,
                         progress: bool = True, total: int | None = None
                         ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(estimates, traces): per step λ̂, its chain std and L_n(w*) (tidy: step, llc, llc_std,
    init_loss, nbeta), and every chain's loss trace (step, chain, draw, loss). ``models``:
    ``(step, PlateauModel)`` pairs (the task's loss on ``batch``) or ``(step, HF causal LM)``
    (``AutoModelForCausalLM``) with a token tensor ``batch``."""
    estimates, traces = [], []
    for step, model in tqdm(models, total=total, desc="LLC", disable=not progress):
        if isinstance(batch, torch.Tensor):  # a causal LM: a plain HF model (a bridge's
            # original_model holds non-leaf weights that devinterp's deepcopy refuses)
            network = model if isinstance(model, torch.nn.Module) else model.bridge.original_model
            loss = token_loss(batch)
        else:
            network, loss = model.network, task_loss(model, batch)
        result = estimate_llc(network, loss, batch_size_of(batch), settings, seed,
                              progress=progress)
        estimates.append({"step": step, "llc": result.llc, "llc_std": result.llc_std,
                          "init_loss": result.init_loss, "nbeta": result.nbeta,
                          "negative_chains": int((result.per_chain < 0).sum())})
        traces.append(result.trace.assign(step=step))
    return pd.DataFrame(estimates), pd.concat(traces, ignore_index=True)[["step", "chain", "draw", "loss"]]


def plot_llc(estimates: pd.DataFrame, traces: pd.DataFrame, transition=None, title: str = ""):
    """Left: λ̂ against the step (error bars: std over chains), the loss drop dashed. Right: the
    loss trace of every chain at every estimated step (draw after burn-in), coloured by step."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4), layout="constrained")
    left, right = figure.subplots(1, 2)
    left.errorbar(estimates["step"], estimates["llc"], yerr=estimates["llc_std"], marker="o",
                  ms=3, capsize=2, label="LLC estimate (± std over chains)")
    if transition is not None:
        left.axvline(transition.drop_step, color="black", ls="--", lw=1, label="loss drop")
    from ..plots import step_axis

    step_axis(left, estimates["step"], "training step")
    left.set_ylabel("local learning coefficient λ̂")
    left.legend(fontsize=8)
    left.set_title("LLC over training (devinterp SGLD)")
    norm = Normalize(traces["step"].min(), traces["step"].max())
    cmap = colormaps["viridis"]
    for (step, chain), group in traces.groupby(["step", "chain"]):
        right.plot(group["draw"], group["loss"], color=cmap(norm(step)), lw=0.7, alpha=0.8)
    figure.colorbar(ScalarMappable(norm, cmap), ax=right, label="checkpoint step")
    right.set_xlabel("SGLD draw (after burn-in)")
    right.set_ylabel("minibatch loss")
    right.set_yscale("log")
    right.set_title("sampler loss traces (one line per chain)")
    if title:
        figure.suptitle(title)
    return figure
