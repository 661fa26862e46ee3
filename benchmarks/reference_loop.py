"""The training loop both benchmarks time: plateau-lens' native network or a reference model in
the studies' style, one fresh batch per step, one Adam step.

The reference is what the studies' code does, re-expressed on stock `transformers` models:
LRMC = a BertModel (post-LN, absolute positions, dropout 0, the study's 2002-token input) with
a linear read-out and MSE over all entries; MWS = a GPT2LMHeadModel of the same size with
next-token cross-entropy.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

IMPLEMENTATIONS = ("reference", "plateau-lens")


def reference_model(task, model_config):
    import torch
    import transformers

    if task.readout_bias:  # LRMC: a regression read-out, the study's BERT
        config = transformers.BertConfig(
            vocab_size=2002, hidden_size=model_config.d_model, num_hidden_layers=model_config.n_layers,
            num_attention_heads=model_config.n_heads, intermediate_size=model_config.resolved_d_mlp,
            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
            max_position_embeddings=task.n_positions, type_vocab_size=1)
        backbone = transformers.BertModel(config, add_pooling_layer=False)
        readout = torch.nn.Linear(model_config.d_model, 1)

        class Reference(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.backbone, self.readout = backbone, readout

            def forward(self, tokens):
                return self.readout(self.backbone(input_ids=tokens).last_hidden_state)

        return Reference()
    config = transformers.GPT2Config(
        vocab_size=task.d_vocab, n_positions=task.n_positions, n_embd=model_config.d_model,
        n_layer=model_config.n_layers, n_head=model_config.n_heads, n_inner=model_config.resolved_d_mlp,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    gpt = transformers.GPT2LMHeadModel(config)

    class Reference(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gpt = gpt

        def forward(self, tokens):
            return self.gpt(input_ids=tokens).logits

    return Reference()


def training_step(impl: str, config, device: str, precision: str, compile_: bool) -> Callable:
    """``step(index) -> (output, batch, loss)``: one Adam step of ``impl`` on batch ``index``
    of seed 0 (the same batches for both implementations; the reference reads LRMC as the
    study's tokens)."""
    import torch

    from plateau_lens import build_network
    from plateau_lens.tasks import step_generator

    if impl not in IMPLEMENTATIONS:
        raise ValueError(f"impl must be one of {IMPLEMENTATIONS}, got {impl!r}")
    task = config.make_task()
    if impl == "reference":
        model = reference_model(task, config.model).to(device)
        sampled_task = dataclasses.replace(task, encoding="tokens") if task.readout_bias else task
    else:
        model = build_network(task, config.model, seed=0).to(device)
        sampled_task = task
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.train.lr, fused=device.startswith("cuda"))
    forward = torch.compile(model) if compile_ else model
    autocast = (torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
                if precision == "bf16" else torch.autocast("cpu", enabled=False))

    def step(index: int):
        batch = sampled_task.sample(config.train.batch_size, step_generator(0, index, device), device)
        with autocast:
            output = forward(batch.inputs)
            loss = task.loss(output, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return output, batch, loss

    return step
