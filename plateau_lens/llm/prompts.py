"""Prompts for checkpoint analyses: ARC-Easy questions (the study's), a text file, or a list.
No third-party text ships with the package."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence


def arc_easy_questions(n: int = 100, split: str = "test") -> list[str]:
    """The first ``n`` ARC-Easy questions (question text only), via ``datasets``."""
    try:
        from datasets import load_dataset
    except ImportError as error:  # pragma: no cover
        raise RuntimeError("ARC-Easy prompts need `pip install datasets`") from error
    try:
        data = load_dataset("allenai/ai2_arc", "ARC-Easy", split=split)
    except Exception as error:
        raise RuntimeError(
            f"could not load ARC-Easy ({type(error).__name__}: {error}); without network pass a "
            f"text file with one prompt per line, or set HF_DATASETS_OFFLINE=1 with a filled cache"
        ) from error
    return [row["question"] for row in data.select(range(min(n, len(data))))]


def load_prompts(source: str | Path | Sequence[str], n: int = 100) -> list[str]:
    """``"arc-easy"``, a text file (one prompt per non-empty line) or a list of strings."""
    if isinstance(source, (list, tuple)):
        prompts = [str(p) for p in source]
    elif str(source).lower() in ("arc-easy", "arc_easy"):
        prompts = arc_easy_questions(n)
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"prompt file {path} does not exist (or use 'arc-easy')")
        prompts = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not prompts:
        raise ValueError(f"no prompts in {source!r}")
    return prompts[:n]
