"""Hash head: relaxation/sign, packing, annealing, and a dual encoder carrying one through `hash_bits`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_mclip_config

import mmml
from mmml.modeling import HashHead, binarize, hash_scale_schedule, pack_codes, unpack_codes


def test_pack_matches_numpy_packbits_and_round_trips():
    codes = binarize(torch.randn(7, 64, generator=torch.Generator().manual_seed(0)))
    packed = pack_codes(codes)
    assert packed.dtype == torch.uint8 and packed.shape == (7, 8)
    np.testing.assert_array_equal(packed.numpy(), np.packbits(codes.numpy() > 0, axis=1))
    torch.testing.assert_close(unpack_codes(packed), codes)


def test_pack_rejects_bits_not_multiple_of_8():
    with pytest.raises(ValueError, match="multiple of 8"):
        pack_codes(torch.ones(2, 12))


def test_binarize_maps_zero_to_plus_one():
    assert binarize(torch.tensor([-0.5, 0.0, 2.0])).tolist() == [-1.0, 1.0, 1.0]


def test_head_relaxes_in_training_and_signs_in_eval():
    head = HashHead(8, 16)
    x = torch.randn(5, 8)
    head.train()
    relaxed = head(x)
    assert relaxed.shape == (5, 16) and relaxed.abs().max() < 1
    torch.testing.assert_close(relaxed, torch.tanh(head.logits(x)))
    head.eval()
    codes = head(x)
    assert set(codes.unique().tolist()) <= {-1.0, 1.0}
    torch.testing.assert_close(codes, binarize(head.logits(x)))


def test_annealed_scale_approaches_sign():
    head = HashHead(8, 32).train()
    torch.nn.init.normal_(head.weight, std=1.0)
    x = torch.randn(20, 8)
    gaps = []
    for step in (0, 1000, 100000):
        head.set_scale(hash_scale_schedule(step, initial=1.0, growth=0.01))
        gaps.append((head(x) - head.binarize(x)).abs().mean().item())
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 0.2 * gaps[0]
    assert hash_scale_schedule(300, 2.0, 0.01, 0.5) == pytest.approx(2.0 * 4**0.5)


def _inputs(batch=4):
    g = torch.Generator().manual_seed(1)
    return {
        "input_ids": torch.randint(5, 100, (batch, 9), generator=g),
        "attention_mask": torch.ones(batch, 9, dtype=torch.long),
        "pixel_values": torch.randn(batch, 3, 32, 32, generator=g),
    }


def test_dual_encoder_without_hash_bits_has_no_hash_fields():
    model = mmml.MCLIPModel(tiny_mclip_config()).eval()
    out = model(**_inputs())
    assert out.image_hash is None and out.text_hash is None and model.image_hash_head is None
    with pytest.raises(ValueError, match="hash_bits"):
        model.get_image_codes(_inputs()["pixel_values"])


def test_dual_encoder_carries_hash_heads_through_config(tmp_path):
    torch.manual_seed(0)
    model = mmml.MCLIPModel(tiny_mclip_config(hash_bits=32, hash_scale=2.0))
    inputs = _inputs()
    model.train()
    out = model(**inputs, return_loss=True)
    assert out.image_hash.shape == (4, 32) and out.text_hash.shape == (4, 32)
    assert out.image_hash.abs().max() < 1
    out.loss.backward()
    assert model.image_hash_head.weight.grad.abs().sum() > 0
    assert model.text_hash_head.weight.grad.abs().sum() > 0
    # The loss is the contrastive term plus the hashing term on the relaxed codes.
    expected = model.contrastive_loss(out.image_embeds, out.text_embeds, model.scaled_logit_scale()) + model.hashing_loss(
        out.image_hash, out.text_hash
    )
    torch.testing.assert_close(out.loss, expected)

    model.eval()
    with torch.no_grad():
        out = model(**inputs)
        image_codes = model.get_image_codes(inputs["pixel_values"])
        text_codes = model.get_text_codes(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
    torch.testing.assert_close(out.image_hash, image_codes)
    torch.testing.assert_close(out.text_hash, text_codes)
    assert set(image_codes.unique().tolist()) <= {-1.0, 1.0}

    model.save_pretrained(tmp_path)
    reloaded = mmml.MCLIPModel.from_pretrained(tmp_path).eval()
    assert reloaded.config.hash_bits == 32
    with torch.no_grad():
        torch.testing.assert_close(reloaded.get_image_codes(inputs["pixel_values"]), image_codes)


@pytest.mark.parametrize("bits", [0, 12, -8, 3.0])
def test_invalid_hash_bits_is_refused(bits):
    with pytest.raises(ValueError, match="hash_bits"):
        tiny_mclip_config(hash_bits=bits)
