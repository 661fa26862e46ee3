"""Read a W&B offline run file (``run-<id>.wandb``) with wandb's own protobuf records.

wandb 0.31 dropped its Python reader (``wandb.sdk.internal.datastore``); the file is its
documented LevelDB-style log: a 7-byte header (``:W&B``, magic 0xBEE1, version 0), then
32 KiB blocks of chunks, each ``crc32 (4) | length (2, little-endian) | type (1) | data``,
type 1 = a whole record, 2/3/4 = first/middle/last piece of one. Each record is a
``wandb.proto.wandb_internal_pb2.Record``."""

from __future__ import annotations

import json
import struct
from pathlib import Path

BLOCK = 32 * 1024
HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path):
    """Every ``Record`` in the file, in order."""
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    assert data[:7] == HEADER, f"{path} is not a W&B run file (header {data[:7]!r})"
    position, pending = 7, b""
    while position + 7 <= len(data):
        left = BLOCK - position % BLOCK
        if left < 7:  # a block's tail too short for a chunk header is padding
            position += left
            continue
        _, length, kind = struct.unpack("<IHB", data[position:position + 7])
        chunk = data[position + 7:position + 7 + length]
        position += 7 + length
        if kind == FIRST:
            pending = chunk
            continue
        if kind == MIDDLE:
            pending += chunk
            continue
        payload = pending + chunk if kind == LAST else chunk
        assert kind in (FULL, LAST), f"unknown chunk type {kind} in {path}"
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        yield record


def item_key(item) -> str:
    return item.key or "/".join(item.nested_key)


def read_run(path: Path) -> dict:
    """``{"run": the run record, "config": {key: value}, "history": [(step, {key: value})],
    "summary": {key: value}}`` (values decoded from their JSON)."""
    run, config, history, summary = None, {}, [], {}
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
            for item in record.run.config.update:
                config[item_key(item)] = json.loads(item.value_json)
        elif kind == "config":
            for item in record.config.update:
                config[item_key(item)] = json.loads(item.value_json)
        elif kind == "history":
            values = {item_key(i): json.loads(i.value_json) for i in record.history.item}
            history.append((record.history.step.num, values))
        elif kind == "summary":
            for item in record.summary.update:
                summary[item_key(item)] = json.loads(item.value_json)
    return {"run": run, "config": config, "history": history, "summary": summary}


def offline_run_file(run_dir: Path) -> Path:
    found = sorted(Path(run_dir).glob("wandb/offline-run-*/run-*.wandb"))
    assert len(found) == 1, f"expected one offline W&B run under {run_dir}, found {found}"
    return found[0]
