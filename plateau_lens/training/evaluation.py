"""What training logs at each evaluation, as the loss-plateau study logs it.

The study's scripts (``src/train_*.py``) log after the optimizer step of iteration s, in
eval mode: the training loss of that iteration's batch under the updated weights, and
metrics of a test batch drawn fresh with it. We deviate in when: the trainer calls
``training_log_row`` before update s, on checkpoint s's weights, so that row s and
checkpoint s describe the same model and analyses over checkpoints join the metrics exactly
(the study's row s is our row s + 1 up to which batches are scored; see
docs/run-directory.md).

Which batch each number is measured on (default: the study's fresh test batch of 64):

* ``loss``, ``teacher_forced_accuracy``: the step's training batch (256), before its update;
* ``eval_loss``, generation ``accuracy`` (overall and ``accuracy_pos_{i}``), repetition
  frequency (model and data), ``entropy`` (prefix sum, addition), ``cosine_similarity`` (and
  the task's other collapse measures) and ``attention_progress``: the test batch.

The authors' code computes per-position accuracy (``idx{pos}_check``), the cosine and
attention progress on the training batch instead (its teacher-forced pass after the
update), and test accuracy and repetition on the test batch. We put them all on the test
batch, as issue 19 specifies (the paper's own text could not be checked here). Both batches
are i.i.d. draws of the same distribution: the difference is 64 vs 256 samples.
"""

from __future__ import annotations

import torch

from ..metrics import (ForwardFn, attention_masks, attention_progress_score, generation_metrics,
                       mean_cosine_over_pairs, readout_input_hook, scalar_metrics)
from ..models.handle import PlateauModel
from ..tasks.protocol import has_capability

def collapse_measures(task) -> dict[str, list[tuple[int, int]]]:
    """Logged name → position pairs of the task's representation-collapse measures."""
    if has_capability(task, "collapse_pairs"):
        return task.collapse_pairs()
    rows = list(task.collapse_positions())
    return {"cosine_similarity": [(i, j) for a, i in enumerate(rows) for j in rows[a + 1:]]}


@torch.no_grad()
def evaluation_metrics(model: PlateauModel, batch, forward: ForwardFn | None = None) -> dict[str, float]:
    """On ``batch``: the task metrics (``eval_``-prefixed); for tasks with answers to
    generate, greedy-generation accuracy (overall, per position), repetition frequency and,
    where the study reports it, the entropy of the outputs; representation collapse
    (``cosine_similarity`` and any other measure of ``task.collapse_pairs()``: the mean
    pairwise cosine of the read-out's input, ln_f's output with its affine — the study's
    ``pre_lm_h`` — over the task's stated row pairs); and attention progress where the task
    defines a mask (``attention_progress``: mean over the layers that have one, each averaged
    over heads; ``attention_progress_L{l}`` per layer when several have one). The same
    definitions as the analyzers (``plateau_lens.metrics``). ``forward``: what generates
    (default the bridge; training passes its native, possibly compiled, network: the same
    function without hook overhead)."""
    task, bridge = model.task, model.bridge
    final = readout_input_hook(bridge)
    n_layers = bridge.cfg.n_layers
    answers = has_capability(task, "answers")
    masks = attention_masks(task, batch, n_layers) if answers else {}
    patterns = {layer: f"blocks.{layer}.attn.hook_pattern" for layer in masks}
    names = {final, *patterns.values()}
    output, cache = bridge.run_with_cache(batch.inputs, names_filter=lambda n: n in names)
    row = {f"eval_{name}": value for name, value in scalar_metrics(task, output, batch).items()}
    if answers and task.answer_length:
        row.update(generation_metrics(task, bridge if forward is None else forward, batch))
    for name, pairs in collapse_measures(task).items():
        row[name] = mean_cosine_over_pairs(cache[final], pairs)
    if masks:
        per_layer = {layer: attention_progress_score(cache[patterns[layer]], mask,
                                                     task.answer_rows()).mean().item()
                     for layer, mask in masks.items()}
        row["attention_progress"] = sum(per_layer.values()) / len(per_layer)
        if len(per_layer) > 1:
            row.update({f"attention_progress_L{layer}": value for layer, value in per_layer.items()})
    return row


@torch.no_grad()
def training_log_row(model: PlateauModel, train_batch, test_batch,
                     forward: ForwardFn | None = None) -> dict[str, float]:
    """The study's per-step log (the trainer calls it before step s's update, on checkpoint
    s's weights): ``loss`` (and the task's other metrics) of ``train_batch``, then
    :func:`evaluation_metrics` on ``test_batch``. The caller puts the network in eval mode."""
    forward = model.bridge if forward is None else forward  # a compiled module has no truth value
    row = {name: value for name, value in
           scalar_metrics(model.task, forward(train_batch.inputs), train_batch).items()}
    row.update(evaluation_metrics(model, test_batch, forward))
    return row
