"""Patching, probes, collapse, repetition and attention progress on a plugin task (issue 33):
the task of tests/plugin_fixture.py (written from the task contract alone, imported from a
temporary directory outside the repository), a model with every weight moved off its init
(tests/perturbed.py), and each analyzer's numbers against an independent computation: the
float64 reference forward of tests/reference written from the equations, numpy least squares,
a greedy generation loop by hand. An analyzer whose needs the task does not declare is refused
in one line naming the capability to declare."""

from __future__ import annotations

import dataclasses
import itertools
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from plateau_lens import (ModelConfig, attention_progress, linear_probes, next_token_probe,
                          patch_activations, representation_collapse, repetition)

from perturbed import perturbed_model, reference
from plugin_fixture import MODULE, write_plugin


@pytest.fixture(scope="module")
def labtasks(tmp_path_factory):
    folder = write_plugin(tmp_path_factory.mktemp("outside") / "plugin")
    sys.path.insert(0, str(folder))
    try:
        import labtasks

        yield labtasks
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop(MODULE, None)


@pytest.fixture(scope="module")
def setup(labtasks):
    task = labtasks.CumulativeSumMod(n_inputs=3, modulus=5)
    model = perturbed_model(task, ModelConfig(d_model=32, n_layers=2, n_heads=2))
    batch = task.sample(64, torch.Generator().manual_seed(1))
    return task, model, batch


def ce(logits: torch.Tensor, targets: torch.Tensor) -> float:
    return F.cross_entropy(logits.double().flatten(0, 1), targets.flatten()).item()


def test_patch_activations_on_a_plugin_task_matches_the_reference_forward(setup):
    """Denoising each head's hook_z: the corrupted input is the plugin's default corruption
    (every digit + 1 mod p, its running sums recomputed); the patched run's loss is the
    reference forward of the corrupted input with that head's z taken from the clean one."""
    task, model, batch = setup
    table = patch_activations(model, batch, progress=False)
    corrupted = batch.tokens[:, :3].add(1).remainder(5)
    _, clean_cache = reference(model, batch.inputs)
    corrupted_inputs = torch.cat([corrupted, torch.full_like(corrupted[:, :1], 5),
                                  corrupted.cumsum(-1).remainder(5)[:, :2]], 1)
    loss = table[table["metric"] == "loss"].set_index(["condition", "layer", "head"])["value"]
    corrupted_out, _ = reference(model, corrupted_inputs)
    corrupted_targets = torch.cat([corrupted[:, 1:], torch.full_like(corrupted[:, :1], 5),
                                   corrupted.cumsum(-1).remainder(5)], 1)
    assert loss[("corrupted", pd_na, pd_na)] == pytest.approx(ce(corrupted_out, batch.targets), abs=1e-5)
    vs_corrupted = table[(table["metric"] == "loss_vs_corrupted") & (table["condition"] == "corrupted")]
    assert vs_corrupted["value"].item() == pytest.approx(ce(corrupted_out, corrupted_targets), abs=1e-5)
    patched = loss.xs("patched")
    assert len(patched) == 4
    for layer, head in itertools.product(range(2), range(2)):
        name = f"blocks.{layer}.attn.hook_z"

        def put_clean(z, head=head, name=name):
            z = z.clone()
            z[:, :, head] = clean_cache[name][:, :, head]
            return z

        out, _ = reference(model, corrupted_inputs, edits={name: put_clean})
        assert patched[(layer, head)] == pytest.approx(ce(out, batch.targets), abs=1e-5), (layer, head)
    assert patched.nunique() == 4  # each head's patch changes the output differently


pd_na = __import__("pandas").NA


def test_linear_probes_on_a_plugin_target_match_numpy_least_squares(setup):
    """The plugin's probe target ``running_sum`` (the next token, a class per position): the
    closed-form classifier is least squares of one-hot labels on [features, 1], argmax; here
    numpy.linalg.lstsq on the reference forward's residual stream."""
    task, model, batch = setup
    test_batch = task.sample(64, torch.Generator().manual_seed(2))
    hook = "blocks.1.hook_resid_mid"
    table = linear_probes(model, batch, test_batch, targets=["running_sum"], hooks=[hook])
    assert list(table["metric"]) == ["accuracy"] and list(table["target"]) == ["running_sum"]

    def features(inputs):
        _, cache = reference(model, inputs)
        flat = cache[hook].reshape(-1, 32).numpy()
        return np.hstack([flat, np.ones((len(flat), 1))])

    labels_train, labels_test = batch.targets.flatten().numpy(), test_batch.targets.flatten().numpy()
    classes = np.unique(labels_train)
    one_hot = (labels_train[:, None] == classes[None]).astype(float)
    weights = np.linalg.lstsq(features(batch.inputs), one_hot, rcond=None)[0]
    predicted = classes[(features(test_batch.inputs) @ weights).argmax(1)]
    expected = (predicted == labels_test).mean()
    assert 0.2 < expected < 1.0  # a probe that learned something, not a trivial one
    assert table["value"].item() == pytest.approx(expected, abs=2 / len(labels_test))


def test_representation_collapse_on_the_plugins_collapse_positions(setup):
    """Default positions: the plugin's collapse_positions() (its answer rows 3, 4, 5); the mean
    over samples and the 3 pairs of the cosine of ln_final's output (pre_lm_h)."""
    _, model, batch = setup
    table = representation_collapse(model, batch, sites=["pre_lm_h", "post_att_h"], layers=[1])
    _, cache = reference(model, batch.inputs)
    for site, hook in (("pre_lm_h", "ln_final.hook_out"), ("post_att_h", "blocks.1.hook_attn_out")):
        hidden = cache[hook]
        cosines = [F.cosine_similarity(hidden[:, i], hidden[:, j], dim=-1).mean().item()
                   for i, j in itertools.combinations([3, 4, 5], 2)]
        value = table.loc[table["site"] == site, "value"].item()
        assert value == pytest.approx(float(np.mean(cosines)), abs=1e-5), site


def test_repetition_on_a_plugin_task_is_a_greedy_generation_by_hand(setup):
    """From the prompts (3 digits and the separator), 3 answers generated greedily with the
    reference forward; repetition = mean over adjacent answer pairs of ŷ_t = ŷ_{t+1}."""
    task, model, batch = setup
    table = repetition(model, batch).set_index("metric")["value"]
    sequence = batch.tokens[:, :task.prompt_length]
    for _ in range(task.answer_length):
        out, _ = reference(model, sequence)
        sequence = torch.cat([sequence, out[:, -1].argmax(-1, keepdim=True)], 1)
    generated = sequence[:, task.prompt_length:]
    repeats = (generated[:, 1:] == generated[:, :-1]).double().mean().item()
    assert table["repetition_frequency"] == pytest.approx(repeats)
    assert table["accuracy"] == pytest.approx((generated == batch.answers).double().mean().item())
    true_repeats = (batch.answers[:, 1:] == batch.answers[:, :-1]).double().mean().item()
    assert table["repetition_frequency_data"] == pytest.approx(true_repeats)
    assert 0 < repeats < 1


def test_attention_progress_reads_the_mask_a_plugin_declares(setup, labtasks):
    """A plugin task whose optimal_attention() is a mask (each answer row attends to its own
    digit): attention progress = Σ|A|·M / Σ|A| over the answer rows, per head of the last
    layer, from the reference forward's pattern."""
    _, model, batch = setup

    @dataclasses.dataclass(frozen=True)
    class WithMask(labtasks.CumulativeSumMod):
        def optimal_attention(self):
            mask = torch.zeros(self.n_positions, self.n_positions)
            for row in self.answer_rows():
                mask[row, row - self.n_inputs] = 1.0
            return mask

    task = WithMask(n_inputs=3, modulus=5)
    table = attention_progress(model, batch, task=task)
    _, cache = reference(model, batch.inputs)
    pattern = cache["blocks.1.attn.hook_pattern"][:, :, 3:6].double()  # [batch, head, row, key]
    mask = task.optimal_attention()[3:6].double()
    expected = ((pattern.abs() * mask).sum((-2, -1)) / pattern.abs().sum((-2, -1))).mean(0)
    assert list(table["head"]) == [0, 1]
    np.testing.assert_allclose(table["value"].to_numpy(float), expected.numpy(), atol=1e-6)


def test_analyzers_refuse_a_plugin_task_that_declares_nothing_naming_the_capability(setup, labtasks):
    """The same task (with a mask) but no capability declared: repetition, attention progress
    and the next-token probe refuse in one line naming the capability to declare; a task that
    declares answers but whose optimal_attention() is None is told attention_progress needs a mask."""
    _, model, batch = setup

    @dataclasses.dataclass(frozen=True)
    class Undeclared(labtasks.CumulativeSumMod):
        capabilities = frozenset()

        def optimal_attention(self):
            return torch.ones(self.n_positions, self.n_positions).tril()

    task = Undeclared(n_inputs=3, modulus=5)
    for analyzer in (repetition, attention_progress, next_token_probe):
        arguments = (model, batch, batch) if analyzer is next_token_probe else (model, batch)
        with pytest.raises(ValueError) as refused:
            analyzer(*arguments, task=task)
        message = str(refused.value)
        assert "\n" not in message and "'answers'" in message and "declar" in message, message
    with pytest.raises(ValueError, match="task 'cumsum_mod' defines none"):
        attention_progress(model, batch)  # declares answers, but optimal_attention() is None
