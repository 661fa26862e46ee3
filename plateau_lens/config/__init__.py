"""Run configuration: the ``[task]``, ``[model]``, ``[train]`` and ``[init]`` tables of a TOML
file, and the LLM pretraining config, one module per section.

Every section is a strict pydantic model (:mod:`.base`): exact types (a float field takes an
int, nothing else converts: ``lr = "1e-3"``, ``compile = "no"`` and ``components = "attn"``
are refused), unknown fields refused, every number finite and in range. A bad value raises
``ConfigError`` naming ``<table>.<field>``, what it allows and what it got, before any work
starts. Names load on first use (``lazy_loader``), so that the command line's parser reads
a section's ``Literal`` without importing the tasks (and torch). Where a field has a fixed
set of values, the section's ``Literal`` is that set's one
definition (``typing.get_args`` gives it to whoever needs the list).

=================  ===============================================================
module             holds
=================  ===============================================================
``base``           ``StrictModel``, ``Int``/``Float`` fields, ``ConfigError``, messages
``task``           ``[task]``: ``validate_task``, ``task_schema``
``model``          ``[model]``: ``ModelConfig``
``train``          ``[train]``: ``TrainConfig`` and the run-size bounds
``init``           ``[init]``: ``InitConfig``
``trackers``       the tracker names ``train.trackers`` may list
``limits``         size and memory bounds checked with the config
``run``            ``RunConfig`` (all sections), ``SECTIONS``, ``RESUME_MUTABLE``
``loading``        ``load_config`` (TOML/JSON), ``--set`` overrides
``compare``        ``config_mismatch``, ``with_defaults``
``pretrain``       ``PretrainConfig`` (what ``plateau_lens.llm.pretrain`` trains)
``shipped``        ``shipped_config``: the TOMLs under ``tasks/`` (package data)
=================  ===============================================================
"""

from typing import TYPE_CHECKING

from ..lazy import lazy_package

__getattr__, __dir__, __all__ = lazy_package(__name__, __path__, {
    "base": ["Allowed", "ConfigError", "Float", "Int", "Label", "StrictModel", "type_name"],
    "compare": ["config_mismatch", "with_defaults"],
    "init": ["ComponentList", "InitConfig"],
    "loading": ["apply_overrides", "load_config", "parse_override"],
    "model": ["AttentionKind", "ModelConfig"],
    "pretrain": ["PretrainConfig", "pythia_like_schedule"],
    "run": ["RESUME_MUTABLE", "SECTIONS", "RunConfig", "Section"],
    "shipped": ["SHIPPED_CONFIGS", "shipped_config"],
    "task": ["task_schema", "validate_task"],
    "train": ["MAX_CHECKPOINTS", "MAX_METRICS_ROWS", "SEED_MAX", "SIZE_MAX", "STEPS_MAX",
              "Optimizer", "Precision", "Schedule", "TrainConfig"],
})

if TYPE_CHECKING:
    from .base import Allowed, ConfigError, Float, Int, Label, StrictModel, type_name
    from .compare import config_mismatch, with_defaults
    from .init import ComponentList, InitConfig
    from .loading import apply_overrides, load_config, parse_override
    from .model import AttentionKind, ModelConfig
    from .pretrain import PretrainConfig, pythia_like_schedule
    from .run import RESUME_MUTABLE, SECTIONS, RunConfig, Section
    from .shipped import SHIPPED_CONFIGS, shipped_config
    from .task import task_schema, validate_task
    from .train import (MAX_CHECKPOINTS, MAX_METRICS_ROWS, SEED_MAX, SIZE_MAX, STEPS_MAX,
                        Optimizer, Precision, Schedule, TrainConfig)
