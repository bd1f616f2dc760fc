"""Tokenizer training and the M-CLIP processor's save / load through AutoProcessor."""

from __future__ import annotations

import pytest
import torch
from conftest import CORPUS
from PIL import Image
from transformers import AutoProcessor, AutoTokenizer

import mmml
from mmml.processing import sentencepiece_to_transformers, train_sentencepiece


def test_wrapped_tokenizer_tokenizes_exactly_like_sentencepiece():
    sp = train_sentencepiece(CORPUS * 20, vocab_size=150)
    tokenizer = sentencepiece_to_transformers(sp, model_max_length=32)
    for text in CORPUS + ["ein kleiner roter Stern unten", "左下角有一个绿色的三角形"]:
        ids = tokenizer(text)["input_ids"]
        assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
        assert ids[1:-1] == sp.encode(text)
    assert tokenizer.pad_token_id == 1 and tokenizer.unk_token_id == 3
    # Non-Latin scripts are covered, not mapped to <unk>.
    assert tokenizer.unk_token_id not in tokenizer("маленький красный круг")["input_ids"]
    assert tokenizer.unk_token_id not in tokenizer("蓝色的小正方形")["input_ids"]


def test_chinese_pieces_are_single_characters_unless_asked_otherwise():
    chinese = "右上角有一个蓝色的小正方形"
    per_char = train_sentencepiece(CORPUS * 20, vocab_size=150)
    assert [p.lstrip("▁") for p in per_char.encode(chinese, out_type=str) if p.lstrip("▁")] == list(chinese)
    merged = train_sentencepiece(CORPUS * 20, vocab_size=150, single_character_cjk=False)
    assert len(merged.encode(chinese)) < len(chinese)


def test_tokenizer_training_is_deterministic_and_validates_input():
    a = train_sentencepiece(CORPUS * 20, vocab_size=150)
    b = train_sentencepiece(CORPUS * 20, vocab_size=150)
    assert a.serialized_model_proto() == b.serialized_model_proto()
    with pytest.raises(ValueError, match="empty corpus"):
        train_sentencepiece(["", "   "])
    with pytest.raises(ValueError, match="model_type"):
        train_sentencepiece(CORPUS, model_type="wordpiece")


def test_tokenizer_round_trips_through_auto_tokenizer(tmp_path, tiny_tokenizer):
    tiny_tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    for text in CORPUS:
        assert reloaded(text)["input_ids"] == tiny_tokenizer(text)["input_ids"]
    assert reloaded.decode(reloaded(CORPUS[4])["input_ids"], skip_special_tokens=True) == CORPUS[4]


def test_processor_outputs_and_auto_processor_round_trip(tmp_path, tiny_processor):
    images = [Image.new("RGB", (48, 40), (200, 30, 30)), Image.new("RGB", (32, 32), (30, 30, 200))]
    texts = [CORPUS[0], CORPUS[5]]
    batch = tiny_processor(text=texts, images=images, return_tensors="pt")
    assert batch["pixel_values"].shape == (2, 3, 32, 32)
    assert batch["input_ids"].shape == batch["attention_mask"].shape
    # Padded to the longest text by default, with the tokenizer's pad id.
    shorter = int(batch["attention_mask"].sum(1).argmin())
    assert batch["input_ids"][shorter, -1] == tiny_processor.tokenizer.pad_token_id
    tiny_processor.save_pretrained(tmp_path)
    reloaded = AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(reloaded, mmml.MCLIPProcessor)
    again = reloaded(text=texts, images=images, return_tensors="pt")
    for key in batch:
        assert torch.equal(batch[key], again[key]), key


def test_processor_truncates_to_model_max_length(tiny_processor):
    long_text = " ".join(CORPUS * 5)
    batch = tiny_processor(text=[long_text], return_tensors="pt")
    assert batch["input_ids"].shape[1] == tiny_processor.tokenizer.model_max_length
