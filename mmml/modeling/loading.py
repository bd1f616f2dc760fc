"""Loading checks: a checkpoint that does not fit the model's config names the tensors that differ."""

from __future__ import annotations

import json
import os
from pathlib import Path

from safetensors import safe_open
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


class CheckedLoadingMixin:
    """`from_pretrained` raises `CheckpointMismatchError` naming each tensor whose shape differs."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
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
