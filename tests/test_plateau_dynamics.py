"""Loss-plateau metrics and interventions with known answers."""

import numpy as np
import pytest
import torch

from plateau_lens import ModelConfig, build_model, load_config, make_task, train
from plateau_lens.analysis import (attention_progress, next_token_probe, repetition,
                                   representation_collapse)
from plateau_lens.models.attention_bias import attention_bias_multiplier
from plateau_lens.training.interventions import component_parameters
from plateau_lens.metrics import attention_progress_score, mean_pairwise_cosine
from plateau_lens.models import set_attention_bias
from plateau_lens.runs.load import load_run
from plateau_lens.tasks import step_generator
from plateau_lens.runs.checkpoint import load_checkpoint
from plateau_lens.runs.layout import checkpoint_path
from plateau_lens.metrics import repetition_frequency as repetition_frequency_of

MWS = make_task("mws")


def test_repetition_frequency_on_hand_built_outputs():
    outputs = torch.tensor([[1, 1, 1, 1], [1, 2, 3, 4], [5, 5, 6, 6]])
    # pairs equal: 3/3, 0/3, 2/3 → 5/9
    assert repetition_frequency_of(outputs) == pytest.approx(5 / 9)
    with pytest.raises(ValueError, match=">= 2 outputs"):
        repetition_frequency_of(torch.tensor([[1]]))


def test_mean_pairwise_cosine_on_hand_built_states():
    same = torch.ones(2, 5, 3)
    assert mean_pairwise_cosine(same) == pytest.approx(1.0)
    orthogonal = torch.eye(4).unsqueeze(0)
    assert mean_pairwise_cosine(orthogonal) == pytest.approx(0.0)
    # two states at 60 degrees plus one opposite the first: cos = 0.5, -1, -0.5 → mean -1/3
    states = torch.tensor([[[1.0, 0.0], [0.5, 3**0.5 / 2], [-1.0, 0.0]]])
    assert mean_pairwise_cosine(states) == pytest.approx(-1 / 3, abs=1e-6)


def test_representation_collapse_reads_ln_f_output_with_its_affine():
    """pre_lm_h is ln_f(x) with weight and bias (what the unembedding reads): computed here
    by hand from the last residual stream and the perturbed ln_f parameters, over rows
    17-31 (105 pairs)."""
    model = build_model((MWS, ModelConfig(d_model=32)))
    with torch.no_grad():
        model.network.ln_out.weight.normal_(1.0, 0.5)
        model.network.ln_out.bias.normal_(0.0, 0.5)
    batch = MWS.sample(16, step_generator(0, 0))
    result = representation_collapse(model, batch)
    _, cache = model.bridge.run_with_cache(batch.inputs)
    x = cache["blocks.0.hook_resid_post"].double()
    normalized = (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + 1e-5)
    ln_f = normalized * model.network.ln_out.weight.double() + model.network.ln_out.bias.double()
    unit = torch.nn.functional.normalize(ln_f[:, 17:32], dim=-1)
    sims = [(unit[:, i] * unit[:, j]).sum(-1).mean().item() for i in range(15) for j in range(i + 1, 15)]
    assert len(sims) == 105
    final = result[result["site"] == "pre_lm_h"]
    assert final["hook"].item() == "ln_final.hook_out" and final["metric"].item() == "cosine_similarity"
    assert final["value"].item() == pytest.approx(np.mean(sims), abs=1e-5)
    assert set(result["site"]) == {"pre_att_h", "post_att_h", "post_att_res_h", "post_mlp_h", "pre_lm_h"}
    with pytest.raises(ValueError, match=r"layers must be in \[0, 0\]"):
        representation_collapse(model, batch, layers=[3])
    with pytest.raises(ValueError, match="sites must be"):
        representation_collapse(model, batch, sites=["final_ln"])


def test_attention_progress_is_one_for_the_optimal_pattern():
    optimal = MWS.optimal_attention()
    pattern = optimal.expand(4, 1, 32, 32) * torch.rand(4, 1, 32, 32)
    assert attention_progress_score(pattern, optimal, MWS.answer_rows()).item() == pytest.approx(1.0)
    uniform = torch.ones(1, 1, 32, 32).tril()
    expected = optimal[16:32].sum() / uniform[0, 0, 16:32].sum()
    assert attention_progress_score(uniform, optimal, MWS.answer_rows()).item() == pytest.approx(expected.item())


@pytest.mark.parametrize("attention", ["linear", "softmax"])
def test_attention_bias_scales_exactly_the_optimal_entries_after_masking(attention):
    model = build_model((MWS, ModelConfig(d_model=32, attention=attention)))
    batch = MWS.sample(4, step_generator(0, 0))
    _, cache = model.bridge.run_with_cache(batch.inputs)
    clean = cache["blocks.0.attn.hook_pattern"]
    multiplier = attention_bias_multiplier(MWS, 2.5)
    # written out: row 16 + i (y_i, predicting y_{i+1} = x_i + x_{i+1}) scales keys i - 1 and i
    # (x_i, x_{i+1}) by c, for i = 1..15; the separator's row 16 and every other entry stay 1
    expected = torch.ones(32, 32)
    for i in range(1, 16):
        expected[16 + i, [i - 1, i]] = 2.5
    assert torch.equal(multiplier, expected)
    set_attention_bias(model, multiplier)
    _, cache = model.bridge.run_with_cache(batch.inputs)
    # softmax: the factor multiplies the post-softmax pattern, no renormalisation
    assert torch.allclose(cache["blocks.0.attn.hook_pattern"], clean * multiplier, atol=1e-6)


def test_attention_bias_of_one_changes_nothing_bit_for_bit(tmp_path, small_mws_config):
    plain = train(small_mws_config, tmp_path / "plain", progress=False)
    biased_config = small_mws_config.replace(train={"attention_bias": 1.0})
    # force the multiplier path with c = 1 on a fresh trainer to show it is an exact no-op
    from plateau_lens.training import Trainer

    trainer = Trainer.start(biased_config, tmp_path / "biased")
    multiplier = attention_bias_multiplier(trainer.task, 1.0)
    set_attention_bias(trainer.network, multiplier)
    trainer.run(progress=False)
    a = load_checkpoint(checkpoint_path(plain, 12))["model"]
    b = load_checkpoint(checkpoint_path(tmp_path / "biased", 12))["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_attention_bias_changes_training_and_bad_c_is_refused(tmp_path, small_mws_config):
    plain = train(small_mws_config, tmp_path / "plain", progress=False)
    biased = train(small_mws_config.replace(train={"attention_bias": 10.0}), tmp_path / "b",
                   progress=False)
    assert not load_run(plain).metrics["loss"].equals(load_run(biased).metrics["loss"])
    with pytest.raises(ValueError, match=r"attention_bias \(c\) must be > 0"):
        small_mws_config.replace(train={"attention_bias": 0.0})
    with pytest.raises(ValueError, match="c must be > 0"):
        attention_bias_multiplier(MWS, -1)


def test_frozen_components_stay_bit_identical(tmp_path, small_mws_config):
    reference = train(small_mws_config, tmp_path / "ref", progress=False)
    ref_ckpt = checkpoint_path(reference, 12)
    config = small_mws_config.replace(
        init={"checkpoint": str(ref_ckpt), "components": ["mlp", "unembed"], "freeze": True,
              "freeze_at_init": ["ln1"]},
        train={"seed": 1})
    run = load_run(train(config, tmp_path / "run", progress=False))
    start, end = run.network(0), run.network(12)
    ref = load_checkpoint(ref_ckpt)["model"]
    frozen = component_parameters(end, ["mlp", "unembed"])
    assert frozen and all(torch.equal(p, ref[n]) for n, p in frozen.items())
    at_init = component_parameters(end, ["ln1"])
    assert all(torch.equal(p, start.state_dict()[n]) for n, p in at_init.items())
    trained = component_parameters(end, ["attn"])
    assert any(not torch.equal(p, start.state_dict()[n]) for n, p in trained.items())


def test_bad_intervention_input():
    with pytest.raises(ValueError, match="unknown component"):
        load_config({"task": {"name": "mws"}, "init": {"freeze_at_init": ["mlpp"]}})
    with pytest.raises(ValueError, match="needs init.checkpoint"):
        load_config({"task": {"name": "mws"}, "init": {"components": ["mlp"]}})
    with pytest.raises(ValueError, match="window must be in"):
        make_task("mws", n_inputs=4, window=5)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_next_token_probe_equals_sklearn_on_reference_activations():
    """next_token_probe on a perturbed MWS model: scikit-learn's MLPClassifier (the same units,
    iterations and seed) fitted on the reference forward's last attention output
    (``blocks.1.hook_attn_out``) at the answer rows, against the next tokens, gives the same
    held-out accuracy, and the majority baseline is the training targets' most common token's
    share of the test targets. (Repetition is checked against reference greedy generation in
    test_analyzers.py.)"""
    from sklearn.neural_network import MLPClassifier
    from perturbed import perturbed_model, reference, sample

    task = make_task("mws", n_inputs=5)
    model = perturbed_model(task, ModelConfig(n_layers=2, n_heads=2, d_model=16, attention="linear"))
    train_batch, test_batch = sample(task, 64, seed=1), sample(task, 32, seed=2)
    result = next_token_probe(model, train_batch, test_batch, hidden_units=8, max_iter=50)
    result = result.set_index("metric")["value"]
    # tokens: x_1..x_5, SEP, y_1..y_5; rows 5-9 (SEP, y_1..y_4) predict y_1..y_5
    rows = [5, 6, 7, 8, 9]

    def data(batch):
        _, cache = reference(model, batch.inputs)
        features = cache["blocks.1.hook_attn_out"][:, rows].reshape(-1, 16).float().numpy()
        return features, batch.tokens[:, [row + 1 for row in rows]].reshape(-1).numpy()

    (x_train, y_train), (x_test, y_test) = data(train_batch), data(test_batch)
    classifier = MLPClassifier((8,), max_iter=50, random_state=0).fit(x_train, y_train)
    assert result["accuracy"] == pytest.approx(classifier.score(x_test, y_test))
    tokens, counts = np.unique(y_train, return_counts=True)
    assert result["majority_baseline"] == pytest.approx((y_test == tokens[counts.argmax()]).mean())


def test_training_logs_collapse_and_progress(tmp_path, small_mws_config):
    metrics = load_run(train(small_mws_config, tmp_path / "run", progress=False)).metrics
    assert {"cosine_similarity", "attention_progress", "repetition_frequency"} <= set(metrics)
    assert metrics["attention_progress"].between(0, 1).all()


def test_sgd_and_cosine_schedule_warm_up_is_s_over_w(tmp_path, small_mws_config):
    """The study's warm-up (train_mws_lr_schedule.py, transformers' schedules): factor s / W
    at update s, so the first update has learning rate 0; the logged lr is the one the
    step's update used."""
    config = small_mws_config.replace(train={"optimizer": "sgd", "schedule": "cosine",
                                             "warmup_steps": 4, "log_every": 1})
    metrics = load_run(train(config, tmp_path / "run", progress=False)).metrics
    lrs = metrics.set_index("step")["lr"]
    assert [lrs[s] for s in range(5)] == pytest.approx([0, 1e-3 / 4, 2e-3 / 4, 3e-3 / 4, 1e-3])
    # then half a cosine over the remaining 8 updates: step 8 is half-way
    assert lrs[8] == pytest.approx(1e-3 * 0.5 * (1 + np.cos(np.pi * 4 / 8)))
    assert lrs[11] < lrs[8]


def test_missing_init_checkpoint_is_refused_before_anything_is_written(tmp_path, small_mws_config):
    from plateau_lens import CheckpointError

    config = small_mws_config.replace(init={"checkpoint": str(tmp_path / "nope.pt"),
                                            "components": ["mlp"]})
    with pytest.raises(CheckpointError, match="does not exist"):
        train(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_reused_bridge_matches_a_fresh_bridge_at_every_step_with_attention_bias(tmp_path,
                                                                                small_mws_config):
    # the bias switches on at step 4, so the reused bridge must gain it exactly there
    config = small_mws_config.replace(train={"attention_bias": 10.0, "attention_bias_start": 4})
    run = load_run(train(config, tmp_path / "run", progress=False))
    batch = run.task.sample(8, torch.Generator().manual_seed(3))
    outputs = {step: model(batch.inputs) for step, model in run.models()}
    assert list(outputs) == run.steps
    for step in run.steps:
        assert torch.equal(outputs[step], run.model(step)(batch.inputs)), step
    unbiased = load_run(train(small_mws_config, tmp_path / "plain", progress=False))
    reused = dict(unbiased.models())[12]  # the same object for every step: last weights loaded
    assert torch.equal(reused(batch.inputs), unbiased.model(12)(batch.inputs))
    assert not torch.equal(outputs[12], unbiased.model(12)(batch.inputs))


def test_logged_cosine_is_representation_collapse_at_pre_lm_h(tmp_path, small_mws_config):
    """The training log's cosine_similarity at step s (measured on checkpoint s's weights,
    before update s, on step s's fresh test batch) is the analyzer's pre_lm_h."""
    from plateau_lens.training.trainer import EVAL_SEED_OFFSET

    config = small_mws_config.replace(train={"log_every": 1})
    run = load_run(train(config, tmp_path / "run", progress=False))
    logged = run.metrics.set_index("step")["cosine_similarity"]
    for step in (4, 8):
        test_batch = run.task.sample(config.train.eval_batch_size,
                                     step_generator(config.train.seed + EVAL_SEED_OFFSET, step))
        collapse = representation_collapse(run.model(step), test_batch, sites=["pre_lm_h"])
        assert collapse["value"].item() == pytest.approx(logged[step], abs=1e-6)


# ------------------------------------------------------------ the study's per-step log
def test_row_s_is_measured_on_checkpoint_s_on_the_steps_batch_and_a_fresh_test_batch(
        tmp_path, small_mws_config):
    """Row s (eval mode, before update s; train_mws.py logs after it, see
    plateau_lens.training.evaluation): ``loss`` is the cross-entropy of training batch s
    under checkpoint s's weights, computed here directly;
    accuracy and repetition are greedy generation on a test batch drawn fresh for step s (a
    pure function of seed and step), generated here by a plain argmax loop."""
    from plateau_lens.training.trainer import EVAL_SEED_OFFSET

    config = small_mws_config.replace(train={"log_every": 1, "steps": 4})
    run = load_run(train(config, tmp_path / "run", progress=False))
    rows = run.metrics.set_index("step")
    for step in (0, 1, 2, 4):  # every checkpoint, the final one included
        network = run.network(step).eval()
        batch = run.task.sample(8, step_generator(0, step))
        logits = network(batch.inputs).double()
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch.tokens[:, 1:].flatten())
        assert rows.loc[step, "loss"] == pytest.approx(loss.item(), abs=1e-5)
        test = run.task.sample(4, step_generator(EVAL_SEED_OFFSET, step))
        tokens = test.tokens[:, :run.task.prompt_length]
        with torch.no_grad():
            for _ in range(run.task.answer_length):
                tokens = torch.cat([tokens, network(tokens)[:, -1:].argmax(-1)], dim=1)
        outputs = tokens[:, run.task.prompt_length:]
        assert rows.loc[step, "accuracy"] == pytest.approx((outputs == test.answers).float().mean().item())
        pairs = [(a == b) for row in outputs.tolist() for a, b in zip(row, row[1:])]
        assert rows.loc[step, "repetition_frequency"] == pytest.approx(sum(pairs) / len(pairs))
        data = [(a == b) for row in test.answers.tolist() for a, b in zip(row, row[1:])]
        assert rows.loc[step, "repetition_frequency_data"] == pytest.approx(sum(data) / len(data))


def test_fixed_evaluation_batch_option(tmp_path, small_mws_config):
    from plateau_lens.training.trainer import EVAL_SEED_OFFSET

    config = small_mws_config.replace(train={"eval_batch": "fixed", "steps": 6, "log_every": 1,
                                             "eval_batch_size": 16})
    metrics = load_run(train(config, tmp_path / "run", progress=False)).metrics
    step0 = MWS.__class__(n_inputs=6).sample(16, step_generator(EVAL_SEED_OFFSET, 0))
    assert (metrics["repetition_frequency_data"] == repetition_frequency_of(step0.answers)).all()
    with pytest.raises(ValueError, match="eval_batch must be one of"):
        small_mws_config.replace(train={"eval_batch": "held_out"})


def test_repeat_k_cosine_is_the_mean_over_within_block_pairs():
    """Direct: F.cosine_similarity of ln_f's output (with its affine) for each of the 42
    within-block pairs of repeat-2 (rows 17-23, 25-31), averaged over samples then pairs
    (train_repeat.py's sum / 42) against the training log's and the analyzer's number."""
    from plateau_lens.training.evaluation import evaluation_metrics

    task = make_task("repeat", k=2)
    model = build_model((task, ModelConfig(d_model=32)))
    with torch.no_grad():
        model.network.ln_out.bias.normal_(0.0, 0.5)
    batch = task.sample(16, step_generator(0, 0))
    _, cache = model.bridge.run_with_cache(batch.inputs)
    h = cache["ln_final.hook_out"].double()
    blocks = [range(17, 24), range(25, 32)]
    pairs = [(i, j) for rows in blocks for i in rows for j in rows if i < j]
    expected = np.mean([torch.nn.functional.cosine_similarity(h[:, i], h[:, j], dim=-1).mean().item()
                        for i, j in pairs])
    assert len(pairs) == 42
    assert evaluation_metrics(model, batch)["cosine_similarity"] == pytest.approx(expected, abs=1e-9)
    analyzer = representation_collapse(model, batch, sites=["pre_lm_h"])
    assert analyzer["value"].item() == pytest.approx(expected, abs=1e-9)
    everything = mean_pairwise_cosine(h[:, [r for rows in blocks for r in rows]])
    assert abs(everything - expected) > 1e-6  # across-block pairs would change the number


def test_output_entropy_on_hand_built_outputs_and_where_it_is_logged():
    from plateau_lens.metrics import output_entropy

    # [1 1 2 2]: two tokens at 1/2 → ln 2; [3 3 3 3]: 0; [1 2 3 4]: ln 4
    outputs = torch.tensor([[1, 1, 2, 2], [3, 3, 3, 3], [1, 2, 3, 4]])
    assert output_entropy(outputs) == pytest.approx((np.log(2) + 0 + np.log(4)) / 3)
    logged = {name for name in ("prefix_sum", "addition", "mws", "copy")
              if make_task(name).log_entropy}
    assert logged == {"prefix_sum", "addition"}


def test_attention_progress_of_permutation_layers_against_a_direct_sum():
    """Layer 1's mask depends on the sample: Σ|A|·M / Σ|A| over rows 33-48, per sample, is
    computed here from the batch's permutation tokens directly."""
    task = make_task("permutation")
    model = build_model((task, ModelConfig(n_layers=2, d_model=32)))
    batch = task.sample(6, step_generator(0, 0))
    result = attention_progress(model, batch)
    _, cache = model.bridge.run_with_cache(batch.inputs)
    for layer in (0, 1):
        pattern = cache[f"blocks.{layer}.attn.hook_pattern"][:, 0].abs().double()
        scores = []
        for b in range(6):
            pi = [t - 1 for t in batch.tokens[b, 17:33].tolist()]
            keys = [17 + i for i in range(16)] if layer == 0 else pi
            on = sum(pattern[b, 33 + i, keys[i]].item() for i in range(16))
            scores.append(on / pattern[b, 33:49].sum().item())
        value = result[result["hook"] == f"blocks.{layer}.attn.hook_pattern"]["value"].item()
        assert value == pytest.approx(np.mean(scores), rel=1e-6)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_token_probe_uses_the_studys_mlp_settings(monkeypatch):
    """train_mws_probe.py: MLPClassifier(hidden_layer_sizes=(256,), max_iter=2000)."""
    import sklearn.neural_network

    seen = {}

    class Recording(sklearn.neural_network.MLPClassifier):
        def __init__(self, hidden_layer_sizes, max_iter, random_state):
            seen.update(hidden=hidden_layer_sizes, max_iter=max_iter)
            super().__init__(hidden_layer_sizes=(4,), max_iter=5, random_state=random_state)

    monkeypatch.setattr(sklearn.neural_network, "MLPClassifier", Recording)
    model = build_model((MWS, ModelConfig(d_model=16)))
    next_token_probe(model, MWS.sample(16, step_generator(1, 0)), MWS.sample(8, step_generator(2, 0)))
    assert seen == {"hidden": (256,), "max_iter": 2000}
