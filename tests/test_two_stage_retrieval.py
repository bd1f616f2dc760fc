"""Two-stage retrieval: dense top k re-ranked by a pairwise scorer, in the evaluator and in retrieval.py.

The fake models embed item ``i`` as a hand-made vector with four entries of +-1 (so the
normalised entries are +-0.5 and every cosine is an exact multiple of 1/4: many exact ties,
and a pairwise scorer that recomputes the cosine reproduces the dense scores bit for bit).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from transformers.modeling_outputs import BaseModelOutputWithPooling

from conftest import MaxOutputNumel
from mmml.eval import RETRIEVAL_METRIC_KEYS, RetrievalEvaluator, metrics_from_ranks, retrieval_metrics
from mmml.eval.evaluator import DEFAULT_RERANK_TOP_K
from mmml.eval.retrieval import two_stage_retrieval_metrics

RECALL_KEYS = ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "rsum")
PAD_ID, FILLER_ID = 0, 7


def signed_vectors(num: int, gen: torch.Generator, dim: int = 8) -> torch.Tensor:
    """``num`` vectors with four entries of +-1 and the rest 0 (norm exactly 2)."""
    out = torch.zeros(num, dim)
    for row in out:
        row[torch.randperm(dim, generator=gen)[:4]] = torch.randint(0, 2, (4,), generator=gen).float() * 2 - 1
    return out


class Problem:
    """Images with 0-3 texts each; half the texts copy their image's vector (with one sign flipped)."""

    def __init__(self, seed: int, num_images: int = 40, max_texts: int = 3, flip: bool = True) -> None:
        gen = torch.Generator().manual_seed(seed)
        counts = torch.randint(0, max_texts + 1, (num_images,), generator=gen)
        counts[0] = 2
        self.text_to_image = torch.repeat_interleave(torch.arange(num_images), counts)
        self.image_vecs = signed_vectors(num_images, gen)
        self.text_vecs = signed_vectors(len(self.text_to_image), gen)
        copies = torch.rand(len(self.text_to_image), generator=gen) < 0.5
        for j in copies.nonzero().view(-1).tolist():
            vec = self.image_vecs[self.text_to_image[j]].clone()
            if flip:
                vec[vec.nonzero()[0]] *= -1  # flip one sign: cosine 0.5 with its image
            self.text_vecs[j] = vec
        # Texts are numbered in row order, as the evaluator enumerates them.
        self.rows = []
        for i in range(num_images):
            texts = (self.text_to_image == i).nonzero().view(-1).tolist()
            # Variable token counts (1 + j % 4), so text batches pad to different lengths.
            captions = [f"t {j} {j % 4}" for j in texts]
            self.rows.append({"image": Image.new("RGB", (4, 4), (i, i, i)), "captions": {"en": captions}})

    def dense_ranks(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Pessimistic dense ranks by brute force: i2t (images with texts only) and t2i."""
        sim = F.normalize(self.image_vecs, dim=-1).double() @ F.normalize(self.text_vecs, dim=-1).double().T
        t2i = self.text_to_image
        t2i_ranks = []
        for j in range(sim.shape[1]):
            positive = sim[t2i[j], j]
            others = torch.arange(sim.shape[0]) != t2i[j]
            t2i_ranks.append(1 + int((sim[others, j] >= positive).sum()))
        i2t_ranks = []
        for i in range(sim.shape[0]):
            relevant = t2i == i
            if relevant.any():
                i2t_ranks.append(1 + int((sim[i, ~relevant] >= sim[i, relevant].max()).sum()))
        return torch.tensor(i2t_ranks), torch.tensor(t2i_ranks)


class FakeProcessor:
    """Image of grey level i -> pixel_values [[i]]; text "t j n" -> ids [j + 1, FILLER * n], padded per batch."""

    def __call__(self, images=None, text=None, return_tensors="pt", **kwargs):
        if images is not None:
            return {"pixel_values": torch.tensor([[float(img.getpixel((0, 0))[0])] for img in images])}
        rows = [[int(t.split()[1]) + 1] + [FILLER_ID] * int(t.split()[2]) for t in text]
        width = max(len(r) for r in rows)
        ids = torch.tensor([r + [PAD_ID] * (width - len(r)) for r in rows])
        return {"input_ids": ids, "attention_mask": (ids != PAD_ID).long()}


class FakeModel(torch.nn.Module):
    """A dual encoder with the default scorer; no scoring hooks, like a plain CLIPModel."""

    def __init__(self, problem: Problem, scale: float = 2.0) -> None:
        super().__init__()
        self.problem = problem
        self.scale = scale
        self.weight = torch.nn.Parameter(torch.zeros(1))  # gives the evaluator a device and dtype

    def get_image_features(self, pixel_values: torch.Tensor) -> BaseModelOutputWithPooling:
        ids = pixel_values[:, 0].long()
        return BaseModelOutputWithPooling(
            last_hidden_state=ids[:, None, None].float().expand(-1, 3, 2), pooler_output=self.problem.image_vecs[ids]
        )

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> BaseModelOutputWithPooling:
        ids = input_ids[:, 0] - 1
        return BaseModelOutputWithPooling(
            last_hidden_state=input_ids[..., None].float(), pooler_output=self.problem.text_vecs[ids]
        )

    def scaled_logit_scale(self) -> torch.Tensor:
        return torch.tensor(self.scale)


class CosineHookModel(FakeModel):
    """The hooks as mmml's base model defines them by default (has_pairwise_scorer False)."""

    has_pairwise_scorer = False

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem)
        self.pair_calls: list[int] = []

    def scoring_inputs(self, modality, features, inputs):
        return {"embeds": F.normalize(features.pooler_output, dim=-1)}

    def score_pairs(self, query, gallery, query_modality, gallery_modality):
        assert set(query) == set(gallery) == {"embeds"}
        self.pair_calls.append(len(query["embeds"]))
        return self.scaled_logit_scale() * (query["embeds"] * gallery["embeds"]).sum(-1)


class OracleModel(FakeModel):
    """A joint scorer that knows the true pairs: cosine + a bonus of 100 for a matching item.

    Its scoring inputs carry the item id and token tensors (variable-length for texts); every
    call checks that the gathered rows are aligned and correctly zero-padded.
    """

    has_pairwise_scorer = True

    def __init__(self, problem: Problem, bonus: float = 100.0) -> None:
        super().__init__(problem)
        self.bonus = bonus
        self.text_width: int | None = 4  # the longest text of Problem: 1 + 3 tokens
        self.calls: list[tuple[str, str, int, tuple[int, ...], tuple[int, ...]]] = []

    def scoring_inputs(self, modality, features, inputs):
        embeds = F.normalize(features.pooler_output, dim=-1)
        if modality == "image":
            ids = inputs["pixel_values"][:, 0].long()
            return {"embeds": embeds, "item": ids, "row": ids, "tokens": features.last_hidden_state}
        ids = inputs["input_ids"][:, 0] - 1
        mask = inputs["attention_mask"]
        return {"embeds": embeds, "item": self.problem.text_to_image[ids], "row": ids,
                "tokens": inputs["input_ids"], "mask": mask}

    def _check(self, side: dict, modality: str) -> None:
        rows = side["row"]
        if modality == "image":
            assert torch.equal(side["embeds"], F.normalize(self.problem.image_vecs[rows], dim=-1))
            assert torch.equal(side["tokens"], rows[:, None, None].float().expand(-1, 3, 2))
            return
        assert torch.equal(side["embeds"], F.normalize(self.problem.text_vecs[rows], dim=-1))
        lengths = 1 + rows % 4
        assert torch.equal(side["mask"].sum(-1), lengths)
        assert torch.equal(side["tokens"][:, 0], rows + 1)
        assert (side["tokens"] * (1 - side["mask"]) == 0).all()  # zero padding past each text
        assert side["tokens"].shape[1] == side["mask"].shape[1]
        if self.text_width is not None:
            assert side["tokens"].shape[1] == self.text_width  # padded to the longest stored text

    def score_pairs(self, query, gallery, query_modality, gallery_modality):
        self._check(query, query_modality)
        self._check(gallery, gallery_modality)
        self.calls.append((query_modality, gallery_modality, len(query["item"]),
                           tuple(query["tokens"].shape), tuple(gallery["tokens"].shape)))
        cosine = (query["embeds"] * gallery["embeds"]).sum(-1)
        return self.scaled_logit_scale() * cosine + self.bonus * (query["item"] == gallery["item"])


class ConstantModel(OracleModel):
    """A collapsed joint scorer: every pair scores the same (tests the tie rule on pairwise scores)."""

    def score_pairs(self, query, gallery, query_modality, gallery_modality):
        super().score_pairs(query, gallery, query_modality, gallery_modality)
        return torch.zeros(len(query["item"]), dtype=torch.bfloat16)


def evaluate(model: torch.nn.Module, problem: Problem, **kwargs) -> dict[str, float]:
    kwargs.setdefault("batch_size", 7)
    result = RetrievalEvaluator(FakeProcessor(), **kwargs).evaluate(model, problem.rows)
    assert list(result) == ["en", "mean"]
    assert list(result["en"]) == [*RETRIEVAL_METRIC_KEYS, "num_images", "num_texts"]  # same keys as dense
    return result["en"]


# --- the default scorer reproduces the dense metrics --------------------------------


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("model_cls", [FakeModel, CosineHookModel])
def test_two_stage_with_default_scorer_equals_dense(seed: int, model_cls: type) -> None:
    problem = Problem(seed)
    model = model_cls(problem)
    dense = evaluate(model, problem)  # "auto": no pairwise scorer -> dense only
    i2t_ranks, t2i_ranks = problem.dense_ranks()
    assert dense == pytest.approx({**metrics_from_ranks(i2t_ranks, t2i_ranks), "num_images": 40,
                                   "num_texts": len(problem.text_to_image)}, abs=1e-12)
    assert 1 < t2i_ranks.median() and t2i_ranks.max() > 10  # a problem with ranks on both sides of k
    if model_cls is CosineHookModel:
        assert model.pair_calls == []
    for top_k in (10, 16):
        got = evaluate(model, problem, rerank_top_k=top_k, rerank_batch_size=9)
        for key in RECALL_KEYS:
            assert got[key] == dense[key], (top_k, key)
    # A top k that covers the whole gallery (clamped to it) in both directions: every metric.
    if model_cls is CosineHookModel:
        model.pair_calls.clear()
    for top_k in (len(problem.text_to_image), 10**6):
        assert evaluate(model, problem, rerank_top_k=top_k, chunk_size=50) == dense
    if model_cls is CosineHookModel:
        assert model.pair_calls and max(model.pair_calls) <= 7  # rerank_batch_size defaults to batch_size


def test_default_top_k_follows_has_pairwise_scorer() -> None:
    problem = Problem(0)
    auto = RetrievalEvaluator(FakeProcessor())
    assert auto.top_k_for(FakeModel(problem)) is None
    assert auto.top_k_for(CosineHookModel(problem)) is None
    assert auto.top_k_for(OracleModel(problem)) == DEFAULT_RERANK_TOP_K == 16
    assert RetrievalEvaluator(FakeProcessor(), rerank_top_k=None).top_k_for(OracleModel(problem)) is None
    assert RetrievalEvaluator(FakeProcessor(), rerank_top_k=3).top_k_for(FakeModel(problem)) == 3
    for bad in (0, -1, True, 2.5, "16"):
        with pytest.raises(ValueError, match="rerank_top_k"):
            RetrievalEvaluator(FakeProcessor(), rerank_top_k=bad)
    with pytest.raises(ValueError, match="rerank_batch_size"):
        RetrievalEvaluator(FakeProcessor(), rerank_batch_size=0)


# --- a joint scorer re-ranks the dense top k ----------------------------------------


def expected_oracle_metrics(problem: Problem, top_k: int) -> dict[str, float]:
    """Rank 1 where a relevant item is inside the dense top k, the dense rank elsewhere."""
    i2t_ranks, t2i_ranks = problem.dense_ranks()
    return metrics_from_ranks(torch.where(i2t_ranks <= top_k, 1, i2t_ranks),
                              torch.where(t2i_ranks <= top_k, 1, t2i_ranks))


@pytest.mark.parametrize("seed", range(3))
def test_oracle_scorer_lifts_items_inside_top_k_and_keeps_the_rest(seed: int) -> None:
    problem = Problem(seed)
    i2t_ranks, t2i_ranks = problem.dense_ranks()
    model = OracleModel(problem)
    model.train()
    got = evaluate(model, problem)  # "auto": has_pairwise_scorer -> top 16
    assert model.training  # mode restored
    k = DEFAULT_RERANK_TOP_K
    assert (t2i_ranks <= k).any() and (t2i_ranks > k).any()  # both cases occur
    assert got == pytest.approx({**expected_oracle_metrics(problem, k), "num_images": 40,
                                 "num_texts": len(problem.text_to_image)}, abs=1e-12)
    assert got["t2i_r1"] == pytest.approx(100.0 * float((t2i_ranks <= k).float().mean()))
    assert got["t2i_r1"] < 100.0 and got["t2i_meanr"] > 1.0
    # Only the queries with a relevant item in their top k are re-scored, k pairs each.
    pairs = {"text": 0, "image": 0}
    for query_modality, gallery_modality, n, _, _ in model.calls:
        assert {query_modality, gallery_modality} == {"image", "text"}
        pairs[query_modality] += n
    assert pairs == {"text": k * int((t2i_ranks <= k).sum()), "image": k * int((i2t_ranks <= k).sum())}

    # Dense only for the same model: its dual-encoder scores alone.
    assert evaluate(OracleModel(problem), problem, rerank_top_k=None) == evaluate(FakeModel(problem), problem)
    # A top k covering the gallery: every truth is inside, R@1 is 100 both ways.
    everything = evaluate(OracleModel(problem), problem, rerank_top_k=10**6)
    assert everything["t2i_r1"] == everything["i2t_r1"] == 100.0
    assert everything["t2i_meanr"] == everything["i2t_medr"] == 1.0
    # top k = 1: only the dense rank-1 items are "re-ranked" (to 1): the dense metrics.
    assert evaluate(OracleModel(problem), problem, rerank_top_k=1) == evaluate(FakeModel(problem), problem)


# --- memory: bounded pairs per call ------------------------------------------------


@pytest.mark.parametrize(("top_k", "pair_bound"), [(16, 5), (16, 16), (4, 50), (16, 1)])
def test_score_pairs_calls_are_bounded(top_k: int, pair_bound: int) -> None:
    problem = Problem(1)
    model = OracleModel(problem)
    got = evaluate(model, problem, rerank_top_k=top_k, rerank_batch_size=pair_bound)
    assert got == pytest.approx(evaluate(OracleModel(problem), problem, rerank_top_k=top_k,
                                         rerank_batch_size=10**6), abs=1e-12)
    assert got == pytest.approx({**expected_oracle_metrics(problem, top_k), "num_images": 40,
                                 "num_texts": len(problem.text_to_image)}, abs=1e-12)
    sizes = [n for _, _, n, _, _ in model.calls]
    assert sizes and max(sizes) <= pair_bound
    # The tensors of a call hold the call's pairs only (texts padded to the longest stored text).
    for query_modality, _, n, query_shape, gallery_shape in model.calls:
        text_shape, image_shape = (query_shape, gallery_shape)
        if query_modality == "image":
            text_shape, image_shape = image_shape, text_shape
        assert text_shape == (n, 4) and image_shape == (n, 3, 2)


def test_two_stage_metrics_bound_pairs_and_dense_block() -> None:
    """retrieval.py directly: pair calls of at most pair_batch_size, any chunk_size (column tiles too)."""
    problem = Problem(2, num_images=30)
    images, texts = F.normalize(problem.image_vecs, dim=-1), F.normalize(problem.text_vecs, dim=-1)
    calls: list[tuple[str, int]] = []

    def cosine(direction: str, query: torch.Tensor, candidate: torch.Tensor) -> torch.Tensor:
        calls.append((direction, len(query)))
        q, c = (texts, images) if direction == "t2i" else (images, texts)
        return (q[query] * c[candidate]).sum(-1)

    dense = retrieval_metrics(images @ texts.T, problem.text_to_image)
    for chunk_size in (7, 29, 31, 10**6):  # 7 and 29: column tiles in both directions
        for top_k, bound in ((10, 3), (200, 64)):
            calls.clear()
            got = two_stage_retrieval_metrics(images, texts, problem.text_to_image, top_k=top_k, score_pairs=cosine,
                                              pair_batch_size=bound, chunk_size=chunk_size)
            assert max(n for _, n in calls) <= bound and {d for d, _ in calls} == {"t2i", "i2t"}
            keys = RECALL_KEYS if top_k == 10 else RETRIEVAL_METRIC_KEYS
            assert {key: got[key] for key in keys} == {key: dense[key] for key in keys}, (chunk_size, top_k)
    with pytest.raises(ValueError, match="top_k"):
        two_stage_retrieval_metrics(images, texts, problem.text_to_image, top_k=0, score_pairs=cosine)
    with pytest.raises(ValueError, match="NaN"):
        two_stage_retrieval_metrics(images, texts, problem.text_to_image, top_k=3,
                                    score_pairs=lambda d, q, c: torch.full((len(q),), float("nan")))
    with pytest.raises(ValueError, match="shape"):
        two_stage_retrieval_metrics(images, texts, problem.text_to_image, top_k=3,
                                    score_pairs=lambda d, q, c: torch.zeros(len(q), 1))


def test_two_stage_never_materialises_the_score_matrix() -> None:
    problem = Problem(4, num_images=100)
    images, texts = F.normalize(problem.image_vecs, dim=-1), F.normalize(problem.text_vecs, dim=-1)
    num_images, num_texts, top_k, chunk_size = images.shape[0], texts.shape[0], 4, 100
    allowed_numel = max(chunk_size, num_texts * images.shape[1], num_texts * top_k)
    assert num_images * num_texts > 10 * allowed_numel  # the full matrix would be caught

    def cosine(direction: str, query: torch.Tensor, candidate: torch.Tensor) -> torch.Tensor:
        q, c = (texts, images) if direction == "t2i" else (images, texts)
        return (q[query] * c[candidate]).sum(-1)

    with MaxOutputNumel() as tracker:
        got = two_stage_retrieval_metrics(images, texts, problem.text_to_image, top_k=top_k, score_pairs=cosine,
                                          pair_batch_size=32, chunk_size=chunk_size)
    assert tracker.max_numel <= allowed_numel
    dense = retrieval_metrics(images @ texts.T, problem.text_to_image)
    assert {key: got[key] for key in ("i2t_r1", "t2i_r1")} == {key: dense[key] for key in ("i2t_r1", "t2i_r1")}


# --- image-to-text with several captions per image; ties among pairwise scores ----


def test_i2t_with_several_captions_and_pessimistic_ties_among_pairwise_scores() -> None:
    problem = Problem(0, max_texts=3, flip=False)  # exact copies: several captions at cosine 1
    i2t_ranks, t2i_ranks = problem.dense_ranks()
    k = 8
    # Constant pairwise scores: a query with r relevant items among its k candidates ranks
    # 1 + (k - r) (every non-relevant candidate ties with the best relevant); others keep dense ranks.
    sims = F.normalize(problem.image_vecs, dim=-1) @ F.normalize(problem.text_vecs, dim=-1).T
    t2i = problem.text_to_image
    expected_i2t, relevant_counts = [], []
    for rank, image in zip(i2t_ranks.tolist(), sorted(set(t2i.tolist()))):
        if rank > k:
            expected_i2t.append(rank)
            continue
        # Pessimistic dense order: score desc, non-relevant first on ties, then index.
        order = sorted(range(len(t2i)), key=lambda j: (-float(sims[image, j]), bool(t2i[j] == image), j))[:k]
        relevant_in_top = sum(int(t2i[j] == image) for j in order)
        assert relevant_in_top >= 1
        relevant_counts.append(relevant_in_top)
        expected_i2t.append(1 + k - relevant_in_top)
    expected_t2i = torch.where(t2i_ranks <= k, k, t2i_ranks)
    assert max(relevant_counts) >= 2 and min(relevant_counts) == 1  # several captions inside the top k
    got = evaluate(ConstantModel(problem), problem, rerank_top_k=k)
    assert got == pytest.approx({**metrics_from_ranks(expected_i2t, expected_t2i), "num_images": 40,
                                 "num_texts": len(t2i)}, abs=1e-12)

    # The oracle: an image with ANY caption inside its top k ranks first.
    oracle = evaluate(OracleModel(problem), problem, rerank_top_k=k)
    assert oracle["i2t_r1"] == pytest.approx(100.0 * float((i2t_ranks <= k).float().mean()))
    assert oracle == pytest.approx({**expected_oracle_metrics(problem, k), "num_images": 40,
                                    "num_texts": len(t2i)}, abs=1e-12)


def test_languages_get_their_own_scoring_inputs() -> None:
    problem = Problem(3, num_images=20)
    # German captions: the same texts, in reverse order within each image, a subset of images.
    for i, row in enumerate(problem.rows):
        if i % 2:
            row["captions"]["de"] = list(reversed(row["captions"]["en"]))
    model = OracleModel(problem)
    model.text_width = None  # the German subset may not reach the longest English text
    # Text ids come from the caption strings, so reordering within an image changes nothing.
    result = RetrievalEvaluator(FakeProcessor(), batch_size=5, rerank_top_k=10**6).evaluate(model, problem.rows)
    assert list(result) == ["de", "en", "mean"]
    for lang in ("de", "en"):
        assert result[lang]["t2i_r1"] == result[lang]["i2t_r1"] == 100.0
    assert result["mean"]["num_texts"] == (result["de"]["num_texts"] + result["en"]["num_texts"]) / 2
