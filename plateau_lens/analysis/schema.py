"""The one result schema of every analyzer: a tidy (long) DataFrame, one value per row.

=============  =============================================================================
column         meaning
=============  =============================================================================
(labels)       analyzer-specific labels first, e.g. ``target`` (probes), ``site`` (collapse),
               ``heads``/``scope``/``mode`` (ablation), ``p_mask`` (nuclear norm)
condition      which run the value comes from: ``clean``, ``corrupted``, ``ablated``,
               ``patched``, ``source``, ``target``, a model variant, …; NA where there is
               only one
hook           the TransformerLens hook the value reads or edits (NA where none)
layer          the block index in that hook's name (``blocks.{layer}.…``); NA for hooks
               outside the blocks (embeddings, final norm, unembedding). One meaning
               everywhere: probes on ``blocks.2.hook_resid_post`` report layer 2
head           attention head index, NA when the value is not per head
position       sequence position (query position for attention maps), NA when not per position
metric         the metric's name
value          its value (float)
=============  =============================================================================

``analyze_run`` puts ``step`` (and ``analyzer``, when given several) in front.
:func:`wide` pivots the conditions into columns (e.g. ``clean``, ``ablated``, ``change``).
"""

from __future__ import annotations

import re
from typing import Iterable, Sequence

import pandas as pd

COLUMNS = ("condition", "hook", "layer", "head", "position", "metric", "value")
INDEX_COLUMNS = ("layer", "head", "position")
_BLOCK = re.compile(r"blocks\.(\d+)\.")


def hook_layer(hook: str | None) -> int | None:
    """The block index in a hook name (``blocks.3.attn.hook_z`` → 3), None outside blocks."""
    match = _BLOCK.match(hook or "")
    return int(match.group(1)) if match else None


def record(metric: str, value: float, hook: str | None = None, condition: str | None = None,
           head: int | None = None, position: int | None = None, **labels) -> dict:
    """One row of the schema; ``layer`` comes from the hook name."""
    return {**labels, "condition": condition, "hook": hook, "layer": hook_layer(hook),
            "head": head, "position": position, "metric": metric, "value": float(value)}


def metric_records(metrics: dict[str, float], **fields) -> list[dict]:
    """One :func:`record` per metric of a ``{metric: value}`` dict, sharing ``fields``."""
    return [record(metric, value, **fields) for metric, value in metrics.items()]


def tidy(records: Iterable[dict], labels: Sequence[str] = ()) -> pd.DataFrame:
    """The schema's DataFrame: ``labels`` then :data:`COLUMNS`; integer index columns are
    nullable integers (NA where a row has none)."""
    frame = pd.DataFrame(list(records), columns=[*labels, *COLUMNS])
    for column in INDEX_COLUMNS:
        frame[column] = frame[column].astype("Int64")
    frame["value"] = frame["value"].astype(float)
    return frame


def wide(frame: pd.DataFrame, baseline: str | None = None) -> pd.DataFrame:
    """One column per ``condition`` (the other columns index the rows); with ``baseline``,
    also ``change`` = each other condition − the baseline (e.g. ``wide(ablations, "clean")``
    gives ``clean, ablated, change``)."""
    keys = [c for c in frame.columns if c not in ("condition", "value")]
    table = frame.pivot_table(index=keys, columns="condition", values="value",
                              aggfunc="first", dropna=False, observed=True)
    table = table.dropna(how="all").reset_index()
    table.columns.name = None
    if baseline is not None:
        others = [c for c in table.columns if c not in keys and c != baseline]
        if len(others) == 1:
            table["change"] = table[others[0]] - table[baseline]
        else:
            for other in others:
                table[f"change_{other}"] = table[other] - table[baseline]
    return table
