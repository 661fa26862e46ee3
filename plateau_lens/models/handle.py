"""One explicit handle for a model under study: the bridge that analyzers hook, the native
network it computes with, the task, and the model config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..config.model import ModelConfig
from .layers import AttentionBias, PlateauAttention


def plateau_attentions(module: torch.nn.Module) -> list[PlateauAttention]:
    """The plateau-lens attention modules of a network (or a bridge over one), in order."""
    return [m for m in module.modules() if isinstance(m, PlateauAttention)]


def attention_bias_of(module: torch.nn.Module) -> AttentionBias | None:
    """The :class:`AttentionBias` shared by a plateau-lens network's attention modules."""
    attentions = plateau_attentions(module)
    return attentions[0].attention_bias if attentions else None


def set_attention_bias(module: "torch.nn.Module | PlateauModel", multiplier: Tensor | None) -> None:
    """Install (or with ``None`` remove) the attention multiplier of a plateau-lens network,
    bridge or :class:`PlateauModel`. It is one object shared by the network and the bridge
    over it, so setting it through either sets it for both."""
    network = module.network if isinstance(module, PlateauModel) else module
    bias = attention_bias_of(network) if network is not None else None
    if bias is None:
        raise ValueError("no plateau-lens attention modules found in this model: attention "
                         "biasing needs a model built by plateau-lens")
    bias.multiplier = None if multiplier is None else multiplier.detach().clone()


@dataclass(eq=False)
class PlateauModel:
    """A model under study.

    * ``bridge``: the ``TransformerBridge`` every analyzer reads and edits through hook names;
    * ``task``: what the model is trained on (metrics, probe targets, optimal attention …);
    * ``network``: for plateau-lens' own models, the TransformerLens ``NativeModel`` whose
      parameters and attention bias the bridge computes with (None for Pythia/OLMo);
    * ``config``: the :class:`ModelConfig` it was built from (None for Pythia/OLMo).

    Calling it runs the bridge. Analyzers accept a ``PlateauModel``, or a plain bridge
    together with ``task=`` (what :meth:`resolve` turns into one).
    """

    bridge: Any
    task: Any
    network: torch.nn.Module | None = None
    config: ModelConfig | None = None

    @property
    def cfg(self):
        """The bridge's TransformerLens config (n_layers, n_heads, d_model, …)."""
        return self.bridge.cfg

    def __call__(self, inputs: Tensor) -> Tensor:
        return self.bridge(inputs)

    @property
    def attention_bias(self) -> AttentionBias | None:
        return None if self.network is None else attention_bias_of(self.network)

    def set_attention_bias(self, multiplier: Tensor | None) -> None:
        set_attention_bias(self, multiplier)

    def eval(self) -> "PlateauModel":
        self.bridge.eval()
        if self.network is not None:
            self.network.eval()
        return self

    @classmethod
    def resolve(cls, model: "PlateauModel | Any", task: Any = None) -> "PlateauModel":
        """``model`` as a handle: a ``PlateauModel`` as it is (``task`` overrides its task),
        a bare bridge or a pretrained checkpoint's handle (anything with a ``bridge``: Pythia,
        OLMo) with the ``task`` its batches come from."""
        if isinstance(model, PlateauModel):
            if task is None or task is model.task:
                return model
            return cls(bridge=model.bridge, task=task, network=model.network, config=model.config)
        model = getattr(model, "bridge", model)
        if not hasattr(model, "hook_dict"):
            raise ValueError(f"model must be a PlateauModel or a TransformerBridge, got "
                             f"{type(model).__name__}")
        if task is None:
            raise ValueError("pass task=...: a bare TransformerBridge does not know its task "
                             "(for prompts: plateau_lens.llm.prompt_batch returns one)")
        return cls(bridge=model, task=task)
