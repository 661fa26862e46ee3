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
    ("lrmc", {"p_mask": True}, "p_mask"), ("lrmc", {"factor_scale": float("inf")}, "factor_scale"),
    ("lrmc", {"factor_scale": True}, "factor_scale"),
    # the separator must not be a value the inputs (1..16) or outputs (0..16) can take
    ("mws", {"separator": 3}, "separator.*inputs 1..16 and outputs 0..16"),
    ("mws", {"separator": 0}, "separator.*outputs 0..16"), ("mws", {"modulus": 20}, "separator"),
    ("concat_mws", {"separator": 16}, "separator"), ("concat_mws", {"modulus": 0}, "modulus"),
    ("concat_mws", {"low": 5, "high": 2}, "high"),
    ("prefix_sum", {"modulus": 0}, "modulus"), ("prefix_sum", {"modulus": 5}, "modulus.*separator"),
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


# ------------------------------------------------ the loss-plateau study's masks and rows
# Each expected value below is written out by hand from the study's definition (the authors'
# src/train_*.py), as (query row, key) pairs of the model input, not computed by our code.

def mask_pairs(mask):
    return sorted(map(tuple, mask.nonzero().tolist()))


def test_prefix_sum_mask_is_x_i_and_y_i_minus_1_written_out():
    # 4 inputs: x1..x4 at 0..3, SEP at 4, y1..y4 at 5..8 (the model sees 0..7). The row
    # predicting y1 (row 4) attends to x1; the row predicting y_i (row 3+i) to x_i and y_{i-1}.
    task = make_task("prefix_sum", n_inputs=4, high=4)
    assert mask_pairs(task.optimal_attention()) == [(4, 0), (5, 1), (5, 5), (6, 2), (6, 6),
                                                    (7, 3), (7, 7)]
    # the study's size (train_prefix.py: att_mask[0, 0] and att_mask[i, i], att_mask[i, i + 16])
    full = make_task("prefix_sum").optimal_attention()
    # y_i sits at position 16 + i: the input token of the row that predicts y_{i+1}
    assert mask_pairs(full) == sorted([(16, 0)] + [(16 + i, i) for i in range(1, 16)]
                                      + [(16 + i, 16 + i) for i in range(1, 16)])


def test_addition_mask_has_the_carry_keys_and_the_final_carry_row_written_out():
    # "abcd+efgh=": a digits at 0..3, '+' 4, b digits 5..8, '=' 9; rows 9..13 predict the sum
    # digits least significant first (train_add.py's att_mask).
    expected = [(9, 3), (9, 8),
                (10, 2), (10, 3), (10, 7), (10, 8),
                (11, 1), (11, 2), (11, 6), (11, 7),
                (12, 0), (12, 1), (12, 5), (12, 6),
                (13, 0), (13, 5)]
    assert mask_pairs(make_task("addition").optimal_attention()) == expected
    # 2 digits: "ab+cd=": a 0..1, b 3..4; rows 5, 6, 7
    assert mask_pairs(make_task("addition", digits=2).optimal_attention()) == [
        (5, 1), (5, 4), (6, 0), (6, 1), (6, 3), (6, 4), (7, 0), (7, 3)]


def test_mws_window_3_copies_attend_to_their_own_input_only():
    # 5 inputs, k = 3: y1 = x1, y2 = x2 (copies), y3 = x1+x2+x3, y4 = x2+x3+x4, y5 = x3+x4+x5;
    # x at 0..4, SEP at 5, rows 5..9 predict y1..y5
    task = make_task("mws", n_inputs=5, window=3)
    assert mask_pairs(task.optimal_attention()) == [(5, 0), (6, 1), (7, 0), (7, 1), (7, 2),
                                                    (8, 1), (8, 2), (8, 3), (9, 2), (9, 3), (9, 4)]


def test_permutation_masks_per_layer_written_out():
    # 3 inputs from {4..6}: x at 0..2, 0 at 3, pi+1 at 4..6, SEP 0 at 7, y at 8..10 (model sees
    # 0..9). pi = (2, 0, 1): y = (x3, x1, x2). Layer 0 (train_permute.py att_mask1): the row
    # predicting y_i (7+i) attends to the pi token at 4+i; layer 1 (att_mask2): to x_pi(i).
    from plateau_lens.tasks import SequenceBatch

    task = make_task("permutation", n_inputs=3, low=4, high=6)
    tokens = torch.tensor([[5, 4, 6, 0, 3, 1, 2, 0, 6, 5, 4]])
    masks = task.attention_progress_masks(SequenceBatch(tokens, task.prompt_length, "permutation"), 2)
    assert mask_pairs(masks[0]) == [(7, 4), (8, 5), (9, 6)]
    assert mask_pairs(masks[1][0]) == [(7, 2), (8, 0), (9, 1)]
    assert masks[1].shape == (1, 10, 10)
    assert task.optimal_attention() is None  # no fixed mask: no biasing


def test_histogram_mask_is_layer_0_only_written_out():
    # 3 inputs at 0..2, 0 at 3, counts at 4..6: rows 3, 4, 5 attend to x1, x2, x3 (train_hist.py)
    task = make_task("histogram", n_inputs=3)
    masks = task.attention_progress_masks(task.sample(2, gen()), 2)
    assert list(masks) == [0] and mask_pairs(masks[0]) == [(3, 0), (4, 1), (5, 2)]


@pytest.mark.parametrize("name,params,rows", [
    ("mws", {}, list(range(17, 32))),                 # train_mws.py: logit_cs[:, 1:]
    ("prefix_sum", {}, list(range(17, 32))),          # train_prefix.py: the same
    ("repeat", {"k": 1}, list(range(17, 32))),        # train_repeat.py, k = 1
    ("addition", {}, [9, 10, 11, 12]),                # train_add.py: logit_cs[:-1, :] of rows 9..13
    ("copy", {}, list(range(16, 32))),                # train_copy_reverse.py: all of rows 16..31
    ("reverse", {}, list(range(16, 32))),
    ("histogram", {}, list(range(16, 32))),           # train_hist.py: sum(pre_lm_cs) of rows 16..31
    ("permutation", {}, list(range(33, 49))),         # train_permute.py: rows 33..48
])
def test_collapse_rows_written_out(name, params, rows):
    task = make_task(name, **params)
    assert task.collapse_positions() == rows
    pairs = task.collapse_pairs()["cosine_similarity"]
    assert sorted(pairs) == [(i, j) for i in rows for j in rows if i < j]


def test_repeat_collapse_pairs_stay_within_blocks():
    """train_repeat.py reads its lower-triangular matrix logit_cs[a, b] (a > b, local index of
    row 16 + a) at logit_cs[2:8, 1:7] and logit_cs[10:16, 9:15] (k = 2) and at twelve
    listed entries (k = 4); the pairs below are those entries, shifted by 16."""
    k2 = {(16 + b, 16 + a) for a in range(2, 8) for b in range(1, 7) if b < a} | {
        (16 + b, 16 + a) for a in range(10, 16) for b in range(9, 15) if b < a}
    assert len(k2) == 42
    assert set(make_task("repeat", k=2).collapse_pairs()["cosine_similarity"]) == k2
    listed = [(2, 1), (3, 1), (3, 2), (6, 5), (7, 5), (7, 6), (10, 9), (11, 9), (11, 10),
              (14, 13), (15, 13), (15, 14)]
    k4 = {(16 + b, 16 + a) for a, b in listed}
    pairs = make_task("repeat", k=4).collapse_pairs()["cosine_similarity"]
    assert len(pairs) == 12 and set(pairs) == k4


def test_concat_mws_collapse_segments():
    """train_mws_concat.py: logit_cs (rows 16..28, a > b) summed over columns b = 0..3 / 42,
    4..8 / 30, 9..12 / 6: the earlier row of each pair decides its segment."""
    measures = make_task("concat_mws").collapse_pairs()
    by_column = {name: {(16 + b, 16 + a) for a in range(13) for b in columns if b < a}
                 for name, columns in [("copies", range(0, 4)), ("window2", range(4, 9)),
                                       ("window3", range(9, 13))]}
    for name, expected in by_column.items():
        assert set(measures[f"cosine_similarity_{name}"]) == expected
    assert [len(by_column[n]) for n in ("copies", "window2", "window3")] == [42, 30, 6]
    assert len(measures["cosine_similarity"]) == 78


def test_task_metrics_are_float64_reductions_of_the_output():
    """Every task metric equals numpy's float64 reduction of the same float32 output to 1e-12
    (the sequence loss to 1e-9; a float32 reduction is 1e-8..1e-7 off, which made a small
    ablated − clean difference up to ~20 % wrong): LRMC (value tokens) MSEs, MWS
    cross-entropy, the GPT variant's MSEs."""
    generator = torch.Generator().manual_seed(0)
    lrmc = make_task("lrmc", m=4, n=5, rank=2, encoding="tokens")
    batch = lrmc.sample(2048, gen())
    output = torch.randn(2048, 20, 1, generator=generator)
    squared = (output[..., 0].double().numpy().reshape(2048, 4, 5) - lrmc.target(batch).double().numpy()) ** 2
    masked = (~batch.observed).numpy()
    expected = {"loss": squared.mean(), "masked_mse": squared[masked].mean(),
                "observed_mse": squared[~masked].mean(),
                "masked_abs_pred": np.abs(output[..., 0].double().numpy().reshape(2048, 4, 5))[masked].mean()}
    ours = lrmc.metrics(output, batch)
    for name, value in expected.items():
        assert ours[name].item() == pytest.approx(value, rel=1e-12), name

    mws = make_task("mws", n_inputs=5)
    sequences = mws.sample(2048, gen())
    logits = 3 * torch.randn(2048, sequences.inputs.shape[1], mws.token_vocabulary, generator=generator)
    log_probabilities = torch.log_softmax(logits.double(), -1).numpy()
    targets = sequences.targets.numpy()
    cross_entropy = -np.take_along_axis(log_probabilities, targets[..., None], -1).mean()
    # each token's cross-entropy in float32, their mean in float64: 7e-11 off here (a float32
    # mean is 4.1e-8 off)
    assert mws.metrics(logits, sequences)["loss"].item() == pytest.approx(cross_entropy, rel=1e-9)

    gpt = make_task("lrmc_gpt", m=2, n=3, rank=1)
    sequences = gpt.sample(2048, gen())
    logits = torch.randn(2048, sequences.inputs.shape[1], gpt.token_vocabulary, generator=generator)
    rows = gpt.answer_rows()
    predicted = logits[:, rows.start:rows.stop].argmax(-1)
    from plateau_lens.tasks.lrmc_gpt import gpt_tokens_to_values
    values = np.nan_to_num(gpt_tokens_to_values(predicted).double().numpy(), nan=0.0)
    squared = (values - gpt_tokens_to_values(sequences.answers).double().numpy()) ** 2
    observed = gpt.observed(sequences).numpy()
    ours = gpt.metrics(logits, sequences)
    assert ours["observed_mse"].item() == pytest.approx(squared[observed].mean(), rel=1e-12)
    assert ours["masked_mse"].item() == pytest.approx(squared[~observed].mean(), rel=1e-12)
