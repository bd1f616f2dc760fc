"""Recipe arguments: a dataclass filled from a YAML file, then from `--field value` overrides."""

from __future__ import annotations

import copy
import dataclasses
import json
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _convert(name: str, raw: str, annotation: Any) -> Any:
    """Parse a command-line string into the field's type (YAML syntax for lists / dicts)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if raw.lower() in ("none", "null"):
            return None
        # `str | dict`: a YAML mapping (or list) on the command line takes the container member.
        parsed = yaml.safe_load(raw) if raw.lstrip().startswith(("{", "[")) else None
        for container in (dict, list):
            if isinstance(parsed, container) and any(a is container or typing.get_origin(a) is container for a in args):
                return parsed
        annotation = next(a for a in args if a is not type(None))
        origin = typing.get_origin(annotation)
    if annotation is bool:
        lowered = raw.lower()
        if lowered in ("1", "true", "yes"):
            return True
        if lowered in ("0", "false", "no"):
            return False
        raise ValueError(f"--{name} expects true/false, got {raw!r}")
    if annotation in (int, float, str):
        try:
            return annotation(raw)
        except ValueError:
            raise ValueError(f"--{name} expects {annotation.__name__}, got {raw!r}") from None
    value = yaml.safe_load(raw)
    if origin in (list, tuple, Sequence) and isinstance(value, str):
        value = [v for v in value.split(",") if v]
    return value


def parse_args(cls: type[T], argv: Sequence[str] | None = None, default_config: str | Path | None = None) -> T:
    """Build `cls` from `--config FILE.yaml` (or `default_config`) and `--field value` overrides.

    Unknown fields, in the YAML or on the command line, raise `ValueError` listing valid ones.
    """
    argv = list(argv or [])
    types_by_field = _field_types(cls)
    overrides: dict[str, str] = {}
    config_path = default_config
    i = 0
    while i < len(argv):
        token = argv[i]
        if not token.startswith("--"):
            raise ValueError(f"unexpected argument {token!r}; use --field value")
        key, eq, value = token[2:].partition("=")
        if not eq:
            if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
                value = "true"  # a bare flag
            else:
                i += 1
                value = argv[i]
        key = key.replace("-", "_")
        if key == "config":
            config_path = value
        else:
            overrides[key] = value
        i += 1

    values: dict[str, Any] = {}
    if config_path is not None:
        loaded = yaml.safe_load(Path(config_path).read_text(encoding="utf-8")) or {}
        unknown = sorted(set(loaded) - set(types_by_field))
        if unknown:
            raise ValueError(f"{config_path}: unknown fields {unknown}; valid fields: {sorted(types_by_field)}")
        values.update(loaded)
    for key, raw in list(overrides.items()):
        if "." in key:  # --model_config.hash_bits 32: one entry of a dict field (nested: a.b.c)
            field_name, *path = key.split(".")
            annotation = types_by_field.get(field_name)
            if annotation is not dict and typing.get_origin(annotation) is not dict:
                raise ValueError(f"--{key}: {field_name!r} is not a dict field of {cls.__name__}")
            target = values[field_name] = copy.deepcopy(values.get(field_name) or {})
            for part in path[:-1]:
                target = target.setdefault(part, {})
            target[path[-1]] = yaml.safe_load(raw)
            del overrides[key]
    for key, raw in overrides.items():
        if key not in types_by_field:
            raise ValueError(f"unknown argument --{key}; valid: {', '.join('--' + k for k in sorted(types_by_field))}")
        values[key] = _convert(key, raw, types_by_field[key])
    return cls(**values)


def to_json_dict(args: Any) -> dict[str, Any]:
    """The arguments as a JSON-serialisable dict (for logs and checkpoints)."""
    return json.loads(json.dumps(dataclasses.asdict(args), default=str))
