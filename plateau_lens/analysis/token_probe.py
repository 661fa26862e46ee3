"""Probe of the next token from a hidden state with a small MLP classifier (the study's
probe reads the attention output)."""

from __future__ import annotations

import einops
import pandas as pd
import torch

from .hooks import check_hook_names, check_task_batch, model_task


@torch.no_grad()
def next_token_probe(model, train_batch, test_batch, hook: str | None = None,
                     hidden_units: int = 64, task=None, seed: int = 0) -> pd.DataFrame:
    """Train ``MLPClassifier(hidden_units)`` on ``hook`` activations at the answer rows to
    predict the next token; report held-out accuracy (and the majority-class baseline)."""
    from sklearn.neural_network import MLPClassifier

    task = model_task(model, task)
    if task.kind != "sequence":
        raise ValueError(f"next_token_probe needs a sequence task, not {task.name!r}")
    check_task_batch(task, train_batch)
    check_task_batch(task, test_batch)
    hook = hook or f"blocks.{model.cfg.n_layers - 1}.hook_attn_out"
    check_hook_names(model, [hook])
    rows = list(task.answer_rows())

    def features(batch):
        _, cache = model.run_with_cache(batch.inputs, names_filter=lambda n: n == hook)
        x = einops.rearrange(cache[hook][:, rows].float(), "b p d -> (b p) d").numpy()
        y = batch.targets[:, rows].flatten().numpy()
        return x, y

    x_train, y_train = features(train_batch)
    x_test, y_test = features(test_batch)
    classifier = MLPClassifier((hidden_units,), max_iter=300, random_state=seed)
    classifier.fit(x_train, y_train)
    values, counts = torch.unique(torch.from_numpy(y_train), return_counts=True)
    majority = values[counts.argmax()].item()
    return pd.DataFrame([{"hook": hook, "accuracy": classifier.score(x_test, y_test),
                          "majority_baseline": float((y_test == majority).mean())}])
