"""One TransformerBridge per checkpoint series: built once, each later checkpoint's weights
mapped into it (safetensors, a private memory map of the file: no copy), the next checkpoint
read ahead while the current one is analysed.

Booting a bridge per revision costs ~1.5 s on a Pythia-160m-shaped model here and briefly
holds two models; pointing the existing one at the next file takes ~0.05 s (the pages are
read by the first forward, from the page cache the read-ahead filled). A checkpoint is mapped
into the bridge only when it is the same model: equal ``config.json`` (apart from
``_name_or_path`` / ``transformers_version``), safetensors weights whose names and shapes are
exactly the bridge's, and a bridge whose every parameter is either such a weight or one of the
q/k/v slices TransformerLens cuts from a fused QKV matrix (re-cut after every load). Anything
else boots a fresh bridge, which is always correct. Tests compare every hook's activation of a
reused bridge with a freshly booted one (``tests/test_llm_series_speed.py``).

A mapped checkpoint file must not be rewritten in place while its bridge is in use (as with
``from_pretrained``'s own map): a write into a parameter stays in this process (a private
map), but a file truncated under it makes the next read of a page fail."""

from __future__ import annotations

import ctypes
import gc
import hashlib
import json
import logging
import math
import os
import struct
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch

from ..runs.layout import HF_CONFIG_FILE
from .checkpoints import (TOKENIZER_FILES, CheckpointLoadError, PretrainedModel, architecture_of,
                          hub_revision, load_checkpoint_model, series_checkpoint_dir,
                          tokenizer_beside)

log = logging.getLogger("plateau_lens")

SAFETENSORS_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16,
                      "BF16": torch.bfloat16, "I64": torch.int64, "I32": torch.int32,
                      "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool}
_IGNORED_CONFIG_FIELDS = ("_name_or_path", "transformers_version")
_READ_AHEAD_CHUNK = 16 << 20


def weight_files(directory: Path) -> list[Path] | None:
    """The checkpoint's safetensors files (one, or the shards its index names); ``None`` when
    it has none (``pytorch_model.bin`` only: such a checkpoint boots a fresh bridge)."""
    single = directory / "model.safetensors"
    if single.is_file():
        return [single]
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [directory / shard for shard in shards]
    return None


def safetensors_header(path: Path) -> tuple[dict, int]:
    """The header (name → dtype, shape, data_offsets) of a safetensors file and where its data
    starts (the format: an 8-byte little-endian header length, the JSON header, the data)."""
    with open(path, "rb") as file:
        (length,) = struct.unpack("<Q", file.read(8))
        header = json.loads(file.read(length))
    header.pop("__metadata__", None)
    return header, 8 + length


def map_safetensors(path: Path, rename=lambda name: name) -> dict[str, torch.Tensor]:
    """Every tensor of ``path`` (keyed ``rename(name)``) as a view of one private memory map of
    the file (``torch.UntypedStorage.from_file(shared=False)``, the way ``safetensors`` and
    ``from_pretrained`` map a checkpoint): nothing is read until a page is touched, and a write
    into a tensor changes this process's copy of the page, never the file. A tensor whose
    offset is not a multiple of its element size is copied out instead. Raises
    ``ValueError`` / :class:`CheckpointLoadError` for an unknown dtype, a size that does not
    match the shape, or a truncated file, before anything is mapped."""
    raw, start = safetensors_header(path)
    header = {rename(name): entry for name, entry in raw.items()}
    for name, entry in header.items():
        if entry["dtype"] not in SAFETENSORS_DTYPES:
            raise ValueError(f"{path.name}: {name} has dtype {entry['dtype']}, not one of "
                             f"{sorted(SAFETENSORS_DTYPES)}")
        begin, end = entry["data_offsets"]
        expected = SAFETENSORS_DTYPES[entry["dtype"]].itemsize * math.prod(entry["shape"])
        if end - begin != expected:
            raise ValueError(f"{path.name}: {name} holds {end - begin} bytes, its shape "
                             f"{entry['shape']} needs {expected}")
    size = path.stat().st_size
    end_of_data = start + max((entry["data_offsets"][1] for entry in header.values()), default=0)
    if size < end_of_data:
        raise CheckpointLoadError(f"{path} is truncated: {size} bytes, its header describes "
                                  f"{end_of_data}")
    if not header:
        return {}
    storage = torch.UntypedStorage.from_file(str(path), shared=False, nbytes=size)
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        dtype = SAFETENSORS_DTYPES[entry["dtype"]]
        raw_bytes = torch.empty(0, dtype=torch.uint8).set_(storage, start + begin, (end - begin,))
        if (start + begin) % dtype.itemsize:
            raw_bytes = raw_bytes.clone()  # unaligned for its dtype: a copy of its own
        tensors[name] = raw_bytes.view(dtype).view(entry["shape"])
    return tensors


def read_ahead(paths: list[Path]) -> None:
    """Have the operating system read files into its page cache before they are mapped:
    ``posix_fadvise(POSIX_FADV_WILLNEED)`` where there is one (the kernel reads; nothing is
    copied into this process, and a file already cached costs nothing), else one read in
    16 MiB chunks into a reused buffer. Costs no memory of this process."""
    advice = getattr(os, "POSIX_FADV_WILLNEED", None)
    view = None if advice is not None else memoryview(bytearray(_READ_AHEAD_CHUNK))
    for path in paths:
        try:
            with open(path, "rb", buffering=0) as file:
                if view is None:
                    os.posix_fadvise(file.fileno(), 0, 0, advice)
                    continue
                while file.readinto(view):
                    pass
        except OSError:  # the real load reports it
            continue


def _fetch_and_read_ahead(source) -> None:
    try:
        directory = Path(source() if callable(source) else source)
        files = weight_files(directory)
    except Exception:  # the checkpoint's own load reports it
        return
    if files:
        read_ahead(files)


def release_freed_memory() -> None:
    """Collect the young generations of Python's garbage and hand the heap memory freed since
    back to the operating system (glibc's ``malloc_trim``; a no-op where the C library has
    none). The previous checkpoint's generation leaves a few hundred MiB of freed activations
    and KV cache in the heap, which would otherwise add to the next checkpoint's peak. (A full
    collection scanned the bridge's long-lived objects for 0.24 s per checkpoint on the
    160m-shaped model and freed no more memory: measured 2026-12-07.)"""
    gc.collect(1)
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)


def config_key(directory: Path) -> str:
    """``config.json`` without the fields that do not change the model."""
    try:
        config = json.loads((directory / HF_CONFIG_FILE).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise CheckpointLoadError(f"{directory / HF_CONFIG_FILE} is unreadable: {error}") from error
    for field in _IGNORED_CONFIG_FIELDS:
        config.pop(field, None)
    return json.dumps(config, sort_keys=True)


def tokenizer_key(directory: Path) -> str:
    """A hash of the tokenizer files saved beside the model (equal files: same tokenizer)."""
    digest = hashlib.sha256()
    for name in TOKENIZER_FILES:
        path = directory / name
        if path.is_file():
            digest.update(name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@contextmanager
def quiet_transformers_loading():
    """``transformers``' weight-loading progress bars off for the block (one bar per checkpoint
    filled stderr), restored after."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


class SeriesLoader:
    """Loads the checkpoints of one series into one bridge.

    ``load(directory)`` returns a :class:`~plateau_lens.llm.checkpoints.PretrainedModel`;
    after the first it is the same bridge with the new weights, each parameter a view of the
    new file's memory map (``last_load_reused`` says which happened), so a handle from an
    earlier ``load`` shows the latest weights.
    ``prefetch(directory)`` reads the next checkpoint's files in a background thread
    (:func:`read_ahead`). ``tokenizer`` fixes the tokenizer; otherwise each checkpoint's own
    is used, loaded again only when its files differ."""

    def __init__(self, dtype: torch.dtype | None = None, device: str | None = None,
                 tokenizer: Any = None):
        self.dtype, self.device, self.fixed_tokenizer = dtype, device, tokenizer
        self.model: PretrainedModel | None = None
        self.last_load_reused = False
        self._config_key: str | None = None
        self._tokenizer_key: str | None = None
        self._targets: dict[str, torch.Tensor] = {}
        self._qkv_bridges: list = []
        self._renamings: list = []
        self._base_prefix: str | None = None
        self._reader: threading.Thread | None = None

    def prefetch(self, source: str | Path | Callable[[], Path]) -> None:
        """Read the next checkpoint's weight files into the page cache in a background thread.
        ``source`` is its folder, or a function giving it (run in the thread too: e.g.
        :func:`~plateau_lens.llm.checkpoints.series_checkpoint_dir` downloading a hub revision while
        the current one is analysed). Errors are left for that checkpoint's own load."""
        self.wait_for_prefetch()
        self._reader = threading.Thread(target=_fetch_and_read_ahead, args=(source,), daemon=True,
                                        name="plateau-lens-prefetch")
        self._reader.start()

    def wait_for_prefetch(self) -> None:
        """Block until the background fetch and read-ahead (if any) is done: call it before
        resolving the folder of the checkpoint it fetched, so the hub revision is not
        downloaded twice at once."""
        if self._reader is not None:
            self._reader.join()
            self._reader = None

    def load(self, directory: str | Path, label: str | None = None) -> PretrainedModel:
        """The checkpoint in ``directory`` (``label``: its name on the returned handle,
        default the folder)."""
        directory = Path(directory)
        label = label or str(directory)
        self.wait_for_prefetch()
        release_freed_memory()
        tokenizer = self._tokenizer_for(directory)
        if self.model is not None and config_key(directory) == self._config_key and self._targets:
            try:
                files = weight_files(directory)
                if files is None:
                    log.info("%s has no safetensors weights (pytorch_model.bin only?): booting a "
                             "new bridge for it", directory)
                reused = files is not None and self._read_weights(directory, files)
            except Exception as error:
                # weights may be half written: the next load boots a fresh bridge
                self.model, self._targets, self._qkv_bridges = None, {}, []
                raise CheckpointLoadError(f"could not load {directory}: {error}") from error
            if reused:
                self.model = PretrainedModel(self.model.bridge, tokenizer, label)
                self.last_load_reused = True
                return self.model
        self._boot(directory, tokenizer, label)
        self.last_load_reused = False
        return self.model

    def _tokenizer_for(self, directory: Path):
        if self.fixed_tokenizer is not None:
            return self.fixed_tokenizer
        key = tokenizer_key(directory)
        if self.model is not None and key == self._tokenizer_key:
            return self.model.tokenizer
        tokenizer = tokenizer_beside(directory)
        self._tokenizer_key = key
        return tokenizer

    def _boot(self, directory: Path, tokenizer, label: str) -> None:
        """A fresh bridge on ``directory``, and the map from the checkpoint's weight names to
        the bridge's parameters (empty when this architecture's bridge holds parameters no
        weight of the file fills: then every checkpoint boots its own)."""
        from transformer_lens.model_bridge import TransformerBridge
        from transformers import AutoModelForCausalLM

        self.model = None  # the previous bridge is freed before the next is built
        self._targets, self._qkv_bridges = {}, []
        gc.collect()
        try:
            with quiet_transformers_loading():
                hf_model = AutoModelForCausalLM.from_pretrained(str(directory), dtype=self.dtype)
                named = dict(hf_model.state_dict(keep_vars=True))
                bridge = TransformerBridge.boot_transformers(str(directory), hf_model=hf_model,
                                                             tokenizer=tokenizer, dtype=self.dtype,
                                                             device=self.device)
        except Exception as error:
            raise CheckpointLoadError(f"could not load {directory}: {error}") from error
        self.model = PretrainedModel(bridge, tokenizer, label)
        self._config_key = config_key(directory)
        if self._learn_renamings(hf_model):
            self._map_parameters(bridge, named)

    def _learn_renamings(self, hf_model) -> bool:
        """The renamings ``from_pretrained`` applies to checkpoint names (GPT-NeoX's
        ``embed_out`` → ``lm_head``); False when it also converts tensors (fuses, splits,
        permutes), which a plain read cannot reproduce."""
        try:
            from transformers.conversion_mapping import get_model_conversion_mapping
            from transformers.core_model_loading import WeightRenaming

            transforms = get_model_conversion_mapping(hf_model)
        except Exception as error:  # another transformers version
            log.info("cannot read transformers' weight renamings (%s); every checkpoint boots "
                     "its own bridge", error)
            return False
        if any(not isinstance(t, WeightRenaming) for t in transforms):
            log.info("%s: transformers converts its checkpoint tensors on load; every checkpoint "
                     "boots its own bridge", type(hf_model).__name__)
            return False
        self._renamings = list(transforms)
        self._base_prefix = getattr(hf_model, "base_model_prefix", None)
        return True

    def _model_key(self, file_key: str) -> str:
        from transformers.core_model_loading import rename_source_key

        return rename_source_key(file_key, self._renamings, [], self._base_prefix,
                                 self._targets)[0]

    def _map_parameters(self, bridge, named: dict[str, torch.Tensor]) -> None:
        from transformer_lens.model_bridge.generalized_components.joint_qkv_attention import (
            JointQKVAttentionBridge)

        in_bridge = {id(p) for p in bridge.original_model.parameters()}
        targets = {name: tensor for name, tensor in named.items()
                   if isinstance(tensor, torch.nn.Parameter) and id(tensor) in in_bridge}
        qkv = [module for module in bridge.modules() if isinstance(module, JointQKVAttentionBridge)]
        derived = {id(p) for module in qkv for part in (module.q, module.k, module.v)
                   for p in part.parameters()}
        covered = {id(t) for t in targets.values()} | derived
        stray = [name for name, p in bridge.original_model.named_parameters() if id(p) not in covered]
        if stray:
            log.info("%s: the bridge holds parameters no checkpoint weight fills (%s); every "
                     "checkpoint of this series boots its own bridge", type(
                         bridge.original_model).__name__, ", ".join(stray[:3]))
            return
        self._targets, self._qkv_bridges = targets, qkv

    @torch.no_grad()
    def _read_weights(self, directory: Path, files: list[Path]) -> bool:
        """Every weight of ``files`` into the bridge, then the q/k/v slices re-cut. A parameter
        of the file's dtype on the CPU becomes a view of the file's private memory map
        (:func:`map_safetensors`: no copy; its pages are read when the next forward touches
        them, from the page cache where :func:`read_ahead` put them), anything else receives a
        converted copy. The previous checkpoint's map is released with its last view. False
        (and nothing written) when the names or shapes are not exactly the bridge's."""
        headers = [{self._model_key(name): entry for name, entry in safetensors_header(path)[0].items()}
                   for path in files]
        names = [name for header in headers for name in header]
        filled = {id(self._targets[name]) for name in names if name in self._targets}
        if (len(names) != len(set(names)) or any(name not in self._targets for name in names)
                or filled != {id(t) for t in self._targets.values()}
                or any(list(self._targets[n].shape) != list(h[n]["shape"])
                       for h in headers for n in h)):
            log.info("%s: its weights are not exactly the bridge's; booting a new bridge",
                     directory)
            return False
        mapped_files = [map_safetensors(path, self._model_key) for path in files]  # all checked first
        for mapped_file in mapped_files:
            for name, mapped in mapped_file.items():
                target = self._targets[name]
                if target.device == mapped.device and target.dtype == mapped.dtype:
                    target.data = mapped  # the parameter reads the file's pages: no copy
                else:
                    target.copy_(mapped)  # another dtype or device: converted once
        for attention in self._qkv_bridges:
            with torch.device("meta"):  # TransformerLens's nn.Linear shells skip their random init
                slices = attention.split_qkv_matrix(attention.original_component)
            if any(tensor.is_meta for fresh in slices for tensor in fresh.parameters()):
                slices = attention.split_qkv_matrix(attention.original_component)
            for part, fresh in zip((attention.q, attention.k, attention.v), slices):
                own = part.original_component
                own.weight.copy_(fresh.weight)
                if fresh.bias is not None:
                    own.bias.copy_(fresh.bias)
        return True


def series_models(name: str | None, steps: Sequence[int], *, local_dir: str | Path | None = None,
                  dtype: torch.dtype | None = None, device: str | None = None, tokenizer: Any = None,
                  local_dir_hint: str = "local_dir=", expected_architecture: str | None = None,
                  same_architecture: bool = False) -> Iterator[tuple[int, PretrainedModel]]:
    """``(step, PretrainedModel)`` for each step through one :class:`SeriesLoader`: the step's
    folder (:func:`~plateau_lens.llm.checkpoints.series_checkpoint_dir`: ``local_dir``'s
    ``step{N}``, or the hub revision in the Hugging Face cache) mapped into the one bridge,
    the next step's folder fetched and read ahead meanwhile. With ``same_architecture`` a
    checkpoint whose ``config.json`` names another architecture than
    ``expected_architecture`` (default: the first loaded model's) raises
    ``CheckpointLoadError`` before its weights are read; without, it boots a new bridge."""
    loader = SeriesLoader(dtype, device, tokenizer)
    expected = expected_architecture
    for index, step in enumerate(steps):
        loader.wait_for_prefetch()  # the fetch of this step, started during the last one
        directory = series_checkpoint_dir(name, step, local_dir, local_dir_hint)
        if same_architecture and expected and (found := architecture_of(directory)) != expected:
            raise CheckpointLoadError(
                f"{directory} holds a {found}, not a {expected} like the rest of the series")
        label = None if local_dir is not None else "@".join(map(str, hub_revision(name, step)))
        model = loader.load(directory, label)
        expected = expected or type(model.bridge.original_model).__name__
        if index + 1 < len(steps):
            loader.prefetch(lambda step=steps[index + 1]: series_checkpoint_dir(
                name, step, local_dir, local_dir_hint))
        yield step, model


def iter_checkpoints(name: str | None, steps: Iterable[int], **kwargs) -> Iterator[tuple[int, object]]:
    """Yield ``(step, PretrainedModel)`` one checkpoint at a time, so a series of a large model
    never holds two models. One bridge serves the series (each checkpoint's weights mapped
    into it while the next one is fetched and read ahead: :func:`series_models`), so a yielded
    model shows the next checkpoint's weights once the loop moves on. The checkpoints are
    ``local_dir``'s ``step{N}`` folders, or Pythia's hub revisions ``step{N}`` of ``name``
    (:func:`~plateau_lens.llm.checkpoints.series_checkpoint_dir`: from the Hugging Face cache,
    downloading what is missing, the next revision while the current one is analysed).
    Other keyword arguments (``revision=``, ``hf_model=``, ...) go to
    :func:`~plateau_lens.llm.checkpoints.load_checkpoint_model` for each step instead, one
    bridge each, the previous one freed first."""
    steps = list(steps)
    if set(kwargs) <= {"local_dir", "dtype", "device", "tokenizer"}:
        yield from series_models(name, steps, **kwargs)
        return
    for step in steps:
        model = load_checkpoint_model(name, step=step, **kwargs)
        try:
            yield step, model
        finally:
            del model
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
