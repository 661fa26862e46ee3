"""Make the task known to plateau-lens under ``[task] name = "grokking"``.

Interim: plateau-lens' task registry (``register_task``, issue 33) is being built on another
branch; until it lands this adds the class to ``plateau_lens.tasks.TASKS``, the table
``make_task`` and config validation read today."""

from __future__ import annotations

from .task import ModularAddition


def register() -> None:
    from plateau_lens.tasks import TASKS

    TASKS.setdefault(ModularAddition.name, ModularAddition)
