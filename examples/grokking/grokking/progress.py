"""Nanda et al. 2023's progress measures for grokking ("Progress measures for grokking via
mechanistic interpretability", arXiv 2301.05217, §5), over a run's checkpoints.

Notation: p the modulus, w_k = 2πk/p, logits L[(a, b), c] of the answer position over all
p² pairs (a-major rows). Their trained model computes c ≈ a + b through a few *key
frequencies* k: L[(a, b), c] ≈ Σ_k α_k cos(w_k(a + b − c)), i.e. for each output c a
combination of the two directions cos(w_k(a + b)) and sin(w_k(a + b)) over the pairs.

* :func:`embedding_frequency_norms`: ‖W_E‖² per frequency in the Fourier basis of the tokens
  0…p−1 (their Fig. 3 / "key frequencies of the embedding"); :func:`key_frequencies`: the
  ``n_key`` largest (they find 5 in their main run: 14, 35, 41, 42, 52).
* :func:`restricted_logits` / restricted loss: the logits projected onto the constant and the
  key frequencies' cos(w_k(a+b)), sin(w_k(a+b)) directions (every other component ablated);
  cross-entropy over **all** p² pairs. Deviation: their notebook does this projection on the
  MLP neurons' activations at the last position and maps them through W_out W_U (adding back
  the mean logits), so the direct and attention paths' key-frequency parts are dropped
  there and kept here; the issue's definition (project the logits) is the one implemented.
* :func:`excluded_logits` / excluded loss: the logits minus their key-frequency components;
  cross-entropy over the **training** pairs (it rises when the training fit comes to rely
  on the generalising Fourier circuit rather than on memorisation).

The key frequencies are those of the run's final checkpoint (as they fix theirs from the
final model), so earlier checkpoints are measured against the circuit the run ends with.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from einops import einsum, rearrange
from jaxtyping import Float, Int
from torch import Tensor


def fourier_basis(p: int) -> Float[Tensor, "basis p"]:
    """Orthonormal rows over Z_p: the constant 1/√p, then cos(w_k x), sin(w_k x) for
    k = 1…(p−1)/2, each scaled to unit norm (row 2k−1: cos k, row 2k: sin k). Odd p."""
    if p % 2 == 0:
        raise ValueError(f"the Fourier basis here needs an odd modulus p, got {p}")
    x = torch.arange(p, dtype=torch.float64)
    rows = [torch.ones(p, dtype=torch.float64)]
    for k in range(1, (p - 1) // 2 + 1):
        rows += [torch.cos(2 * math.pi * k * x / p), torch.sin(2 * math.pi * k * x / p)]
    basis = torch.stack(rows)
    return basis / basis.norm(dim=1, keepdim=True)


def embedding_frequency_norms(W_E: Float[Tensor, "p d_model"]) -> Float[Tensor, "n_freq"]:
    """‖(B W_E)_cos k‖² + ‖(B W_E)_sin k‖² for k = 1…(p−1)/2 (B: :func:`fourier_basis`), the
    energy of the token embedding (tokens 0…p−1 only, not "=") at each frequency."""
    p = W_E.shape[0]
    coefficients = fourier_basis(p) @ W_E.double()
    per_row = coefficients.pow(2).sum(-1)[1:]
    return rearrange(per_row, "(k two) -> k two", two=2).sum(-1)


def key_frequencies(W_E: Float[Tensor, "p d_model"], n_key: int = 5) -> list[int]:
    """The ``n_key`` frequencies (1…(p−1)/2) with the most embedding energy, ascending."""
    norms = embedding_frequency_norms(W_E)
    if not 1 <= n_key <= len(norms):
        raise ValueError(f"n_key must be in [1, {len(norms)}], got {n_key}")
    return sorted((norms.topk(n_key).indices + 1).tolist())


def key_energy_fraction(W_E: Float[Tensor, "p d_model"], keys: list[int]) -> float:
    """Share of the embedding's non-constant Fourier energy in the ``keys`` frequencies
    (1 = an embedding made of those frequencies alone)."""
    norms = embedding_frequency_norms(W_E)
    return (norms[[k - 1 for k in keys]].sum() / norms.sum()).item()


def _key_directions(p: int, keys: list[int]) -> Float[Tensor, "direction pair"]:
    """Unit vectors cos(w_k(a+b)), sin(w_k(a+b)) over the p² pairs (a-major), per key k."""
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    total = rearrange((a + b).double(), "a b -> (a b)")
    directions = []
    for k in keys:
        if not 1 <= k <= (p - 1) // 2:
            raise ValueError(f"key frequencies must be in [1, {(p - 1) // 2}], got {k}")
        for wave in (torch.cos, torch.sin):
            vector = wave(2 * math.pi * k * total / p)
            directions.append(vector / vector.norm())
    return torch.stack(directions)


def _check_grid(logits: Tensor, p: int) -> None:
    if logits.ndim != 2 or logits.shape[0] != p * p:
        raise ValueError(f"logits must be [p², d_vocab_out] = [{p * p}, …] over all pairs, "
                         f"got shape {tuple(logits.shape)}")


def key_components(logits: Float[Tensor, "pair c"], p: int, keys: list[int]) -> Float[Tensor, "pair c"]:
    """The part of each output column of ``logits`` in the span of the key directions."""
    _check_grid(logits, p)
    directions = _key_directions(p, keys)
    weights = einsum(directions, logits.double(), "dir pair, pair c -> dir c")
    return einsum(directions, weights, "dir pair, dir c -> pair c")


def restricted_logits(logits: Float[Tensor, "pair c"], p: int, keys: list[int]) -> Float[Tensor, "pair c"]:
    """The mean logit of each output (the constant component) plus the key components."""
    return logits.double().mean(0, keepdim=True) + key_components(logits, p, keys)


def excluded_logits(logits: Float[Tensor, "pair c"], p: int, keys: list[int]) -> Float[Tensor, "pair c"]:
    """The logits without their key components."""
    return logits.double() - key_components(logits, p, keys)


@torch.no_grad()
def all_pair_logits(network: torch.nn.Module, task) -> Float[Tensor, "pair c"]:
    """Answer logits over all p² pairs (a-major) of a network mapping ids to logits."""
    inputs = task.full_dataset().inputs.to(next(network.parameters()).device)
    return network(inputs)[:, -1, :].double().cpu()


@torch.no_grad()
def progress_measures(network: torch.nn.Module, task, keys: list[int]) -> dict[str, float]:
    """One checkpoint's measures (``network``: the native network, e.g. ``run.network(step)``
    or ``PlateauModel.network``; its ``tok_embed.weight`` is W_E): restricted loss (all
    pairs), excluded loss (training pairs), the embedding's key energy fraction, the sum of
    squared weights (their 4th measure, what weight decay shrinks), and train/test loss on
    the same logits for comparison."""
    p = task.p
    logits = all_pair_logits(network, task)
    answers = task.full_dataset().answers[:, 0]
    train_rows = task.split_indices("train")
    test_rows = task.split_indices("test")
    W_E = network.tok_embed.weight.detach()[:p]
    excluded = excluded_logits(logits, p, keys)
    return {
        "restricted_loss": F.cross_entropy(restricted_logits(logits, p, keys), answers).item(),
        "excluded_loss": F.cross_entropy(excluded[train_rows], answers[train_rows]).item(),
        "train_loss": F.cross_entropy(logits[train_rows], answers[train_rows]).item(),
        "test_loss": F.cross_entropy(logits[test_rows], answers[test_rows]).item(),
        "key_energy_fraction": key_energy_fraction(W_E, keys),
        "sum_squared_weights": sum(param.detach().double().pow(2).sum().item()
                                   for param in network.parameters()),
    }


def progress_over_run(run_dir: str | Path, n_key: int = 5, steps: list[int] | None = None) -> tuple[pd.DataFrame, list[int]]:
    """Tidy frame (one row per checkpoint step) of :func:`progress_measures`, with the key
    frequencies of the run's last checkpoint; returns (frame, keys)."""
    from plateau_lens import load_run

    run = load_run(run_dir)
    available = run.steps
    if not available:
        raise ValueError(f"{run_dir} has no checkpoints")
    task = run.task
    final = run.network(available[-1])
    keys = key_frequencies(final.tok_embed.weight.detach()[:task.p], n_key)
    rows = [{"step": step, **progress_measures(run.network(step), task, keys)}
            for step in (steps if steps is not None else available)]
    return pd.DataFrame(rows), keys
