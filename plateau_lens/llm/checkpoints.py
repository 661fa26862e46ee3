"""Load pretrained checkpoint series (Pythia, OLMo, OLMo-2, or a local directory) as
TransformerBridges via ``TransformerBridge.boot_transformers``."""

from __future__ import annotations

from dataclasses import dataclass

import json
from pathlib import Path
from typing import Any

import torch

from ..runs.layout import HF_CONFIG_FILE, is_checkpoint_folder, series_step_dir, series_step_of

PYTHIA_STEPS: tuple[int, ...] = (0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512) + tuple(
    range(1000, 143_001, 1000))
"""The published Pythia checkpoints (revisions ``step{N}``)."""

HUB_ORGANISATIONS = {"pythia": "EleutherAI", "olmo": "allenai"}


class CheckpointLoadError(RuntimeError):
    """A checkpoint that cannot be loaded: missing, unreachable, corrupt or of another model."""


def hub_name(name: str) -> str:
    """``pythia-160m`` → ``EleutherAI/pythia-160m``; names with an owner pass through."""
    if "/" in name:
        return name
    lowered = name.lower()
    for prefix, organisation in HUB_ORGANISATIONS.items():
        if lowered.startswith(prefix):
            return f"{organisation}/{name}"
    return name


def pythia_revision(step: int) -> str:
    if step not in PYTHIA_STEPS:
        nearby = sorted(PYTHIA_STEPS, key=lambda s: abs(s - step))[:3]
        raise ValueError(f"Pythia has no checkpoint at step {step}; nearest: {sorted(nearby)}")
    return f"step{step}"


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "vocab.json", "merges.txt", "tokenizer.model", "added_tokens.json")
"""The files a tokenizer saved beside a checkpoint may consist of."""

HUB_CHECKPOINT_FILES = (HF_CONFIG_FILE, "generation_config.json", "*.safetensors",
                        "model.safetensors.index.json") + TOKENIZER_FILES
"""What a checkpoint folder needs from the hub: the config, the safetensors weights and the
tokenizer's files (``pytorch_model*.bin`` only where a revision has no safetensors)."""
_HUB_BIN_FILES = ("pytorch_model*.bin", "pytorch_model.bin.index.json")


def hub_offline_advice(repo: str, revision: str | None, error: Exception,
                       local_dir_hint: str = "local_dir=") -> str:
    return (f"could not load {repo} at revision {revision!r} from the hub ({type(error).__name__}: "
            f"{error}). Without network, point at a local copy: {local_dir_hint}<directory "
            f"written by save_pretrained, or one with step{{N}} sub-directories>, or fill the "
            f"Hugging Face cache on a connected machine and set HF_HUB_OFFLINE=1.")


def hub_checkpoint_dir(repo: str, revision: str | None,
                       local_dir_hint: str = "local_dir=") -> Path:
    """The local folder of ``repo`` at ``revision`` holding :data:`HUB_CHECKPOINT_FILES`:
    ``huggingface_hub.snapshot_download`` takes them from the Hugging Face cache where they
    are (``HF_HUB_OFFLINE=1``: only from there) and downloads the rest. A series over the hub
    reads these folders like local checkpoints (one bridge, the next revision downloaded while
    the current one is analysed: :class:`~plateau_lens.llm.reuse.SeriesLoader`)."""
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(repo, revision=revision,
                                        allow_patterns=list(HUB_CHECKPOINT_FILES)))
        if not any(folder.glob("*.safetensors")):
            folder = Path(snapshot_download(repo, revision=revision, allow_patterns=list(
                HUB_CHECKPOINT_FILES + _HUB_BIN_FILES)))
    except Exception as error:
        raise CheckpointLoadError(hub_offline_advice(repo, revision, error, local_dir_hint)) from error
    if not (folder / HF_CONFIG_FILE).is_file():
        raise CheckpointLoadError(f"{repo} at revision {revision!r} has no {HF_CONFIG_FILE} "
                                  f"(its folder: {folder})")
    return folder


def hub_revision(name: str, step: int | None = None, revision: str | None = None
                 ) -> tuple[str, str | None]:
    """The hub repository of ``name`` and the revision of ``step`` (Pythia's ``step{N}``;
    other models need ``revision=``)."""
    repo = hub_name(name)
    if revision is None and step is not None:
        if "pythia" not in repo.lower():
            raise ValueError(f"step= maps to a revision for Pythia only; give revision= for {repo}")
        revision = pythia_revision(step)
    return repo, revision


def series_checkpoint_dir(name: str | None, step: int, local_dir: str | Path | None = None,
                   local_dir_hint: str = "local_dir=") -> Path:
    """The folder of one checkpoint of a series: ``local_dir``'s ``step{N}`` (see
    :func:`local_checkpoint_dir`), else the hub revision of ``step`` in the Hugging Face cache
    (:func:`hub_checkpoint_dir`, downloaded where missing)."""
    if local_dir is not None:
        return local_checkpoint_dir(local_dir, step)
    if name is None:
        raise ValueError("give a hub name or a local_dir")
    repo, revision = hub_revision(name, step)
    return hub_checkpoint_dir(repo, revision, local_dir_hint)


def local_steps(local_dir: str | Path) -> dict[int, Path]:
    """The ``step{N}`` sub-directories of a series, by step (empty when there are none)."""
    root = Path(local_dir)
    if not root.is_dir():
        return {}
    found = {}
    for child in root.iterdir():
        step = series_step_of(child)
        if step is not None and child.is_dir():
            found[step] = child
    return dict(sorted(found.items()))


def is_single_checkpoint(local_dir: str | Path) -> bool:
    """A ``save_pretrained`` folder itself (a ``config.json``, no ``step{N}`` sub-directories)."""
    root = Path(local_dir)
    return is_checkpoint_folder(root) and not local_steps(root)


def local_checkpoint_dir(local_dir: str | Path, step: int | None = None,
                         revision: str | None = None) -> Path:
    """A series laid out as ``local_dir/step{N}`` (or ``local_dir/{revision}``), or one
    ``save_pretrained`` folder (``local_dir`` itself, whatever ``step`` labels it)."""
    root = Path(local_dir)
    if is_single_checkpoint(root) and revision is None:
        return root
    candidates = []
    if revision is not None:
        candidates.append(root / revision)
    if step is not None:
        candidates.append(series_step_dir(root, step))
    for candidate in candidates:
        if is_checkpoint_folder(candidate):
            return candidate
    if is_checkpoint_folder(root) and not candidates:
        return root
    wanted = ", ".join(str(c) for c in candidates) or str(root)
    present = sorted(local_steps(root))
    have = f"; {root} has step{{N}} folders for steps {present}" if present else ""
    raise CheckpointLoadError(
        f"no checkpoint at {wanted} (expected a {HF_CONFIG_FILE} from save_pretrained){have}")


def checkpoint_fingerprint(directory: str | Path) -> str:
    """Name, size and modification time of every file of a local checkpoint: changes when
    the checkpoint is rewritten (e.g. pretrained again into the same folder)."""
    root = Path(directory).resolve()
    entries = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns)
                     for p in root.iterdir() if p.is_file())
    return json.dumps([str(root), entries])


def architecture_of(directory: Path) -> str:
    try:
        config = json.loads((directory / HF_CONFIG_FILE).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise CheckpointLoadError(f"{directory / HF_CONFIG_FILE} is unreadable: {error}") from error
    return (config.get("architectures") or [config.get("model_type", "unknown")])[0]


def study_tokenizer(source: str | Path, revision: str | None = None):
    """The checkpoint's own tokenizer as the study loads it:
    ``AutoTokenizer.from_pretrained(source, revision=revision)``, unchanged (TransformerLens's
    ``boot_transformers`` would reload it with ``add_bos_token=True``)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(source), revision=revision)


@dataclass(eq=False)
class PretrainedModel:
    """One pretrained checkpoint as an explicit handle: ``bridge`` (the ``TransformerBridge``
    every analyzer hooks) and ``tokenizer``, the checkpoint's own ``AutoTokenizer`` unchanged,
    as the study tokenises (for Pythia and OLMo it adds no BOS; ``bridge.tokenizer`` is
    TransformerLens's copy, which always adds one). Calling it runs the bridge."""

    bridge: Any
    tokenizer: Any
    source: str = ""

    @property
    def cfg(self):
        return self.bridge.cfg

    def __call__(self, tokens):
        return self.bridge(tokens)



def tokenizer_beside(directory: Path):
    """The study's tokenizer saved beside a local checkpoint; :class:`CheckpointLoadError`
    saying what to do when there is none."""
    try:
        return study_tokenizer(directory)
    except Exception as error:
        raise CheckpointLoadError(
            f"no usable tokenizer in {directory} ({type(error).__name__}: {error}); save "
            f"one beside the model (tokenizer.save_pretrained) or pass tokenizer=") from error

def load_checkpoint_model(name: str | None = None, step: int | None = None,
                          revision: str | None = None, local_dir: str | Path | None = None,
                          dtype: torch.dtype | None = None, device: str | None = None,
                          expected_architecture: str | None = None, hf_model=None,
                          tokenizer=None, local_dir_hint: str = "local_dir="):
    """A :class:`PretrainedModel` (bridge + the study's tokenizer) for one checkpoint.

    * Pythia by hub name and training step: ``load_checkpoint_model("pythia-160m", step=512)``
      (revision ``step512``);
    * OLMo / OLMo-2 by name and revision: ``revision="stage1-step150-tokens1B"``;
    * any compatible model from ``local_dir`` (a ``save_pretrained`` directory, or a series
      with one ``step{N}``/``{revision}`` sub-directory per checkpoint);
    * an already-loaded ``hf_model`` (with its ``tokenizer``).

    Its ``tokenizer`` is the one the study uses (``tokenizer`` if given, else the checkpoint's
    own ``AutoTokenizer``, unchanged); nothing is attached to the bridge.

    ``expected_architecture`` (e.g. ``"GPTNeoXForCausalLM"``) refuses a checkpoint of another
    model before loading its weights. ``local_dir_hint`` is how the offline advice names the
    local-directory option (the CLI passes ``"--local-dir "``).
    """
    from transformer_lens.model_bridge import TransformerBridge

    if hf_model is not None:
        bridge = TransformerBridge.boot_transformers(
            name or hf_model.config.name_or_path, hf_model=hf_model, tokenizer=tokenizer,
            dtype=dtype, device=device)
        return PretrainedModel(bridge, tokenizer, name or hf_model.config.name_or_path)
    if local_dir is not None:
        directory = local_checkpoint_dir(local_dir, step, revision)
        architecture = architecture_of(directory)
        if expected_architecture and architecture != expected_architecture:
            raise CheckpointLoadError(
                f"{directory} holds a {architecture}, not a {expected_architecture} like the rest "
                f"of the series")
        if tokenizer is None:
            tokenizer = tokenizer_beside(directory)
        try:
            bridge = TransformerBridge.boot_transformers(str(directory), dtype=dtype,
                                                         device=device, tokenizer=tokenizer)
        except Exception as error:
            raise CheckpointLoadError(f"could not load {directory}: {error}") from error
        return PretrainedModel(bridge, tokenizer, str(directory))
    if name is None:
        raise ValueError("give a hub name, a local_dir or an hf_model")
    repo, revision = hub_revision(name, step, revision)
    try:
        if tokenizer is None:
            tokenizer = study_tokenizer(repo, revision)
        bridge = TransformerBridge.boot_transformers(repo, revision=revision, dtype=dtype,
                                                     device=device, tokenizer=tokenizer)
    except Exception as error:
        raise CheckpointLoadError(hub_offline_advice(repo, revision, error, local_dir_hint)) from error
    return PretrainedModel(bridge, tokenizer, f"{repo}@{revision}")

