"""Named LoRA adapters inside one tower, with per-sample routing (peft's mixed-adapter batches).

peft's LoRA layers accept `adapter_names=[...]` (one name per sample, "__base__" for none) and
apply each sample's own adapter. `LanguageAdapters` injects adapters with peft's public
`inject_adapter_in_model`, switches the active one, routes mixed batches by installing that
argument on every LoRA layer for one forward pass, and saves / loads one adapter's weights.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence

import torch
from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model, set_peft_model_state_dict
from peft.tuners.lora import LoraLayer
from torch import nn

BASE_ADAPTER = "__base__"  # peft's name for "no adapter" in a mixed batch


class LanguageAdapters:
    """Manages the LoRA adapters injected into `tower` (not an `nn.Module`: owns no parameters)."""

    def __init__(self, tower: nn.Module):
        self.tower = tower
        self._trainable: str | None = None

    @property
    def names(self) -> list[str]:
        return sorted(getattr(self.tower, "peft_config", {}))

    def _lora_layers(self) -> list[LoraLayer]:
        return [module for module in self.tower.modules() if isinstance(module, LoraLayer)]

    def add(self, name: str, config: LoraConfig) -> None:
        """Inject a new adapter `name` (weights as `config.init_lora_weights` says) and leave it inactive."""
        if name in self.names:
            raise ValueError(f"an adapter named {name!r} already exists; installed: {self.names}")
        active = self.active
        with warnings.catch_warnings():
            # peft warns that a second adapter makes a multi-adapter model: that is the point here.
            warnings.filterwarnings("ignore", message="Already found a `peft_config`")
            inject_adapter_in_model(config, self.tower, adapter_name=name)
        self.activate(active)

    def remove(self, name: str) -> None:
        """Delete adapter `name` from every layer (the others are untouched)."""
        if name not in self.names:
            raise KeyError(f"no adapter named {name!r}; installed: {self.names}")
        active = self.active
        for layer in self._lora_layers():
            if name in layer.lora_A:
                layer.delete_adapter(name)
        del self.tower.peft_config[name]
        self.activate(active if active != name else None)

    @property
    def active(self) -> str | None:
        """The adapter applied to every sample, or None when the tower computes its base function."""
        layers = self._lora_layers()
        if not layers or layers[0].disable_adapters:
            return None
        return layers[0].active_adapters[0]

    def activate(self, name: str | None) -> None:
        """Apply adapter `name` to every sample (None: the unchanged base tower)."""
        if name is not None and name not in self.names:
            raise KeyError(f"no adapter named {name!r}; installed: {self.names}")
        for layer in self._lora_layers():
            if name is None:
                layer.enable_adapters(False)
            else:
                layer.enable_adapters(True)
                layer.set_adapter(name)
        self._apply_trainable()

    def set_trainable(self, name: str | None) -> None:
        """Make exactly adapter `name`'s weights trainable (None: no adapter weights train)."""
        self._trainable = name
        self._apply_trainable()

    def _apply_trainable(self) -> None:
        # peft's set_adapter marks the active adapter trainable; what trains is the caller's choice.
        for layer in self._lora_layers():
            for weights in (layer.lora_A, layer.lora_B):
                for adapter_name, module in weights.items():
                    module.requires_grad_(adapter_name == self._trainable)

    @contextlib.contextmanager
    def route(self, adapter_names: Sequence[str | None]) -> Iterator[None]:
        """Within the block, sample i goes through adapter `adapter_names[i]` (None: base)."""
        names = [BASE_ADAPTER if name is None else name for name in adapter_names]
        unknown = sorted(set(names) - set(self.names) - {BASE_ADAPTER})
        if unknown:
            raise KeyError(f"no adapter named {unknown}; installed: {self.names}")
        layers = self._lora_layers()
        if not layers:
            yield
            return
        previous = self.active
        for layer in layers:  # peft only routes while adapters are enabled
            layer.enable_adapters(True)
        handles = [
            layer.register_forward_pre_hook(
                lambda module, args, kwargs: (args, {**kwargs, "adapter_names": names}), with_kwargs=True
            )
            for layer in layers
        ]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()
            self.activate(previous)

    def state_dict(self, name: str) -> dict[str, torch.Tensor]:
        """Adapter `name`'s weights under peft's adapter-file key names (no adapter name inside)."""
        if name not in self.names:
            raise KeyError(f"no adapter named {name!r}; installed: {self.names}")
        return {k: v.detach().clone() for k, v in get_peft_model_state_dict(self.tower, adapter_name=name).items()}

    def load_state_dict(self, name: str, state_dict: dict[str, torch.Tensor]) -> None:
        """Load weights saved by `state_dict(name)` into the existing adapter `name`, strictly."""
        expected = set(get_peft_model_state_dict(self.tower, adapter_name=name))
        missing, unexpected = expected - set(state_dict), set(state_dict) - expected
        if missing or unexpected:
            raise ValueError(
                f"adapter {name!r} weights do not fit this tower: missing {sorted(missing)[:5]}, "
                f"unexpected {sorted(unexpected)[:5]}"
            )
        set_peft_model_state_dict(self.tower, state_dict, adapter_name=name)

    def config(self, name: str) -> LoraConfig:
        return self.tower.peft_config[name]


def strip_adapter_weights(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The base model's state dict from one with injected LoRA layers: LoRA tensors dropped,
    `.base_layer.` folded back, so it loads into a model without adapters."""
    base = {}
    for key, value in state_dict.items():
        if ".lora_" in key:
            continue
        base[key.replace(".base_layer.", ".")] = value
    return base
