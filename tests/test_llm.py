"""Offline tests of the pretrained-checkpoint path on tiny random GPT-NeoX / OLMo / OLMo-2
models written with save_pretrained (no network)."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from plateau_lens import ablate_heads, ablation_sweep, linear_probes, patch_between_models
from plateau_lens.llm import (
    CheckpointLoadError, PYTHIA_STEPS, generation_metrics, iter_checkpoints,
    load_checkpoint_model, load_prompts, pythia_revision,
)
from plateau_lens.llm.cli import parse_steps
from plateau_lens.llm.series import analyze_series

transformers = pytest.importorskip("transformers")

WORDS = ("the a of to and is what which why how when cell plant energy water sun earth moon "
         "light heat animal food grow").split()
PROMPTS = ["what is the sun", "why do plant cells need water", "how does the earth grow heat"]


def tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<unk>": 0, "<eos>": 1, **{w: i + 2 for i, w in enumerate(WORDS)}}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return transformers.PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>",
                                                eos_token="<eos>", bos_token="<eos>")


def save_model(directory, kind="neox", seed=0):
    torch.manual_seed(seed)
    common = dict(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=64, max_position_embeddings=64)
    if kind == "neox":
        model = transformers.GPTNeoXForCausalLM(transformers.GPTNeoXConfig(**common))
    elif kind == "olmo":
        model = transformers.OlmoForCausalLM(transformers.OlmoConfig(**common, pad_token_id=0))
    else:
        model = transformers.Olmo2ForCausalLM(transformers.Olmo2Config(**common, pad_token_id=0))
    model.save_pretrained(directory)
    tokenizer().save_pretrained(directory)
    return model


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
    assert parse_steps("0,1,2,4,...,512,1000") == [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000]


@pytest.mark.parametrize("kind", ["neox", "olmo", "olmo2"])
def test_local_models_load_and_match_transformers(tmp_path, kind):
    hf = save_model(tmp_path / kind, kind)
    bridge = load_checkpoint_model(local_dir=tmp_path / kind)
    ids = bridge.tokenizer(PROMPTS[1], return_tensors="pt").input_ids
    assert torch.allclose(bridge(ids), hf(ids).logits, atol=1e-4)


def test_cosine_similarity_matches_transformers_hidden_states(neox_series):
    root, models = neox_series
    bridge = load_checkpoint_model(local_dir=root, step=2)
    result = generation_metrics(bridge, PROMPTS, n_new=8)
    hf = models[2]
    for row, prompt in zip(result.itertuples(), PROMPTS):
        ids = bridge.tokenizer(prompt, return_tensors="pt").input_ids
        generated = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8,
                                do_sample=False, pad_token_id=0)
        assert generated[0, ids.shape[1]:].tolist() == row.generated
        hidden = hf(generated, output_hidden_states=True).hidden_states[-1][0]
        states = hidden[ids.shape[1] - 1 : ids.shape[1] + 7]
        unit = torch.nn.functional.normalize(states, dim=-1)
        sims = [(unit[i] @ unit[j]).item() for i in range(8) for j in range(i + 1, 8)]
        assert len(sims) == 28
        assert row.cosine_similarity == pytest.approx(np.mean(sims), abs=1e-5)
        tokens = row.generated
        assert row.repetition_frequency == pytest.approx(
            np.mean([a == b for a, b in zip(tokens, tokens[1:])]))


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


def test_corrupt_and_foreign_checkpoints_are_refused(neox_series, tmp_path):
    root, _ = neox_series
    series = tmp_path / "series"
    for step in (0, 1):
        save_model(series / f"step{step}", "neox", seed=step)
    save_model(series / "step2", "olmo")
    (series / "step4").mkdir()
    (series / "step4" / "config.json").write_text("{not json")
    analyze_series("mixed", [0, 1], PROMPTS, tmp_path, local_dir=series, progress=False)
    with pytest.raises(CheckpointLoadError, match="OlmoForCausalLM, not a GPTNeoXForCausalLM"):
        analyze_series("mixed", [2], PROMPTS, tmp_path, local_dir=series, progress=False)
    with pytest.raises(CheckpointLoadError, match="unreadable"):
        analyze_series("mixed", [4], PROMPTS, tmp_path, local_dir=series, progress=False)
    weights = series / "step1" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    with pytest.raises(CheckpointLoadError, match="could not load"):
        load_checkpoint_model(local_dir=series, step=1)


def test_iter_checkpoints_yields_one_at_a_time(neox_series):
    root, _ = neox_series
    seen = [(step, type(model).__name__) for step, model in iter_checkpoints(None, [0, 4], local_dir=root)]
    assert seen == [(0, "TransformerBridge"), (4, "TransformerBridge")]


def test_hub_without_network_explains_how_to_go_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointLoadError, match="local_dir"):
        load_checkpoint_model("pythia-14m", step=0)


def test_toy_analyzers_run_unchanged_on_a_pythia_architecture(neox_series):
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
    assert by_metric(single, condition="ablated")["loss"] != by_metric(single, condition="clean")["loss"]
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


def test_llm_command_end_to_end(neox_series, tmp_path):
    root, _ = neox_series
    prompts = tmp_path / "p.txt"
    prompts.write_text("\n".join(PROMPTS))
    command = [sys.executable, "-m", "plateau_lens.cli", "llm", "pythia-tiny", "--steps", "0,1,2",
               "--prompts", str(prompts), "--local-dir", str(root), "--out", str(tmp_path / "res"),
               "--quiet"]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "res" / "pythia-tiny.csv").is_file()
    assert (tmp_path / "res" / "pythia-tiny.png").is_file()
