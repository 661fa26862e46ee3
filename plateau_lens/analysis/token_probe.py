"""Probe of the next token from a hidden state with an MLP classifier: the loss-plateau
study's attention-output probe (Fig. 20, ``src/train_mws_probe.py``: scikit-learn
``MLPClassifier(hidden_layer_sizes=(256,), max_iter=2000)`` on the attention output at rows
16–31 of MWS, targets the next tokens)."""

from __future__ import annotations

import einops
import pandas as pd
import torch

from ..errors import InputError, check_integer
from ..tasks.protocol import has_capability
from .hooks import check_hook_names, prepare
from .schema import metric_records, tidy


@torch.no_grad()
def next_token_probe(model, train_batch, test_batch, hook: str | None = None,
                     hidden_units: int = 256, task=None, seed: int = 0,
                     max_iter: int = 2000) -> pd.DataFrame:
    """Train ``MLPClassifier((hidden_units,), max_iter=max_iter)`` (the study's 256 and
    2 000) on ``hook`` activations (default: the last block's attention output after its
    output projection, ``blocks.{L-1}.hook_attn_out``: the study's ``post_att_pre_res_h``) at
    the answer rows to predict the next token; report held-out ``accuracy`` and the
    ``majority_baseline``. The study's script flattens (sample, row) before splitting its
    2048 test sequences, so it trains on the first 1024 rows (64 sequences) and tests on the
    rest; ``plateau-lens reproduce lp-fig20-probe`` passes that split (64 / 1984 sequences)."""
    from sklearn.neural_network import MLPClassifier

    check_integer("hidden_units", hidden_units, 1, 1_000_000)
    check_integer("max_iter", max_iter, 1, 10_000_000)
    check_integer("seed", seed, 0, 2**32 - 1)  # scikit-learn's random_state range
    model = prepare(model, train_batch, task)
    model.task.check_batch(test_batch)
    if not has_capability(model.task, "answers"):
        raise ValueError(f"next_token_probe needs a sequence task with answers (a task declares "
                         f"the capability 'answers'), not {model.task.name!r}")
    hook = hook or f"blocks.{model.cfg.n_layers - 1}.hook_attn_out"
    check_hook_names(model.bridge, [hook], "hook")
    rows = list(model.task.answer_rows())

    def features(batch):
        _, cache = model.bridge.run_with_cache(batch.inputs, names_filter=lambda n: n == hook)
        if cache[hook].ndim != 3:
            raise InputError(f"hook: next_token_probe reads a [batch, pos, d] activation; {hook} is "
                             f"{tuple(cache[hook].shape)}")
        x = einops.rearrange(cache[hook][:, rows].float(), "b p d -> (b p) d").cpu().numpy()
        y = batch.targets[:, rows].flatten().cpu().numpy()
        return x, y

    x_train, y_train = features(train_batch)
    x_test, y_test = features(test_batch)
    classifier = MLPClassifier((hidden_units,), max_iter=max_iter, random_state=seed)
    classifier.fit(x_train, y_train)
    values, counts = torch.unique(torch.from_numpy(y_train), return_counts=True)
    majority = values[counts.argmax()].item()
    metrics = {"accuracy": classifier.score(x_test, y_test),
               "majority_baseline": float((y_test == majority).mean())}
    return tidy(metric_records(metrics, hook=hook))
