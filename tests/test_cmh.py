"""Cross-modal hashing family: the three presets, TF-IDF processor round trip, fresh-process reload."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from transformers import AutoModel, AutoProcessor, CLIPImageProcessor

import mmml
from mmml import CrossModalHashingConfig, CrossModalHashingModel, CrossModalHashingProcessor
from mmml.processing import TfidfFeaturizer

VIT = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37, image_size=32, patch_size=8)
BERT = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37, vocab_size=120,
            max_position_embeddings=40, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
FUSION = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37, max_position_embeddings=48,
              hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
RESNET = dict(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1])


def tiny_cmh_config(preset: str, tfidf_vocab: int = 50, **overrides) -> CrossModalHashingConfig:
    towers = {
        "vit2cmh": dict(vision_config=VIT, text_config=BERT),
        "fgcmh": dict(vision_config=VIT, text_config=BERT, token_fusion_config=FUSION),
        "cmhr-drn": dict(vision_config=RESNET, text_config=dict(vocab_size=tfidf_vocab, hidden_size=24,
                                                                 hidden_dropout_prob=0.0)),
    }[preset]
    return CrossModalHashingConfig.from_preset(preset, **{"projection_dim": 16, "hash_bits": 32, **towers, **overrides})


def _inputs(preset: str, batch: int = 4, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    inputs = {"pixel_values": torch.randn(batch, 3, 32, 32, generator=g)}
    if preset == "cmhr-drn":
        inputs["text_features"] = torch.nn.functional.normalize(torch.rand(batch, 50, generator=g), dim=1)
    else:
        inputs["input_ids"] = torch.randint(5, 100, (batch, 9), generator=g)
        inputs["attention_mask"] = torch.ones(batch, 9, dtype=torch.long)
    return inputs


@pytest.mark.parametrize(
    "preset, vision, text, fused",
    [("vit2cmh", "ViTModel", "BertModel", False), ("fgcmh", "ViTModel", "BertModel", True),
     ("cmhr-drn", "ResNetModel", "TfidfEncoderModel", False)],
)
def test_presets_build_their_towers_and_train(preset, vision, text, fused):
    torch.manual_seed(0)
    model = CrossModalHashingModel(tiny_cmh_config(preset))
    assert type(model.vision_model).__name__ == vision and type(model.text_model).__name__ == text
    assert (model.fusion is not None) == fused and model.config.preset == preset
    inputs = _inputs(preset)
    labels = torch.tensor([[1, 0], [1, 0], [0, 1], [0, 1]])
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        out = model(**inputs, labels=labels, return_loss=True)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(out.loss.item())
    assert out.image_hash.shape == (4, 32) and out.text_hash.shape == (4, 32)
    assert losses[-1] < 0.5 * losses[0], losses
    # Only the hashing loss trains these presets (contrastive_weight 0): equal to HashingLoss itself.
    similarity = mmml.losses.similarity_from_labels(labels)
    torch.testing.assert_close(out.loss, model.hashing_loss(out.image_hash, out.text_hash, similarity))
    model.eval()
    with torch.no_grad():
        codes = model.get_image_codes(inputs["pixel_values"])
    assert set(codes.unique().tolist()) <= {-1.0, 1.0}


def test_fgcmh_encodes_each_item_on_its_own():
    model = CrossModalHashingModel(tiny_cmh_config("fgcmh")).eval()
    inputs = _inputs("fgcmh", batch=3)
    with torch.no_grad():
        together = model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
        alone = model.get_text_features(input_ids=inputs["input_ids"][1:2], attention_mask=inputs["attention_mask"][1:2])
        padded_ids = torch.cat([inputs["input_ids"][1:2], torch.zeros(1, 4, dtype=torch.long)], dim=1)
        padded_mask = torch.cat([inputs["attention_mask"][1:2], torch.zeros(1, 4, dtype=torch.long)], dim=1)
        padded = model.get_text_features(input_ids=padded_ids, attention_mask=padded_mask)
    torch.testing.assert_close(together.pooler_output[1:2], alone.pooler_output, atol=1e-5, rtol=1e-5)
    # The fusion attends to real tokens only: padding leaves the global feature unchanged.
    torch.testing.assert_close(padded.pooler_output, alone.pooler_output, atol=1e-5, rtol=1e-5)


def test_presets_and_config_values_are_checked():
    with pytest.raises(ValueError, match="unknown preset"):
        CrossModalHashingConfig.from_preset("dcmh")
    with pytest.raises(ValueError, match="hash_bits must be set"):
        tiny_cmh_config("vit2cmh", hash_bits=None)
    with pytest.raises(ValueError, match="hash_bits"):
        tiny_cmh_config("vit2cmh", hash_bits=20)
    with pytest.raises(ValueError, match="TF-IDF"):
        CrossModalHashingModel(tiny_cmh_config("cmhr-drn")).get_text_features(input_ids=torch.ones(1, 3, dtype=torch.long))


def test_tfidf_matches_a_hand_computation_and_round_trips():
    corpus = [["a", "red", "circle"], ["a", "blue", "circle"], ["a", "red", "square", "red"]]
    tfidf = TfidfFeaturizer.fit(corpus)
    assert list(tfidf.vocabulary) == ["a", "blue", "circle", "red", "square"]
    idf = {t: math.log(4 / (1 + df)) + 1 for t, df in {"a": 3, "blue": 1, "circle": 2, "red": 2, "square": 1}.items()}
    row = torch.tensor([idf["a"], 0, 0, 2 * idf["red"], idf["square"]])
    torch.testing.assert_close(tfidf.transform([corpus[2]])[0], row / row.norm())
    assert tfidf.transform([["unknown"]]).abs().sum() == 0
    assert TfidfFeaturizer.from_dict(tfidf.to_dict()).to_dict() == tfidf.to_dict()
    small = TfidfFeaturizer.fit(corpus, max_features=2)
    assert sorted(small.vocabulary) == ["a", "circle"]  # highest document frequency, ties alphabetical
    with pytest.raises(ValueError, match="not fitted"):
        TfidfFeaturizer().transform([["a"]])


def _image(seed: int) -> Image.Image:
    return Image.new("RGB", (40, 40), (10 * seed, 200 - 20 * seed, 30 * seed))


def test_cmhr_drn_reloads_model_and_tfidf_processor_in_a_fresh_process(tmp_path, tiny_tokenizer):
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    base = CrossModalHashingProcessor(image_processor=image_processor, tokenizer=tiny_tokenizer)
    corpus = ["a small red circle in the top left corner", "a big blue square", "a red star in the centre"] * 3
    processor = base.with_tfidf_fitted_on(corpus)
    model = CrossModalHashingModel(tiny_cmh_config("cmhr-drn", tfidf_vocab=processor.tfidf.vocab_size)).eval()
    model.save_pretrained(tmp_path / "ckpt")
    processor.save_pretrained(tmp_path / "ckpt")
    inputs = processor(text=["a red circle", "a blue square"], images=[_image(1), _image(2)], return_tensors="pt")
    assert set(inputs) == {"pixel_values", "text_features"}
    queries = ["a red circle", "a blue square", "nothing known here", "ein roter Kreis " * 30]
    torch.testing.assert_close(processor.text_features(queries),
                               processor.tfidf.transform(processor.text_tokens(queries)))
    with torch.no_grad():
        out = model(**inputs)
    save_file({"image_hash": out.image_hash, "text_hash": out.text_hash}, str(tmp_path / "expected.safetensors"))
    script = textwrap.dedent(f"""
        import torch, mmml
        from PIL import Image
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoProcessor
        model = AutoModel.from_pretrained({str(tmp_path / 'ckpt')!r}).eval()
        processor = AutoProcessor.from_pretrained({str(tmp_path / 'ckpt')!r})
        assert type(model).__name__ == "CrossModalHashingModel", type(model)
        assert type(processor).__name__ == "CrossModalHashingProcessor" and processor.tfidf is not None
        images = [Image.new("RGB", (40, 40), (10 * s, 200 - 20 * s, 30 * s)) for s in (1, 2)]
        inputs = processor(text=["a red circle", "a blue square"], images=images, return_tensors="pt")
        with torch.no_grad():
            out = model(**inputs)
        expected = load_file({str(tmp_path / 'expected.safetensors')!r})
        assert torch.equal(out.image_hash, expected["image_hash"]) and torch.equal(out.text_hash, expected["text_hash"])
        print("OK", processor.tfidf.vocab_size)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and f"OK {processor.tfidf.vocab_size}" in result.stdout, result.stderr[-2000:]


@pytest.mark.parametrize("preset", ["vit2cmh", "fgcmh"])
def test_auto_classes_reload_token_presets(tmp_path, preset, tiny_processor):
    model = CrossModalHashingModel(tiny_cmh_config(preset)).eval()
    model.save_pretrained(tmp_path)
    processor = CrossModalHashingProcessor(tiny_processor.image_processor, tiny_processor.tokenizer)
    processor.save_pretrained(tmp_path)
    reloaded, reprocessor = AutoModel.from_pretrained(tmp_path).eval(), AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(reprocessor, CrossModalHashingProcessor) and reprocessor.tfidf is None
    inputs = reprocessor(text=["a red circle"], images=[_image(3)], return_tensors="pt")
    with torch.no_grad():
        a, b = model(**inputs), reloaded(**inputs)
    assert torch.equal(a.image_hash, b.image_hash) and torch.equal(a.text_hash, b.text_hash)
