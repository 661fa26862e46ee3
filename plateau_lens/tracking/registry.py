"""Tracker name -> adapter class: imports the adapter of a name that ``train.trackers`` lists.

The names themselves (the shipped ones and those ``register_tracker`` adds) live in
``plateau_lens.config.trackers``, so that validating a config imports nothing of
``plateau_lens.tracking``."""

from __future__ import annotations

import importlib

from ..config.trackers import TRACKERS


def tracker_class(name: str) -> type:
    """The adapter class of tracker ``name`` (imports its module)."""
    adapter = TRACKERS[name]
    if isinstance(adapter, str):
        module, _, attribute = adapter.partition(":")
        adapter = getattr(importlib.import_module(module), attribute)
    return adapter
