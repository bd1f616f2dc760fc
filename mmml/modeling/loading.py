"""Loading: a checkpoint that does not fit the model's config names the tensors that differ, and loaded
weights end up in aligned memory of their own.

transformers 5 loads safetensors checkpoints zero-copy: each parameter is a tensor over the
memory-mapped checkpoint file (`safe_open(..., backend="mmap").get_slice(name)[...]`, wrapped in an
`nn.Parameter` and assigned to the module), so it sits wherever the file's layout puts it: 8-byte
header alignment plus offsets that are only multiples of the element size, hardly ever the 64 bytes
torch's own allocator gives a constructed model. Some BLAS code paths (oneMKL's SSE4.2 sgemv, for
one, used by `F.linear` on a single row) sum in another order when a weight is not 16-byte aligned,
so a reloaded model could differ from the constructed one by an ulp. `align_parameters` moves such
weights into fresh, aligned, contiguous memory; `CheckedLoadingMixin.from_pretrained` calls it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn
from transformers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME, cached_file


class CheckpointMismatchError(ValueError):
    """The checkpoint's tensors do not have the shapes the model's config implies."""


def _checkpoint_files(pretrained: str | os.PathLike, **hub_kwargs) -> list[str]:
    single = cached_file(pretrained, SAFE_WEIGHTS_NAME, _raise_exceptions_for_missing_entries=False, **hub_kwargs)
    if single is not None:
        return [single]
    index = cached_file(pretrained, SAFE_WEIGHTS_INDEX_NAME, _raise_exceptions_for_missing_entries=False, **hub_kwargs)
    if index is None:
        return []
    shards = sorted(set(json.loads(Path(index).read_text())["weight_map"].values()))
    return [cached_file(pretrained, shard, **hub_kwargs) for shard in shards]


def shape_mismatches(model, pretrained: str | os.PathLike, **hub_kwargs) -> list[tuple[str, tuple, tuple]]:
    """`(name, checkpoint_shape, model_shape)` for every tensor whose shapes differ."""
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    found = []
    for file in _checkpoint_files(pretrained, **hub_kwargs):
        with safe_open(file, framework="pt") as handle:
            for name in handle.keys():
                shape = tuple(handle.get_slice(name).get_shape())
                if name in expected and expected[name] != shape:
                    found.append((name, shape, expected[name]))
    return sorted(found)


def _aligned_copy(tensor: torch.Tensor, alignment: int) -> torch.Tensor:
    """A contiguous copy of `tensor` whose first byte is `alignment`-byte aligned."""
    copy = torch.empty(tensor.shape, dtype=tensor.dtype, device=tensor.device)
    if copy.data_ptr() % alignment:  # an allocator aligning to less than asked: over-allocate and offset
        nbytes = tensor.numel() * tensor.element_size()
        raw = torch.empty(nbytes + alignment, dtype=torch.uint8, device=tensor.device)
        start = -raw.data_ptr() % alignment
        copy = raw[start:start + nbytes].view(tensor.dtype).view(tensor.shape)
    return copy.copy_(tensor)


def _storage_key(tensor: torch.Tensor) -> tuple:
    return tensor.device, tensor.untyped_storage().data_ptr()


def _view_key(tensor: torch.Tensor) -> tuple:
    return tensor.device, tensor.data_ptr(), tensor.dtype, tuple(tensor.shape), tuple(tensor.stride())


def align_parameters(module: nn.Module, alignment: int = 64, *, own_memory: bool = False) -> int:
    """Give every parameter and buffer of `module` aligned, contiguous memory of its own; returns how
    many tensors were moved (a tensor reachable under several names counts once).

    A tensor moves when its first byte is not `alignment`-byte aligned, when it is not contiguous,
    when it shares its storage with another of the module's tensors (views into one buffer), or
    when it is a small view into a larger storage. With `own_memory=True` every CPU tensor moves as
    well, so none stays in memory torch only borrows (the memory-mapped checkpoint file a loader
    left it in, even where the file's offset happens to be aligned): `from_pretrained` uses that.
    The move swaps the tensor's `.data`, so every `nn.Parameter` stays the same object (tied weights
    stay tied, hooks and optimizers keep their references) with its `requires_grad`, dtype and
    device; tensors that were the same view of the same memory stay one memory. Meta, empty and
    tensor-subclass (DTensor, quantized) tensors are left alone. Running it again moves nothing
    (without `own_memory`).
    """
    if alignment <= 0 or alignment & (alignment - 1):
        raise ValueError(f"alignment must be a power of two, got {alignment}")
    tensors: dict[int, torch.Tensor] = {}  # by id: a tied parameter is seen once
    for tensor in [*module.parameters(), *module.buffers()]:
        if tensor is None or tensor.device.type == "meta" or tensor.numel() == 0:
            continue
        if type(tensor) not in (torch.Tensor, nn.Parameter):
            continue
        tensors.setdefault(id(tensor), tensor)
    views_per_storage: dict[tuple, set] = {}
    for tensor in tensors.values():
        views_per_storage.setdefault(_storage_key(tensor), set()).add(_view_key(tensor))

    def needs_move(tensor: torch.Tensor) -> bool:
        storage = tensor.untyped_storage()
        nbytes = tensor.numel() * tensor.element_size()
        return (
            tensor.data_ptr() % alignment != 0
            or not tensor.is_contiguous()
            or len(views_per_storage[_storage_key(tensor)]) > 1
            or storage.nbytes() > nbytes + alignment  # (aligned over-allocations have up to `alignment` slack)
            or (own_memory and tensor.device.type == "cpu")
        )

    copies: dict[tuple, torch.Tensor] = {}
    moved = 0
    with torch.no_grad():
        for tensor in tensors.values():
            if not needs_move(tensor):
                continue
            key = _view_key(tensor)
            if key not in copies:
                copies[key] = _aligned_copy(tensor.detach(), alignment)
            tensor.data = copies[key]
            moved += 1
    return moved


class CheckedLoadingMixin:
    """`from_pretrained` raises `CheckpointMismatchError` naming each tensor whose shape differs, and
    leaves every weight in aligned memory of its own (see `align_parameters`), none in the memory-
    mapped checkpoint: a reloaded model then runs the same kernels on the same memory layout as a
    constructed one, and computes the same bits."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        loaded = cls._checked_from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        # (a tuple `(model, loading_info)` with output_loading_info=True)
        align_parameters(loaded[0] if isinstance(loaded, tuple) else loaded, own_memory=True)
        return loaded

    @classmethod
    def _checked_from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        try:
            return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        except RuntimeError as error:
            if "ignore_mismatched_sizes" not in str(error):
                raise
            config = kwargs.get("config")
            if config is None or isinstance(config, (str, os.PathLike)):
                config = cls.config_class.from_pretrained(config or pretrained_model_name_or_path)
            hub_kwargs = {k: kwargs[k] for k in ("revision", "token", "cache_dir") if k in kwargs}
            mismatches = shape_mismatches(cls(config), pretrained_model_name_or_path, **hub_kwargs)
            listing = "; ".join(f"{name}: checkpoint {list(a)} vs model {list(b)}" for name, a, b in mismatches)
            raise CheckpointMismatchError(
                f"the weights in {pretrained_model_name_or_path} do not fit this {cls.config_class.__name__}: "
                f"{listing}. Load with the checkpoint's own config, or pass ignore_mismatched_sizes=True "
                "to re-initialise these tensors."
            ) from error
