"""Checkpoint files: no pickle, checksummed, written so that a kill never leaves a step that
looks complete but is not.

A checkpoint at step N is two files in ``<run>/checkpoints/``:

* ``step_0000000N.safetensors``: the weights, with a JSON header (``__metadata__``) holding
  ``format`` (``plateau-lens-checkpoint/2``), ``step``, ``config`` (the run's config as JSON)
  and ``config_sha256``, ``tensors_sha256`` (sha256 over every tensor's name, dtype, shape
  and bytes) and ``state_sha256`` (of the sidecar file below).
* ``step_0000000N.state``: the training state (optimizer, scheduler, RNG states as tensors
  and lists, and every metrics row logged before step N), written with ``torch.save`` and
  read with ``torch.load(weights_only=True)``: plain tensors and containers, no code.

The sidecar is written first, the weights file last (each atomically), so a step exists
only once both are complete; both checksums are verified on load. Weights alone (analysis,
``[init] checkpoint``) read only the ``.safetensors`` file.

Runs written before this format (``step_N.pt``, a pickle) load only with
``allow_pickle=True``: unpickling runs any code the file holds, so only for files you wrote.
``plateau-lens convert RUN`` rewrites such a run in this format.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import config_mismatch
from ..errors import InputError
from ..io import atomic_write
from .layout import CHECKPOINT_FORM, LEGACY_SUFFIX, WEIGHTS_SUFFIX, state_path, step_of_checkpoint

log = logging.getLogger("plateau_lens")

CHECKPOINT_FORMAT = "plateau-lens-checkpoint/2"
LEGACY_FORMAT = "plateau-lens-checkpoint/1"
PICKLE_WARNING = ("unpickling runs any code the file holds: pass allow_pickle=True "
                  "(CLI: --allow-legacy-pickle) only for files you wrote yourself")


class CheckpointError(InputError):
    """A checkpoint that is missing, corrupt, or of another model."""


class CheckpointMismatch(CheckpointError):
    """A readable checkpoint (or a config) that differs from the one expected."""


class LegacyCheckpointError(CheckpointError):
    """A pickle checkpoint of the old format, refused without ``allow_pickle``."""


def checkpoint_step(path: Path) -> int:
    step = step_of_checkpoint(path)
    if step is None:
        raise CheckpointError(f"{path} is not named like a checkpoint ({CHECKPOINT_FORM})")
    return step


# ------------------------------------------------------------------------- RNG states
def rng_states() -> dict[str, Any]:
    """Every RNG's state as tensors, ints and lists (``weights_only``-loadable)."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    states = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)),
                  "pos": int(position), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def plain_rng_states(states: dict[str, Any]) -> dict[str, Any]:
    """A legacy checkpoint's RNG states (numpy's tuple, python's tuple) in the plain form."""
    if isinstance(states.get("numpy"), tuple):
        kind, keys, position, has_gauss, cached = states["numpy"]
        states = {**states, "numpy": {"kind": kind, "keys": torch.from_numpy(np.asarray(keys).astype(np.int64)),
                                      "pos": int(position), "has_gauss": int(has_gauss),
                                      "cached_gaussian": float(cached)}}
    if isinstance(states.get("python"), tuple):
        version, internal, gauss_next = states["python"]
        states = {**states, "python": {"version": version, "internal": list(internal),
                                       "gauss_next": gauss_next}}
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    states = plain_rng_states(states)
    torch.set_rng_state(states["torch"].cpu())
    numpy_state = states["numpy"]
    np.random.set_state((numpy_state["kind"], numpy_state["keys"].cpu().numpy().astype(np.uint32),
                         numpy_state["pos"], numpy_state["has_gauss"], numpy_state["cached_gaussian"]))
    python_state = states["python"]
    random.setstate((python_state["version"], tuple(python_state["internal"]),
                     python_state["gauss_next"]))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([state.cpu() for state in states["cuda"]])


# --------------------------------------------------------------------------- writing
def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over each tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name]
        digest.update(f"{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def _plain_tensors(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU, contiguous, one storage per name (safetensors refuses shared storage)."""
    seen, tensors = set(), {}
    for name, tensor in state_dict.items():
        tensor = tensor.detach().cpu().contiguous()
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset())
        tensors[name] = tensor.clone() if key in seen else tensor
        seen.add(key)
    return tensors


def plain_rows(rows: list[dict] | None) -> list[dict]:
    """Metrics rows with numpy scalars turned into Python ones (``weights_only``-loadable)."""
    return [{str(k): v.item() if isinstance(v, np.generic) else v for k, v in row.items()}
            for row in rows or []]


def interned(value: Any) -> Any:
    """``value`` with every string interned: pickle's memo then shares equal strings the same
    way whether they were made in this process or loaded from a checkpoint, so a resumed run
    writes byte-identical training states."""
    if isinstance(value, str):
        return sys.intern(value)
    if isinstance(value, dict):
        return type(value)((interned(k), interned(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(interned(v) for v in value)
    return value


def safetensors_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """A safetensors file whose JSON header has sorted keys (the library writes its metadata
    in hash-map order, which differs from one write to the next), so that equal checkpoints
    are equal files."""
    from safetensors.torch import save

    raw = save(tensors, metadata=metadata)
    size = int.from_bytes(raw[:8], "little")
    header = json.dumps(json.loads(raw[8:8 + size]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    return len(header).to_bytes(8, "little") + header + raw[8 + size:]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_checkpoint(path: Path, *, step: int, config: dict, model: dict, optimizer: dict | None,
                    scheduler: dict | None, metrics: list[dict] | None = None,
                    rng: dict | None = None) -> None:
    """Write the sidecar (training state), then the weights file that vouches for it."""
    path = Path(path)
    state = {"format": CHECKPOINT_FORMAT, "step": int(step), "optimizer": optimizer,
             "scheduler": scheduler, "rng": rng_states() if rng is None else plain_rng_states(rng),
             "metrics": plain_rows(metrics)}
    buffer = io.BytesIO()
    torch.save(interned(state), buffer)
    state_bytes = buffer.getvalue()
    atomic_write(state_path(path), lambda tmp: Path(tmp).write_bytes(state_bytes))
    tensors = _plain_tensors(model)
    config_json = json.dumps(config, sort_keys=True)
    metadata = {
        "format": CHECKPOINT_FORMAT, "step": str(int(step)), "config": config_json,
        "config_sha256": _sha256(config_json.encode()), "tensors_sha256": tensors_sha256(tensors),
        "state_sha256": _sha256(state_bytes),
    }
    data = safetensors_bytes(tensors, metadata)
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


# --------------------------------------------------------------------------- reading
def _parse_header(path: Path, data: bytes) -> dict[str, str]:
    if len(data) < 8:
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({len(data)} bytes)")
    size = int.from_bytes(data[:8], "little")
    if size > len(data) - 8:
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated (header of {size} bytes, "
                              f"file of {len(data)})")
    try:
        header = json.loads(data[8:8 + size])
        metadata = header["__metadata__"]
        assert isinstance(metadata, dict)
    except Exception:
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated (unreadable header)") from None
    return metadata


def read_metadata(path: str | Path) -> dict[str, Any]:
    """A checkpoint's header only (step, config, checksums): cheap, no tensors read."""
    path = Path(path)
    with open(path, "rb") as handle:
        start = handle.read(8)
        size = int.from_bytes(start, "little") if len(start) == 8 else -1
        data = start + (handle.read(size) if 0 <= size < (1 << 27) else b"")
    metadata = _parse_header(path, data)
    return _checked_metadata(path, metadata)


def _checked_metadata(path: Path, metadata: dict[str, str]) -> dict[str, Any]:
    if metadata.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a plateau-lens checkpoint "
                              f"(format {metadata.get('format')!r})")
    try:
        step = int(metadata["step"])
        config_json = metadata["config"]
        if _sha256(config_json.encode()) != metadata["config_sha256"]:
            raise CheckpointError(f"checkpoint {path} is corrupt: its stored config fails its checksum")
        config = json.loads(config_json)
    except (KeyError, ValueError) as error:
        if isinstance(error, CheckpointError):
            raise
        raise CheckpointError(f"checkpoint {path} is corrupt (header field {error})") from None
    named = step_of_checkpoint(path)
    if named is not None and named != step:
        raise CheckpointError(f"checkpoint {path} holds step {step}, not the step in its name")
    return {**metadata, "step": step, "config": config}


def _load_state(path: Path, metadata: dict, map_location) -> dict[str, Any]:
    sidecar = state_path(path)
    if not sidecar.is_file():
        raise CheckpointError(f"checkpoint {path}: its training state {sidecar.name} is missing")
    data = sidecar.read_bytes()
    if _sha256(data) != metadata.get("state_sha256"):
        raise CheckpointError(f"checkpoint {path}: training state {sidecar.name} fails its checksum "
                              f"(corrupt, truncated or from another write)")
    try:
        state = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except Exception as error:
        raise CheckpointError(f"checkpoint {path}: training state {sidecar.name} is not plain "
                              f"tensors and containers ({type(error).__name__}: {error})") from None
    if not isinstance(state, dict) or state.get("step") != metadata["step"]:
        raise CheckpointError(f"checkpoint {path}: training state {sidecar.name} is of another step")
    return state


def _load_legacy(path: Path, map_location, allow_pickle: bool) -> dict[str, Any]:
    if not allow_pickle:
        raise LegacyCheckpointError(
            f"{path} is a legacy pickle checkpoint; convert the run once with "
            f"`plateau-lens convert {path.parent.parent}` ({PICKLE_WARNING}), or load it with "
            f"allow_pickle=True")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as error:
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({error})") from error
    if not isinstance(payload, dict) or payload.get("format") != LEGACY_FORMAT:
        raise CheckpointError(f"{path} is not a plateau-lens checkpoint")
    return payload


def load_checkpoint(path: str | Path, expected_config: dict | None = None,
                    map_location: str | torch.device = "cpu", mmap: bool | None = None, *,
                    training_state: bool = True, allow_pickle: bool = False) -> dict[str, Any]:
    """Load and verify a checkpoint: ``{"step", "config", "model"}`` plus, with
    ``training_state``, ``"optimizer"``, ``"scheduler"``, ``"rng"`` and ``"metrics"`` (rows).

    ``expected_config`` guards against another model's file (task and model tables compared,
    defaults filled in). A ``step_N.pt`` path whose ``step_N.safetensors`` exists (a converted
    run, or a name from older scripts) loads the safetensors file. ``mmap`` is accepted for
    compatibility and ignored (weights are read from the safetensors file alone)."""
    from safetensors.torch import load as load_tensors

    path = Path(path)
    if path.suffix == LEGACY_SUFFIX and path.with_suffix(WEIGHTS_SUFFIX).is_file():
        path = path.with_suffix(WEIGHTS_SUFFIX)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.suffix == LEGACY_SUFFIX:
        payload = _load_legacy(path, map_location, allow_pickle)
    else:
        data = path.read_bytes()
        metadata = _checked_metadata(path, _parse_header(path, data))
        try:
            tensors = load_tensors(data)
        except Exception as error:
            raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({error})") from None
        if tensors_sha256(tensors) != metadata.get("tensors_sha256"):
            raise CheckpointError(f"checkpoint {path} is corrupt: its weights fail their checksum")
        payload = {"format": CHECKPOINT_FORMAT, "step": metadata["step"], "config": metadata["config"],
                   "model": {k: v.to(map_location) for k, v in tensors.items()}}
        if training_state:
            state = _load_state(path, metadata, map_location)
            payload.update({k: state.get(k) for k in ("optimizer", "scheduler", "rng", "metrics")})
    if expected_config is not None:
        mismatched = config_mismatch(payload["config"], expected_config)
        if mismatched:
            raise CheckpointMismatch(
                f"checkpoint {path} belongs to another model: {', '.join(mismatched)}")
    return payload
