"""Real photos with en/de/fr/cs captions (../shared/data/flickr8k-multi30k) through the whole stack."""

from __future__ import annotations

import pytest
import torch
from conftest import shared_data_dir, tiny_mclip_config
from transformers import CLIPImageProcessor

import mmml
from mmml.data import load_manifest
from mmml.eval import RETRIEVAL_METRIC_KEYS, RetrievalEvaluator, retrieval_metrics
from mmml.processing import train_multilingual_tokenizer

LANGUAGES = ("en", "de", "fr", "cs")


@pytest.fixture(scope="module")
def flickr_test():
    manifest = shared_data_dir() / "flickr8k-multi30k" / "test.jsonl"
    if not manifest.is_file():
        pytest.skip(f"real data not found at {manifest} (set MMML_SHARED_DATA to the shared data folder)")
    return load_manifest(manifest)


def test_real_jpegs_and_multilingual_captions_through_processor_model_and_evaluator(flickr_test):
    dataset = flickr_test
    assert len(dataset) == 92
    corpus = [t for row in dataset["captions"] for lang in LANGUAGES for t in row.get(lang) or []]
    tokenizer = train_multilingual_tokenizer(corpus, vocab_size=400, model_max_length=40)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    processor = mmml.MCLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)
    torch.manual_seed(0)
    model = mmml.MCLIPModel(tiny_mclip_config(text_config={"model_type": "bert", "hidden_size": 32,
                                                           "num_hidden_layers": 1, "num_attention_heads": 2,
                                                           "intermediate_size": 37, "vocab_size": len(tokenizer),
                                                           "max_position_embeddings": 42})).eval()

    batch = processor(text=dataset[0]["captions"]["de"], images=[dataset[0]["image"]], return_tensors="pt")
    assert batch["pixel_values"].shape == (1, 3, 32, 32)  # a ~200x150 JPEG, decoded from its path

    result = RetrievalEvaluator(processor, languages=LANGUAGES, batch_size=32).evaluate(model, dataset)
    assert set(result) == {*LANGUAGES, "mean"}
    for lang in LANGUAGES:
        expected_texts = sum(len(row.get(lang) or []) for row in dataset["captions"])
        assert result[lang]["num_images"] == 92 and result[lang]["num_texts"] == expected_texts
        assert set(RETRIEVAL_METRIC_KEYS) <= set(result[lang])
    assert result["en"]["num_texts"] == 460  # five Flickr8k captions per photo

    # The evaluator's German numbers equal metrics computed by hand from the model's features.
    rows = [(i, text) for i, row in enumerate(dataset["captions"]) for text in row.get("de") or []]
    images = [dataset[i]["image"] for i in range(len(dataset))]
    with torch.no_grad():
        image_embeds = model.get_image_features(**processor(images=images, return_tensors="pt")).pooler_output
        text_embeds = model.get_text_features(**processor(text=[t for _, t in rows], return_tensors="pt")).pooler_output
    similarity = torch.nn.functional.normalize(image_embeds, dim=-1) @ torch.nn.functional.normalize(text_embeds, dim=-1).T
    by_hand = retrieval_metrics(similarity, torch.tensor([i for i, _ in rows]))
    for key in RETRIEVAL_METRIC_KEYS:
        assert result["de"][key] == pytest.approx(by_hand[key], abs=1e-6), key
