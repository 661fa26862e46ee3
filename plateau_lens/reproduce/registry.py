"""The registry of reproductions: one entry per figure or table of the two studies, each
one command away (``plateau-lens reproduce ID --out DIR``)."""

from __future__ import annotations

import re
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
    reported: Measured | None = field(default=None, compare=False)
    """What running it took and showed, as its author states it (a plugin's entry); None:
    ``measured.MEASURED`` (the shipped entries)."""

    @property
    def measured(self) -> "Measured":
        """What running it took and showed (``reported``, else ``measured.MEASURED``), or
        "not run"."""
        return self.reported or MEASURED.get(self.id, NOT_RUN)

    def __post_init__(self) -> None:
        if self.study not in STUDIES:
            raise ValueError(f"study must be one of {sorted(STUDIES)}, got {self.study!r}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {list(DEVICES)}, got {self.device!r}")


REGISTRY: dict[str, Reproduction] = {}


def _runner_path(entry: Reproduction) -> str:
    return f"{getattr(entry.run, '__module__', '')}:{getattr(entry.run, '__qualname__', '')}"


def register(entry: Reproduction) -> Reproduction:
    """Add ``entry``; an id taken by another entry is refused, unless the same runner (by
    ``module:qualname``) registers it again (its module imported again)."""
    existing = REGISTRY.get(entry.id)
    if existing is not None and _runner_path(existing) != _runner_path(entry):
        raise ValueError(f"reproduction id {entry.id!r} is registered twice "
                         f"({_runner_path(existing)} and {_runner_path(entry)})")
    REGISTRY[entry.id] = entry
    return entry


ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def register_study(key: str, citation: str) -> None:
    """Add a study that plugin entries name as ``study=key`` (``citation``: authors, title,
    venue, arXiv id, as :data:`STUDIES` words them). The same citation again is a no-op."""
    if not isinstance(key, str) or not ID_PATTERN.match(key):
        raise ValueError(f"study must be letters, digits, '_', '.' or '-', got {key!r}")
    if not isinstance(citation, str) or not citation.strip():
        raise ValueError(f"citation of study {key!r} must be a non-empty string, got {citation!r}")
    if STUDIES.get(key, citation) != citation:
        raise ValueError(f"study {key!r} is already registered as {STUDIES[key]!r}")
    STUDIES[key] = citation


def register_reproduction(id: str, *, study: str, figure: str, shows: str, config: str = "",
                          device: str = "cpu", measured: Measured | None = None
                          ) -> Callable[[Runner], Runner]:
    """Decorator: make ``runner(context) -> {label: path}`` the reproduction ``id``, listed by
    ``plateau-lens reproduce --list`` and run by ``plateau-lens reproduce ID --out DIR``.

    ``study`` is a key of :data:`STUDIES` (add yours with :func:`register_study`), ``figure``
    the paper's label ("Fig. 2"), ``shows`` one sentence, ``config`` the TOML(s) it trains,
    ``device`` "cpu" or "gpu", ``measured`` what running it took and showed (else "not run
    here"). A plugin makes its entries available to the command line through the entry-point
    group ``plateau_lens.reproduce`` (the module that holds them; ``docs/extending.md``)."""
    if not isinstance(id, str) or not ID_PATTERN.match(id):
        raise ValueError(f"reproduction id must be letters, digits, '_', '.' or '-', got {id!r}")
    if measured is not None and not isinstance(measured, Measured):
        raise TypeError(f"measured must be a plateau_lens.reproduce.Measured or None, got {measured!r}")

    def decorate(runner: Runner) -> Runner:
        if not callable(runner):
            raise TypeError(f"reproduction {id!r} must decorate a function (context) -> "
                            f"{{label: path}}, got {runner!r}")
        register(Reproduction(id=id, study=study, figure=figure, shows=shows, config=config,
                              device=device, run=runner, reported=measured))
        return runner

    return decorate


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
