"""Developmental analyses over checkpoints (plateau_lens.development), each against an
independent computation: ruptures' change points on curves with known breaks, the PCA of
essential dynamics against numpy's SVD, turning points on a path with a known turn, the head
scores against TransformerLens' ``head_detector``, and the LLC against the analytic value d/2 of
a regular linear regression."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from perturbed import perturbed_model, sample
from plateau_lens import ModelConfig, make_task
from plateau_lens.development.essential_dynamics import essential_dynamics
from plateau_lens.development.head_scores import causal_head_scores, repeated_random_tokens
from plateau_lens.development.llc import (LLCSettings, estimate_llc, llc_over_checkpoints)
from plateau_lens.development.onsets import change_points, onset_summary, onset_table
from plateau_lens.transition import Transition


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


STEPS = np.r_[0, 1, 2, 4, 8, np.arange(16, 401, 4)].astype(float)  # log-spaced, then every 4


def ramp(start, end, high=1.0, low=0.2, noise=0.01, seed=0):
    """A plateau at ``high`` to step ``start``, a linear change to ``low`` by ``end``, flat after."""
    values = np.interp(STEPS, [0, start, end, 400], [high, high, low, low])
    return values + np.random.default_rng(seed).normal(0, noise, len(STEPS))


def test_change_points_find_known_breaks_on_an_uneven_step_axis():
    onset, end = change_points(STEPS, ramp(150, 220))
    assert abs(onset - 150) <= 8 and abs(end - 220) <= 8
    # a rise is dated the same way as a fall
    onset, end = change_points(STEPS, -ramp(60, 300, seed=1))
    assert abs(onset - 60) <= 8 and abs(end - 300) <= 8
    # dense early, sparse late (50 checkpoints in the first 10 % of the steps): the fit counts
    # steps, not checkpoints
    uneven = np.r_[np.arange(0, 100, 2), np.arange(100, 1001, 50)].astype(float)
    values = np.interp(uneven, [0, 500, 700, 1000], [1.0, 1.0, 0.0, 0.0])
    onset, end = change_points(uneven, values)
    assert abs(onset - 500) <= 20 and abs(end - 700) <= 20
    with pytest.raises(ValueError, match="at least 6 finite points"):
        change_points(STEPS[:4], ramp(150, 220)[:4])


def test_onset_table_leads_and_lags_over_seeds():
    curves = pd.concat([
        pd.DataFrame({"seed": seed, "measure": measure, "step": STEPS,
                      "value": ramp(start, start + 60, seed=seed)})
        for seed, shift in ((0, 0), (1, 40))
        for measure, start in (("loss", 200 + shift), ("early", 120 + shift), ("late", 260 + shift))])
    transitions = {seed: Transition(0, 200 + shift, 230 + shift, 260 + shift, 1.0, 0.2)
                   for seed, shift in ((0, 0), (1, 40))}
    table = onset_table(curves, transitions).set_index(["seed", "measure"])
    for seed, shift in ((0, 0), (1, 40)):
        assert abs(table.loc[(seed, "early"), "lead_steps"] - 80) <= 8  # 80 steps before the drop
        assert abs(table.loc[(seed, "late"), "lead_steps"] + 60) <= 8   # 60 steps after
        assert abs(table.loc[(seed, "loss"), "lead_steps"]) <= 8
        assert table.loc[(seed, "early"), "change"] == pytest.approx(-0.8, abs=0.05)
    summary = onset_summary(onset_table(curves, transitions)).set_index("measure")
    assert summary.loc["early", "seeds_leading"] == 2 and summary.loc["late", "seeds_leading"] == 0
    with pytest.raises(ValueError, match="reference must be"):
        onset_table(curves, transitions, reference="loss")


def test_essential_dynamics_pca_equals_numpy_svd():
    generator = np.random.default_rng(0)
    features = generator.normal(size=(7, 5)) @ np.diag([3.0, 2.0, 1.0, 0.5, 0.1])
    steps = np.array([0, 1, 2, 4, 8, 16, 32])
    result = essential_dynamics(steps, features, n_components=3, smoothing=0, window=1)
    centred = features - features.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    expected = u[:, :3] * s[:3]
    scores = result.trajectory.pivot(index="step", columns="component", values="score")
    for k, component in enumerate(["PC1", "PC2", "PC3"]):
        got = scores[component].to_numpy()
        sign = np.sign(got @ expected[:, k])
        np.testing.assert_allclose(sign * got, expected[:, k], atol=1e-10)
    np.testing.assert_allclose(result.explained["explained_variance_ratio"],
                               s[:3] ** 2 / (s ** 2).sum(), atol=1e-12)


def test_essential_dynamics_finds_the_turn_of_an_l_shaped_path():
    """The outputs move along one direction for 20 checkpoints, then along an orthogonal one:
    one turning point, at the corner (step 200)."""
    generator = np.random.default_rng(1)
    t = np.arange(41)
    path = np.stack([np.minimum(t, 20), np.maximum(t - 20, 0)], axis=1).astype(float)
    basis, _ = np.linalg.qr(generator.normal(size=(30, 2)))
    features = path @ basis.T + generator.normal(0, 0.02, size=(41, 30))
    result = essential_dynamics(t * 10, features, n_components=2, smoothing=1.5, window=2)
    assert len(result.turning_points) == 1
    assert abs(result.turning_points["step"].iloc[0] - 200) <= 10
    assert result.turning_points["turn_degrees"].iloc[0] > 60


def perturbed_neox(directory):
    """The tiny GPT-NeoX of fixtures_llm with sharpened, shifted attention (Q·K far from 0)."""
    from fixtures_llm import save_model

    from plateau_lens.llm import load_checkpoint_model

    hf = save_model(directory, "neox")
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, parameter in hf.named_parameters():
            parameter.add_(0.3 * torch.randn(parameter.shape, generator=generator))
            if "query_key_value.weight" in name:
                parameter.mul_(4.0)
    hf.save_pretrained(directory)
    return load_checkpoint_model(local_dir=directory)


def test_head_scores_equal_transformer_lens_detect_head(tmp_path):
    """On a GPT-NeoX bridge (Pythia's parallel residual and partial rotary, every weight,
    bias and LN affine perturbed) with a tokenizer, ``detect_head`` itself runs: same scores."""
    from transformer_lens.head_detector import detect_head

    model = perturbed_neox(tmp_path / "neox")
    config = model.bridge.cfg
    assert config.parallel_attn_mlp and config.positional_embedding_type == "rotary"
    layer_norm = model.bridge.original_model.gpt_neox.layers[0].input_layernorm
    assert (layer_norm.weight - 1).abs().min() > 0 and layer_norm.bias.abs().min() > 0
    texts = ["the a of to the a of to", "cell plant energy sun cell plant energy sun moon",
             "water water heat light water heat light"]
    tokens = [model.bridge.to_tokens(text) for text in texts]
    ours = {metric: np.zeros((2, 4)) for metric in ("previous_token", "duplicate_token", "induction")}
    for sequence in tokens:  # detect_head averages per-prompt scores over a list of prompts
        frame = causal_head_scores(model, sequence)
        for row in frame.itertuples():
            ours[row.metric][row.layer, row.head] += row.value / len(tokens)
    for metric, name in (("previous_token", "previous_token_head"),
                         ("duplicate_token", "duplicate_token_head"), ("induction", "induction_head")):
        reference = detect_head(model.bridge, texts, name).double().numpy()
        assert reference.std() > 0.01  # heads differ: a swapped axis would show
        np.testing.assert_allclose(ours[metric], reference, atol=2e-6)


def test_head_scores_on_our_gpt_equal_transformer_lens_scoring():
    """Our GPT bridge has no tokenizer (``detect_head`` calls ``to_tokens``), so the reference is
    detect_head's own detection patterns and scoring function on the bridge's patterns."""
    from transformer_lens import head_detector

    task = make_task("mws", n_inputs=8)
    model = perturbed_model(task, ModelConfig(n_layers=2, n_heads=2, d_model=16,
                                              attention="softmax"), sharpen=3.0)
    tokens = repeated_random_tokens(task.d_vocab, 8, n_sequences=3, seed=5)
    frame = causal_head_scores(model, tokens)
    _, cache = model.bridge.run_with_cache(tokens)
    for metric in ("previous_token", "duplicate_token", "induction"):
        expected = np.zeros((2, 2))
        for b in range(len(tokens)):
            pattern = getattr(head_detector, f"get_{metric}_head_detection_pattern")(tokens[b:b + 1])
            for layer in range(2):
                for head in range(2):
                    expected[layer, head] += head_detector.compute_head_attention_similarity_score(
                        cache[f"blocks.{layer}.attn.hook_pattern"][b, head].double(),
                        pattern.double(), exclude_bos=False, exclude_current_token=False,
                        error_measure="mul") / len(tokens)
        got = frame[frame["metric"] == metric].pivot(index="layer", columns="head", values="value")
        np.testing.assert_allclose(got.to_numpy(dtype=float), expected, atol=1e-9)
        assert np.ptp(expected) > 0.01


def test_llc_of_a_regular_linear_regression_is_half_its_dimension():
    """λ = d/2 for a full-rank linear regression (the posterior is Gaussian: E[nβ ΔL] = d/2 for
    any nβ). devinterp's SGLD at ε = 3e-4, nβ = 100, γ = 0, 2 chains × 150 draws after 50 burn-in
    steps: within 20 % (ε·nβ·λ_max(H) ≈ 0.06: discretisation bias a few %, chain noise ~10 %)."""
    generator = torch.Generator().manual_seed(0)
    n, d = 1000, 6
    inputs = torch.randn(n, d, generator=generator)
    targets = inputs @ torch.randn(d, 1, generator=generator) + 0.3 * torch.randn(n, 1, generator=generator)
    network = torch.nn.Linear(d, 1, bias=False)
    with torch.no_grad():
        network.weight.copy_(torch.linalg.lstsq(inputs, targets).solution.T)
    checkpoint = network.weight.detach().clone()

    def loss(model, indices):
        return ((model(inputs[indices]) - targets[indices]) ** 2).mean()

    settings = LLCSettings(lr=3e-4, nbeta=100.0, localization=0.0, chains=2, draws=150,
                           burnin=50, batch_size=100)
    result = estimate_llc(network, loss, n, settings, seed=0)
    assert result.llc == pytest.approx(d / 2, rel=0.2)
    assert len(result.trace) == 2 * 150 and (result.per_chain > 0).all()
    assert torch.equal(network.weight, checkpoint)  # sampling leaves the checkpoint unchanged


@pytest.mark.parametrize("name", ["lrmc", "mws"])
def test_llc_runs_on_the_regression_and_the_cross_entropy_loss(name):
    task = make_task("lrmc", m=3, n=3, rank=1) if name == "lrmc" else make_task("mws", n_inputs=5)
    model = perturbed_model(task, ModelConfig(n_layers=1, n_heads=2, d_model=16))
    batch = sample(task, 64)
    estimates, traces = llc_over_checkpoints(
        [(0, model)], batch, LLCSettings(lr=1e-4, chains=2, draws=10, burnin=5, batch_size=32),
        progress=False)
    assert list(estimates["step"]) == [0] and np.isfinite(estimates["llc"]).all()
    expected_loss = float(task.loss(model.network(batch.inputs), batch))
    assert estimates["init_loss"].iloc[0] == pytest.approx(expected_loss, rel=1e-6)
    assert len(traces) == 2 * 10 and set(traces.columns) == {"step", "chain", "draw", "loss"}


def test_llc_settings_refuse_bad_values():
    with pytest.raises(ValueError, match="LLCSettings.lr must be > 0"):
        LLCSettings(lr=0.0)
    with pytest.raises(ValueError, match="LLCSettings.chains must be an int >= 1"):
        LLCSettings(chains=0)


def tiny_run(tmp_path, name="mws", seed=0, steps=12):
    from plateau_lens import load_config, train

    task = {"name": "mws", "n_inputs": 6} if name == "mws" else {"name": "lrmc", "m": 3, "n": 3, "rank": 1}
    config = load_config({
        "task": task, "model": {"n_layers": 2, "n_heads": 2, "d_model": 16, "attention": "softmax"},
        "train": {"steps": steps, "batch_size": 8, "eval_batch_size": 4, "lr": 3e-3, "log_every": 1,
                  "checkpoint_every": 2, "checkpoint_log_spaced": False, "seed": seed}})
    return train(config, tmp_path / f"{name}_{seed}", progress=False)


REPORT_ARGS = ["--llc-checkpoints", "3", "--llc-draws", "4", "--llc-burnin", "2",
               "--batch-size", "64", "--quiet"]


@pytest.mark.parametrize("name", ["mws", "lrmc"])
def test_report_page_holds_the_onset_table_and_one_figure_per_measure(tmp_path, name):
    import base64
    import re

    from plateau_lens.cli import main

    run = tiny_run(tmp_path, name)
    assert main(["report", str(run), "--out", str(tmp_path / "report"), *REPORT_ARGS]) == 0
    page = (tmp_path / "report" / "report.html").read_text()
    onsets = pd.read_csv(tmp_path / "report" / "onsets.csv")
    assert page.index("Onset table") < page.index("<img")  # the table is on top
    for measure in onsets["measure"]:
        assert f"<td>{measure}</td>" in page
    headings = re.findall(r"<h2>[^<]*: ([^<]*)</h2>\s*<img", page)
    expected = {"Onset order", "Training metrics (metrics.csv)", "Head scores per checkpoint",
                "Essential dynamics", "Local learning coefficient (devinterp SGLD)"}
    assert set(headings) == expected and len(headings) == len(expected)
    for image in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page):
        assert base64.b64decode(image).startswith(b"\x89PNG")
    measures = set(onsets["measure"])
    head_metrics = {"same_row", "same_column"} if name == "lrmc" else {"induction", "previous_token"}
    assert {"loss", "LLC", "ED PC1"} <= measures
    assert all(any(m.startswith(metric) for m in measures) for metric in head_metrics)
    assert "src='http" not in page and "<script" not in page  # self-contained


def test_report_refuses_too_few_checkpoints_before_any_work(tmp_path, capsys):
    from plateau_lens.cli import main

    run = tiny_run(tmp_path, steps=4)  # checkpoints 0, 2, 4
    assert main(["report", str(run), "--out", str(tmp_path / "report")]) == 2
    message = capsys.readouterr().err
    assert "has 3 checkpoint(s) (steps [0, 2, 4])" in message and "at least 6" in message
    assert not (tmp_path / "report").exists()
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "neither a plateau-lens run" in capsys.readouterr().err


def test_report_on_a_local_llm_series(tmp_path, monkeypatch):
    """Six tiny GPT-NeoX checkpoints (step{N} folders, log-spaced like Pythia's) with a
    prompts.txt and no pretrain.json: the page has the series' repetition and collapse, head
    scores, essential dynamics and the LLC, and says in one line each what it does not show."""
    from fixtures_llm import PROMPTS, offline, save_model

    from plateau_lens.cli import main

    offline(monkeypatch)
    series = tmp_path / "series"
    for index, step in enumerate((0, 1, 4, 16, 64, 256)):
        save_model(series / f"step{step}", "neox", seed=index)
    (series / "prompts.txt").write_text("\n".join(PROMPTS * 8) + "\n")  # 32 prompts: 10 token rows
    assert main(["report", str(series), "--out", str(tmp_path / "report"), "--llc-checkpoints",
                 "2", "--llc-draws", "3", "--llc-burnin", "1", "--quiet"]) == 0
    page = (tmp_path / "report" / "report.html").read_text()
    measures = set(pd.read_csv(tmp_path / "report" / "onsets.csv")["measure"])
    assert {"repetition_frequency", "cosine_similarity", "ED PC1", "LLC", "induction L1H3"} <= measures
    assert page.count("<img") == 5  # onsets, series metrics, head scores, essential dynamics, LLC
    not_shown = page[page.index("Not shown: does not apply or skipped"):page.index("<img")]
    assert "training loss: not recorded" in not_shown and "pretrain.json absent" in not_shown
    assert "metrics.csv columns" in not_shown and "local learning coefficient" not in not_shown
    assert "2 chains × 3 draws after 1 burn-in" in page  # the CLI's LLC settings reach the series


def regression_problem(n=1000, d=6):
    """A full-rank linear regression at its least-squares solution: λ = d/2 (a regular model)."""
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(n, d, generator=generator)
    targets = inputs @ torch.randn(d, 1, generator=generator) + 0.3 * torch.randn(n, 1, generator=generator)
    network = torch.nn.Linear(d, 1, bias=False)
    with torch.no_grad():
        network.weight.copy_(torch.linalg.lstsq(inputs, targets).solution.T)

    def loss(model, indices):
        return ((model(inputs[indices]) - targets[indices]) ** 2).mean()

    return network, loss, n, d


def test_llc_calibration_picks_a_setting_that_recovers_half_the_dimension():
    """The sweep ε ∈ {1e-4 … 1e-2} at nβ = 100 on the known-answer regression (λ = d/2 = 3): the
    rule picks a setting whose λ̂ is within 20 %. The sweep holds a usable-but-wrong setting at
    each end (ε = 1e-2: flat, positive chains, λ̂ inflated > 1.5× by discretisation; ε = 1e-4:
    not mixed, λ̂ < 0.8 × 3), so a rule that takes the largest or the smallest usable ε fails."""
    from plateau_lens.development import llc_calibration

    network, loss, n, d = regression_problem()
    settings = LLCSettings(localization=0.0, chains=2, draws=150, burnin=150, batch_size=100)
    result = llc_calibration(network, loss, n, lrs=(1e-4, 3e-4, 1e-3, 3e-3, 1e-2), nbetas=(100.0,),
                             settings=settings)
    table = result.table.set_index("lr")
    assert result.chosen is not None, result.reason
    chosen = table.loc[result.chosen.lr]
    assert bool(chosen["chosen"]) and table["chosen"].sum() == 1
    assert chosen["llc"] == pytest.approx(d / 2, rel=0.2)
    assert result.chosen.nbeta == 100.0 and result.chosen.draws == 150
    assert table.loc[1e-2, "usable"] and table.loc[1e-2, "llc"] > 1.5 * d / 2
    assert table.loc[1e-4, "usable"] and table.loc[1e-4, "llc"] < 0.8 * d / 2
    assert len(result.traces) == 5 * 2 * 150


def test_choose_llc_setting_on_a_hand_made_sweep():
    """The rule by hand: diverged, negative and drifting rows are unusable; change_to_next is
    the relative change of λ̂ to the next larger usable ε at the same nβ; the first nβ with a
    change ≤ agreement wins, at the smaller ε of its flattest pair."""
    from plateau_lens.development import choose_llc_setting

    table = pd.DataFrame({
        "lr":              [1e-4, 1e-3, 1e-2, 3e-2, 1e-4, 1e-3, 1e-2],
        "nbeta":           [10.0, 10.0, 10.0, 10.0, 50.0, 50.0, 50.0],
        "llc":             [5.0,  5.4,  5.5,  np.nan, 4.0, 4.2,  4.3],
        "negative_chains": [0,    0,    0,    0,    0,    0,    0],
        "max_drift":       [0.2,  0.3,  1.4,  np.nan, 0.1, 0.1, 0.2],
        "diverged":        [False, False, False, True, False, False, False]})
    marked, index, reason = choose_llc_setting(table, agreement=0.1)
    assert list(marked["usable"]) == [True, True, False, False, True, True, True]
    np.testing.assert_allclose(marked["change_to_next"],
                               [0.4 / 5.4, np.nan, np.nan, np.nan, 0.2 / 4.2, 0.1 / 4.3, np.nan])
    assert list(marked["stable"]) == [True, False, False, False, True, True, False]
    assert index == 0 and list(marked["chosen"]) == [True] + [False] * 6
    assert "ε = 0.0001" in reason and "to ε = 0.001" in reason
    table.loc[1, "llc"] = 6.0   # 5.0 → 6.0 changes by 17 %: nβ = 10 has no stable row
    marked, index, _ = choose_llc_setting(table, agreement=0.1)
    assert index == 5 and marked["chosen"].sum() == 1   # nβ = 50's flattest pair: 4.2 → 4.3
    table.loc[:, "negative_chains"] = 1
    marked, index, reason = choose_llc_setting(table, agreement=0.1)
    assert index is None and not marked["chosen"].any() and "no setting is stable" in reason


def test_llc_calibration_refuses_bad_sweeps_before_sampling():
    from plateau_lens.development import llc_calibration

    network, loss, n, _ = regression_problem(n=10)
    with pytest.raises(ValueError, match="lrs must be a non-empty list of finite numbers > 0"):
        llc_calibration(network, loss, n, lrs=(1e-3, -1.0))
    with pytest.raises(ValueError, match="nbetas must be a non-empty list"):
        llc_calibration(network, loss, n, nbetas=())
    with pytest.raises(ValueError, match=r"agreement must be in \(0, 1\)"):
        llc_calibration(network, loss, n, agreement=1.5)


def test_an_llm_series_gets_the_llc_checkpoints_asked_for(tmp_path, monkeypatch):
    """``--llc-checkpoints`` reaches an LLM series as given (it was silently cut to 10); left
    out, a series gets 10; 0 stays 0; a negative count is refused."""
    from plateau_lens.development import report

    series = tmp_path / "series"
    for step in (0, 1, 2, 4, 8, 16):
        (series / f"step{step}").mkdir(parents=True)
    asked = []

    class Stop(Exception):
        pass

    def record(directory, prompts, llc_checkpoints, *args, **kwargs):
        asked.append(llc_checkpoints)
        raise Stop

    monkeypatch.setattr(report, "series_sections", record)
    for given in (12, None, 0):
        with pytest.raises(Stop):
            report.build_report([series], tmp_path / "out", llc_checkpoints=given, progress=False)
    assert asked == [12, 10, 0]
    with pytest.raises(ValueError, match="--llc-checkpoints must be an integer >= 0, got -1"):
        report.build_report([series], tmp_path / "out", llc_checkpoints=-1, progress=False)


def test_progress_false_hides_devinterps_chain_bars(capfd):
    """devinterp's per-chain bars (its own tqdm, no option) appear with progress on and not
    with it off (``--quiet``); devinterp's ``trange`` is restored after."""
    from devinterp.slt import sampler

    from plateau_lens.development import estimate_llc

    network, loss, n, d = regression_problem(n=200)
    settings = LLCSettings(chains=1, draws=3, burnin=1, batch_size=50)
    original = sampler.trange
    estimate_llc(network, loss, n, settings, progress=False)
    assert "Chain 0" not in capfd.readouterr().err
    assert sampler.trange is original
    estimate_llc(network, loss, n, settings, progress=True)
    assert "Chain 0" in capfd.readouterr().err
