"""Generators against direct reference computations, and their input validation."""

import numpy as np
import pytest
import torch

from plateau_lens.tasks import make_task, step_generator
from plateau_lens.codec import (
    FIXED_POINT_MASK, TOKEN_MASK, fixed_point_to_values, tokens_to_values, values_to_tokens,
)


def gen(seed=0):
    return step_generator(seed, 0)


@pytest.mark.parametrize("m,n,rank", [(7, 7, 2), (5, 9, 3), (6, 4, 1)])
def test_lrmc_matrices_have_exact_rank(m, n, rank):
    task = make_task("lrmc", m=m, n=n, rank=rank)
    batch = task.sample(64, gen())
    ranks = torch.linalg.matrix_rank(batch.matrix, rtol=1e-5)  # float32 round-off ~1e-7
    assert (ranks == rank).all()
    assert torch.allclose(batch.matrix, batch.U @ batch.V.transpose(1, 2), atol=1e-6)
    assert batch.matrix.abs().max() <= rank + 1e-6  # |X_ij| ≤ r for U[-1, 1] factors


@pytest.mark.parametrize("p", [0.0, 0.3, 0.7])
def test_lrmc_observed_fraction_is_one_minus_p(p):
    batch = make_task("lrmc", p_mask=p).sample(2048, gen())
    fraction = batch.observed.float().mean().item()
    assert abs(fraction - (1 - p)) < 0.01  # 100k entries: std ≈ 0.0015


def test_lrmc_uniform_factor_moments():
    batch = make_task("lrmc").sample(4096, gen())
    assert abs(batch.U.mean().item()) < 0.02
    assert abs(batch.U.var().item() - 1 / 3) < 0.01
    # Var(X_ij) = r · E[u²]E[v²] = 2/9: the plateau's masked MSE when predicting 0
    assert abs(batch.matrix.var().item() - 2 / 9) < 0.01


def test_token_round_trip_and_vocabulary():
    values = torch.linspace(-10, 10, 2001)
    tokens = values_to_tokens(values)
    assert tokens.min() == 1 and tokens.max() == 2001  # MASK = 0, vocabulary 2002
    assert torch.allclose(tokens_to_values(tokens), torch.round(values * 100) / 100, atol=1e-6)
    task = make_task("lrmc", encoding="tokens")
    batch = task.sample(16, gen())
    decoded = tokens_to_values(batch.inputs).reshape(16, 7, 7)
    assert torch.equal(batch.inputs.reshape(16, 7, 7) == TOKEN_MASK, ~batch.observed)
    expected = torch.round(batch.matrix * 100) / 100
    assert torch.allclose(decoded[batch.observed], expected[batch.observed], atol=1e-5)


@pytest.mark.parametrize("value", [1.6549999713897705, 1.3650000095367432, -1.8949999809265137,
                                   1.1050000190734863])
def test_tokens_round_the_exact_float32_value(value):
    """Float32 entries within 1e-8 of a half-way point: 100·x computed in float32 rounds the
    wrong way for these (found by searching 4e7 draws); the token must be 1001 + the nearest
    integer to the exact value of 100·x (a Fraction, no floating point)."""
    from fractions import Fraction

    x = torch.tensor([value], dtype=torch.float32)
    exact = Fraction(x.item()) * 100
    assert abs(exact - round(exact)) < Fraction(1, 2)  # not exactly half-way: one right answer
    assert values_to_tokens(x).item() == 1001 + round(exact)


def test_real_encoding_round_trip():
    task = make_task("lrmc")
    batch = task.sample(16, gen())
    decoded = fixed_point_to_values(batch.inputs).reshape(16, 7, 7)
    assert torch.equal(batch.inputs.reshape(16, 7, 7) == FIXED_POINT_MASK, ~batch.observed)
    assert torch.allclose(decoded[batch.observed], batch.matrix[batch.observed], atol=1e-6)


def test_ood_factor_distributions():
    gauss = make_task("lrmc", factor_distribution="gaussian", factor_scale=0.5).sample(4096, gen())
    assert abs(gauss.U.std().item() - 0.5) < 0.01
    laplace = make_task("lrmc", factor_distribution="laplace", factor_scale=0.25).sample(4096, gen())
    # Laplace(0, b): E|u| = b
    assert abs(laplace.U.abs().mean().item() - 0.25) < 0.01


def test_same_seed_same_batch_and_steps_differ():
    task = make_task("mws")
    a, b = task.sample(8, step_generator(3, 5)), task.sample(8, step_generator(3, 5))
    c = task.sample(8, step_generator(3, 6))
    assert torch.equal(a.tokens, b.tokens) and not torch.equal(a.tokens, c.tokens)


def reference_rows(task_name, tokens, **params):
    """Direct per-sequence reference computations from the study's definitions."""
    rows = tokens.tolist()
    for row in rows:
        x = row[:16]
        if task_name == "mws":
            k = params.get("window", 2)
            y = [x[i] if i < k - 1 else sum(x[i - k + 1 : i + 1]) % 17 for i in range(16)]
            assert row[16] == 17 and row[17:] == y
        elif task_name == "prefix_sum":
            assert row[16] == 17 and row[17:] == [sum(x[: i + 1]) % 17 for i in range(16)]
        elif task_name == "repeat":
            k = params["k"]
            y = [(x[0] + i // (16 // k)) % 17 for i in range(16)]
            assert row[16] == 17 and row[17:] == y
        elif task_name == "copy":
            assert row[16] == 0 and row[17:] == x
        elif task_name == "reverse":
            assert row[16] == 0 and row[17:] == x[::-1]
        elif task_name == "histogram":
            assert row[16] == 0 and row[17:] == [x.count(v) for v in x]
        elif task_name == "permutation":
            pi = [v - 1 for v in row[17:33]]
            assert row[16] == 0 and row[33] == 0 and sorted(pi) == list(range(16))
            assert row[34:] == [x[p] for p in pi] and all(17 <= v <= 32 for v in x)
        elif task_name == "concat_mws":
            y = x[:4] + [x[i] + x[i + 1] for i in range(4, 9)] + [
                x[i + 1] + x[i + 2] + x[i + 3] for i in range(9, 13)]
            assert row[16] == 17 and row[17:] == [v % 17 for v in y]
        elif task_name == "addition":
            digits = lambda ds: int("".join(map(str, ds)))  # noqa: E731
            a, b = digits(row[:4]), digits(row[5:9])
            assert row[4] == 10 and row[9] == 11 and 1 <= a <= 9999 and 1 <= b <= 9999
            assert row[10:] == [int(c) for c in str(a + b).zfill(5)[::-1]]


@pytest.mark.parametrize("name,params,length,vocab", [
    ("mws", {}, 33, 18), ("mws", {"window": 3}, 33, 18), ("prefix_sum", {}, 33, 18),
    ("prefix_sum", {"no_repeat": True}, 33, 18), ("repeat", {"k": 1}, 33, 18),
    ("repeat", {"k": 2}, 33, 18), ("repeat", {"k": 4}, 33, 18), ("copy", {}, 33, 17),
    ("reverse", {}, 33, 17), ("histogram", {}, 33, 17), ("permutation", {}, 50, 33),
    ("concat_mws", {}, 30, 18), ("addition", {}, 15, 12),
])
def test_sequence_generators_match_reference(name, params, length, vocab):
    task = make_task(name, **params)
    batch = task.sample(128, gen())
    assert batch.tokens.shape == (128, length) and task.sequence_length == length
    assert task.d_vocab == vocab and batch.tokens.max() < vocab and batch.tokens.min() >= 0
    reference_rows(name, batch.tokens, **params)
    if name == "prefix_sum" and params.get("no_repeat"):
        assert all(sorted(r[:16]) == list(range(1, 17)) for r in batch.tokens.tolist())


def test_mws_optimal_attention_mask():
    mask = make_task("mws").optimal_attention()
    assert mask.shape == (32, 32)
    assert mask[16].nonzero().flatten().tolist() == [0]
    for i in range(15):
        assert mask[17 + i].nonzero().flatten().tolist() == [i, i + 1]
    assert mask[:16].sum() == 0


@pytest.mark.parametrize("name,params,field", [
    ("lrmc", {"rank": 8}, "rank"), ("lrmc", {"rank": 0}, "rank"),
    ("lrmc", {"p_mask": 1.0}, "p_mask"), ("lrmc", {"p_mask": -0.1}, "p_mask"),
    ("lrmc", {"m": 0}, "m"), ("lrmc", {"n": -3}, "n"), ("lrmc", {"encoding": "bits"}, "encoding"),
    ("lrmc", {"factor_distribution": "cauchy"}, "factor_distribution"),
    ("mws", {"window": 17}, "window"), ("mws", {"n_inputs": 0}, "n_inputs"),
    ("repeat", {"k": 3}, "k"), ("addition", {"digits": 0}, "digits"),
])
def test_bad_parameters_name_field_and_range(name, params, field):
    with pytest.raises(ValueError, match=field):
        make_task(name, **params)


def test_unknown_task_and_parameter():
    with pytest.raises(ValueError, match="task name must be one of"):
        make_task("sorting")
    with pytest.raises(ValueError, match="unknown parameter"):
        make_task("lrmc", size=3)
    with pytest.raises(ValueError, match="batch_size"):
        make_task("lrmc").sample(0, gen())


# --------------------------------------------------- the matrix-completion study's targets
def test_token_encoding_target_is_the_rounded_matrix():
    """With value tokens the model is scored against X rounded to 2 decimals (the study's
    X_rounded): an output equal to the rounded matrix has zero loss, one equal to X has the
    rounding error's MSE; the real encoding keeps X itself."""
    from plateau_lens.tasks.lrmc import LowRankMatrixCompletion

    task = make_task("lrmc", m=4, n=5, rank=2, encoding="tokens")
    batch = task.sample(64, gen())
    rounded = torch.round(batch.matrix.double() * 100) / 100
    as_output = lambda matrix: matrix.reshape(64, 20, 1).float()
    assert task.loss(as_output(rounded), batch).item() < 1e-12
    error = ((batch.matrix.double() - rounded) ** 2)
    assert task.loss(as_output(batch.matrix), batch).item() == pytest.approx(error.mean().item(), rel=1e-4)
    assert error.mean().item() > 5e-6  # ≈ 0.01²/12: large enough to tell the two apart
    metrics = task.metrics(as_output(batch.matrix), batch)
    masked = ~batch.observed
    assert metrics["masked_mse"].item() == pytest.approx(error[masked].mean().item(), rel=1e-4)
    assert metrics["observed_mse"].item() == pytest.approx(error[~masked].mean().item(), rel=1e-4)
    assert metrics["masked_abs_pred"].item() == pytest.approx(batch.matrix[masked].abs().mean().item(), rel=1e-5)
    real = LowRankMatrixCompletion(m=4, n=5, rank=2)
    assert real.loss(as_output(batch.matrix), batch).item() == 0.0


def test_mixed_sizes_draw_one_size_per_batch_and_score_it():
    task = make_task("lrmc_mixed", sizes=[5, 7, [9, 9]], rank=1, encoding="tokens")
    assert task.sizes == ((5, 5), (7, 7), (9, 9)) and task.n_positions == 81
    drawn = [tuple(task.sample(1, step_generator(0, step)).matrix.shape[1:]) for step in range(300)]
    assert set(drawn) == {(5, 5), (7, 7), (9, 9)}
    assert all(75 <= drawn.count(size) <= 125 for size in set(drawn))  # 100 ± 3σ (σ = 8.2)
    again = task.sample(4, step_generator(0, 7))
    assert torch.equal(again.inputs, task.sample(4, step_generator(0, 7)).inputs)
    batch = next(b for b in (task.sample(8, step_generator(0, s)) for s in range(10))
                 if b.matrix.shape[1] == 5)
    single = make_task("lrmc", m=5, n=5, rank=1, encoding="tokens")
    output = torch.randn(8, 25, 1)
    metrics = task.metrics(output, batch)
    for name, value in single.metrics(output, batch).items():
        assert metrics[name] == value and metrics[f"{name}_5x5"] == value
    assert not any(name.endswith("7x7") for name in metrics)
    task.check_batch(batch)
    with pytest.raises(ValueError, match=r"batch holds \(4, 4\) matrices"):
        task.check_batch(make_task("lrmc", m=4, n=4, rank=1, encoding="tokens").sample(2, gen()))
    assert task.collapse_positions() == list(range(25))
    with pytest.raises(ValueError, match="sizes must be distinct"):
        make_task("lrmc_mixed", sizes=[5, 5])
    with pytest.raises(ValueError, match=r"rank must be in \[1, 2\]"):
        make_task("lrmc_mixed", sizes=[2, 7], rank=3)


def test_mixed_size_run_trains_on_every_size(tmp_path):
    """One model, positions for the largest size, trains through batches of each size; each
    size's metrics are logged in the rows of the steps that drew it."""
    import pandas as pd

    from plateau_lens import train

    config = {"task": {"name": "lrmc_mixed", "sizes": [2, 3], "rank": 1, "encoding": "tokens"},
              "model": {"n_layers": 1, "n_heads": 2, "d_model": 16, "architecture": "bert",
                        "attention": "softmax", "mask_embedding": "zero"},
              "train": {"steps": 8, "batch_size": 4, "eval_batch_size": 4, "log_every": 1,
                        "checkpoint_every": 8}}
    run = train(config, tmp_path / "run", progress=False)
    metrics = pd.read_csv(run / "metrics.csv")
    assert metrics["loss"].notna().all()
    for size in ("2x2", "3x3"):
        assert metrics[f"masked_mse_{size}"].notna().any()
    assert (metrics["masked_mse_2x2"].notna() ^ metrics["masked_mse_3x3"].notna()).all()


def test_gpt_variant_sequence_by_hand():
    """A 2×2 matrix [[0.5, -1.25], [2, 0.004]] with the off-diagonal entries masked: tokens
    201 + 100·x (MASK 0, SEP 404), prompt = masked matrix + SEP, answer = the full matrix."""
    task = make_task("lrmc_gpt", m=2, n=2, rank=1)
    matrix = torch.tensor([[[0.5, -1.25], [2.0, 0.004]]])
    observed = torch.tensor([[[True, False], [False, True]]])
    tokens = task.encode(matrix, observed)
    assert tokens.tolist() == [[251, 0, 0, 201, 404, 251, 76, 401, 201]]
    assert (task.prompt_length, task.answer_length, task.n_positions, task.d_vocab) == (5, 4, 8, 405)
    batch = task._batch(tokens)
    assert batch.prompts.tolist() == [[251, 0, 0, 201, 404]]
    corrupted = task.default_corruption(batch)  # −X, same mask
    assert corrupted.tokens.tolist() == [[151, 0, 0, 201, 404, 151, 326, 1, 201]]
    perfect = torch.nn.functional.one_hot(batch.targets, 405).float() * 50
    metrics = task.metrics(perfect, batch)
    for name in ("teacher_forced_accuracy", "observed_accuracy", "masked_accuracy"):
        assert metrics[name].item() == 1.0
    assert metrics["masked_mse"].item() == 0.0
    wrong = perfect.clone()
    wrong[0, 5] = 0
    wrong[0, 5, 201 + 125] = 50  # the masked -1.25 predicted as +1.25
    metrics = task.metrics(wrong, batch)
    assert metrics["masked_accuracy"].item() == 0.5 and metrics["observed_accuracy"].item() == 1.0
    assert metrics["masked_mse"].item() == pytest.approx(2.5 ** 2 / 2)
    sampled = make_task("lrmc_gpt").sample(32, gen())
    assert sampled.tokens.shape == (32, 99) and (sampled.tokens[:, 49] == 404).all()
    full = sampled.tokens[:, 50:]
    assert ((sampled.tokens[:, :49] == 0) | (sampled.tokens[:, :49] == full)).all()
    assert full.min() >= 1 and full.max() <= 401
    with pytest.raises(ValueError, match=r"rank must be in \[1, 2\]"):
        make_task("lrmc_gpt", rank=3)
