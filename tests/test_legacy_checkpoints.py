"""Backward compatibility: checkpoints saved by older mmml (commit e4439dd) load and compute the same outputs.

`tests/fixtures/legacy/<name>/` holds tiny checkpoints written by `save_pretrained` (model and
processor) of that commit, with `expected.safetensors` (fixed inputs and the outputs the old code
computed from the reloaded checkpoint) and `expected.json` (captions, languages, classes). The
fixtures come from `tests/fixtures/make_legacy_checkpoints.py`; do not regenerate them with newer
code, or this test compares the new code with itself.

Only public API that must keep working is used here: `import mmml`, `AutoModel` / `AutoProcessor`
`.from_pretrained`, `model(**inputs)`, `get_image_features` / `get_text_features`,
`get_image_codes` / `get_text_codes` and MLA's `language=` keyword and `languages` property.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers import AutoModel, AutoProcessor  # noqa: E402

import mmml  # noqa: E402,F401  (registers mmml's classes with the Auto classes)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "legacy"
NAMES = ["mclip", "mla", "hashing", "vse"]
TEXT_INPUT_KEYS = ("input_ids", "attention_mask", "token_type_ids")
# A stored hash code bit is only checked where its logit is decided: |logit| >= this.
UNDECIDED_LOGIT = 1e-5


def assert_close(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    # Not bit-exact on purpose: the expected values were computed on one CPU; another CPU model
    # (Intel vs AMD, other SIMD widths) may take other kernel paths (oneDNN / BLAS blocking, the order
    # of float reductions) and differ in the last bits. Anything beyond rounding is a real change.
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6, msg=lambda message: f"{what}: {message}")


def assert_codes_equal(actual: torch.Tensor, expected: torch.Tensor, logits: torch.Tensor, what: str) -> None:
    """{-1, +1} codes equal exactly, except bits whose stored pre-sign logit is ~0 (rounding may flip them)."""
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    assert set(actual.unique().tolist()) <= {-1.0, 1.0}, f"{what}: codes are not {{-1, +1}}"
    decided = logits.abs() >= UNDECIDED_LOGIT
    mismatched = (actual != expected) & decided
    assert not mismatched.any(), f"{what}: {int(mismatched.sum())} decided bits differ at {mismatched.nonzero().tolist()}"


@functools.cache
def fixture(name: str):
    """(model, processor, expected tensors, expected.json) of one fixture, loaded once per session."""
    folder = FIXTURES / name
    model = AutoModel.from_pretrained(folder).eval()
    processor = AutoProcessor.from_pretrained(folder)
    expected = load_file(str(folder / "expected.safetensors"))
    info = json.loads((folder / "expected.json").read_text(encoding="utf-8"))
    return model, processor, expected, info


def stored_text_inputs(expected: dict, text_set: str) -> dict[str, torch.Tensor]:
    return {key: expected[f"{text_set}.{key}"] for key in TEXT_INPUT_KEYS if f"{text_set}.{key}" in expected}


def language_kwargs(info: dict, text_set: str) -> dict:
    language = info["text_sets"][text_set]["language"]
    return {} if language is None else {"language": language}


def stored_images(expected: dict) -> list[Image.Image]:
    return [Image.fromarray(image.numpy(), mode="RGB") for image in expected["images"]]


@pytest.mark.parametrize("name", NAMES)
def test_fixture_loads_with_auto_classes(name):
    model, processor, _, info = fixture(name)
    assert type(model).__name__ == info["model_class"]
    assert type(processor).__name__ == info["processor_class"]
    assert isinstance(model, getattr(mmml, info["model_class"]))
    assert not model.training


@pytest.mark.parametrize("name", NAMES)
def test_processor_reproduces_the_stored_inputs(name):
    _, processor, expected, info = fixture(name)
    for text_set, spec in info["text_sets"].items():
        encoding = processor(text=spec["captions"], return_tensors="pt", **language_kwargs(info, text_set))
        produced = {key: value for key, value in encoding.items() if key in TEXT_INPUT_KEYS}
        stored = stored_text_inputs(expected, text_set)
        assert sorted(produced) == sorted(stored), f"{name}/{text_set}: text inputs {sorted(produced)} != {sorted(stored)}"
        for key, value in stored.items():  # token ids: exactly
            assert torch.equal(produced[key], value), f"{name}/{text_set}.{key}:\n{produced[key]}\n!=\n{value}"
    pixel_values = processor(images=stored_images(expected), return_tensors="pt")["pixel_values"]
    assert_close(pixel_values, expected["pixel_values"], f"{name}/pixel_values")


@pytest.mark.parametrize("name", NAMES)
@torch.no_grad()
def test_features_match_the_stored_outputs(name):
    model, _, expected, info = fixture(name)
    image_features = model.get_image_features(pixel_values=expected["pixel_values"]).pooler_output
    assert_close(image_features, expected["image_features"], f"{name}/image_features")
    for text_set in info["text_sets"]:
        inputs = stored_text_inputs(expected, text_set)
        text_features = model.get_text_features(**inputs, **language_kwargs(info, text_set)).pooler_output
        assert_close(text_features, expected[f"{text_set}.text_features"], f"{name}/{text_set}.text_features")


@pytest.mark.parametrize("name", NAMES)
@torch.no_grad()
def test_forward_matches_the_stored_outputs(name):
    model, _, expected, info = fixture(name)
    forward_set = info["forward_set"]
    inputs = {"pixel_values": expected["pixel_values"], **stored_text_inputs(expected, forward_set),
              **language_kwargs(info, forward_set)}
    output = model(**inputs)
    keys = sorted(key for key in expected if key.startswith("forward."))
    assert {"forward.image_embeds", "forward.text_embeds", "forward.logits_per_image"} <= set(keys)
    for key in keys:
        field = key.split(".", 1)[1]
        actual = getattr(output, field)
        assert actual is not None, f"{name}: the output has no {field}"
        if field in ("image_hash", "text_hash"):  # eval mode: {-1, +1} codes
            logits = expected["image_hash_logits" if field == "image_hash" else f"{forward_set}.text_hash_logits"]
            assert_codes_equal(actual, expected[key], logits, f"{name}/{key}")
        else:
            assert_close(actual, expected[key], f"{name}/{key}")


@pytest.mark.parametrize("name", [name for name in NAMES if name.startswith("hashing")])
@torch.no_grad()
def test_hash_codes_match_the_stored_codes(name):
    model, _, expected, info = fixture(name)
    assert info["hashing"]
    image_codes = model.get_image_codes(expected["pixel_values"])
    assert_codes_equal(image_codes, expected["image_codes"], expected["image_hash_logits"], f"{name}/image_codes")
    for text_set in info["text_sets"]:
        text_codes = model.get_text_codes(**stored_text_inputs(expected, text_set))
        assert_codes_equal(text_codes, expected[f"{text_set}.text_codes"], expected[f"{text_set}.text_hash_logits"],
                           f"{name}/{text_set}.text_codes")


@torch.no_grad()
def test_mla_fixture_keeps_its_german_acquirer_active():
    model, _, expected, info = fixture("mla")
    assert model.languages == ["de"] == info["languages"]
    de_inputs = stored_text_inputs(expected, "de")
    german = model.get_text_features(**de_inputs, language="de").pooler_output
    # The German captions through the base model (base tokenizer, no acquirer) give other features ...
    base = model.get_text_features(**stored_text_inputs(expected, "de_as_en"), language="en").pooler_output
    assert (german - base).abs().max() > 1e-2
    # ... and so does the German route with the acquirer's LoRA zeroed (computed by the old code): the
    # saved LoRA weights are loaded and applied, not only the language's own embedding table.
    without_lora = expected["reference.de_text_features_without_lora"]
    assert (german - without_lora).abs().max() > 1e-2
    # The per-sample routing of a mixed batch: the German rows equal the all-German call's, the English
    # row the base model's (padding widths differ, so up to float rounding).
    mixed = model.get_text_features(**stored_text_inputs(expected, "mixed"),
                                    language=info["text_sets"]["mixed"]["language"]).pooler_output
    english = model.get_text_features(**stored_text_inputs(expected, "en"), language="en").pooler_output
    assert_close(mixed[[0, 2]], german[[0, 2]], "mla/mixed German rows")
    assert_close(mixed[1], english[1], "mla/mixed English row")
