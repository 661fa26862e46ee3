"""Optimizers and learning-rate schedules of the loss-plateau study's training variants.

* ``adam`` (default): ``torch.optim.Adam`` (``src/train_mws.py``).
* ``sgd``: plain ``torch.optim.SGD`` (``src/train_mws_sgd.py``, Fig. 31).
* ``adamw``: ``torch.optim.AdamW`` with ``weight_decay`` on the weights of linear layers
  only — attention, MLP and the unembedding; biases, LayerNorms and the token and position
  embeddings are not decayed — as the study's ``GPTLinear.configure_optimizers`` ("only used
  for weight decay experiments", Figs. 36–40); with ``weight_decay_scope = "all"`` on every
  parameter (Nanda et al. 2023's grokking setup).
* ``adam``/``adamw`` take ``betas`` (default PyTorch's (0.9, 0.999)).
* ``muon``: :class:`MuonWithAuxAdamW` (``src/train_mws_muon.py``, Figs. 32–33): Muon on the
  2-D weights inside the transformer blocks (lr ``muon_lr``, decay ``muon_weight_decay``),
  AdamW on everything else (lr ``lr``, decay ``weight_decay``, betas (0.9, 0.95), eps
  1e-10), the hyper-parameters of the ``muon`` package's ``SingleDeviceMuonWithAuxAdam``
  that the authors use. Their parameter groups leave ``ln_f`` out of both groups (it stays
  at its init); ours train it with AdamW, as the optimizer's description (Muon for hidden
  matrices, AdamW for the rest) says.

Schedules (``LambdaLR`` factors of step s, the number of updates made before this one):
linear warm-up s / W for s < W — the study's (transformers' ``get_*_schedule_with_warmup``,
``src/train_mws_lr_schedule.py``), so the first update has learning rate 0 — then constant
(``schedule = "constant"``) or a half cosine down to 0 at ``steps`` (``"cosine"``).
"""

from __future__ import annotations

import math
import typing

import torch

from ..config.train import Optimizer, Schedule

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
"""Coefficients of the quintic Newton–Schulz iteration (Keller Jordan's Muon)."""


def _unbuilt(field: str, value: str, kind: typing.Any) -> ValueError:
    """A value the config's ``Literal`` allows but this module does not build (a value added
    to the ``Literal`` alone)."""
    return ValueError(f"train.{field} must be one of {list(typing.get_args(kind))}, got {value!r} "
                      f"(no implementation in plateau_lens.training.optimizers)")


def lr_factor(step: int, schedule: Schedule, warmup_steps: int, total_steps: int) -> float:
    """The multiplier of the base learning rate for the update made at ``step``."""
    if step < warmup_steps:
        return step / warmup_steps
    if schedule == "cosine":
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return max(0.0, 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))
    if schedule == "constant":
        return 1.0
    raise _unbuilt("schedule", schedule, Schedule)


def orthogonalize(matrix: torch.Tensor, steps: int = 5, eps: float = 1e-7,
                  dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """Approximately U Vᵀ for ``matrix`` = U S Vᵀ: ``steps`` quintic Newton–Schulz iterations
    X ← aX + (bA + cA²)X with A = XXᵀ, from X = G / ‖G‖_F, on the wide orientation, in
    ``dtype`` (bfloat16 like the reference implementations). The coefficients trade exactness
    for speed: singular values end up in roughly [0.7, 1.2] rather than at 1."""
    if matrix.ndim != 2:
        raise ValueError(f"orthogonalize needs a 2-D matrix, got shape {tuple(matrix.shape)}")
    a, b, c = NS_COEFFICIENTS
    tall = matrix.shape[0] > matrix.shape[1]
    x = matrix.to(dtype)
    if tall:
        x = x.T
    x = x / x.norm().clamp(min=eps)
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return (x.T if tall else x).to(matrix.dtype)


class MuonWithAuxAdamW(torch.optim.Optimizer):
    """Muon for the groups marked ``use_muon``, AdamW for the others, in one optimizer (one
    state dict, one ``LambdaLR``). Muon: momentum buffer B ← μB + g, Nesterov update
    g + μB, orthogonalized (:func:`orthogonalize`), scaled by √max(1, rows/cols), with
    decoupled weight decay: p ← p(1 − lr·wd) − lr·update. AdamW: bias-corrected moments,
    p ← p(1 − lr·wd) − lr·m̂ / (√v̂ + eps)."""

    def __init__(self, param_groups: list[dict], momentum: float = 0.95, nesterov: bool = True,
                 ns_steps: int = 5, betas: tuple[float, float] = (0.9, 0.95), eps: float = 1e-10):
        for group in param_groups:
            if "use_muon" not in group:
                raise ValueError("every parameter group needs a 'use_muon' flag")
            if group["use_muon"]:
                bad = [tuple(p.shape) for p in group["params"] if p.ndim != 2]
                if bad:
                    raise ValueError(f"Muon takes 2-D parameters only, got shapes {bad}")
        defaults = dict(lr=1e-3, weight_decay=0.0, momentum=momentum, nesterov=nesterov,
                        ns_steps=ns_steps, betas=betas, eps=eps)
        super().__init__(param_groups, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, decay = group["lr"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if group["use_muon"]:
                    if not state:
                        state["momentum_buffer"] = torch.zeros_like(p)
                    buffer = state["momentum_buffer"]
                    buffer.mul_(group["momentum"]).add_(p.grad)
                    direction = p.grad + group["momentum"] * buffer if group["nesterov"] else buffer
                    update = orthogonalize(direction, group["ns_steps"])
                    update = update * math.sqrt(max(1.0, p.shape[0] / p.shape[1]))
                else:
                    if not state:
                        state["step"] = 0
                        state["exp_avg"] = torch.zeros_like(p)
                        state["exp_avg_sq"] = torch.zeros_like(p)
                    state["step"] += 1
                    beta1, beta2 = group["betas"]
                    state["exp_avg"].lerp_(p.grad, 1 - beta1)
                    state["exp_avg_sq"].mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                    first = state["exp_avg"] / (1 - beta1 ** state["step"])
                    second = state["exp_avg_sq"] / (1 - beta2 ** state["step"])
                    update = first / (second.sqrt() + group["eps"])
                p.mul_(1 - lr * decay)
                p.add_(update, alpha=-lr)
        return loss


def _is_block_matrix(name: str, parameter: torch.nn.Parameter) -> bool:
    """A 2-D weight inside a transformer block (attention, MLP): Muon's "hidden" matrices."""
    return parameter.ndim == 2 and name.startswith("layers.")


def _decays(name: str, parameter: torch.nn.Parameter) -> bool:
    """minGPT's rule: weights of linear layers decay; biases, LayerNorm and embeddings do not."""
    return parameter.ndim == 2 and not name.startswith(("tok_embed.", "pos."))


def build_optimizer(network: torch.nn.Module, train, device: torch.device) -> torch.optim.Optimizer:
    """The optimizer ``train.optimizer`` names, over the trainable parameters."""
    optimizer: Optimizer = train.optimizer
    named = [(n, p) for n, p in network.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=train.lr)
    betas = tuple(train.betas)
    if optimizer == "adamw":
        if train.weight_decay_scope == "all":
            return torch.optim.AdamW(params, lr=train.lr, weight_decay=train.weight_decay, betas=betas)
        groups = [{"params": [p for n, p in named if _decays(n, p)], "weight_decay": train.weight_decay},
                  {"params": [p for n, p in named if not _decays(n, p)], "weight_decay": 0.0}]
        return torch.optim.AdamW([g for g in groups if g["params"]], lr=train.lr, betas=betas)
    if optimizer == "muon":
        hidden = [p for n, p in named if _is_block_matrix(n, p)]
        rest = [p for n, p in named if not _is_block_matrix(n, p)]
        groups = [dict(params=hidden, use_muon=True, lr=train.muon_lr,
                       weight_decay=train.muon_weight_decay),
                  dict(params=rest, use_muon=False, lr=train.lr, weight_decay=train.weight_decay)]
        return MuonWithAuxAdamW([g for g in groups if g["params"]])
    if optimizer == "adam":
        return torch.optim.Adam(params, lr=train.lr, betas=betas, fused=device.type == "cuda")
    raise _unbuilt("optimizer", optimizer, Optimizer)


def build_schedule(optimizer: torch.optim.Optimizer, train) -> torch.optim.lr_scheduler.LambdaLR:
    """``LambdaLR`` over :func:`lr_factor`; a schedule it does not build is refused here, at
    the first step past the warm-up, not when training gets there."""
    lr_factor(train.warmup_steps, train.schedule, train.warmup_steps, train.steps)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, train.schedule, train.warmup_steps, train.steps))
