"""Test support: plateau-lens models with every weight moved off its init, the matching
independent reference forward (``tests/reference``, float64, written from the equations),
and the task metrics computed directly from an output tensor (not through plateau-lens)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from plateau_lens import ModelConfig, build_model
from plateau_lens.tasks import step_generator
from reference import RefConfig, forward, weights_from_state_dict


def perturbed_model(task, config: ModelConfig, seed: int = 0, sharpen: float = 2.0):
    """A PlateauModel with every weight redrawn far from its init: LN weights 1 + N(0, 0.3²),
    every bias N(0, 0.3²), embeddings N(0, 1), linear weights N(0, 1/fan_in), Q and K times
    ``sharpen`` so that attention patterns are far from uniform."""
    model = build_model((task, config), seed=seed)
    generator = torch.Generator().manual_seed(1000 + seed)
    with torch.no_grad():
        for name, parameter in model.network.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            if parameter.ndim == 1 and name.endswith("weight"):  # LayerNorm gains
                parameter.copy_(1 + 0.3 * noise)
            elif parameter.ndim == 1:
                parameter.copy_(0.3 * noise)
            elif name.startswith(("tok_embed", "pos")):
                parameter.copy_(noise)
            else:
                parameter.copy_(noise / parameter.shape[1] ** 0.5)
            if name.endswith(("attn.q.weight", "attn.k.weight")):
                parameter.mul_(sharpen)
    return model.eval()


def reference_config(model) -> RefConfig:
    task, config = model.task, model.config
    return RefConfig(
        n_layers=config.n_layers, n_heads=config.n_heads, d_model=config.d_model,
        d_mlp=config.resolved_d_mlp, attention=config.attention,
        causal=task.attention_dir == "causal", act_fn=config.act_fn, eps=config.layer_norm_eps,
        norm="post" if config.architecture == "bert" else (
            "pre" if config.normalization == "layer_norm" else "none"),
        embedding="real" if getattr(task, "encoding", "tokens") == "real" else "tokens",
        pos=config.pos_embedding, m=getattr(task, "m", None), n=getattr(task, "n", None),
        mlp=not config.attn_only, tied=config.tied_embeddings, rotary_base=config.rotary_base)


def reference(model, inputs, edits=None):
    """(output, cache) of the reference forward with the model's weights and attention bias."""
    config = reference_config(model)
    weights = weights_from_state_dict(model.network.state_dict(), config)
    bias = model.attention_bias.multiplier
    return forward(weights, config, inputs, pattern_multiplier=None if bias is None else bias.double(),
                   edits=edits)


def lrmc_metrics(task, output, batch) -> dict[str, float]:
    """loss (MSE over all entries), masked_mse, observed_mse, masked_abs_pred, from scratch;
    the truth is X rounded to 2 decimals with the token encoding (the study's target)."""
    prediction = output[..., 0].double().reshape(len(batch), task.m, task.n)
    truth = batch.matrix.double()
    if task.encoding == "tokens":
        truth = torch.round(truth * 100) / 100
    masked = ~batch.observed
    squared = (prediction - truth) ** 2
    return {"loss": squared.mean().item(), "masked_mse": squared[masked].mean().item(),
            "observed_mse": squared[batch.observed].mean().item(),
            "masked_abs_pred": prediction[masked].abs().mean().item()}


def sequence_metrics(task, logits, batch) -> dict[str, float]:
    """Next-token cross-entropy over every position and teacher-forced answer accuracy."""
    targets = batch.tokens[:, 1:]
    loss = F.cross_entropy(logits.double().flatten(0, 1), targets.flatten())
    first = task.prompt_length - 1
    predicted = logits[:, first : first + task.answer_length].argmax(-1)
    accuracy = (predicted == batch.tokens[:, task.prompt_length:]).double().mean()
    return {"loss": loss.item(), "teacher_forced_accuracy": accuracy.item()}


def lrmc_gpt_metrics(task, logits, batch) -> dict[str, float]:
    """The GPT variant (masked matrix, SEP = 404, full matrix; value token t = 201 + 100·x):
    the sequence metrics, and teacher-forced accuracy and value MSE split by whether the
    prompt showed the entry (a predicted non-value token counts as value 0)."""
    row = sequence_metrics(task, logits, batch)
    size = task.m * task.n
    predicted = logits[:, size : 2 * size].argmax(-1)
    answers = batch.tokens[:, size + 1 :]
    observed = batch.tokens[:, :size] != 0
    correct = (predicted == answers).double()

    def value(tokens):
        is_value = (tokens >= 1) & (tokens <= 401)
        return torch.where(is_value, (tokens.double() - 201) / 100, torch.zeros((), dtype=torch.float64))

    squared = (value(predicted) - value(answers)) ** 2
    return row | {"observed_accuracy": correct[observed].mean().item(),
                  "masked_accuracy": correct[~observed].mean().item(),
                  "observed_mse": squared[observed].mean().item(),
                  "masked_mse": squared[~observed].mean().item()}


def task_metrics(task, output, batch) -> dict[str, float]:
    if task.name == "lrmc":
        return lrmc_metrics(task, output, batch)
    if task.name == "lrmc_gpt":
        return lrmc_gpt_metrics(task, output, batch)
    return sequence_metrics(task, output, batch)


def sample(task, size: int, seed: int = 0):
    return task.sample(size, step_generator(seed, 0))
