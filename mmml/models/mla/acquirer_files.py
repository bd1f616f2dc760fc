"""The on-disk form of one language acquirer (a folder that saves, loads and pushes on its own).

    adapter_config.json               peft LoraConfig (a standard peft adapter folder ...)
    adapter_model.safetensors         ... with the LoRA weights of the text tower
    acquirer_config.json              language, the base model it was made for, embedding size
    language_embeddings.safetensors   the language's own token embeddings (optional)
    tokenizer/                        the language's own tokenizer (optional, saved by the processor)
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import torch
from peft import LoraConfig
from safetensors.torch import load_file, save_file

ACQUIRER_CONFIG_NAME = "acquirer_config.json"
ADAPTER_WEIGHTS_NAME = "adapter_model.safetensors"
EMBEDDINGS_NAME = "language_embeddings.safetensors"
TOKENIZER_FOLDER = "tokenizer"
ACQUIRERS_FOLDER = "acquirers"  # inside a saved MLA model: acquirers/<code>/


class AcquirerMismatchError(ValueError):
    """An acquirer that does not belong to this model (another base, another language)."""


@dataclasses.dataclass
class AcquirerInfo:
    """What `acquirer_config.json` records about an acquirer."""

    language: str
    base_model: str
    base_fingerprint: str
    embedding_vocab_size: int | None = None
    format_version: int = 1

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_file(cls, path: Path) -> "AcquirerInfo":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**data)
        except FileNotFoundError as error:
            raise FileNotFoundError(
                f"{path.parent} is not an mmml language acquirer: it has no {ACQUIRER_CONFIG_NAME}"
            ) from error
        except (json.JSONDecodeError, TypeError) as error:
            raise ValueError(f"{path} is not a valid acquirer config ({error})") from error


def write_acquirer(
    folder: str | os.PathLike,
    info: AcquirerInfo,
    lora_config: LoraConfig,
    adapter_weights: dict[str, torch.Tensor],
    embeddings: torch.Tensor | None,
) -> Path:
    """Write an acquirer folder; every file goes through a temporary name and `os.replace`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lora_config.save_pretrained(str(folder))
    _atomic_save_tensors({k: v.contiguous() for k, v in adapter_weights.items()}, folder / ADAPTER_WEIGHTS_NAME)
    if embeddings is not None:
        _atomic_save_tensors({"weight": embeddings.detach().contiguous()}, folder / EMBEDDINGS_NAME)
    elif (folder / EMBEDDINGS_NAME).exists():
        (folder / EMBEDDINGS_NAME).unlink()
    _atomic_write_text(folder / ACQUIRER_CONFIG_NAME, info.to_json())
    return folder


def read_acquirer(folder: str | os.PathLike) -> tuple[AcquirerInfo, LoraConfig, dict[str, torch.Tensor], torch.Tensor | None]:
    """Read what `write_acquirer` wrote."""
    folder = Path(folder)
    info = AcquirerInfo.from_file(folder / ACQUIRER_CONFIG_NAME)
    lora_config = LoraConfig.from_pretrained(str(folder))
    weights = load_file(str(folder / ADAPTER_WEIGHTS_NAME))
    embeddings = load_file(str(folder / EMBEDDINGS_NAME))["weight"] if (folder / EMBEDDINGS_NAME).exists() else None
    if (embeddings is None) != (info.embedding_vocab_size is None):
        raise ValueError(
            f"{folder}: acquirer_config.json says embedding_vocab_size={info.embedding_vocab_size} but "
            f"{EMBEDDINGS_NAME} is {'missing' if embeddings is None else 'present'}"
        )
    return info, lora_config, weights, embeddings


def _atomic_save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp))
    os.replace(tmp, path)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
