"""The matrix-completion study's analyses against independent computations: the plain-torch
reference forward (tests/reference, float64) with edited weights, scikit-learn (PCA, t-SNE,
nearest neighbours), numpy (SVD, nuclear norms, a proximal-gradient solver of the
regularised problem), and hand-written examples; plus the reproduction entries."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from perturbed import lrmc_metrics, perturbed_model, reference, reference_config, sample
from plateau_lens import ModelConfig, load_run, make_task, train
from plateau_lens.analysis import (OODCondition, compare_to_nuclear_norm, copying_test,
                                   default_conditions, linear_probes, mask_rows,
                                   nuclear_norm_lambda_sweep, ood_evaluation, permuted_positions,
                                   positional_embedding_neighbours, positional_embedding_norms,
                                   positional_embedding_tsne, probe_batches, study_row_mask,
                                   swap_attention, token_embedding_norms, token_embedding_pca,
                                   token_progress)
from plateau_lens.analysis import embeddings as embeddings_module
from plateau_lens.analysis.nuclear_norm import nuclear_norm_batch
from plateau_lens.tasks import step_generator
from reference import forward, weights_from_state_dict

TOKENS = make_task("lrmc", m=3, n=4, rank=1, encoding="tokens")
REAL = make_task("lrmc", m=3, n=4, rank=1)
CONFIG = ModelConfig(n_layers=2, n_heads=2, d_model=16, attention="softmax", act_fn="gelu")


def metrics_of(frame, **where) -> dict[str, float]:
    selected = frame
    for column, value in where.items():
        selected = selected[selected[column].isna()] if value is None else selected[selected[column] == value]
    return dict(zip(selected["metric"], selected["value"]))


def weight(model, name: str) -> np.ndarray:
    return model.network.state_dict()[name].detach().double().numpy()


def hand_tokens(values) -> np.ndarray:
    """The study's value token, written out: 1 + round(100·x) + 1000."""
    return 1001 + np.round(np.asarray(values, dtype=float) * 100).astype(int)


def pivot(frame, index, metrics):
    rows = frame[frame["metric"].isin(metrics)]
    return rows.pivot_table(index=index, columns="metric", values="value")[list(metrics)]


def same_up_to_sign(ours: np.ndarray, expected: np.ndarray, atol: float) -> np.ndarray:
    """Per column, the sign s with ours ≈ s·expected (asserted); returns the signs."""
    signs = np.sign(np.sum(ours * expected, axis=0))
    assert np.allclose(ours, expected * signs, atol=atol), np.abs(ours - expected * signs).max()
    return signs


# ---------------------------------------------------------------------- token embeddings
def test_token_norms_are_norms_of_the_token_table_rows_written_out_by_hand():
    model = perturbed_model(TOKENS, CONFIG)
    result = token_embedding_norms(model)
    values = np.round(np.arange(-1, 1.001, 0.01), 2)  # rank 1: entries in [-1, 1]
    assert np.allclose(result["entry_value"], values)
    table = weight(model, "tok_embed.weight")
    assert np.allclose(result["value"], np.linalg.norm(table[hand_tokens(values)], axis=1), rtol=1e-6)
    assert set(result["hook"]) == {"hook_embed"}
    ranges = dict(zip(result["entry_value"], result["value_range"]))
    assert (ranges[-1.0], ranges[-0.51], ranges[-0.5], ranges[0.49], ranges[0.5], ranges[1.0]) == (
        "[-1, -0.5)", "[-1, -0.5)", "[-0.5, 0)", "[0, 0.5)", "[0.5, 1]", "[0.5, 1]")
    # real-valued encoding: the embedding of x is x·w + b
    real = perturbed_model(REAL, CONFIG)
    result = token_embedding_norms(real, values=[-0.5, 0.25, 1.0])
    w, b = weight(real, "tok_embed.weight")[0], weight(real, "tok_embed.bias")
    expected = [np.linalg.norm(x * w + b) for x in (-0.5, 0.25, 1.0)]
    assert np.allclose(result["value"], expected, rtol=1e-6)
    with pytest.raises(ValueError, match="matrix-completion"):
        token_embedding_norms(perturbed_model(make_task("mws", n_inputs=5), CONFIG))


def test_token_pca_equals_scikit_learn_on_the_token_table():
    from sklearn.decomposition import PCA

    model = perturbed_model(TOKENS, CONFIG, seed=3)
    result = token_embedding_pca(model)
    values = np.round(np.arange(-1, 1.001, 0.01), 2)
    rows = weight(model, "tok_embed.weight")[hand_tokens(values)]
    pca = PCA(n_components=2).fit(rows)
    ours = pivot(result.dropna(subset=["entry_value"]), "entry_value", ["pc1", "pc2"]).to_numpy()
    same_up_to_sign(ours, pca.transform(rows), atol=1e-6)
    ratios = result[result["metric"] == "explained_variance_ratio"].sort_values("position")["value"]
    assert np.allclose(ratios, pca.explained_variance_ratio_, rtol=1e-6)


@pytest.fixture(scope="module")
def token_run(tmp_path_factory):
    config = {"task": {"name": "lrmc", "m": 3, "n": 4, "rank": 1, "encoding": "tokens"},
              "model": {"n_layers": 1, "n_heads": 2, "d_model": 16, "attention": "softmax"},
              "train": {"steps": 12, "batch_size": 8, "lr": 3e-2, "log_every": 4,
                        "checkpoint_every": 4}}
    return load_run(train(config, tmp_path_factory.mktemp("run") / "run", progress=False))


def test_token_progress_projects_earlier_tables_on_the_final_components(token_run):
    """scikit-learn's PCA of the final checkpoint's value rows; every step's rows times its
    components (no centring, as the study), with one sign per component for all steps."""
    from sklearn.decomposition import PCA

    run = token_run
    values = [-0.8, -0.3, 0.0, 0.2, 0.6, 0.9]
    tokens = hand_tokens(values)
    final = run.network(12).state_dict()["tok_embed.weight"].double().numpy()[tokens]
    components = PCA(n_components=2).fit(final).components_
    result = token_progress(run, steps=[0, 4, 8], values=values, progress=False)
    signs = None
    for step in (0, 4, 8):
        rows = run.network(step).state_dict()["tok_embed.weight"].double().numpy()[tokens]
        ours = pivot(result[result["step"] == step].dropna(subset=["entry_value"]), "entry_value",
                     ["pc1", "pc2"]).to_numpy()
        step_signs = same_up_to_sign(ours, rows @ components.T, atol=1e-6)
        assert signs is None or (step_signs == signs).all()
        signs = step_signs
    centred = token_progress(run, steps=[12], values=values, center=True, progress=False)
    at_final = token_embedding_pca(run.model(12), values=values)
    assert np.allclose(pivot(centred.dropna(subset=["entry_value"]), "entry_value", ["pc1", "pc2"]),
                       pivot(at_final.dropna(subset=["entry_value"]), "entry_value", ["pc1", "pc2"]))
    with pytest.raises(ValueError, match="not available"):
        token_progress(run, steps=[3], progress=False)


# ------------------------------------------------------------------- positional embeddings
@pytest.mark.parametrize("pos", ["learned", "row_column"])
def test_tsne_is_fed_the_network_positional_table_and_equals_scikit_learn(monkeypatch, pos):
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    model = perturbed_model(TOKENS, CONFIG.model_copy(update={"pos_embedding": pos}), seed=4)
    if pos == "learned":
        table = weight(model, "pos.weight")
    else:  # row i, column j: row vector i + column vector j, written out
        row = model.network.pos.row.detach().numpy()  # float32 sums, as the network adds them
        column = model.network.pos.column.detach().numpy()
        table = np.stack([row[i] + column[j] for i in range(3) for j in range(4)]).astype(float)
    fed = []
    original = embeddings_module.tsne_embedding
    monkeypatch.setattr(embeddings_module, "tsne_embedding",
                        lambda points, perplexity, seed: fed.append(points) or original(points, perplexity, seed))
    result = positional_embedding_tsne(model, perplexity=3.0, seed=0)
    assert np.allclose(fed[0], table, atol=1e-6)
    with threadpool_limits(1):  # one thread: the same summation order whatever the machine
        expected = TSNE(n_components=2, perplexity=3.0, init="pca", random_state=0).fit_transform(table)
    ours = pivot(result, "position", ["tsne_1", "tsne_2"]).to_numpy()
    assert np.allclose(ours, expected, atol=1e-3)
    labels = result.drop_duplicates("position").set_index("position")
    assert list(labels["row"]) == [0] * 4 + [1] * 4 + [2] * 4
    assert list(labels["column"]) == [0, 1, 2, 3] * 3
    norms = positional_embedding_norms(model)
    assert np.allclose(norms["value"], np.linalg.norm(table, axis=1), rtol=1e-6)
    with pytest.raises(ValueError, match="perplexity must be in"):
        positional_embedding_tsne(model, perplexity=12)


def test_neighbour_rates_equal_scikit_learn_and_a_planted_column_layout():
    from sklearn.neighbors import NearestNeighbors

    model = perturbed_model(TOKENS, CONFIG, seed=5)
    table = weight(model, "pos.weight")
    nearest = NearestNeighbors(n_neighbors=2).fit(table).kneighbors(table)[1][:, 1]
    columns, rows = np.arange(12) % 4, np.arange(12) // 4
    result = metrics_of(positional_embedding_neighbours(model))
    assert result["same_column_neighbour"] == pytest.approx(np.mean(columns[nearest] == columns))
    assert result["same_row_neighbour"] == pytest.approx(np.mean(rows[nearest] == rows))
    assert result["chance_same_column"] == pytest.approx(2 / 11)
    assert result["chance_same_row"] == pytest.approx(3 / 11)
    with torch.no_grad():  # planted: one direction per column plus a little noise
        planted = 5 * torch.eye(16)[torch.arange(12) % 4] + 0.1 * torch.randn(12, 16)
        model.network.pos.weight.copy_(planted)
    assert metrics_of(positional_embedding_neighbours(model))["same_column_neighbour"] == 1.0


def test_permuted_positions_equal_the_reference_with_permuted_weight_rows():
    """The study permutes the rows of position_embeddings.weight; we re-index hook_pos_embed.
    Expected: the reference forward on the permuted table (torch.randperm from the seed)."""
    model, batch = perturbed_model(TOKENS, CONFIG, seed=6), sample(TOKENS, 16, seed=6)
    result = permuted_positions(model, batch, n_permutations=2, scopes=["all", "rows", "columns"],
                                seed=7, progress=False)
    config = reference_config(model)
    weights = weights_from_state_dict(model.network.state_dict(), config)
    clean, _ = forward(weights, config, batch.inputs)
    assert metrics_of(result, condition="clean") == pytest.approx(lrmc_metrics(TOKENS, clean, batch))
    generator = torch.Generator().manual_seed(7)
    for index in range(2):
        source = torch.randperm(12, generator=generator)
        edited = dict(weights, W_pos=weights["W_pos"][source])
        output, _ = forward(edited, config, batch.inputs)
        ours = metrics_of(result, scope="all", permutation=index)
        assert ours == pytest.approx(lrmc_metrics(TOKENS, output, batch), rel=1e-5)
        assert ours["loss"] != pytest.approx(metrics_of(result, condition="clean")["loss"], rel=1e-3)
    # rows scope keeps every position's column, columns scope its row
    for scope, kept in (("rows", lambda p: p % 4), ("columns", lambda p: p // 4)):
        source = embeddings_module.position_permutation(TOKENS, scope, torch.Generator().manual_seed(1))
        assert torch.equal(kept(source), kept(torch.arange(12)))
        assert sorted(source.tolist()) == list(range(12))
    with pytest.raises(ValueError, match="scope must be one of"):
        permuted_positions(model, batch, scopes=["diagonal"])


# --------------------------------------------------------------------------------------- OOD
def test_ood_equals_direct_mse_from_the_reference_and_extends_positions_for_larger_sizes():
    """Every condition against the reference forward, the truth rounded to 2 decimals by
    hand (the token encoding's target). 4×4 needs 16 positions of a 12-position model: it is
    asked of the model with its table extended (trained rows kept, rows 12-15 drawn fresh
    for the seed), or reported as NaN with extend_positions=False."""
    from plateau_lens.models import with_max_positions

    model = perturbed_model(TOKENS, CONFIG, seed=8)
    conditions = [OODCondition("trained", "trained"),
                  OODCondition("gauss", "factors", {"factor_distribution": "gaussian", "factor_scale": 0.5}),
                  OODCondition("2×4", "size", {"m": 2}), OODCondition("3×3", "size", {"n": 3}),
                  OODCondition("4×4", "size", {"m": 4}), OODCondition("p=0.6", "p_mask", {"p_mask": 0.6})]
    result = ood_evaluation(model, conditions, n_matrices=32, seed=3, progress=False)
    extended = with_max_positions(model, 16, seed=3)
    assert torch.equal(extended.network.pos.weight[:12], model.network.pos.weight)
    notes = dict(zip(result["condition"], result["note"]))
    assert notes["4×4"] == "positions 12-15 untrained (fresh init)" and notes["3×3"] == ""
    for index, condition in enumerate(conditions):
        ours = metrics_of(result, condition=condition.name)
        task = dataclasses.replace(TOKENS, **condition.changes)
        batch = task.sample(32, step_generator(3, index))
        output, _ = reference(extended if condition.name == "4×4" else model, batch.inputs)
        prediction = output[..., 0].reshape(32, task.m, task.n)
        truth = torch.round(batch.matrix.double() * 100) / 100
        squared = (prediction - truth) ** 2
        masked = ~batch.observed
        expected = {"loss": squared.mean().item(), "observed_mse": squared[batch.observed].mean().item(),
                    "masked_mse": squared[masked].mean().item(),
                    "masked_mean_square": (truth[masked] ** 2).mean().item()}
        expected["masked_mse_ratio"] = expected["masked_mse"] / expected["masked_mean_square"]
        assert ours == pytest.approx({**ours, **expected}, rel=1e-5), condition.name
    refused = ood_evaluation(model, conditions[-2:], n_matrices=4, progress=False,
                             extend_positions=False)
    assert all(np.isnan(v) for v in metrics_of(refused, condition="4×4").values())
    assert "16 positions; the model has 12" in refused[refused["condition"] == "4×4"]["note"].iloc[0]
    labels = result[result["condition"] == "gauss"].iloc[0]
    assert (labels["factor_distribution"], labels["factor_scale"], labels["m"]) == ("gaussian", 0.5, 3)
    defaults = {c.name: c.changes for c in default_conditions(make_task("lrmc"))}
    assert defaults["laplace(0.25)"] == {"factor_distribution": "laplace", "factor_scale": 0.25}
    assert defaults["gaussian(0.5)"] == {"factor_distribution": "gaussian", "factor_scale": 0.5}
    assert {"6×7", "7×6", "8×7", "7×8", "9×9", "rank 1", "rank 3", "p = 0.5"} <= set(defaults)
    with pytest.raises(ValueError, match="rank must be in"):
        ood_evaluation(model, [OODCondition("r9", "rank", {"rank": 9})], progress=False)


# ------------------------------------------------------------------------------ nuclear norm
def test_compare_to_nuclear_norm_reports_all_entry_mse_and_the_nuclear_norms():
    task = make_task("lrmc", m=4, n=4, rank=1)
    model = perturbed_model(task, CONFIG, seed=9)
    result = compare_to_nuclear_norm(model, p_values=[0.1], n_matrices=5, progress=False)
    batch = dataclasses.replace(task, p_mask=0.1).sample(5, step_generator(0, 0))
    output, _ = reference(model, batch.inputs)
    prediction = output[..., 0].reshape(5, 4, 4).numpy()
    truth = batch.matrix.double().numpy()
    ours = metrics_of(result, condition="model")
    assert ours["mse"] == pytest.approx(((prediction - truth) ** 2).mean(), rel=1e-5)
    assert ours["nuclear_norm"] == pytest.approx(
        np.mean([np.linalg.svd(x, compute_uv=False).sum() for x in prediction]), rel=1e-5)
    true_norm = np.mean([np.linalg.svd(x, compute_uv=False).sum() for x in truth])
    assert metrics_of(result, condition="truth")["nuclear_norm"] == pytest.approx(true_norm, rel=1e-6)
    minimiser = metrics_of(result, condition="nuclear_norm")
    # the truth is feasible, so the minimiser's norm is at most the truth's; it interpolates
    assert minimiser["nuclear_norm"] <= true_norm + 1e-6 and minimiser["observed_mse"] < 1e-9
    assert minimiser["mse"] == pytest.approx(minimiser["masked_mse"] * (~batch.observed).double().mean().item(), rel=1e-3)


def soft_impute(matrix, observed, lam, iterations=1000):
    """Accelerated proximal gradient (FISTA) on (1/|Ω|)‖P_Ω(X − A)‖² + λ‖X‖*, numpy only:
    step |Ω|/2 (1 / Lipschitz), prox = singular-value soft-thresholding at λ|Ω|/2."""
    size = observed.sum()
    completed = np.zeros_like(matrix)
    extrapolated, momentum = completed.copy(), 1.0
    for _ in range(iterations):
        u, s, vt = np.linalg.svd(extrapolated - observed * (extrapolated - matrix))
        following = (u * np.maximum(s - lam * size / 2, 0)) @ vt
        next_momentum = (1 + np.sqrt(1 + 4 * momentum ** 2)) / 2
        extrapolated = following + (momentum - 1) / next_momentum * (following - completed)
        completed, momentum = following, next_momentum
    return completed


def objective(completed, matrix, observed, lam):
    return (((observed * (completed - matrix)) ** 2).sum() / observed.sum()
            + lam * np.linalg.svd(completed, compute_uv=False).sum())


def test_lambda_sweep_equals_an_independent_proximal_gradient_solver():
    task = make_task("lrmc", m=4, n=4, rank=2)
    lams = [2e-3, 3e-2]
    result = nuclear_norm_lambda_sweep(task, lams=lams, n_matrices=3, seed=1, progress=False)
    batch = task.sample(3, step_generator(1, 0))
    truth, observed = batch.matrix.double().numpy(), batch.observed.numpy()
    for lam in lams:
        ours_completed = nuclear_norm_batch(batch, lam, task=task)
        expected = np.stack([soft_impute(truth[i], observed[i], lam) for i in range(3)])
        for i in range(3):
            assert objective(ours_completed[i], truth[i], observed[i], lam) == pytest.approx(
                objective(expected[i], truth[i], observed[i], lam), rel=1e-6, abs=1e-8)
        assert np.abs(ours_completed - expected).max() < 5e-4  # measured 1.9e-4: solver tolerances
        squared = (expected - truth) ** 2
        ours = metrics_of(result, lam=lam)
        assert ours["masked_mse"] == pytest.approx(squared[~observed].mean(), rel=2e-3, abs=1e-6)
        assert ours["observed_mse"] == pytest.approx(squared[observed].mean(), rel=2e-3, abs=1e-6)
        assert ours["mse"] == pytest.approx(squared.mean(), rel=2e-3, abs=1e-6)
    exact = metrics_of(result, condition="exact")
    assert exact["observed_mse"] < 1e-8  # the exact form interpolates the observed entries
    assert set(result["p_mask"]) == {0.3}
    with pytest.raises(ValueError, match="lams must be"):
        nuclear_norm_lambda_sweep(task, lams=[0.0])


def test_the_minimiser_sees_the_entries_rounded_to_tokens():
    task = make_task("lrmc", m=4, n=4, rank=1, encoding="tokens", p_mask=0.2)
    batch = task.sample(2, step_generator(0, 0))
    completed = nuclear_norm_batch(batch, task=task)
    observed = batch.observed.numpy()
    hand_rounded = np.round(batch.matrix.double().numpy() * 100) / 100
    assert np.abs(completed[observed] - hand_rounded[observed]).max() < 1e-6
    assert np.abs(completed[observed] - batch.matrix.double().numpy()[observed]).max() > 1e-4


# ---------------------------------------------------------------------------------- copying
def embed_inputs(model):
    """Capture the ids each forward of ``model`` embeds (``embed.hook_in``)."""
    seen = []
    return seen, [("embed.hook_in", lambda ids, hook: seen.append(ids.clone()) or ids)]


def test_copying_fills_masked_entries_with_minus_0_24_and_equals_the_reference():
    model = perturbed_model(TOKENS, CONFIG, seed=10)
    base = sample(TOKENS, 2, seed=10)
    matrix = torch.tensor([[0.12, -0.5, 0.33, 1.0], [0.0, 0.07, -0.91, 0.5], [0.25, -0.25, 0.6, -1.0]])
    observed = torch.tensor([[True, False, True, True], [False, True, True, False], [True, True, False, True]])
    batch = TOKENS.with_inputs(base, matrix=matrix.expand(2, 3, 4).clone(), observed=observed.expand(2, 3, 4).clone())
    seen, hooks = embed_inputs(model)
    with model.bridge.hooks(fwd_hooks=hooks):
        result = copying_test(model, batch)
    assert set(result["fill_value"]) == {-0.24} and set(result["matrix"]) == {"low_rank"}
    # the two inputs, written out: MASK = 0, then −0.24 → token 977 at the masked entries
    assert seen[0][0].tolist() == [1013, 0, 1034, 1101, 0, 1008, 910, 0, 1026, 976, 0, 901]
    assert seen[1][0].tolist() == [1013, 977, 1034, 1101, 977, 1008, 910, 977, 1026, 976, 977, 901]
    output, _ = reference(model, seen[0])
    filled_output, _ = reference(model, seen[1])
    truth, masked = batch.matrix.double(), ~batch.observed
    prediction, filled = output[..., 0].reshape(2, 3, 4), filled_output[..., 0].reshape(2, 3, 4)
    expected = {"loss": ((prediction - truth) ** 2).mean().item(),
                "observed_mse": ((prediction - truth)[~masked] ** 2).mean().item(),
                "masked_mse": ((prediction - truth)[masked] ** 2).mean().item(),
                "masked_abs_pred": prediction[masked].abs().mean().item(),
                "fill_copy_mse": ((filled + 0.24)[masked] ** 2).mean().item(),
                "fill_true_mse": ((filled - truth)[masked] ** 2).mean().item(),
                "fill_observed_mse": ((filled - truth)[~masked] ** 2).mean().item(),
                "fill_loss": ((filled - truth) ** 2).mean().item()}
    assert metrics_of(result) == pytest.approx(expected, rel=1e-5)


def test_copying_on_the_studys_random_full_rank_input():
    model, batch = perturbed_model(TOKENS, CONFIG, seed=11), sample(TOKENS, 8, seed=11)
    seen, hooks = embed_inputs(model)
    with model.bridge.hooks(fwd_hooks=hooks):
        result = copying_test(model, batch, matrix="random", fill_value=None, seed=2)
    assert "fill_copy_mse" not in set(result["metric"]) and result["fill_value"].isna().all()
    random = torch.rand(batch.matrix.shape, generator=torch.Generator().manual_seed(2)) * 2 - 1
    assert all(np.linalg.matrix_rank(x.numpy()) == 3 for x in random)
    hand = np.where(batch.observed.reshape(8, 12).numpy(), hand_tokens(random.reshape(8, 12).numpy()), 0)
    assert seen[0].tolist() == hand.tolist()  # the batch's mask, random full-rank entries
    output, _ = reference(model, seen[0])
    rounded = torch.round(random.double() * 100) / 100  # the token encoding's target
    squared = (output[..., 0].reshape(8, 3, 4) - rounded) ** 2
    ours = metrics_of(result)
    assert ours["observed_mse"] == pytest.approx(squared[batch.observed].mean().item(), rel=1e-5)
    assert ours["masked_mse"] == pytest.approx(squared[~batch.observed].mean().item(), rel=1e-5)
    with pytest.raises(ValueError, match="matrix must be one of"):
        copying_test(model, batch, matrix="gaussian")


# -------------------------------------------------------------------------------- row masks
def test_mask_rows_masks_all_but_one_entry_of_each_chosen_row_by_hand():
    base = sample(TOKENS, 2, seed=12)
    batch_mask = torch.tensor([[True, False, True, True], [False, True, False, True],
                               [True, True, True, False]]).expand(2, 3, 4).clone()
    batch = TOKENS.with_inputs(base, observed=batch_mask)
    F, T = False, True
    masked = mask_rows(TOKENS, batch, rows=[0, 2], keep=[1, 3])
    assert masked.observed[0].tolist() == [[F, T, F, F], [T, T, T, T], [F, F, F, T]]
    assert masked.observed[1].tolist() == masked.observed[0].tolist()
    assert (masked.inputs[0] == 0).tolist() == [T, F, T, T, F, F, F, F, T, T, T, F]  # MASK token 0
    kept = mask_rows(TOKENS, batch, rows=[0, 2], keep=[1, 3], rest="batch")
    assert kept.observed[0].tolist() == [[F, T, F, F], [F, T, F, T], [F, F, F, T]]
    whole = mask_rows(TOKENS, batch, rows=[1], keep=None)
    assert whole.observed[0].tolist() == [[T, T, T, T], [F, F, F, F], [T, T, T, T]]
    assert study_row_mask(make_task("lrmc", m=7, n=7)) == ([3, 6], [1, 5])
    for kwargs, message in [(dict(rows=[0, 2], keep=[1]), "one column per row"),
                            (dict(rows=[3], keep=[0]), "rows must be"),
                            (dict(rows=[0], keep=[4]), "keep columns must be in"),
                            (dict(rows=[1, 1], keep=[0, 0]), "must not repeat")]:
        with pytest.raises(ValueError, match=message):
            mask_rows(TOKENS, batch, **kwargs)


# -------------------------------------------------------------------------------- switching
def test_swap_offers_both_of_the_studys_directions_against_the_reference():
    pre, post = perturbed_model(TOKENS, CONFIG, seed=13), perturbed_model(TOKENS, CONFIG, seed=14)
    batch = sample(TOKENS, 16)
    result = swap_attention(pre, post, batch)
    qkv = {f"layers.{l}.attn.{x}.{p}" for l in range(2) for x in "qkv" for p in ("weight", "bias")}
    attention = qkv | {f"layers.{l}.{part}.{p}" for l in range(2) for part in ("attn.o", "ln1")
                       for p in ("weight", "bias")}
    cases = {"pre": (pre, pre, set()), "post": (post, post, set()),
             "qkv_post+rest_pre": (post, pre, qkv), "qkv_pre+rest_post": (pre, post, qkv),
             "attention_post+rest_pre": (post, pre, attention),
             "attention_pre+rest_post": (pre, post, attention)}
    assert set(result["condition"]) == set(cases)
    losses = set()
    for condition, (part_source, rest_source, names) in cases.items():
        mixed = perturbed_model(TOKENS, CONFIG)
        state = {name: (part_source if name in names else rest_source).network.state_dict()[name]
                 for name in mixed.network.state_dict()}
        mixed.network.load_state_dict(state)
        expected = lrmc_metrics(TOKENS, reference(mixed, batch.inputs)[0], batch)
        assert metrics_of(result, condition=condition) == pytest.approx(expected, rel=1e-5), condition
        losses.add(round(expected["loss"], 6))
    assert len(losses) == 6
    with pytest.raises(ValueError, match="parts must be a non-empty list of"):
        swap_attention(pre, post, batch, parts=["mlp"])


# ----------------------------------------------------------------------------------- probes
def test_probes_report_mean_absolute_cosine_and_a_sign_free_singular_vector_target():
    model = perturbed_model(TOKENS, CONFIG, seed=15)
    train_batch, test_batch = sample(TOKENS, 128, seed=1), sample(TOKENS, 32, seed=2)
    result = linear_probes(model, train_batch, test_batch,
                           targets=["observed_row", "top_singular_projector"],
                           hooks=["blocks.1.hook_resid_post"])
    _, train_cache = reference(model, train_batch.inputs)
    _, test_cache = reference(model, test_batch.inputs)
    x_train = train_cache["blocks.1.hook_resid_post"].reshape(-1, 16).numpy()
    x_test = test_cache["blocks.1.hook_resid_post"].reshape(-1, 16).numpy()

    def projector(batch):  # numpy SVD, u₁u₁ᵀ flattened, repeated at all 12 positions
        u = np.linalg.svd(batch.matrix.double().numpy())[0][:, :, 0]
        return np.repeat((u[:, :, None] * u[:, None, :]).reshape(len(u), 1, 9), 12, axis=1).reshape(-1, 9)

    def observed_row(batch):
        visible = (batch.matrix * batch.observed).double().numpy()
        return np.repeat(visible, 4, axis=1).reshape(-1, 4)

    for name, target in (("observed_row", observed_row), ("top_singular_projector", projector)):
        weights = np.linalg.lstsq(x_train, target(train_batch), rcond=None)[0]
        prediction, truth = x_test @ weights, target(test_batch)
        cosine = (prediction * truth).sum(1) / np.maximum(
            np.linalg.norm(prediction, axis=1) * np.linalg.norm(truth, axis=1), 1e-8)
        ours = metrics_of(result, target=name)
        assert ours["abs_cosine"] == pytest.approx(np.abs(cosine).mean(), rel=1e-4)
        assert ours["cosine"] == pytest.approx(cosine.mean(), rel=1e-4, abs=1e-6)
        assert ours["mse"] == pytest.approx(((prediction - truth) ** 2).mean(), rel=1e-4)
    flipped = TOKENS.with_inputs(test_batch, matrix=-test_batch.matrix)  # u₁ → ±u₁
    assert np.allclose(projector(flipped), projector(test_batch), atol=1e-6)
    train_default, test_default = probe_batches(TOKENS)
    assert (len(train_default), len(test_default)) == (2048, 256)
    assert not torch.equal(train_default.matrix[:256], test_default.matrix)


# ------------------------------------------------------------------------------- the registry
def test_every_analysis_has_a_cpu_and_a_study_size_entry():
    from plateau_lens.reproduce import REGISTRY, table
    from plateau_lens.reproduce.matrix_completion import ANALYSES

    rows = table()
    mc = rows[rows["study"] == "matrix-completion"]
    for analysis in ANALYSES:
        assert REGISTRY[f"mc-{analysis.key}-cpu"].device == "cpu"
        assert REGISTRY[f"mc-{analysis.key}"].config.startswith("tasks/")
    assert {"Fig. 1", "Fig. 3", "Fig. 4", "Table 1"} <= set(mc["figure"])
    assert REGISTRY["mc-fig1-loss"].device == "gpu" and "lrmc_cpu.toml" in REGISTRY["mc-fig1-loss-cpu"].config


TINY = """
[task]
name = "lrmc"
m = 3
n = 4
rank = 1
encoding = "tokens"
[model]
n_layers = 1
n_heads = 2
d_model = 16
attention = "softmax"
[train]
steps = 40
batch_size = 8
lr = 1e-2
log_every = 4
checkpoint_every = 8
"""


def test_cpu_entries_run_end_to_end_on_one_shared_run(tmp_path, monkeypatch):
    """Three CPU entries into one --out (a tiny stand-in for tasks/lrmc_cpu.toml, --steps 16):
    one training run, each entry's figure and CSV; milestones fall back to fractions."""
    import plateau_lens.config.shipped as shipped
    from plateau_lens.reproduce import Context, get
    from plateau_lens.reproduce.matrix_completion import CPU_SETUP, milestones

    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "lrmc_cpu.toml").write_text(TINY)
    monkeypatch.setattr(shipped, "SHIPPED_CONFIGS", tmp_path / "tasks")
    context = Context(out=tmp_path / "out", steps=16, progress=False)
    for entry_id in ("mc-fig1-loss-cpu", "mc-embeddings-cpu", "mc-copying-cpu"):
        written = get(entry_id).run(context)
        assert written["figure"].is_file() and written["table"].stat().st_size > 0
    assert sorted(p.name for p in (tmp_path / "out" / "runs").iterdir()) == ["lrmc_cpu_16"]
    run = load_run(tmp_path / "out" / "runs" / "lrmc_cpu_16")
    points, how = milestones(run, CPU_SETUP)
    # checkpoints 0, 1, 2, 4, 8, 16; no transition in 16 steps, so 15/30/45/55/65/80 % of 16
    # (2, 4, 7, 8, 10, 12) go to the nearest checkpoint (12 is as near 8 as 16: the earlier)
    assert run.steps == [0, 1, 2, 4, 8, 16] and how.startswith("no transition")
    assert points == {"early": 2, "plateau": 4, "mid_plateau": 8, "pre_drop": 8, "post_drop": 8,
                      "late": 8, "final": 16}


def test_gpt_and_mixed_size_entries_train_their_variant_at_the_cpu_size(tmp_path):
    """mc-gpt-cpu and mc-mixed-sizes-cpu train tasks/lrmc_gpt.toml / lrmc_mixed.toml with
    CPU_SETUP's overrides (--steps 4 here) and write the per-entry figures and the logged
    metrics: the GPT's observed / masked accuracy, the mixed run's masked MSE per size."""
    from plateau_lens.reproduce import Context, get

    context = Context(out=tmp_path / "out", steps=4, progress=False)
    written = get("mc-gpt-cpu").run(context)
    gpt = load_run(tmp_path / "out" / "runs" / "lrmc_gpt_cpu_4")
    assert (gpt.task.m, gpt.task.n, gpt.config.model.d_model, gpt.config.train.steps) == (4, 4, 128, 4)
    table = pd.read_csv(written["table"])
    assert {"observed_accuracy", "masked_accuracy", "observed_mse", "masked_mse"} <= set(table)
    assert table["step"].tolist() == gpt.metrics["step"].tolist()
    assert written["figure"].is_file() and written["figure-errors"].is_file()

    written = get("mc-mixed-sizes-cpu").run(context)
    assert written["figure"].is_file()
    mixed = load_run(tmp_path / "out" / "runs" / "lrmc_mixed_cpu_4")
    assert list(mixed.config.task["sizes"]) == [3, 4, 5] and mixed.config.model.architecture == "bert"
    table = pd.read_csv(written["table"])
    assert {c for c in table if c.startswith("masked_mse_")} <= {"masked_mse_3x3", "masked_mse_4x4",
                                                                 "masked_mse_5x5"}
    assert any(c.startswith("masked_mse_") for c in table)
