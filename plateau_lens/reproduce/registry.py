"""The registry of reproductions: one entry per figure or table of the two studies, each
one command away (``plateau-lens reproduce ID --out DIR``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from ..runs.layout import named_run_dir
from .measured import MEASURED, NOT_RUN, Measured

STUDIES = {
    "matrix-completion": "Gopalani, Lubana & Hu, Abrupt Learning in Transformers: A Case Study "
                         "on Matrix Completion (NeurIPS 2024, arXiv 2410.22244)",
    "loss-plateau": "Gopalani & Hu, What Happens During the Loss Plateau? Understanding Abrupt "
                    "Learning in Transformers (NeurIPS 2025, arXiv 2506.13688)",
}
DEVICES = ("cpu", "gpu")


@dataclass(frozen=True)
class Context:
    """What an entry's runner gets: where to write, and the user's overrides."""

    out: Path
    steps: int | None = None
    """Train this many steps instead of the entry's default (a shorter or longer run)."""
    device: str = "cpu"
    progress: bool = True
    batch_size: int | None = None
    """Train with this batch size instead of the configs' (a reduced run, e.g. on a busy CPU)."""
    local_dir: Path | None = None
    """Local copies of pretrained checkpoints for the LLM entries (no hub needed)."""

    def run_dir(self, name: str) -> Path:
        """``OUT/runs/name``; ``name_bN`` with ``--batch-size N``, so that a reduced run sits
        beside the full-size one instead of being refused as a config change."""
        if self.batch_size is not None:
            name = f"{name}_b{self.batch_size}"
        return named_run_dir(self.out, name)


Runner = Callable[[Context], dict[str, Path]]


@dataclass(frozen=True)
class Reproduction:
    """One figure or table: ``run(context)`` trains what it needs (or reuses its runs) and
    returns the files it wrote (figure, CSV)."""

    id: str
    study: str
    figure: str
    """The paper's label, e.g. "Fig. 2" or "Table 1"."""
    shows: str
    config: str
    """The ``tasks/*.toml`` it trains (comma-separated if several)."""
    device: str
    """"cpu": runs here at the stated size; "gpu": the study's size needs a GPU (a reduced
    CPU version may exist as its own entry)."""
    run: Runner = field(repr=False, compare=False)

    @property
    def measured(self) -> "Measured":
        """What running it here took and showed (``measured.MEASURED``), or "not run"."""
        return MEASURED.get(self.id, NOT_RUN)

    def __post_init__(self) -> None:
        if self.study not in STUDIES:
            raise ValueError(f"study must be one of {sorted(STUDIES)}, got {self.study!r}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {list(DEVICES)}, got {self.device!r}")


REGISTRY: dict[str, Reproduction] = {}


def register(entry: Reproduction) -> Reproduction:
    if entry.id in REGISTRY:
        raise ValueError(f"reproduction id {entry.id!r} is registered twice")
    REGISTRY[entry.id] = entry
    return entry


def table() -> pd.DataFrame:
    """One row per entry: id, study, figure, shows, config, device, and as measured here:
    command, cost, status."""
    return pd.DataFrame([{"id": e.id, "study": e.study, "figure": e.figure, "shows": e.shows,
                          "config": e.config, "device": e.device,
                          "command": e.measured.command, "cost": e.measured.cost,
                          "status": e.measured.status} for e in REGISTRY.values()])


def markdown_table(study: str) -> str:
    """The Markdown table of one study's entries (``plateau-lens reproduce --list --markdown``; the docs' reproduction page is generated from it)."""
    rows = ["| id | figure | shows | device | measured here |", "|---|---|---|---|---|"]
    for e in REGISTRY.values():
        if e.study == study:
            m = e.measured
            done = m.status if m is NOT_RUN else f"{m.status} (`{m.command}`, {m.cost})"
            cells = [f"`{e.id}`", e.figure, e.shows, e.device, done]
            rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows)


def get(entry_id: str) -> Reproduction:
    if entry_id not in REGISTRY:
        raise ValueError(f"reproduction id must be one of {sorted(REGISTRY)}, got {entry_id!r} "
                         f"(see `plateau-lens reproduce --list`)")
    return REGISTRY[entry_id]
