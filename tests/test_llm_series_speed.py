"""The fast LLM series path (issue 37) against independent computations on tiny local series
whose every weight is moved off its init: batched, left-padded, KV-cached generation against
the study's one-prompt-at-a-time recipe in plain ``transformers`` (``use_cache=False``); one
bridge reused across checkpoints against a freshly booted bridge per checkpoint (every hook's
activation); the safetensors reader against the ``safetensors`` library."""

import json
import shutil
import threading
from pathlib import Path

import pytest
import torch

from plateau_lens.llm import generation_metrics, iter_checkpoints, load_checkpoint_model
from plateau_lens.llm.checkpoints import CheckpointLoadError
from plateau_lens.llm import batching
from plateau_lens.llm import plain_model as plain_model_module
from plateau_lens.llm.batching import greedy_generate, kv_cache_agrees, left_pad, length_batches
from plateau_lens.llm.plain_model import has_active_hooks, plain_model
from plateau_lens.llm.reuse import SeriesLoader, map_safetensors
from plateau_lens.llm.series import analyze_series

from fixtures_llm import WORDS, one_thread, save_model, study_recipe, word_tokenizer

transformers = pytest.importorskip("transformers")

# 1 to 9 words: left padding of up to 8 columns in one batch
PROMPTS_OF_MANY_LENGTHS = [" ".join(WORDS[(3 * i + j) % len(WORDS)] for j in range(n))
                           for i, n in enumerate([5, 1, 9, 3, 7, 2, 8])]


def perturb(model, seed):
    """Every weight of a ``transformers`` model off its init (LayerNorm gains 1 + N(0, 0.3²),
    biases N(0, 0.3²), embeddings N(0, 1), matrices N(0, 1/fan_in)), so biases, norm affines
    and every head matter."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            if parameter.ndim == 1 and "norm" in name and name.endswith("weight"):
                parameter.copy_(1 + 0.3 * noise)
            elif parameter.ndim == 1:
                parameter.copy_(0.3 * noise)
            elif "embed" in name:
                parameter.copy_(noise)
            else:
                parameter.copy_(noise / parameter.shape[1] ** 0.5)
    return model


def save_perturbed(directory, kind, seed, **config_changes):
    if kind == "gpt2":  # learned absolute positions (the other three are rotary)
        torch.manual_seed(seed)
        model = transformers.GPT2LMHeadModel(transformers.GPT2Config(
            vocab_size=64, n_embd=32, n_layer=2, n_head=4, n_positions=64))
        word_tokenizer().save_pretrained(directory)
    else:
        model = save_model(directory, kind, seed=seed)
    for field, value in config_changes.items():
        setattr(model.config, field, value)
    if config_changes:  # another shape: a fresh model of the changed config
        model = type(model)(model.config)
    perturb(model, seed)
    model.save_pretrained(directory)
    return model


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    """Three checkpoints per architecture, different weights each."""
    roots = {}
    for kind in ("neox", "olmo", "olmo2", "gpt2"):
        root = tmp_path_factory.mktemp(f"series-{kind}")
        for step in (0, 1, 2):
            save_perturbed(root / f"step{step}", kind, seed=10 * step + 1)
        roots[kind] = root
    return roots


def test_left_pad_by_hand():
    batch = left_pad([[5, 6, 7], [8]], pad_id=0)
    assert batch.tokens.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert batch.attention_mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert batch.position_ids.tolist() == [[0, 1, 2], [0, 0, 0]]  # 8 sits at position 0 alone
    with pytest.raises(ValueError, match="no empty prompt"):
        left_pad([[1], []])


@pytest.mark.parametrize("engine", ["transformers", "bridge"])
@pytest.mark.parametrize("kind", ["neox", "olmo", "olmo2", "gpt2"])
def test_batched_generation_equals_one_prompt_at_a_time(series, kind, engine, monkeypatch):
    """One left-padded batch of all 7 prompts (1 to 9 tokens), batches of 3 and of 1, the
    default grouping by length (here one batch) and that grouping with no cost per forward
    (one group per length; through the plain model their KV caches stacked into one batch
    after the prompt forwards, and, with the stacking refused, each group stepped alone),
    each equal to the study's recipe run prompt by prompt in plain ``transformers`` without a
    cache: the same 8 tokens, the same repetition frequency, the cosine within 1e-5; through
    the plain ``transformers`` model on the bridge's weights and through the bridge's
    hooks."""
    directory = series[kind] / "step1"
    reference = study_recipe(directory, PROMPTS_OF_MANY_LENGTHS)
    assert len({len(r["prompt_ids"]) for r in reference}) == 7  # seven different lengths
    model = load_checkpoint_model(local_dir=directory)
    class Recorded(plain_model_module._StackedKV):
        def __init__(self, layout, rows, width):
            stacked.append((rows, width))
            super().__init__(layout, rows, width)

    stacked = []
    monkeypatch.setattr(plain_model_module, "_StackedKV", Recorded)
    kv_stacks = plain_model_module.kv_stacks
    for batch_size, cost, refuse in ((7, None, False), (3, None, False), (1, None, False),
                                     (None, None, False), (None, 0, False), (None, 0, "split"),
                                     (None, 0, True)):
        monkeypatch.setattr(batching, "BATCH_COST_TOKENS_PER_FORWARD",
                            cost if cost is not None else 32)
        if refuse == "split":  # three stacks one after the other, one of a single group
            monkeypatch.setattr(plain_model_module, "kv_stacks",
                                lambda shapes, *args: [[0, 1, 2], [3], [4, 5, 6]])
        else:
            monkeypatch.setattr(plain_model_module, "kv_stacks", kv_stacks)
        if refuse is True:
            monkeypatch.setattr(plain_model_module, "_stackable", lambda cache: False)
        result = generation_metrics(model, PROMPTS_OF_MANY_LENGTHS, batch_size=batch_size,
                                    engine=engine)
        for row, expected in zip(result.itertuples(), reference):
            assert row.prompt_ids == expected["prompt_ids"]
            assert row.generated == expected["generated"], (batch_size, row.prompt)
            assert row.repetition_frequency == expected["repetition"]
            assert row.cosine_similarity == pytest.approx(expected["cosine"], abs=1e-5)
    # the prompts really are generated differently (not all the same token repeated)
    assert len({tuple(r["generated"]) for r in reference}) > 3
    # through the plain model the 7 one-length groups (1, 2, 3, 5, 7, 8, 9 tokens) were
    # stacked (rows, width): under the tiny model's KV budget (a fifth of its weights; how
    # many groups fit depends on the architecture) in stacks of at most 7 rows in all, then
    # the forced split's stacks of lengths 1-3 and 7-9 (the group of length 5 alone is none)
    if engine == "transformers":
        assert stacked[-2:] == [(3, 3), (3, 9)] and stacked[:-2], stacked
        assert sum(rows for rows, _ in stacked[:-2]) <= 7
    else:
        assert stacked == []


def test_kv_cache_check_against_a_full_forward(series):
    """The cache is used where it reproduces a full forward: here GPT-NeoX and OLMo-2; the
    OLMo and GPT-2 bridges of TransformerLens 4.3 do not (plain transformers does), and
    generation there runs a full forward per token: the equality test above covers both
    ways."""
    neox = load_checkpoint_model(local_dir=series["neox"] / "step0")
    assert kv_cache_agrees(neox.bridge)
    assert not kv_cache_agrees(load_checkpoint_model(local_dir=series["olmo"] / "step0").bridge)
    olmo_hf = transformers.AutoModelForCausalLM.from_pretrained(str(series["olmo"] / "step0"))
    tokens = torch.tensor([[3, 10, 17, 24, 31, 38, 45]])
    with torch.no_grad():
        full = olmo_hf(tokens).logits[:, -1]
        cached = olmo_hf(tokens[:, :-1], use_cache=True).past_key_values
        step = olmo_hf(tokens[:, -1:], past_key_values=cached, use_cache=True).logits[:, -1]
    assert torch.allclose(step, full, atol=1e-5)  # plain transformers' cache is right


@pytest.mark.parametrize("kind", ["gpt2", "neox"])
def test_position_ids_of_left_padded_rows(series, kind):
    """With learned absolute positions (GPT-2) the batched path needs its position ids: the
    same batch with plain 0…n−1 positions (what a forward without position_ids gives a
    left-padded row) changes the padded prompts' hidden states, not the unpadded longest one's.
    With rotary positions (GPT-NeoX) the shift cancels (attention scores depend on relative
    positions only): equal up to float rounding."""
    model = load_checkpoint_model(local_dir=series[kind] / "step1")
    ids = [model.tokenizer(p)["input_ids"] for p in PROMPTS_OF_MANY_LENGTHS]
    batch = left_pad(ids, 0)
    right, right_hidden = greedy_generate(model.bridge, batch, 8)
    shifted = type(batch)(batch.tokens, batch.attention_mask,
                          torch.arange(batch.tokens.shape[1]).expand_as(batch.tokens))
    wrong, wrong_hidden = greedy_generate(model.bridge, shifted, 8)
    longest = max(range(len(ids)), key=lambda i: len(ids[i]))
    change = (right_hidden - wrong_hidden).abs().amax(dim=(1, 2))
    assert change[longest] < 1e-5 and torch.equal(right[longest], wrong[longest])
    if kind == "gpt2":
        assert (change > 1e-2).sum() == len(ids) - 1
    else:
        assert change.max() < 1e-5


def _all_activations(model, text):
    tokens = torch.tensor([model.tokenizer(text)["input_ids"]])
    logits, cache = model.bridge.run_with_cache(tokens)
    return logits, {name: cache[name] for name in cache.keys()}


@pytest.mark.parametrize("kind", ["neox", "olmo", "olmo2"])
def test_reused_bridge_equals_a_fresh_bridge_per_checkpoint(series, kind):
    """Walking the series with one bridge gives, at every checkpoint, exactly the logits and
    every hook's activation of a bridge booted on that checkpoint alone."""
    loader = SeriesLoader()
    for step in (0, 1, 2):
        reused = loader.load(series[kind] / f"step{step}")
        assert loader.last_load_reused == (step > 0)
        fresh = load_checkpoint_model(local_dir=series[kind] / f"step{step}")
        logits, activations = _all_activations(reused, PROMPTS_OF_MANY_LENGTHS[2])
        fresh_logits, fresh_activations = _all_activations(fresh, PROMPTS_OF_MANY_LENGTHS[2])
        assert activations.keys() == fresh_activations.keys() and len(activations) > 50
        assert torch.equal(logits, fresh_logits)
        for name, value in fresh_activations.items():
            assert torch.equal(activations[name], value), (step, name)
        if step:
            loader.prefetch(series[kind] / "step0")  # read ahead, then the next load waits for it


def test_another_architecture_boots_a_new_bridge(tmp_path, series):
    save_perturbed(tmp_path / "wider", "neox", seed=5, intermediate_size=96)
    loader = SeriesLoader()
    loader.load(series["neox"] / "step0")
    model = loader.load(tmp_path / "wider")
    assert not loader.last_load_reused
    fresh = load_checkpoint_model(local_dir=tmp_path / "wider")
    tokens = torch.tensor([[3, 4, 5, 6]])
    assert torch.equal(model.bridge(tokens), fresh.bridge(tokens))


def test_iter_checkpoints_and_analyze_series_match_the_recipe(series, tmp_path):
    """The API and CLI paths over a local series: per checkpoint the study recipe's means."""
    root = series["neox"]
    expected = {}
    for step in (0, 1, 2):
        rows = study_recipe(root / f"step{step}", PROMPTS_OF_MANY_LENGTHS)
        expected[step] = (sum(r["repetition"] for r in rows) / len(rows),
                          sum(r["cosine"] for r in rows) / len(rows))
    for step, model in iter_checkpoints(None, [0, 1, 2], local_dir=root):
        result = generation_metrics(model, PROMPTS_OF_MANY_LENGTHS)
        assert result["repetition_frequency"].mean() == pytest.approx(expected[step][0], abs=1e-12)
        assert result["cosine_similarity"].mean() == pytest.approx(expected[step][1], abs=1e-5)
    table = analyze_series("neox", [0, 1, 2], PROMPTS_OF_MANY_LENGTHS, tmp_path, local_dir=root,
                           progress=False)
    for row in table.itertuples():
        assert row.repetition_frequency == pytest.approx(expected[row.step][0], abs=1e-12)
        assert row.cosine_similarity == pytest.approx(expected[row.step][1], abs=1e-5)


def _write_safetensors(path, entries):
    """A safetensors file written by hand from the format (8-byte little-endian header length,
    JSON header, data), with the tensors in the given order and the data starting at an offset
    of 2 modulo 8 (the library pads to a multiple of 8; here a float32 after 3 bytes of uint8
    is not aligned)."""
    header, data = {}, b""
    for name, array in entries:
        raw = array.tobytes()
        header[name] = {"dtype": {"float32": "F32", "uint8": "U8", "float16": "F16"}[str(array.dtype)],
                        "shape": list(array.shape), "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    encoded = json.dumps(header).encode()
    while (8 + len(encoded)) % 8 != 2:  # trailing spaces (allowed): data starts 2 bytes past 8
        encoded += b" "
    path.write_bytes(len(encoded).to_bytes(8, "little") + encoded + data)


def _file_mappings():
    """(start, end, path) of every file-backed mapping of this process (Linux)."""
    import os

    if not os.path.exists("/proc/self/maps"):
        pytest.skip("needs /proc/self/maps")
    rows = []
    for line in open("/proc/self/maps"):
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5].startswith("/"):
            start, end = (int(x, 16) for x in fields[0].split("-"))
            rows.append((start, end, fields[5].strip()))
    return rows


def _mapped_file(tensor):
    pointer = tensor.data_ptr()
    return next((path for start, end, path in _file_mappings() if start <= pointer < end), None)


def test_mapped_safetensors_equal_the_library_and_never_write_the_file(tmp_path):
    """Every tensor equals ``safetensors.torch.load_file``'s (floats, integers, float16), is a
    view of a mapping of the file itself (not a copy), and a write into it leaves the file's
    bytes as they were (a private map). A float32 tensor at an offset that is not a multiple
    of 4 (a hand-written file: 3 bytes of uint8 before it) is copied out, equal too. A size
    that does not match the shape, and a truncated file, are refused."""
    import numpy as np
    from safetensors.torch import load_file, save_file

    generator = torch.Generator().manual_seed(0)
    tensors = {"a": torch.randn(3, 5, generator=generator), "b": torch.randn(700, generator=generator),
               "c": torch.randint(0, 9, (4, 2), generator=generator)}
    save_file(tensors, tmp_path / "x.safetensors")
    save_file({k: v.half() for k, v in tensors.items() if v.is_floating_point()},
              tmp_path / "half.safetensors")
    before = (tmp_path / "x.safetensors").read_bytes()
    for name in ("x", "half"):
        library = load_file(tmp_path / f"{name}.safetensors")
        mapped = map_safetensors(tmp_path / f"{name}.safetensors")
        assert mapped.keys() == library.keys()
        for key, value in library.items():
            assert mapped[key].dtype == value.dtype and torch.equal(mapped[key], value), (name, key)
            assert _mapped_file(mapped[key]) == str(tmp_path / f"{name}.safetensors")
    mapped = map_safetensors(tmp_path / "x.safetensors")
    mapped["b"].add_(1.0)
    assert torch.equal(mapped["b"], tensors["b"] + 1.0)
    assert (tmp_path / "x.safetensors").read_bytes() == before
    assert torch.equal(load_file(tmp_path / "x.safetensors")["b"], tensors["b"])

    odd = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    _write_safetensors(tmp_path / "odd.safetensors", [("u", np.array([1, 2, 3], dtype=np.uint8)),
                                                       ("w", odd)])
    unaligned = map_safetensors(tmp_path / "odd.safetensors")
    start = 8 + int.from_bytes((tmp_path / "odd.safetensors").read_bytes()[:8], "little")
    assert (start + 3) % 4 != 0  # "w" really sits at an offset float32 cannot view
    assert _mapped_file(unaligned["w"]) is None  # so it was copied out
    assert torch.equal(unaligned["w"], torch.from_numpy(odd))
    assert unaligned["u"].tolist() == [1, 2, 3]
    assert torch.equal(unaligned["w"], load_file(tmp_path / "odd.safetensors")["w"])

    _write_safetensors(tmp_path / "bad.safetensors", [("w", odd)])
    data = (tmp_path / "bad.safetensors").read_bytes()
    (tmp_path / "bad.safetensors").write_bytes(data.replace(b'"shape": [3, 4]', b'"shape": [4, 4]'))
    with pytest.raises(ValueError, match="holds 48 bytes, its shape"):
        map_safetensors(tmp_path / "bad.safetensors")
    (tmp_path / "cut.safetensors").write_bytes(before[:-8])
    with pytest.raises(Exception, match="truncated"):
        map_safetensors(tmp_path / "cut.safetensors")


def test_a_reused_bridge_reads_its_checkpoint_file_and_lets_the_last_one_go(series):
    """After each reused load every parameter of the bridge other than TransformerLens's q/k/v
    slices is a view of that checkpoint's file (nothing copied), and no mapping of the
    previous checkpoint's file is left (peak memory stays at one model)."""
    import gc

    loader = SeriesLoader()
    loader.load(series["neox"] / "step0")
    for step in (1, 2):
        model = loader.load(series["neox"] / f"step{step}")
        assert loader.last_load_reused
        gc.collect()
        weights = list(model.bridge.original_model.parameters())
        files = {_mapped_file(p) for p in weights}
        qkv = {id(p) for m in loader._qkv_bridges for part in (m.q, m.k, m.v) for p in part.parameters()}
        from_file = {_mapped_file(p) for p in weights if id(p) not in qkv}
        assert from_file == {str(series["neox"] / f"step{step}" / "model.safetensors")}
        assert None in files  # the q/k/v slices are TransformerLens's own copies
        previous = str(series["neox"] / f"step{step - 1}" / "model.safetensors")
        assert all(path != previous for _, _, path in _file_mappings())


def test_kv_stacks_are_the_fewest_within_the_budget():
    """The stacks equal the fewest consecutive stacks whose KV caches (rows × (widest +
    n_new − 1) × bytes) fit the budget, found by brute force over every set of cut points;
    a group over the budget stands alone; a hand-worked case; ``None`` is one stack."""
    import itertools
    import random

    from plateau_lens.llm.plain_model import kv_stacks

    # by hand: 10×(4+1)·2 = 100 fits 100; + (5 rows, width 6): 15×7·2 = 210 does not
    assert kv_stacks([(10, 4), (5, 6), (1, 6)], 2, 2, 100) == [[0], [1, 2]]
    assert kv_stacks([(10, 4), (5, 6)], 2, 2, None) == [[0, 1]]
    assert kv_stacks([(10, 40)], 2, 2, 1) == [[0]]  # alone over the budget
    rng = random.Random(1)
    for _ in range(80):
        widths = sorted(rng.randint(1, 9) for _ in range(rng.randint(1, 7)))
        shapes = [(rng.randint(1, 6), w) for w in widths]
        n_new, size, budget = rng.randint(2, 4), rng.randint(1, 3), rng.randint(5, 200)

        def fits(stack):
            return len(stack) == 1 or (sum(shapes[i][0] for i in stack)
                                       * (shapes[stack[-1]][1] + n_new - 1) * size <= budget)

        fewest = min(len(cuts) + 1 for k in range(len(shapes))
                     for cuts in itertools.combinations(range(1, len(shapes)), k)
                     if all(fits(list(range(a, b)))
                            for a, b in zip((0,) + cuts, cuts + (len(shapes),))))
        got = kv_stacks(shapes, n_new, size, budget)
        assert [i for stack in got for i in stack] == list(range(len(shapes)))
        assert all(fits(stack) for stack in got) and len(got) == fewest, (shapes, budget)


def test_length_batches_are_the_cheapest_grouping():
    """The grouping equals the cheapest of all groupings of the sorted prompts into runs of
    neighbouring lengths, found by brute force (every set of cut points), on random lengths
    and costs; a hand-worked case; and each batch holds prompts of neighbouring lengths."""
    import itertools
    import random

    def cost(batches, lengths, fixed):
        return sum(len(b) * max(lengths[i] for i in b) + fixed for b in batches)

    # by hand: split 4·1 + 1·9 + 2·3 = 19 against one batch 5·9 + 3 = 48
    assert length_batches([9, 1, 1, 1, 1], n_forwards=1, cost_per_forward=3) == [[1, 2, 3, 4], [0]]
    # split 4·1 + 1·9 + 2·40 = 93 against one batch 5·9 + 40 = 85
    assert length_batches([9, 1, 1, 1, 1], n_forwards=1, cost_per_forward=40) == [[1, 2, 3, 4, 0]]
    rng = random.Random(0)
    for _ in range(60):
        lengths = [rng.randint(1, 12) for _ in range(rng.randint(1, 9))]
        fixed = rng.choice([0, 1, 5, 32, 1000])
        got = length_batches(lengths, n_forwards=1, cost_per_forward=fixed)
        assert sorted(i for b in got for i in b) == list(range(len(lengths)))
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        best = min(cost([order[a:b] for a, b in zip((0,) + cuts, cuts + (len(order),))], lengths, fixed)
                   for k in range(len(order))
                   for cuts in itertools.combinations(range(1, len(order)), k))
        assert cost(got, lengths, fixed) == best, (lengths, fixed)
        maxima = [max(lengths[i] for i in b) for b in got]
        assert all(min(lengths[i] for i in later) >= top for top, later in zip(maxima, got[1:]))
    assert length_batches([]) == []


def test_generations_file_keeps_rows_whose_text_holds_line_breaks(tmp_path):
    """Byte-level BPE generations decode to any character; a carriage return left unquoted
    split a row in two when read back (seen on the benchmark's series: 402 rows for 400)."""
    import pandas as pd

    from plateau_lens.llm.series import write_generations

    frame = pd.DataFrame({"step": [0, 0, 1], "prompt": [0, 1, 0],
                          "generated_text": ["a\rb", "c\x0bd\x1ce\nf", 'g "h", i'],
                          "cosine_similarity": [0.25, 0.5, 0.125]})
    write_generations(frame, tmp_path / "g.csv")
    back = pd.read_csv(tmp_path / "g.csv")
    assert back.to_dict("list") == frame.to_dict("list")


def test_benchmark_paths_agree_on_a_tiny_series(tmp_path):
    """benchmarks/llm_series_throughput.py's own workers in-process on 4 tiny perturbed
    checkpoints: its batched plain-transformers recipe (one left-padded generate) and the API
    path give the same tokens and cosines as the study's one-prompt-at-a-time recipe."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import llm_series_throughput as bench

    for step in bench.STEPS:
        save_perturbed(tmp_path / "series" / f"step{step}", "neox", seed=step + 7)
    (tmp_path / "prompts.txt").write_text("\n".join(PROMPTS_OF_MANY_LENGTHS) + "\n")
    recipe = bench.worker_recipe(tmp_path, 1)
    api = bench.worker_api(tmp_path, 1)
    reference = bench.worker_one_at_a_time(tmp_path, 1, [0, 3])
    assert [s["step"] for s in recipe["steps"]] == list(bench.STEPS) == [s["step"] for s in api["steps"]]
    for path in (recipe, api):
        tokens, repetition, cosine = bench.largest_differences(path["per_prompt"], reference["per_prompt"])
        assert tokens == 0 and repetition == 0 and cosine < 1e-5
    expected = study_recipe(tmp_path / "series" / "step3", PROMPTS_OF_MANY_LENGTHS)
    assert reference["per_prompt"][3]["generated"] == [r["generated"] for r in expected]
    assert bench.largest_differences(api["per_prompt"], recipe["per_prompt"])[0] == 0


def test_batch_size_is_checked_before_any_work(series):
    model = load_checkpoint_model(local_dir=series["neox"] / "step0")
    for bad in (0, -1, 2.5, True, "8"):
        with pytest.raises(ValueError, match="batch_size must be a positive int or None"):
            generation_metrics(model, ["the sun"], batch_size=bad)


def _tensors_of(module):
    return {t.data_ptr() for t in list(module.parameters()) + list(module.buffers())}


@pytest.mark.parametrize("kind", ["neox", "olmo", "olmo2", "gpt2"])
def test_plain_model_is_the_bridges_weights_without_a_copy(series, kind):
    """The plain ``transformers`` model holds no tensor of its own (every parameter and buffer
    has the storage of one of the bridge's), follows the weights a SeriesLoader reads into the
    reused bridge, and its logits are those of ``from_pretrained`` on that checkpoint."""
    loader = SeriesLoader()
    plain = None
    for step in (0, 2):
        model = loader.load(series[kind] / f"step{step}")
        plain = plain or plain_model(model.bridge)
        assert plain is not None and plain is plain_model(model.bridge)  # built once per bridge
        assert _tensors_of(plain.model) <= _tensors_of(model.bridge.original_model)
        library = transformers.AutoModelForCausalLM.from_pretrained(str(series[kind] / f"step{step}"))
        tokens = torch.tensor([model.tokenizer(PROMPTS_OF_MANY_LENGTHS[2])["input_ids"]])
        with torch.no_grad():
            expected = library(tokens).logits
            assert torch.allclose(plain.model(tokens).logits, expected, atol=1e-5)
            assert torch.allclose(model.bridge(tokens), expected, atol=1e-4)
    assert loader.last_load_reused


def test_hooks_on_the_bridge_send_generation_through_the_bridge(series):
    """An intervention on a hook point applies: ``auto`` then generates through the bridge
    (equal to ``engine='bridge'`` under the same hook, unlike the run without it);
    ``engine='transformers'`` refuses, as it would ignore the hook."""
    model = load_checkpoint_model(local_dir=series["neox"] / "step1")
    clean = generation_metrics(model, PROMPTS_OF_MANY_LENGTHS)

    def silence_block_0(activation, hook):
        return torch.zeros_like(activation)

    with model.bridge.hooks(fwd_hooks=[("blocks.0.hook_out", silence_block_0)]):
        assert has_active_hooks(model.bridge)
        hooked = generation_metrics(model, PROMPTS_OF_MANY_LENGTHS)
        bridge = generation_metrics(model, PROMPTS_OF_MANY_LENGTHS, engine="bridge")
        with pytest.raises(ValueError, match="would ignore the hooks"):
            generation_metrics(model, PROMPTS_OF_MANY_LENGTHS, engine="transformers")
    assert not has_active_hooks(model.bridge)
    assert hooked["generated"].tolist() == bridge["generated"].tolist()
    assert hooked["cosine_similarity"].tolist() == bridge["cosine_similarity"].tolist()
    assert (hooked["cosine_similarity"] - clean["cosine_similarity"]).abs().max() > 1e-3


def test_plain_model_refused_where_it_does_not_reproduce_the_bridge(series):
    """A bridge whose q/k/v slices no longer match the fused QKV matrix they were cut from
    computes something else than its ``transformers`` model: no plain model, ``auto`` generates
    through the bridge, ``engine='transformers'`` raises."""
    model = load_checkpoint_model(local_dir=series["neox"] / "step1")
    with torch.no_grad():
        model.bridge.blocks[0].attn.q.weight.add_(0.5)
    assert plain_model(model.bridge) is None
    with pytest.raises(ValueError, match="cannot reproduce"):
        generation_metrics(model, PROMPTS_OF_MANY_LENGTHS, engine="transformers")
    auto = generation_metrics(model, PROMPTS_OF_MANY_LENGTHS)
    bridge = generation_metrics(model, PROMPTS_OF_MANY_LENGTHS, engine="bridge")
    assert auto["cosine_similarity"].tolist() == bridge["cosine_similarity"].tolist()


def test_engine_is_checked_before_any_work(series):
    model = load_checkpoint_model(local_dir=series["neox"] / "step0")
    for bad in ("hf", None, "", "Bridge"):
        with pytest.raises(ValueError, match="engine must be one of auto, transformers, bridge"):
            generation_metrics(model, ["the sun"], engine=bad)


def _hub_cache(tmp_path, monkeypatch, steps):
    """A Hugging Face cache laid out as ``huggingface_hub`` writes it (``refs/<revision>`` holding
    a commit hash, the files under ``snapshots/<hash>/``) for ``EleutherAI/pythia-tiny`` at
    revisions ``step{N}``, the hub offline: what a machine that downloaded the revisions before
    has. Returns each step's snapshot folder."""
    import huggingface_hub.constants

    from fixtures_llm import offline

    offline(monkeypatch)
    cache = tmp_path / "hub"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    repo = cache / "models--EleutherAI--pythia-tiny"
    folders = {}
    for step in steps:
        commit = f"{step:040x}"
        save_perturbed(repo / "snapshots" / commit, "neox", seed=3 * step + 2)
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / f"step{step}").write_text(commit)
        folders[step] = repo / "snapshots" / commit
    return folders


def test_a_hub_series_reuses_one_bridge_from_the_cache(tmp_path, monkeypatch):
    """``iter_checkpoints("pythia-tiny", steps)`` without a local directory reads the hub
    revisions ``step{N}`` from the Hugging Face cache (offline) into one reused bridge, each
    equal to that revision's ``from_pretrained`` logits, and the next revision's folder is
    resolved (``snapshot_download``) and its weights read ahead in the prefetch thread; ``analyze_series`` over the hub gives what it gives over the same
    checkpoints as a local series; a revision missing from the cache says how to go
    offline."""
    folders = _hub_cache(tmp_path, monkeypatch, (0, 1, 2))
    from plateau_lens.llm import reuse

    fetched, read = [], []
    original = SeriesLoader.prefetch

    def recording(self, source):
        def traced():  # where and what the background fetch resolves
            folder = source()
            fetched.append((threading.current_thread().name, Path(folder)))
            return folder

        return original(self, traced)

    monkeypatch.setattr(SeriesLoader, "prefetch", recording)
    read_ahead = reuse.read_ahead
    monkeypatch.setattr(reuse, "read_ahead", lambda paths: read.append(list(paths)) or read_ahead(paths))
    tokens = torch.tensor([[3, 4, 5, 6, 7]])
    reused = []
    for step, model in iter_checkpoints("pythia-tiny", [0, 1, 2]):
        assert model.source == f"EleutherAI/pythia-tiny@step{step}"
        library = transformers.AutoModelForCausalLM.from_pretrained(str(folders[step]))
        with torch.no_grad():
            assert torch.allclose(model.bridge(tokens), library(tokens).logits, atol=1e-4)
        reused.append(model.bridge)
    assert reused[0] is reused[1] is reused[2]
    # revisions 1 and 2 were resolved in the prefetch thread and their weights read ahead
    assert fetched == [("plateau-lens-prefetch", folders[1]), ("plateau-lens-prefetch", folders[2])]
    assert read == [[folders[1] / "model.safetensors"], [folders[2] / "model.safetensors"]]

    local = tmp_path / "local"
    for step, folder in folders.items():
        shutil.copytree(folder, local / f"step{step}")
    over_hub = analyze_series("pythia-tiny", [0, 1, 2], PROMPTS_OF_MANY_LENGTHS, tmp_path / "a",
                              progress=False)
    over_local = analyze_series("pythia-tiny", [0, 1, 2], PROMPTS_OF_MANY_LENGTHS, tmp_path / "b",
                                local_dir=local, progress=False)
    for column in ("repetition_frequency", "cosine_similarity"):
        assert over_hub[column].tolist() == pytest.approx(over_local[column].tolist(), abs=1e-6)
    with pytest.raises(CheckpointLoadError, match="HF_HUB_OFFLINE=1"):
        next(iter_checkpoints("pythia-tiny", [4]))
