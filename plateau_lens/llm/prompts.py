"""Prompts for checkpoint analyses: ARC-Easy questions (the study's), a text file, or a list.
No third-party text ships with the package."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from ..errors import InputError

log = logging.getLogger("plateau_lens")


class PromptList(list):
    """A list of prompt strings that also says where they came from (``source``), which
    ``analyze_series`` records beside its results."""

    def __init__(self, prompts, source: str):
        super().__init__(prompts)
        self.source = source


def arc_easy_questions(n: int = 100, split: str = "test", seed: int | None = 0,
                       prompts_hint: str = "a list of prompts") -> PromptList:
    """``n`` ARC-Easy questions (question text only), via ``datasets``.

    The study's ``pythia.py`` shuffles the split without a seed and takes 100; here the shuffle
    is seeded (``Dataset.shuffle(seed=seed)``, recorded in ``source``) so a run can be repeated.
    ``seed=None`` takes the first ``n`` in the split's order, as the study's ``olmo.py`` does
    (``test[:100]``)."""
    try:
        from datasets import load_dataset
    except ImportError as error:  # pragma: no cover
        raise RuntimeError("ARC-Easy prompts need `pip install datasets` (or the llm extra)") from error
    try:
        data = load_dataset("allenai/ai2_arc", "ARC-Easy", split=split)
    except Exception as error:
        raise RuntimeError(
            f"could not load ARC-Easy ({type(error).__name__}: {error}); without network give "
            f"{prompts_hint} (a text file, one prompt per line), or fill the datasets cache on a "
            f"connected machine and set HF_DATASETS_OFFLINE=1") from error
    if seed is not None:
        data = data.shuffle(seed=seed)
    order = f"shuffled with seed {seed}" if seed is not None else "in split order"
    questions = [row["question"] for row in data.select(range(min(n, len(data))))]
    return PromptList(questions, f"ARC-Easy {split}, {order}, first {len(questions)}")


def load_prompts(source: str | Path | Sequence[str], n: int = 100, seed: int | None = 0,
                 prompts_hint: str = "a list of prompts") -> PromptList:
    """``"arc-easy"`` (``n`` questions, see ``arc_easy_questions`` for ``seed``), a text file
    (the first ``n`` non-empty lines, in order) or a list of strings (the first ``n``)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"n (the number of prompts) must be an integer >= 1, got {n!r}")
    if isinstance(source, (list, tuple)):
        prompts = [str(p) for p in source]
        label = "list"
    elif str(source).lower() in ("arc-easy", "arc_easy"):
        return arc_easy_questions(n, seed=seed, prompts_hint=prompts_hint)
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"prompt file {path} does not exist (or use 'arc-easy')")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise InputError(f"prompt file {path} is not UTF-8 text (byte {error.start}: "
                             f"{error.reason}): give a text file with one prompt a line") from None
        prompts = [line.strip() for line in text.splitlines() if line.strip()]
        label = f"file {path}"
    if not prompts:
        raise InputError(f"no prompts in {source!r}")
    chosen = prompts[:n]
    if len(chosen) < n and label != "list":
        log.warning("asked for %d prompts but %s has only %d: using %d", n, label, len(chosen),
                    len(chosen))
    return PromptList(chosen, f"{label}, first {len(chosen)} of {len(prompts)}")
