"""Shared fixtures: offline Hub settings and tiny model / processor factories."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from torch.utils._pytree import tree_flatten  # noqa: E402
from transformers import BertConfig, CLIPImageProcessor, CLIPVisionConfig  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """`../shared/data` beside the repository (override with MMML_SHARED_DATA)."""
    return Path(os.environ.get("MMML_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def tiny_text_config(**overrides) -> BertConfig:
    values = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37, vocab_size=120,
                  max_position_embeddings=40, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    values.update(overrides)
    return BertConfig(**values)


def tiny_vision_config(**overrides) -> CLIPVisionConfig:
    values = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2, image_size=32,
                  patch_size=8)
    values.update(overrides)
    return CLIPVisionConfig(**values)


def tiny_mclip_config(**overrides):
    import mmml

    values = dict(text_config=tiny_text_config(), vision_config=tiny_vision_config(), projection_dim=16)
    values.update(overrides)
    return mmml.MCLIPConfig(**values)


CORPUS = [
    "a small red circle in the top left corner",
    "ein großer blauer Kreis links oben",
    "une petite étoile rouge au centre",
    "un cuadrado verde grande a la derecha",
    "маленький красный круг в левом верхнем углу",
    "右上角有一个蓝色的小正方形",
]


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from mmml.processing import train_multilingual_tokenizer

    return train_multilingual_tokenizer(CORPUS * 20, vocab_size=120, model_max_length=32)


@pytest.fixture(scope="session")
def tiny_processor(tiny_tokenizer):
    import mmml

    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return mmml.MCLIPProcessor(image_processor=image_processor, tokenizer=tiny_tokenizer)


class MaxOutputNumel(TorchDispatchMode):
    """Records the largest tensor produced by any torch op while active."""

    def __init__(self) -> None:
        super().__init__()
        self.max_numel = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for leaf in tree_flatten(out)[0]:
            if isinstance(leaf, torch.Tensor):
                self.max_numel = max(self.max_numel, leaf.numel())
        return out
