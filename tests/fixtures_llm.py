"""Helpers for the LLM tests: tiny random GPT-NeoX / OLMo / OLMo-2 / GPT-2 checkpoints, a tiny local
pretraining series, and the study's recipe computed with plain ``transformers`` (the
reference every test compares plateau-lens with)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

WORDS = ("the a of to and is what which why how when cell plant energy water sun earth moon "
         "light heat animal food grow").split()
PROMPTS = ["what is the sun", "why do plant cells need water", "how does the earth grow heat",
           "which animal is the food"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run many small ops: one thread is much faster than two on a busy 2-core
    machine. Autouse in every test module that imports it (its tests and module fixtures;
    restored afterwards)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def offline(monkeypatch):
    """Hub offline mode for this test: ``huggingface_hub`` reads ``HF_HUB_OFFLINE`` once, at
    import, so the constant is patched too (without it every request waits for the network)."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def word_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<unk>": 0, "<eos>": 1, **{w: i + 2 for i, w in enumerate(WORDS)}}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return transformers.PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>",
                                                eos_token="<eos>", bos_token="<eos>")


def save_model(directory, kind="neox", seed=0, eos_from=None):
    """A random tiny model of ``kind`` saved with its tokenizer. With ``eos_from`` (prompts),
    the generation config's EOS is set to the token the model most often picks greedily after
    them, so that masking the EOS (min_new_tokens) changes what is generated."""
    torch.manual_seed(seed)
    common = dict(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=64, max_position_embeddings=64)
    if kind == "neox":
        model = transformers.GPTNeoXForCausalLM(transformers.GPTNeoXConfig(**common))
    elif kind == "gpt2":
        model = transformers.GPT2LMHeadModel(transformers.GPT2Config(
            vocab_size=64, n_embd=32, n_layer=2, n_head=4, n_inner=64, n_positions=64))
    elif kind == "olmo":
        model = transformers.OlmoForCausalLM(transformers.OlmoConfig(**common, pad_token_id=0))
    else:
        model = transformers.Olmo2ForCausalLM(transformers.Olmo2Config(**common, pad_token_id=0))
    tokenizer = word_tokenizer()
    if eos_from is not None:
        picks = Counter()
        with torch.no_grad():
            for prompt in eos_from:
                ids = tokenizer(prompt, return_tensors="pt").input_ids
                for _ in range(8):
                    token = model(ids).logits[0, -1].argmax()
                    picks[token.item()] += 1
                    ids = torch.cat([ids, token.view(1, 1)], dim=-1)
        eos = picks.most_common(1)[0][0]
        model.config.eos_token_id = eos
        model.generation_config.eos_token_id = eos
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return model


def study_recipe(directory, prompts, n_new=8):
    """The study's numbers (src/pythia.py), with plain ``transformers``: per prompt the
    generated ids, the repetition frequency and the mean pairwise cosine similarity."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(directory))
    model = transformers.AutoModelForCausalLM.from_pretrained(str(directory))
    rows = []
    for question in prompts:
        inputs = tokenizer(question, return_tensors="pt", return_token_type_ids=False)
        output = model.generate(**inputs, min_new_tokens=n_new, max_new_tokens=n_new,
                                do_sample=False, return_dict_in_generate=True,
                                output_hidden_states=True, use_cache=False)
        response = output.sequences
        repetition = torch.mean(
            (response[0, -n_new:-1] == response[0, -n_new + 1:]).to(float)).item()
        states = output.hidden_states
        cosines = [torch.nn.functional.cosine_similarity(
            states[i][-1][:, -1, :].squeeze(), states[j][-1][:, -1, :].squeeze(), dim=-1).item()
            for i in range(n_new) for j in range(i)]
        rows.append({"prompt_ids": inputs["input_ids"][0].tolist(),
                     "generated": response[0, -n_new:].tolist(), "repetition": repetition,
                     "cosine": float(np.mean(cosines))})
    return rows


def greedy_without_eos_mask(directory, prompts, n_new=8):
    """``generate`` with only ``max_new_tokens``: stops at (and pads with) the EOS."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(directory))
    model = transformers.AutoModelForCausalLM.from_pretrained(str(directory))
    out = []
    for question in prompts:
        inputs = tokenizer(question, return_tensors="pt", return_token_type_ids=False)
        sequence = model.generate(**inputs, max_new_tokens=n_new, do_sample=False)
        out.append(sequence[0, inputs["input_ids"].shape[1]:].tolist())
    return out


def pydoc_text(n_characters=60_000):
    """Some English documentation text that ships with Python: the first pydoc topic pages,
    one document per line (so ``<|endoftext|>`` is among the most frequent tokens and early
    checkpoints pick it greedily: the study's EOS mask then changes the generations)."""
    from pydoc_data.topics import topics

    documents, total = [], 0
    for key in sorted(topics):
        documents += [line.strip() for line in topics[key].splitlines() if line.strip()]
        total += len(topics[key])
        if total >= n_characters:
            break
    return documents


def pretrain_tiny_series(directory, last=64):
    """A 2-layer GPT-NeoX (d_model 32) pretrained for ``last`` steps on a little pydoc text,
    with a 1024-token byte-level BPE, saved at 0, 1, 2, 4, ..., ``last``."""
    from plateau_lens.llm.pretrain import PretrainConfig, pretrain_series

    config = PretrainConfig(n_layers=2, d_model=32, n_heads=4, d_mlp=64, vocab_size=1024,
                            seq_len=32, batch_size=8, lr=3e-3, warmup_steps=4, steps=last, seed=0)
    return pretrain_series(directory, pydoc_text(), config)
