"""Offline tests of the pretrained-checkpoint path on tiny random GPT-NeoX / OLMo / OLMo-2
models written with save_pretrained (no network). Generation numbers are compared with the
study's recipe computed with plain ``transformers`` (fixtures_llm.study_recipe); the toy
analyzers on a Pythia architecture with plain ``transformers`` (clean and head-ablated loss),
with ``ablate_heads`` (the resumed sweep) and with the source model (patching)."""

import pandas as pd
import pytest
import torch

from plateau_lens import ablate_heads, ablation_sweep, linear_probes, patch_between_models
from plateau_lens.llm import (
    CheckpointLoadError, PYTHIA_STEPS, generation_metrics, iter_checkpoints,
    load_checkpoint_model, load_prompts, pythia_revision,
)
from plateau_lens.llm.series import analyze_series

from fixtures_llm import offline, one_thread, PROMPTS, greedy_without_eos_mask, save_model, study_recipe

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def neox_series(tmp_path_factory):
    root = tmp_path_factory.mktemp("pythia-tiny")
    models = {step: save_model(root / f"step{step}", "neox", seed=step) for step in (0, 1, 2, 4)}
    return root, models


def test_pythia_steps_and_revisions():
    assert PYTHIA_STEPS[:11] == (0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
    assert PYTHIA_STEPS[-1] == 143000 and len(PYTHIA_STEPS) == 154
    assert pythia_revision(512) == "step512"
    with pytest.raises(ValueError, match="no checkpoint at step 3"):
        pythia_revision(3)


@pytest.mark.parametrize("kind", ["neox", "olmo", "olmo2"])
def test_local_models_load_and_match_transformers(tmp_path, kind):
    hf = save_model(tmp_path / kind, kind)
    model = load_checkpoint_model(local_dir=tmp_path / kind)
    ids = model.tokenizer(PROMPTS[1], return_tensors="pt").input_ids
    assert torch.allclose(model.bridge(ids), hf(ids).logits, atol=1e-4)
    assert not any(name.startswith("study") for name in vars(model.bridge))  # nothing attached


@pytest.mark.parametrize("kind", ["neox", "olmo", "olmo2"])
def test_generation_metrics_equal_the_study_recipe(tmp_path, kind):
    directory = tmp_path / kind
    save_model(directory, kind, eos_from=PROMPTS)
    reference = study_recipe(directory, PROMPTS)
    # the reference masks an EOS that plain greedy decoding would have produced
    assert [r["generated"] for r in reference] != greedy_without_eos_mask(directory, PROMPTS)
    result = generation_metrics(load_checkpoint_model(local_dir=directory), PROMPTS, n_new=8)
    assert len(result) == len(PROMPTS)
    for row, expected in zip(result.itertuples(), reference):
        assert row.prompt_ids == expected["prompt_ids"]  # AutoTokenizer's ids: no BOS
        assert row.generated == expected["generated"]
        assert row.repetition_frequency == expected["repetition"]
        assert row.cosine_similarity == pytest.approx(expected["cosine"], abs=1e-6)


def test_prepend_bos_is_an_option(tmp_path):
    directory = tmp_path / "neox"
    save_model(directory, "neox")
    model = load_checkpoint_model(local_dir=directory)
    plain = generation_metrics(model, PROMPTS[:1])
    with_bos = generation_metrics(model, PROMPTS[:1], prepend_bos=True)
    bos = transformers.AutoTokenizer.from_pretrained(str(directory)).bos_token_id
    assert with_bos.loc[0, "prompt_ids"] == [bos] + plain.loc[0, "prompt_ids"]


def test_series_is_resumable_and_keeps_finished_steps(neox_series, tmp_path):
    root, _ = neox_series
    first = analyze_series("pythia-tiny", [0, 1], PROMPTS, tmp_path, local_dir=root, progress=False)
    assert list(first["step"]) == [0, 1]
    with pytest.raises(CheckpointLoadError, match="no checkpoint at"):
        analyze_series("pythia-tiny", [0, 1, 2, 8], PROMPTS, tmp_path, local_dir=root, progress=False)
    kept = pd.read_csv(tmp_path / "pythia-tiny.csv")
    assert list(kept["step"]) == [0, 1, 2]  # finished steps survive the failure
    assert kept.loc[kept["step"] == 0, "cosine_similarity"].item() == pytest.approx(
        first.loc[0, "cosine_similarity"])


def test_corrupt_and_foreign_checkpoints_are_refused(tmp_path):
    series = tmp_path / "series"
    for step in (0, 1):
        save_model(series / f"step{step}", "neox", seed=step)
    save_model(series / "step2", "olmo")
    (series / "step4").mkdir()
    (series / "step4" / "config.json").write_text("{not json")
    analyze_series("mixed", [0, 1], PROMPTS, tmp_path, local_dir=series, progress=False)
    with pytest.raises(CheckpointLoadError, match="OlmoForCausalLM, not a GPTNeoXForCausalLM"):
        analyze_series("mixed", [2], PROMPTS, tmp_path, local_dir=series, progress=False)
    # within one call, against the first checkpoint loaded, after that step is saved
    from plateau_lens.llm.series import series_file

    with pytest.raises(CheckpointLoadError, match="OlmoForCausalLM, not a GPTNeoXForCausalLM"):
        analyze_series("within", [1, 2], PROMPTS, tmp_path / "fresh", local_dir=series,
                       progress=False)
    assert pd.read_csv(series_file(tmp_path / "fresh", "within"))["step"].tolist() == [1]
    with pytest.raises(CheckpointLoadError, match="unreadable"):
        analyze_series("mixed", [4], PROMPTS, tmp_path, local_dir=series, progress=False)
    weights = series / "step1" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    with pytest.raises(CheckpointLoadError, match="could not load"):
        load_checkpoint_model(local_dir=series, step=1)


def test_iter_checkpoints_yields_one_at_a_time(neox_series):
    root, _ = neox_series
    seen = [(step, type(model).__name__) for step, model in iter_checkpoints(None, [0, 4], local_dir=root)]
    assert seen == [(0, "PretrainedModel"), (4, "PretrainedModel")]


def test_hub_without_network_explains_how_to_go_offline(monkeypatch):
    offline(monkeypatch)
    with pytest.raises(CheckpointLoadError, match="local_dir="):
        load_checkpoint_model("pythia-14m", step=0)


def test_toy_analyzers_run_unchanged_on_a_pythia_architecture(neox_series, monkeypatch):
    root, _ = neox_series
    model = load_checkpoint_model(local_dir=root, step=0)
    from plateau_lens.llm import prompt_batch

    batch, task = prompt_batch(model, ["what is the sun light heat", "why do plant cells need water"],
                               length=6)
    def by_metric(frame, **where):
        for column, value in where.items():
            frame = frame[frame[column] == value]
        return dict(zip(frame["metric"], frame["value"]))

    single = ablate_heads(model, batch, [(0, 1)], task=task)
    clean_loss = by_metric(single, condition="clean")["loss"]
    ablated_loss = by_metric(single, condition="ablated")["loss"]
    # plain transformers (GPT-NeoX's own eager attention): the clean loss, and the loss with
    # layer 0 head 1's pattern replaced by uniform attention over the causal prefix, 1/(i+1)
    from transformers.models.gpt_neox import modeling_gpt_neox

    hf = transformers.AutoModelForCausalLM.from_pretrained(str(root / "step0"), attn_implementation="eager")
    tokens = batch.tokens
    original_attention = modeling_gpt_neox.eager_attention_forward

    def uniform_head_1_of_layer_0(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
        if module.layer_idx != 0:
            return original_attention(module, query, key, value, attention_mask, scaling, dropout, **kwargs)
        n = query.shape[-2]
        scores = (query @ key.transpose(2, 3)) * scaling
        scores = scores.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
        weights = scores.softmax(-1)
        weights[:, 1] = torch.ones(n, n).tril() / torch.arange(1, n + 1)[:, None]
        return (weights @ value).transpose(1, 2).contiguous(), weights

    with torch.no_grad():
        assert clean_loss == pytest.approx(hf(tokens, labels=tokens).loss.item(), rel=1e-6)
        monkeypatch.setattr(modeling_gpt_neox, "eager_attention_forward", uniform_head_1_of_layer_0)
        assert ablated_loss == pytest.approx(hf(tokens, labels=tokens).loss.item(), rel=1e-6)
    assert abs(ablated_loss - clean_loss) > 4e-5  # 6.2e-5 here, 15 times the tolerance above
    # the sweep restarts each ablation at its layer (start_at_layer, rotary positions): same numbers
    sweep = ablation_sweep(model, batch, task=task, progress=False)
    late = by_metric(sweep, scope="head", layer=1, head=0, condition="ablated")
    single = by_metric(ablate_heads(model, batch, [(1, 0)], task=task), condition="ablated")
    for metric, value in late.items():
        assert value == pytest.approx(single[metric], rel=1e-5)
    other = load_checkpoint_model(local_dir=root, step=4)
    # patching the logits of checkpoint 4 into checkpoint 0 gives checkpoint 4's loss exactly
    patched = patch_between_models(other, model, batch, hooks=["hook_resid_post", "unembed.hook_out"],
                                   task=task, progress=False)
    logits = by_metric(patched, hook="unembed.hook_out")
    source, target = by_metric(patched, condition="source"), by_metric(patched, condition="target")
    assert logits["loss"] == pytest.approx(source["loss"], abs=1e-6)
    assert abs(source["loss"] - target["loss"]) > 1e-3
    probes = linear_probes(model, batch, batch, targets=["current_token"], task=task)
    assert set(probes["hook"]) == {"blocks.0.hook_resid_pre", "blocks.0.hook_resid_post",
                                   "blocks.1.hook_resid_post"}
    assert list(probes["layer"]) == [0, 0, 1]


def test_prompts_from_file_and_list(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("first question\n\nsecond question\n")
    assert load_prompts(path) == ["first question", "second question"]
    assert load_prompts(["a", "b"], n=1) == ["a"]
    with pytest.raises(FileNotFoundError, match="arc-easy"):
        load_prompts(tmp_path / "missing.txt")
    for bad in (0, -1):
        with pytest.raises(ValueError, match=">= 1"):
            load_prompts(["a", "b"], n=bad)


def test_arc_easy_is_a_seeded_shuffle_or_the_first_n(monkeypatch):
    datasets = pytest.importorskip("datasets")
    questions = [f"question {i}" for i in range(50)]
    split = datasets.Dataset.from_dict({"question": questions})
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: split)
    shuffled = load_prompts("arc-easy", n=10, seed=3)
    assert shuffled == split.shuffle(seed=3)["question"][:10] != questions[:10]
    assert "seed 3" in shuffled.source
    first = load_prompts("arc-easy", n=10, seed=None)
    assert first == questions[:10] and "split order" in first.source
