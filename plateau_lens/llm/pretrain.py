"""A local pretraining series: a GPT-NeoX (Pythia's architecture) trained from scratch with
``transformers`` on local text, saved with ``save_pretrained`` at a Pythia-like log-spaced
schedule into ``DIR/step{N}/`` so that the checkpoint-series analysis runs on it offline.

The tokenizer is a byte-level BPE like Pythia's: ``<|endoftext|>`` is the BOS, EOS and unknown
token (id 0), ``<|padding|>`` is id 1, and calling it adds no special token (the Pythia
``AutoTokenizer`` adds none either). Documents are joined with ``<|endoftext|>`` between them, as
in the Pile, and training windows are drawn at random positions of that stream (seeded).

``step0`` is the random initialisation; ``step{N}`` is the model after ``N`` optimiser updates.
"""

from __future__ import annotations

import ast
import json
import logging
import math
import sysconfig
import time
from pathlib import Path
from typing import Iterable, Sequence

import torch

from ..config.pretrain import PretrainConfig, pythia_like_schedule  # noqa: F401 (the config and its
# schedule, defined with the other configs, are imported from here with what they drive)
from ..io import write_text
from ..runs.layout import PRETRAIN_SUMMARY_FILE, series_step_dir

log = logging.getLogger("plateau_lens")

EOS = "<|endoftext|>"
PAD = "<|padding|>"


# --------------------------------------------------------------------------- text
def python_documentation() -> list[str]:
    """English documentation text that ships with every CPython: the ``pydoc`` topic pages
    (``pydoc_data.topics``) and the docstrings of the standard library's modules, classes and
    functions (read with ``ast``, nothing is imported; ``site-packages`` and the test suite are
    left out). Deterministic for a given Python version."""
    documents: list[str] = []
    try:
        from pydoc_data.topics import topics
    except ImportError:  # pragma: no cover - stripped Python builds
        topics = {}
    documents += [topics[key].strip() for key in sorted(topics) if topics[key].strip()]
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(stdlib.rglob("*.py")):
        parts = set(path.relative_to(stdlib).parts)
        if parts & {"site-packages", "dist-packages", "test", "tests", "idle_test"}:
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                text = ast.get_docstring(node)
                if text and len(text) >= 40:
                    documents.append(text.strip())
    if not documents:
        raise RuntimeError("found no documentation text in this Python installation; give a "
                           "directory of .txt files instead")
    return documents


def text_documents(directory: str | Path) -> list[str]:
    """Every ``*.txt`` file under ``directory`` (sorted), split into documents at blank-line
    runs of two or more (one file without them is one document)."""
    root = Path(directory)
    if not root.is_dir():
        raise FileNotFoundError(f"text directory {root} does not exist")
    documents = []
    for path in sorted(root.rglob("*.txt")):
        text = path.read_text(encoding="utf-8", errors="replace")
        documents += [part.strip() for part in text.split("\n\n\n") if part.strip()]
    if not documents:
        raise ValueError(f"no text in {root} (looked for *.txt files)")
    return documents


def split_documents(documents: Sequence[str], held_out: float = 0.02,
                    seed: int = 0) -> tuple[list[str], list[str]]:
    """A seeded split into training documents and held-out ones (for prompts)."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(documents), generator=generator).tolist()
    n_held = max(1, int(round(held_out * len(documents)))) if len(documents) > 1 else 0
    held = sorted(order[:n_held])
    held_set = set(held)
    return ([documents[i] for i in range(len(documents)) if i not in held_set],
            [documents[i] for i in held])


def prompts_from_documents(documents: Iterable[str], n: int, max_words: int = 16) -> list[str]:
    """Prompt-sized openings of documents: the first line of each, cut to ``max_words`` words
    (ARC-Easy questions are 10–30 words), skipping lines of fewer than 4 words."""
    prompts = []
    for document in documents:
        for line in document.splitlines():
            words = line.split()
            if len(words) >= 4:
                prompts.append(" ".join(words[:max_words]))
                break
        if len(prompts) == n:
            break
    return prompts


# --------------------------------------------------------------------------- tokenizer
def train_tokenizer(documents: Iterable[str], vocab_size: int = 4096):
    """A byte-level BPE tokenizer like Pythia's (``GPTNeoXTokenizer``; see the module docstring)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import GPTNeoXTokenizer

    backend = Tokenizer(models.BPE())
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS, PAD],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    backend.train_from_iterator(documents, trainer=trainer)
    model = json.loads(backend.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return GPTNeoXTokenizer(vocab=model["vocab"], merges=merges, add_bos_token=False,
                            add_eos_token=False)


# --------------------------------------------------------------------------- model and training
def build_gpt_neox(config: PretrainConfig, vocab_size: int):
    """A fresh ``transformers`` GPT-NeoX (Pythia's architecture) for the pretraining series:
    a Hugging Face model saved with ``save_pretrained``, not a plateau-lens toy model (those
    come from :func:`plateau_lens.models.build_model`)."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(config.seed)
    hf_config = GPTNeoXConfig(
        vocab_size=vocab_size, hidden_size=config.d_model, num_hidden_layers=config.n_layers,
        num_attention_heads=config.n_heads, intermediate_size=config.d_mlp,
        max_position_embeddings=max(2048, config.seq_len), bos_token_id=0, eos_token_id=0,
        pad_token_id=1, tie_word_embeddings=False)
    return GPTNeoXForCausalLM(hf_config)


def token_stream(tokenizer, documents: Sequence[str]) -> torch.Tensor:
    """All documents' ids, each followed by ``<|endoftext|>``, as one 1-D tensor."""
    eos = tokenizer.convert_tokens_to_ids(EOS)
    ids: list[int] = []
    for encoded in tokenizer(list(documents), add_special_tokens=False)["input_ids"]:
        ids += encoded + [eos]
    return torch.tensor(ids, dtype=torch.long)


def learning_rate(config: PretrainConfig, step: int, total: int) -> float:
    """Linear warm-up over ``warmup_steps`` updates, then cosine decay to ``min_lr_ratio × lr``."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = min(1.0, (step - config.warmup_steps) / max(1, total - config.warmup_steps))
    return config.lr * (config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def pretrain_series(out_dir: str | Path, documents: Sequence[str],
                    config: PretrainConfig | dict | None = None, tokenizer=None) -> dict:
    """Train a GPT-NeoX on ``documents`` for ``config.steps`` updates and ``save_pretrained``
    it (with the tokenizer) into ``out_dir/step{N}/`` at every step of
    ``config.save_steps()`` (0 = the random init). ``config``: a :class:`PretrainConfig` or
    a dict of its fields (validated first). Returns a summary (parameters, tokens, wall time,
    loss at each saved step), also written to ``out_dir/pretrain.json``."""
    if config is None or isinstance(config, dict):
        config = PretrainConfig(**(config or {}))
    elif not isinstance(config, PretrainConfig):
        raise TypeError(f"config must be a PretrainConfig or a dict of its fields, got "
                        f"{type(config).__name__}")
    out = Path(out_dir)
    start = time.perf_counter()
    if tokenizer is None:
        tokenizer = train_tokenizer(documents, config.vocab_size)
    stream = token_stream(tokenizer, documents)
    if len(stream) <= config.seq_len + 1:
        raise ValueError(f"{len(stream)} tokens of text is too little for windows of {config.seq_len}")
    model = build_gpt_neox(config, len(tokenizer))
    n_parameters = sum(p.numel() for p in model.parameters())
    log.info("pretraining a %d-layer GPT-NeoX (d_model %d, %.2f M parameters) on %d tokens",
             config.n_layers, config.d_model, n_parameters / 1e6, len(stream))
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=config.lr, betas=config.betas, eps=1e-8)
    generator = torch.Generator().manual_seed(config.seed)
    save_at = config.save_steps()
    total = config.steps
    losses: dict[int, float] = {}
    recent: list[float] = []

    def save(step: int) -> None:
        directory = series_step_dir(out, step)
        model.save_pretrained(directory)
        tokenizer.save_pretrained(directory)
        losses[step] = sum(recent) / len(recent) if recent else float("nan")
        log.info("step %d saved (mean training loss since the last save %.3f, %.0f s)",
                 step, losses[step], time.perf_counter() - start)
        recent.clear()

    model.train()
    if 0 in save_at:
        save(0)
    for step in range(1, total + 1):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, step - 1, total)
        offsets = torch.randint(0, len(stream) - config.seq_len, (config.batch_size,),
                                generator=generator)
        batch = torch.stack([stream[o : o + config.seq_len] for o in offsets.tolist()])
        loss = model(input_ids=batch, labels=batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        recent.append(loss.item())
        if step in save_at:
            save(step)
    summary = {"config": {**config.model_dump(mode="json"), "checkpoint_steps": save_at}, "parameters": n_parameters, "tokens": len(stream),
               "documents": len(documents), "characters": sum(len(d) for d in documents),
               "wall_seconds": round(time.perf_counter() - start, 1),
               "training_loss": {str(k): v for k, v in losses.items()}}
    write_text(out / PRETRAIN_SUMMARY_FILE, json.dumps(summary, indent=1) + "\n")
    return summary
