"""Frozen parts of a model: no gradients, fixed normalisation statistics, and a frozen tower encodes each input once.

`freeze_modules(model, ["vision_model", "text_model.encoder.layer.0"])` turns off the gradients of
those submodules and keeps them in eval mode through `model.train()` (BatchNorm statistics and
dropout stay as pretrained). `FrozenTowerCache(model.vision_model).install()` then memoises the
tower's outputs per input row (keyed by the row's bytes), so a frozen tower is not re-run every epoch:
the second epoch of a frozen run costs only the trainable parts.
"""

from __future__ import annotations

import hashlib
import logging
import types

import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutputWithPooling

logger = logging.getLogger(__name__)

CACHED_FIELDS = ("pooler_output", "last_hidden_state")


def _stay_in_eval(module: nn.Module, mode: bool = True) -> nn.Module:
    nn.Module.train(module, False)
    return module


def freeze_modules(model: nn.Module, names: list[str]) -> list[nn.Module]:
    """Freeze the submodules `names` (dotted, as in `model.named_modules()`); returns them.

    A name that is not a submodule raises a `ValueError` listing the model's top-level modules.
    """
    modules = dict(model.named_modules())
    unknown = [name for name in names if name not in modules or name == ""]
    if unknown:
        top = sorted(name for name, _ in model.named_children())
        raise ValueError(f"frozen_modules {unknown} are not submodules of {type(model).__name__}; its top-level "
                         f"modules are {top} (deeper names are dotted, e.g. 'text_model.encoder.layer.0')")
    frozen = [modules[name] for name in names]
    for module in frozen:
        module.requires_grad_(False)
        module.train = types.MethodType(_stay_in_eval, module)
        nn.Module.train(module, False)
    if frozen:
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in model.parameters())
        logger.info("froze %s: %.2fM of %.2fM parameters still train", names, trainable / 1e6, total / 1e6)
    return frozen


class FrozenTowerCache:
    """Memoises a frozen tower's `pooler_output` / `last_hidden_state` per input row.

    The key of a row is a hash of its bytes in every batched input (pixels; token ids and mask), so it
    works whatever data path produced the inputs, and a changed input (another crop, another image) is a
    miss, never a stale hit. Outputs are kept in memory on the CPU in the tower's dtype (`nbytes` says
    how much), not on disk: a resumed run fills the cache again.
    Only for towers with no trainable parameters; `install` replaces the instance's `forward` (as
    accelerate does for mixed precision) and `remove` restores it.
    """

    def __init__(self, tower: nn.Module, fields: tuple[str, ...] = CACHED_FIELDS):
        trainable = [name for name, p in tower.named_parameters() if p.requires_grad]
        if trainable:
            raise ValueError(f"FrozenTowerCache needs a frozen tower; {type(tower).__name__} has trainable "
                             f"parameters {trainable[:3]} (freeze it first: freeze_modules)")
        self.tower = tower
        self.fields = fields
        self.entries: dict[str, dict[str, torch.Tensor]] = {}
        self.hits = 0
        self.misses = 0
        self._forward = None

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for entry in self.entries.values() for t in entry.values())

    def install(self) -> "FrozenTowerCache":
        if self._forward is None:
            self._forward = self.tower.forward
            self.tower.forward = self.cached_forward
        return self

    def remove(self) -> None:
        if self._forward is not None:
            del self.tower.forward
            self._forward = None

    @staticmethod
    def row_key(rows: list[torch.Tensor]) -> str:
        """A hash of one input row (the main input's row and the same row of every other batched input)."""
        digest = hashlib.blake2b(digest_size=16)
        for row in rows:
            row = row.detach().contiguous().cpu()
            digest.update(repr((tuple(row.shape), str(row.dtype))).encode())
            digest.update((row.view(torch.int16) if row.dtype == torch.bfloat16 else row).numpy().tobytes())
        return digest.hexdigest()

    def cached_forward(self, *args, **kwargs) -> BaseModelOutputWithPooling:
        main_name = getattr(self.tower, "main_input_name", "pixel_values")
        if args:
            kwargs[main_name] = args[0]
        main = kwargs.get(main_name)
        if main is None or any(kwargs.get(flag) for flag in ("output_hidden_states", "output_attentions")):
            return self._forward(**kwargs)  # hidden states / attentions are not cached
        batched = [name for name, value in kwargs.items()
                   if isinstance(value, torch.Tensor) and value.ndim > 0 and value.shape[0] == main.shape[0]]
        keys = [self.row_key([kwargs[name][i] for name in batched]) for i in range(main.shape[0])]
        missing = [i for i, key in enumerate(keys) if key not in self.entries]
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        if missing:
            subset = {k: (v[missing] if k in batched else v) for k, v in kwargs.items()}
            with torch.no_grad():
                outputs = self._forward(**subset)
            for position, index in enumerate(missing):
                self.entries[keys[index]] = {name: getattr(outputs, name)[position].detach().cpu().clone()
                                             for name in self.fields if getattr(outputs, name, None) is not None}
        stacked = {name: torch.stack([self.entries[key][name] for key in keys]).to(main.device)
                   for name in self.entries[keys[0]]}
        return BaseModelOutputWithPooling(**stacked)
