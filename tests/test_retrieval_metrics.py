"""Retrieval metrics, chunked ranking and the model evaluator."""

from __future__ import annotations

import io
import itertools
import statistics

import datasets
import numpy as np
import pytest
import torch
from PIL import Image
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, PreTrainedTokenizerFast
from transformers.modeling_outputs import BaseModelOutputWithPooling

from conftest import MaxOutputNumel
from mmml.eval import (
    RETRIEVAL_METRIC_KEYS,
    RetrievalEvaluator,
    metrics_from_ranks,
    retrieval_metrics,
    retrieval_metrics_from_embeddings,
)
from mmml.eval import retrieval as retrieval_module

# Hand-worked example: 3 images, 5 texts, text_to_image = [0, 0, 1, 1, 2].
HAND_SIMILARITY = [
    [0.9, 0.1, 0.8, 0.3, 0.5],
    [0.2, 0.5, 0.7, 0.4, 0.7],
    [0.1, 0.6, 0.3, 0.9, 0.5],
]
HAND_TEXT_TO_IMAGE = [0, 0, 1, 1, 2]
# t2i ranks: t0 1 | t1 3 (0.5, 0.6 beat 0.1) | t2 2 (0.8) | t3 2 (0.9) | t4 3 (0.7, and the tie 0.5 of image 0)
# i2t ranks: i0 1 (best of 0.9/0.1) | i1 2 (best 0.7 ties with t4's 0.7) | i2 3 (0.6 and 0.9 beat 0.5)
HAND_EXPECTED = {
    "i2t_r1": 100 / 3,
    "i2t_r5": 100.0,
    "i2t_r10": 100.0,
    "t2i_r1": 20.0,
    "t2i_r5": 100.0,
    "t2i_r10": 100.0,
    "rsum": 100 / 3 + 20.0 + 400.0,
    "i2t_medr": 2.0,
    "t2i_medr": 2.0,
    "i2t_meanr": 2.0,
    "t2i_meanr": 2.2,
}


def assert_metrics_equal(actual: dict[str, float], expected: dict[str, float]) -> None:
    assert list(actual) == list(RETRIEVAL_METRIC_KEYS)
    assert set(expected) >= set(RETRIEVAL_METRIC_KEYS)
    for key in RETRIEVAL_METRIC_KEYS:
        assert actual[key] == pytest.approx(expected[key], rel=1e-12, abs=1e-12), key


def brute_force_metrics(similarity: list[list[float]], text_to_image: list[int]) -> dict[str, float]:
    """Obviously-correct per-query reference with the pessimistic tie rule."""
    num_images, num_texts = len(similarity), len(text_to_image)
    i2t_ranks = []
    for i in range(num_images):
        relevant = [j for j in range(num_texts) if text_to_image[j] == i]
        if not relevant:
            continue
        best = max(similarity[i][j] for j in relevant)
        beaten_by = [j for j in range(num_texts) if text_to_image[j] != i and similarity[i][j] >= best]
        i2t_ranks.append(1 + len(beaten_by))
    t2i_ranks = []
    for j in range(num_texts):
        positive = similarity[text_to_image[j]][j]
        beaten_by = [i for i in range(num_images) if i != text_to_image[j] and similarity[i][j] >= positive]
        t2i_ranks.append(1 + len(beaten_by))
    out = {}
    for name, ranks in (("i2t", i2t_ranks), ("t2i", t2i_ranks)):
        for k in (1, 5, 10):
            out[f"{name}_r{k}"] = 100.0 * sum(r <= k for r in ranks) / len(ranks)
        out[f"{name}_medr"] = float(statistics.median(ranks))
        out[f"{name}_meanr"] = float(statistics.mean(ranks))
    out["rsum"] = sum(out[f"{n}_r{k}"] for n in ("i2t", "t2i") for k in (1, 5, 10))
    return out


def random_problem(seed: int, num_images: int = 23, dim: int = 4) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Small-integer embeddings (exact float scores, many ties); 0-4 texts per image."""
    gen = torch.Generator().manual_seed(seed)
    texts_per_image = torch.randint(0, 5, (num_images,), generator=gen)
    texts_per_image[0] = 2  # at least one text
    text_to_image = torch.repeat_interleave(torch.arange(num_images), texts_per_image)
    text_to_image = text_to_image[torch.randperm(len(text_to_image), generator=gen)].tolist()
    images = torch.randint(-2, 3, (num_images, dim), generator=gen).float()
    texts = torch.randint(-2, 3, (len(text_to_image), dim), generator=gen).float()
    return images, texts, text_to_image


# --- metrics on a dense similarity matrix -------------------------------------------


@pytest.mark.parametrize("as_type", ["list-numpy64", "numpy32", "torch32", "torch16"])
def test_hand_computed_example(as_type: str) -> None:
    sim = {
        "list-numpy64": np.array(HAND_SIMILARITY),
        "numpy32": np.array(HAND_SIMILARITY, dtype=np.float32),
        "torch32": torch.tensor(HAND_SIMILARITY),
        "torch16": torch.tensor(HAND_SIMILARITY, dtype=torch.float16),
    }[as_type]
    assert_metrics_equal(retrieval_metrics(sim, HAND_TEXT_TO_IMAGE), HAND_EXPECTED)


def test_image_without_texts_is_a_t2i_distractor_but_not_an_i2t_query() -> None:
    # Image 3 has no text: it beats text 0's own image (0.95 > 0.9) but asks no i2t query.
    sim = HAND_SIMILARITY + [[0.95, 0.0, 0.0, 0.0, 0.0]]
    expected = dict(HAND_EXPECTED, t2i_r1=0.0, t2i_medr=2.0, t2i_meanr=2.4)
    expected["rsum"] = 100 / 3 + 400.0
    assert_metrics_equal(retrieval_metrics(torch.tensor(sim), HAND_TEXT_TO_IMAGE), expected)
    assert_metrics_equal(
        retrieval_metrics(torch.tensor(sim), HAND_TEXT_TO_IMAGE), brute_force_metrics(sim, HAND_TEXT_TO_IMAGE)
    )


@pytest.mark.parametrize("seed", range(5))
def test_dense_matches_brute_force(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    num_images = 17
    text_to_image = torch.randint(0, num_images, (60,), generator=gen).tolist()
    # Half the seeds use coarse integer scores, so ties are everywhere.
    if seed % 2:
        sim = torch.randint(0, 4, (num_images, 60), generator=gen).double()
    else:
        sim = torch.rand(num_images, 60, generator=gen, dtype=torch.float64)
    expected = brute_force_metrics(sim.tolist(), text_to_image)
    assert_metrics_equal(retrieval_metrics(sim, text_to_image), expected)
    assert_metrics_equal(retrieval_metrics(sim, text_to_image, chunk_size=7), expected)


def test_constant_similarity_scores_worst_possible_ranks() -> None:
    # 4 images x 2 texts, all scores equal: every non-relevant candidate ties with the positive.
    text_to_image = [0, 0, 1, 1, 2, 2, 3, 3]
    # t2i: 1 + 3 other images = 4; i2t: 1 + 6 texts of other images = 7.
    expected = {
        "i2t_r1": 0.0,
        "i2t_r5": 0.0,
        "i2t_r10": 100.0,
        "t2i_r1": 0.0,
        "t2i_r5": 100.0,
        "t2i_r10": 100.0,
        "rsum": 300.0,
        "i2t_medr": 7.0,
        "t2i_medr": 4.0,
        "i2t_meanr": 7.0,
        "t2i_meanr": 4.0,
    }
    assert_metrics_equal(retrieval_metrics(torch.full((4, 8), 0.3), text_to_image), expected)
    # A collapsed model: every embedding is the same vector.
    collapsed = torch.tensor([[1.0, 0.0, 0.0]])
    for chunk_size in (1, 5, 1000):
        got = retrieval_metrics_from_embeddings(
            collapsed.expand(4, 3), collapsed.expand(8, 3), text_to_image, chunk_size=chunk_size
        )
        assert_metrics_equal(got, expected)


def test_single_image_gallery_has_nothing_to_tie_with() -> None:
    got = retrieval_metrics(torch.zeros(1, 3), [0, 0, 0])
    assert got["i2t_r1"] == got["t2i_r1"] == 100.0
    assert got["i2t_medr"] == got["t2i_meanr"] == 1.0


def test_metrics_from_ranks_median_and_mean() -> None:
    got = metrics_from_ranks([1, 2, 6, 11], torch.tensor([5, 1, 1]))
    assert got["i2t_medr"] == 4.0  # mean of the two middle ranks
    assert got["i2t_meanr"] == 5.0
    assert got["i2t_r1"] == 25.0 and got["i2t_r5"] == 50.0 and got["i2t_r10"] == 75.0
    assert got["t2i_medr"] == 1.0 and got["t2i_r5"] == 100.0
    assert got["rsum"] == pytest.approx(25 + 50 + 75 + 200 / 3 + 200)
    with pytest.raises(ValueError, match="1-based"):
        metrics_from_ranks([0, 1], [1])
    with pytest.raises(ValueError, match="no i2t queries"):
        metrics_from_ranks([], [1])


def test_input_validation() -> None:
    with pytest.raises(ValueError, match=r"shape \[5\]"):
        retrieval_metrics(torch.zeros(3, 5), [0, 1])
    with pytest.raises(ValueError, match="in \\[0, 3\\)"):
        retrieval_metrics(torch.zeros(3, 2), [0, 3])
    with pytest.raises(ValueError, match="integer"):
        retrieval_metrics(torch.zeros(3, 2), [0.0, 1.0])
    with pytest.raises(ValueError, match="NaN"):
        retrieval_metrics(torch.tensor([[float("nan"), 0.0]]), [0, 0])
    with pytest.raises(ValueError, match="chunk_size"):
        retrieval_metrics(torch.zeros(3, 2), [0, 1], chunk_size=0)
    with pytest.raises(ValueError, match="NaN or infinite"):
        retrieval_metrics_from_embeddings(torch.full((2, 3), float("inf")), torch.zeros(2, 3), [0, 1])
    with pytest.raises(ValueError, match="NaN or infinite"):
        retrieval_metrics_from_embeddings(torch.zeros(2, 3), torch.tensor([[0.0, float("nan"), 0.0]]), [1])
    with pytest.raises(ValueError, match="dim"):
        retrieval_metrics_from_embeddings(torch.zeros(2, 3), torch.zeros(2, 4), [0, 1])


# --- chunked ranking from embeddings ------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_chunked_matches_dense_and_brute_force(seed: int) -> None:
    images, texts, text_to_image = random_problem(seed)
    num_images, num_texts = images.shape[0], texts.shape[0]
    sim = images @ texts.T  # exact: small integers
    expected = brute_force_metrics(sim.tolist(), text_to_image)
    assert_metrics_equal(retrieval_metrics(sim, text_to_image), expected)
    # Up to num_images - 1: smaller than a row in both directions (column tiles); then
    # exactly one t2i row, whole rows in both directions, and everything in one block.
    for chunk_size in (1, 7, num_images - 1, num_images, num_texts + 1, 3 * num_texts, num_images * num_texts, 10**9):
        got = retrieval_metrics_from_embeddings(images, texts, text_to_image, chunk_size=chunk_size)
        assert_metrics_equal(got, expected)


def test_chunked_matches_dense_on_normalised_random_embeddings() -> None:
    gen = torch.Generator().manual_seed(0)
    images = torch.nn.functional.normalize(torch.randn(40, 16, generator=gen), dim=-1)
    texts = torch.nn.functional.normalize(images.repeat_interleave(3, 0) + torch.randn(120, 16, generator=gen), dim=-1)
    text_to_image = torch.arange(40).repeat_interleave(3)
    dense = retrieval_metrics(images @ texts.T, text_to_image)
    assert 0 < dense["t2i_r1"] < 100 and 0 < dense["i2t_r1"] < 100  # a non-trivial problem (R@1 15.0, 10.0)
    for chunk_size in (5, 64, 1000):
        assert_metrics_equal(
            retrieval_metrics_from_embeddings(images, texts, text_to_image, chunk_size=chunk_size), dense
        )


@pytest.mark.parametrize("chunk_size", [16, 100, 500])  # 16: less than a row either way
def test_chunked_never_scores_more_than_chunk_size(monkeypatch: pytest.MonkeyPatch, chunk_size: int) -> None:
    images, texts, text_to_image = random_problem(0, num_images=60, dim=2)
    num_images, num_texts = images.shape[0], texts.shape[0]
    allowed_numel = max(chunk_size, num_texts * images.shape[1])
    assert num_images * num_texts > 10 * allowed_numel  # the full matrix would be caught

    blocks: list[tuple[int, ...]] = []
    real_score_block = retrieval_module._score_block

    def spy(queries: torch.Tensor, candidates: torch.Tensor, out: torch.Tensor) -> None:
        blocks.append(tuple(out.shape))
        real_score_block(queries, candidates, out)

    monkeypatch.setattr(retrieval_module, "_score_block", spy)
    with MaxOutputNumel() as tracker:
        got = retrieval_metrics_from_embeddings(images, texts, text_to_image, chunk_size=chunk_size)
    assert_metrics_equal(got, retrieval_metrics(images @ texts.T, text_to_image))
    assert blocks and max(rows * cols for rows, cols in blocks) <= chunk_size
    # Every score was computed (at least once in each direction).
    assert sum(rows * cols for rows, cols in blocks) >= 2 * num_images * num_texts
    # No op anywhere produced anything bigger than a chunk or an O(num_texts) vector.
    assert tracker.max_numel <= allowed_numel


# --- evaluator ----------------------------------------------------------------------

VOCAB = ["[PAD]", "[UNK]", "a", "the", "dog", "cat", "red", "blue", "big", "small"]  # English: VOCAB[2:10]
VOCAB += ["ein", "der", "hund", "katze", "rot", "blau", "gross", "klein", "[EOS]"]  # German: VOCAB[10:-1]
EOS_ID = len(VOCAB) - 1


def make_processor() -> CLIPProcessor:
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(VOCAB)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    # CLIP pools the text at the EOS token.
    tokenizer.post_processor = processors.TemplateProcessing(single="$A [EOS]", special_tokens=[("[EOS]", EOS_ID)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="[PAD]", unk_token="[UNK]", eos_token="[EOS]")
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return CLIPProcessor(image_processor=image_processor, tokenizer=fast)


def make_clip() -> CLIPModel:
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config={
            "vocab_size": len(VOCAB),
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "max_position_embeddings": 16,
            "pad_token_id": 0,
            "bos_token_id": 1,
            "eos_token_id": EOS_ID,
        },
        vision_config={
            "image_size": 32,
            "patch_size": 8,
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
        },
        projection_dim=8,
    )
    return CLIPModel(config)


def make_rows(num_images: int = 7) -> list[dict]:
    """Random images; distinct captions (identical texts would tie up to float rounding)."""
    rng = np.random.default_rng(0)
    english = iter(rng.permutation([" ".join(t) for t in itertools.product(VOCAB[2:10], repeat=3)]).tolist())
    german = iter(rng.permutation([" ".join(t) for t in itertools.product(VOCAB[10:-1], repeat=2)]).tolist())
    rows = []
    for i in range(num_images):
        image = Image.fromarray(rng.integers(0, 256, (24 + i, 40, 3), dtype=np.uint8))
        captions = {"en": [next(english) for _ in range(1 + i % 3)]}
        if i % 3 == 1:
            captions["de"] = []  # empty list: no German text, image stays in the gallery
        elif i % 3 == 2:
            captions["de"] = [next(german)]
        # i % 3 == 0: German missing altogether
        rows.append({"image": image, "captions": captions})
    return rows


def reference_metrics(model: CLIPModel, processor: CLIPProcessor, rows: list[dict], lang: str) -> dict[str, float]:
    """Metrics computed by hand from the model's features of the whole dataset at once."""
    with torch.no_grad():
        pixel_values = processor(images=[r["image"] for r in rows], return_tensors="pt")["pixel_values"]
        image_features = model.get_image_features(pixel_values=pixel_values).pooler_output
        texts = [(i, t) for i, r in enumerate(rows) for t in r["captions"].get(lang) or []]
        tokens = processor(text=[t for _, t in texts], return_tensors="pt", padding=True)
        text_features = model.get_text_features(
            input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
        ).pooler_output
    image_features = image_features / image_features.norm(dim=-1, keepdim=True)
    text_features = text_features / text_features.norm(dim=-1, keepdim=True)
    return retrieval_metrics(image_features @ text_features.T, [i for i, _ in texts])


def test_evaluator_with_tiny_clip_matches_hand_computed_metrics() -> None:
    processor, model, rows = make_processor(), make_clip(), make_rows()
    dataset = datasets.Dataset.from_list(rows)
    model.train()
    evaluator = RetrievalEvaluator(processor, batch_size=3)
    result = evaluator.evaluate(model, dataset)

    assert model.training  # previous mode restored
    assert list(result) == ["de", "en", "mean"]
    expected_keys = [*RETRIEVAL_METRIC_KEYS, "num_images", "num_texts"]
    for lang in ("de", "en", "mean"):
        assert list(result[lang]) == expected_keys
    assert result["en"]["num_images"] == result["de"]["num_images"] == 7
    assert result["en"]["num_texts"] == sum(1 + i % 3 for i in range(7))
    assert result["de"]["num_texts"] == 2
    model.eval()
    for lang in ("de", "en"):
        reference = reference_metrics(model, processor, rows, lang)
        for key in RETRIEVAL_METRIC_KEYS:
            assert result[lang][key] == pytest.approx(reference[key], abs=1e-9), (lang, key)
    for key in expected_keys:
        assert result["mean"][key] == pytest.approx((result["de"][key] + result["en"][key]) / 2)

    # Same numbers from a plain list of rows holding encoded bytes / file paths, one language only.
    buffers = []
    for row in rows:
        buffer = io.BytesIO()
        row["image"].save(buffer, format="PNG")
        buffers.append(buffer.getvalue())
    encoded_rows = [{"image": b, "captions": r["captions"]} for b, r in zip(buffers, rows)]
    only_en = RetrievalEvaluator(processor, languages=["en"], batch_size=4).evaluate(model, encoded_rows)
    assert list(only_en) == ["en", "mean"]
    assert only_en["en"] == pytest.approx(result["en"], abs=1e-9)
    assert only_en["mean"] == only_en["en"]


def test_evaluator_two_stage_with_default_scorer_on_tiny_clip() -> None:
    # CLIPModel has no scoring hooks: forced two-stage re-ranks with the (unscaled) cosine.
    processor, model, rows = make_processor(), make_clip(), make_rows()
    dense = RetrievalEvaluator(processor, batch_size=3).evaluate(model, rows)
    two_stage = RetrievalEvaluator(processor, batch_size=3, rerank_top_k=10**6, rerank_batch_size=4)
    two_stage = two_stage.evaluate(model, rows)
    assert list(two_stage) == list(dense)
    for lang in dense:
        assert two_stage[lang] == pytest.approx(dense[lang], abs=1e-9), lang


def test_evaluator_decodes_image_paths(tmp_path) -> None:
    processor, model, rows = make_processor(), make_clip(), make_rows(4)
    path_rows = []
    for i, row in enumerate(rows):
        path = tmp_path / f"{i}.png"
        row["image"].save(path)
        path_rows.append({"image": str(path), "captions": row["captions"]})
    evaluator = RetrievalEvaluator(processor, languages=["en"])
    assert evaluator.evaluate(model, path_rows)["en"] == pytest.approx(evaluator.evaluate(model, rows)["en"], abs=1e-9)


class OneHotProcessor:
    """Image i is a solid image of grey level i; text "item i ..." tokenises to [i]."""

    def __call__(self, images=None, text=None, return_tensors="pt", **kwargs):
        if images is not None:
            ids = [img.getpixel((0, 0))[0] for img in images]
            return {"pixel_values": torch.tensor(ids, dtype=torch.float32)[:, None]}
        ids = torch.tensor([[int(t.split()[1])] for t in text])
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


class OneHotModel(torch.nn.Module):
    """A perfect model: image i and every text of image i share the embedding 3 * e_i."""

    def __init__(self, num_items: int) -> None:
        super().__init__()
        self.num_items = num_items
        self.calls: list[tuple[str, int, bool, bool]] = []

    def _embed(self, kind: str, ids: torch.Tensor) -> BaseModelOutputWithPooling:
        self.calls.append((kind, len(ids), self.training, torch.is_inference_mode_enabled()))
        one_hot = torch.nn.functional.one_hot(ids.long().view(-1), self.num_items).float()
        return BaseModelOutputWithPooling(pooler_output=3.0 * one_hot)

    def get_image_features(self, pixel_values: torch.Tensor) -> BaseModelOutputWithPooling:
        return self._embed("image", pixel_values)

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> BaseModelOutputWithPooling:
        return self._embed("text", input_ids)


def test_perfect_model_scores_100_and_images_are_embedded_once_in_eval_mode() -> None:
    num_items = 10
    rows = [
        {
            "image": Image.new("RGB", (8, 8), (i, i, i)),
            "captions": {"en": [f"item {i} en {k}" for k in range(2)], "fr": [f"item {i} fr"] if i % 2 else None},
        }
        for i in range(num_items)
    ]
    # An extra gallery image (its own item) without any text.
    rows.append({"image": Image.new("RGB", (8, 8), (num_items, 0, 0)), "captions": {"en": [], "sv": []}})
    model = OneHotModel(num_items + 1).eval()
    result = RetrievalEvaluator(OneHotProcessor(), batch_size=4).evaluate(model, rows)

    assert list(result) == ["en", "fr", "mean"]  # "sv" only has empty lists
    for lang in ("en", "fr", "mean"):
        for key in ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10"):
            assert result[lang][key] == 100.0
        assert result[lang]["rsum"] == 600.0
        assert result[lang]["i2t_medr"] == result[lang]["t2i_meanr"] == 1.0
    assert result["en"]["num_texts"] == 20 and result["fr"]["num_texts"] == 5
    assert result["mean"]["num_texts"] == 12.5 and result["mean"]["num_images"] == 11

    image_calls = [c for c in model.calls if c[0] == "image"]
    assert [n for _, n, _, _ in image_calls] == [4, 4, 3]  # each image once, in batches
    assert all(not training and inference for _, _, training, inference in model.calls)
    assert max(n for _, n, _, _ in model.calls) <= 4
    assert not model.training  # it was in eval mode before and stays so
    model.train()
    RetrievalEvaluator(OneHotProcessor(), languages=["fr"]).evaluate(model, rows)
    assert model.training


def test_evaluator_rejects_languages_without_captions() -> None:
    rows = [{"image": Image.new("RGB", (8, 8), (i, 0, 0)), "captions": {"en": [f"item {i}"]}} for i in range(3)]
    with pytest.raises(ValueError, match="no captions in language 'fr'"):
        RetrievalEvaluator(OneHotProcessor(), languages=["fr"]).evaluate(OneHotModel(3), rows)
    rows[1]["captions"]["en"] = "item 1"
    with pytest.raises(TypeError, match="list of str"):
        RetrievalEvaluator(OneHotProcessor()).evaluate(OneHotModel(3), rows)
    with pytest.raises(ValueError, match="reserved"):
        RetrievalEvaluator(OneHotProcessor(), languages=["mean"])
    with pytest.raises(ValueError, match="empty"):
        RetrievalEvaluator(OneHotProcessor()).evaluate(OneHotModel(3), [])
