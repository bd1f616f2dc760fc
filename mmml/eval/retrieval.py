"""Image-text retrieval metrics (COCO/Flickr protocol) with bounded-memory ranking.

Conventions shared by every function here:

* ``text_to_image[j]`` is the index of the image that text ``j`` describes; an image
  may have several texts. Text-to-image (t2i) queries have exactly one relevant image;
  an image-to-text (i2t) query is relevant to all of its texts and scores at K when
  ANY of them is in its top K.
* Images without any text are not i2t queries (they have nothing to retrieve) but
  stay in the gallery of every t2i query as distractors.
* Pessimistic tie rule: the rank of a query is
  ``1 + #{non-relevant candidates whose score >= the best relevant candidate's score}``,
  so ties are always resolved against the query and a constant (collapsed) model
  gets the worst possible rank instead of a lucky R@1.
* Ranks are 1-based. Recalls are percentages, ``rsum`` is the sum of the six recalls,
  median ranks are the usual statistical median (mean of the two middle ranks for an
  even number of queries), and mean ranks the arithmetic mean.

Two-stage retrieval (``two_stage_retrieval_metrics``, as ALBEF/BLIP evaluate): a dense
stage ranks every candidate by the dot product of the embeddings and keeps each query's
top ``k``; a pairwise scorer then re-scores those ``k`` (query, candidate) pairs. The dense
top ``k`` follow the same pessimistic order: candidates by decreasing score, and among
equal scores the non-relevant ones before the relevant ones (then by candidate index),
so a query's best relevant candidate is inside its top ``k`` exactly when its dense rank
is <= ``k``. A query with a relevant candidate in its top ``k`` gets the pessimistic rank
of the pairwise scores among those ``k`` (1 + #non-relevant candidates of the ``k`` whose
pairwise score >= the best relevant pairwise score, so at most ``k``); any other query
keeps its dense rank (> ``k``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "RETRIEVAL_METRIC_KEYS",
    "metrics_from_ranks",
    "retrieval_metrics",
    "retrieval_metrics_from_embeddings",
    "two_stage_retrieval_metrics",
]

RECALL_AT = (1, 5, 10)
RETRIEVAL_METRIC_KEYS: tuple[str, ...] = (
    "i2t_r1",
    "i2t_r5",
    "i2t_r10",
    "t2i_r1",
    "t2i_r5",
    "t2i_r10",
    "rsum",
    "i2t_medr",
    "t2i_medr",
    "i2t_meanr",
    "t2i_meanr",
)
# Max number of score entries held in one block: 2**24 float32 scores = 64 MiB.
DEFAULT_CHUNK_SIZE = 2**24

ArrayLike = torch.Tensor | np.ndarray | Sequence[int]
# (query_start, query_stop, candidate_start, candidate_stop, out): writes the scores of
# queries [query_start, query_stop) against candidates [candidate_start, candidate_stop) into out.
ScoreBlockFn = Callable[[int, int, int, int, torch.Tensor], None]
# (direction, query indices [N], candidate indices [N]) -> [N] scores of the pairs
# (query[p], candidate[p]); direction is "t2i" (text queries, image candidates) or "i2t".
PairScoreFn = Callable[[str, torch.Tensor, torch.Tensor], torch.Tensor]
# The dense top k are selected on int64 keys: 32 bits of score, 1 relevance bit, 30 index bits.
_INDEX_BITS = 30
_MAX_TOP_K_CANDIDATES = 2**_INDEX_BITS


def metrics_from_ranks(i2t_ranks: ArrayLike, t2i_ranks: ArrayLike) -> dict[str, float]:
    """Turn 1-based ranks of the i2t and t2i queries into the metric dict.

    Returns exactly the keys of ``RETRIEVAL_METRIC_KEYS``.
    """
    metrics: dict[str, float] = {}
    stats: dict[str, np.ndarray] = {}
    for direction, ranks in (("i2t", i2t_ranks), ("t2i", t2i_ranks)):
        r = torch.as_tensor(ranks).detach().cpu().numpy().astype(np.float64).reshape(-1)
        if r.size == 0:
            raise ValueError(f"no {direction} queries to score")
        if (r < 1).any():
            raise ValueError(f"{direction} ranks must be 1-based, got a minimum of {r.min()}")
        stats[direction] = r
        for k in RECALL_AT:
            metrics[f"{direction}_r{k}"] = float(100.0 * np.count_nonzero(r <= k) / r.size)
    metrics["rsum"] = float(sum(metrics[f"{d}_r{k}"] for d in ("i2t", "t2i") for k in RECALL_AT))
    for direction, r in stats.items():
        metrics[f"{direction}_medr"] = float(np.median(r))
        metrics[f"{direction}_meanr"] = float(np.mean(r))
    return {key: metrics[key] for key in RETRIEVAL_METRIC_KEYS}


def retrieval_metrics(
    similarity: torch.Tensor | np.ndarray,
    text_to_image: ArrayLike,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> dict[str, float]:
    """Retrieval metrics from a dense ``[num_images, num_texts]`` similarity matrix.

    Uses the pessimistic tie rule of this module (see the module docstring): the rank of
    a query is 1 + the number of non-relevant candidates scoring >= its best relevant
    candidate. Images without texts are excluded from the i2t queries but remain t2i
    distractors. NaN scores are rejected. Ranking works on copies of at most
    ``chunk_size`` score entries at a time (see ``retrieval_metrics_from_embeddings``);
    ``chunk_size`` does not change the result.
    """
    sim = torch.as_tensor(similarity)
    if sim.ndim != 2:
        raise ValueError(f"similarity must be [num_images, num_texts], got shape {tuple(sim.shape)}")
    # Widening casts are exact, so ties survive; float32/64 make the block counts exact.
    if not sim.is_floating_point():
        sim = sim.to(torch.float64)
    elif sim.dtype not in (torch.float32, torch.float64):
        sim = sim.to(torch.float32)
    num_images, num_texts = sim.shape
    t2i = _as_text_to_image(text_to_image, num_images, num_texts, sim.device)
    if torch.isnan(sim.amax()):  # amax propagates NaN without a full-size mask
        raise ValueError("similarity contains NaN")

    def i2t_block(q0: int, q1: int, c0: int, c1: int, out: torch.Tensor) -> None:
        out.copy_(sim[q0:q1, c0:c1])

    def t2i_block(q0: int, q1: int, c0: int, c1: int, out: torch.Tensor) -> None:
        out.copy_(sim[c0:c1, q0:q1].T)

    return _metrics(i2t_block, t2i_block, num_images, t2i, chunk_size, sim.dtype)


def retrieval_metrics_from_embeddings(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    text_to_image: ArrayLike,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> dict[str, float]:
    """Retrieval metrics for dot-product scores, never holding the full score matrix.

    Equivalent to ``retrieval_metrics(image_embeds @ text_embeds.T, text_to_image)``
    (same tie rule, same handling of images without texts), but scores are computed
    with float32 matmuls into one reused buffer of at most ``chunk_size`` entries:
    whole query rows are grouped while a row fits in ``chunk_size``, otherwise each
    query row is split into column tiles of ``chunk_size`` candidates (the scores are
    then computed twice: once for the best relevant score, once for the counting).
    Normalise the embeddings beforehand for cosine similarity. Runs on the device of
    ``image_embeds``.
    """
    images, texts, t2i = _prepare_embeddings(image_embeds, text_embeds, text_to_image)

    def i2t_block(q0: int, q1: int, c0: int, c1: int, out: torch.Tensor) -> None:
        _score_block(images[q0:q1], texts[c0:c1], out)

    def t2i_block(q0: int, q1: int, c0: int, c1: int, out: torch.Tensor) -> None:
        _score_block(texts[q0:q1], images[c0:c1], out)

    return _metrics(i2t_block, t2i_block, images.shape[0], t2i, chunk_size, torch.float32)


def two_stage_retrieval_metrics(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    text_to_image: ArrayLike,
    *,
    top_k: int,
    score_pairs: PairScoreFn,
    pair_batch_size: int = 4096,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> dict[str, float]:
    """Retrieval metrics of a dense top-``top_k`` stage re-ranked by a pairwise scorer.

    The dense stage is ``retrieval_metrics_from_embeddings`` (dot products of the
    embeddings, at most ``chunk_size`` scores at a time) that also keeps each query's
    ``top_k`` best candidates in the pessimistic order of the module docstring: besides
    the float32 block of at most ``chunk_size`` scores, this takes an int64 key per score
    of the block (and transient float32/int32 copies while building it, so about 5x the
    block) and ``[num_queries, top_k]`` int64 candidate keys and indices per direction. The re-ranking stage then calls
    ``score_pairs(direction, query_indices, candidate_indices)`` with at most
    ``pair_batch_size`` pairs per call; only queries whose dense top ``top_k`` hold a
    relevant candidate are re-scored, since the others keep their dense rank whatever the
    pairwise scores. Ranks follow the two-stage rule of the module docstring, so with a
    pairwise scorer that reproduces the dense scores (and ``top_k`` >= 10) the recalls
    equal the dense ones; the median and mean ranks do too when ``top_k`` covers every
    relevant candidate. The scorer must return finite or infinite, never NaN, scores.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    if pair_batch_size < 1:
        raise ValueError(f"pair_batch_size must be >= 1, got {pair_batch_size}")
    images, texts, t2i = _prepare_embeddings(image_embeds, text_embeds, text_to_image)
    if max(images.shape[0], texts.shape[0]) > _MAX_TOP_K_CANDIDATES:
        raise ValueError(f"two-stage retrieval supports at most {_MAX_TOP_K_CANDIDATES} images and texts")

    def i2t_block(q0: int, q1: int, c0: int, c1: int, out: torch.Tensor) -> None:
        _score_block(images[q0:q1], texts[c0:c1], out)

    def t2i_block(q0: int, q1: int, c0: int, c1: int, out: torch.Tensor) -> None:
        _score_block(texts[q0:q1], images[c0:c1], out)

    rerank = _Rerank(top_k, score_pairs, pair_batch_size)
    return _metrics(i2t_block, t2i_block, images.shape[0], t2i, chunk_size, torch.float32, rerank)


class _Rerank:
    """Settings of the re-ranking stage of ``two_stage_retrieval_metrics``."""

    def __init__(self, top_k: int, score_pairs: PairScoreFn, pair_batch_size: int) -> None:
        self.top_k = top_k
        self.score_pairs = score_pairs
        self.pair_batch_size = pair_batch_size

    def ranks(
        self, direction: str, dense_ranks: torch.Tensor, top_index: torch.Tensor, top_relevant: torch.Tensor
    ) -> torch.Tensor:
        """Pessimistic ranks among the pairwise scores of the top k for queries with a relevant one in it."""
        ranks = dense_ranks.clone()
        k = top_index.shape[1]
        queries = top_relevant.any(dim=1).nonzero().view(-1)
        # Whole queries per call while k fits in a call, else calls of exactly pair_batch_size pairs.
        rows = self.pair_batch_size // k if k <= self.pair_batch_size else self.pair_batch_size
        for start in range(0, queries.numel(), rows):
            query = queries[start : start + rows]
            candidates, relevant = top_index[query], top_relevant[query]
            flat_query = query.repeat_interleave(k)
            flat_candidates = candidates.reshape(-1)
            scores = torch.empty(flat_query.numel(), dtype=torch.float64, device=ranks.device)
            for p0 in range(0, flat_query.numel(), self.pair_batch_size):
                p1 = min(p0 + self.pair_batch_size, flat_query.numel())
                got = torch.as_tensor(self.score_pairs(direction, flat_query[p0:p1], flat_candidates[p0:p1]))
                if got.shape != (p1 - p0,):
                    raise ValueError(f"score_pairs must return [{p1 - p0}] scores, got shape {tuple(got.shape)}")
                # float64 holds any float32/bfloat16/float16 score exactly, so ties survive.
                scores[p0:p1] = got.detach().to(device=ranks.device, dtype=torch.float64)
            if torch.isnan(scores).any():
                raise ValueError("score_pairs returned NaN")
            scores = scores.view(-1, k)
            best = scores.masked_fill(~relevant, -torch.inf).amax(dim=1, keepdim=True)
            ranks[query] = 1 + ((scores >= best) & ~relevant).sum(dim=1)
        return ranks


def _prepare_embeddings(
    image_embeds: torch.Tensor, text_embeds: torch.Tensor, text_to_image: ArrayLike
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validated float32 embeddings and text_to_image, on the device of ``image_embeds``."""
    if image_embeds.ndim != 2 or text_embeds.ndim != 2 or image_embeds.shape[1] != text_embeds.shape[1]:
        raise ValueError(
            "expected image_embeds [num_images, dim] and text_embeds [num_texts, dim], "
            f"got {tuple(image_embeds.shape)} and {tuple(text_embeds.shape)}"
        )
    device = image_embeds.device
    images = image_embeds.detach().to(device=device, dtype=torch.float32)
    texts = text_embeds.detach().to(device=device, dtype=torch.float32)
    t2i = _as_text_to_image(text_to_image, images.shape[0], texts.shape[0], device)
    # min/max reductions propagate NaN and reveal inf without full-size temporaries
    # (torch.isfinite would allocate several copies of the embeddings).
    if not all(torch.isfinite(v) for v in (*torch.aminmax(images), *torch.aminmax(texts))):
        raise ValueError("embeddings contain NaN or infinite values")
    return images, texts, t2i


def _score_block(queries: torch.Tensor, candidates: torch.Tensor, out: torch.Tensor) -> None:
    """Write the scores of a block of queries against a block of candidates into ``out``."""
    # Writing into a reused buffer avoids a fresh large allocation (and its page faults) per block.
    torch.matmul(queries, candidates.T, out=out)


@torch.no_grad()
def _metrics(
    i2t_block: ScoreBlockFn,
    t2i_block: ScoreBlockFn,
    num_images: int,
    t2i: torch.Tensor,
    chunk_size: int,
    dtype: torch.dtype,
    rerank: _Rerank | None = None,
) -> dict[str, float]:
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    num_texts = t2i.numel()
    text_ids = torch.arange(num_texts, device=t2i.device)
    order = torch.argsort(t2i, stable=True)
    if rerank is None:
        t2i_ranks = _pessimistic_ranks(t2i_block, num_texts, num_images, text_ids, t2i, chunk_size, dtype)
        i2t_ranks = _pessimistic_ranks(i2t_block, num_images, num_texts, t2i[order], order, chunk_size, dtype)
    else:
        t2i_ranks, *t2i_top = _pessimistic_ranks(
            t2i_block, num_texts, num_images, text_ids, t2i, chunk_size, dtype, rerank.top_k
        )
        t2i_ranks = rerank.ranks("t2i", t2i_ranks, *t2i_top)
        i2t_ranks, *i2t_top = _pessimistic_ranks(
            i2t_block, num_images, num_texts, t2i[order], order, chunk_size, dtype, rerank.top_k
        )
        i2t_ranks = rerank.ranks("i2t", i2t_ranks, *i2t_top)
    has_text = torch.bincount(t2i, minlength=num_images) > 0
    return metrics_from_ranks(i2t_ranks[has_text], t2i_ranks)


def _pessimistic_ranks(
    score_block: ScoreBlockFn,
    num_queries: int,
    num_candidates: int,
    pair_query: torch.Tensor,
    pair_candidate: torch.Tensor,
    chunk_size: int,
    dtype: torch.dtype,
    top_k: int | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """1-based pessimistic rank of every query, scoring at most ``chunk_size`` entries at a time.

    ``(pair_query[p], pair_candidate[p])`` are the relevant pairs, sorted by query.
    Queries without a relevant pair get a meaningless rank; callers drop them.
    With ``top_k`` (float32 scores only), also returns each query's first
    ``min(top_k, num_candidates)`` candidates in the pessimistic order (``[num_queries, k]``
    indices) and whether each is relevant (same shape, bool).
    """
    # Counts are float sums of 0/1 scores, exact while a tile row holds < 2**24 entries.
    cols = min(chunk_size, num_candidates, 2**24)
    rows = min(max(chunk_size // cols, 1), num_queries)
    tiles = [(c0, min(c0 + cols, num_candidates)) for c0 in range(0, num_candidates, cols)]
    device = pair_query.device
    buffer = torch.empty(rows * cols, dtype=dtype, device=device)
    ranks = torch.empty(num_queries, dtype=torch.long, device=device)
    if top_k is not None:
        if dtype != torch.float32:
            raise ValueError(f"the dense top k needs float32 scores, got {dtype}")
        k = min(top_k, num_candidates)
        top_keys = torch.empty(num_queries, k, dtype=torch.long, device=device)
    starts = list(range(0, num_queries, rows))
    bounds = torch.tensor(starts + [num_queries], device=device)
    pair_bounds = torch.searchsorted(pair_query, bounds).tolist()
    for block_idx, q0 in enumerate(starts):
        q1 = min(q0 + rows, num_queries)
        lo, hi = pair_bounds[block_idx], pair_bounds[block_idx + 1]
        pq, pc = pair_query[lo:hi] - q0, pair_candidate[lo:hi]

        # Pass 1: best relevant score per query. With a single tile the block is reused
        # in pass 2, so every comparison sees the very same float values.
        best = torch.full((q1 - q0,), -torch.inf, dtype=dtype, device=device)
        block_top: torch.Tensor | None = None
        for c0, c1 in tiles:
            block = buffer[: (q1 - q0) * (c1 - c0)].view(q1 - q0, c1 - c0)
            score_block(q0, q1, c0, c1, block)
            q_in, c_in = _pairs_in_tile(pq, pc, c0, c1, len(tiles))
            best.scatter_reduce_(0, q_in, block[q_in, c_in], reduce="amax")
            if top_k is not None:
                keys = _order_keys(block, q_in, c_in, c0)
                tile_top = keys.topk(min(k, c1 - c0), dim=1, sorted=False).values
                del keys
                if block_top is not None:
                    tile_top = torch.cat([block_top, tile_top], dim=1)
                block_top = tile_top.topk(min(k, tile_top.shape[1]), dim=1, sorted=False).values
        if block_top is not None:
            top_keys[q0:q1] = block_top.sort(dim=1, descending=True).values

        # Pass 2: candidates scoring >= best, minus the relevant ones among them.
        count = torch.zeros(q1 - q0, dtype=torch.long, device=device)
        for c0, c1 in tiles:
            block = buffer[: (q1 - q0) * (c1 - c0)].view(q1 - q0, c1 - c0)
            if len(tiles) > 1:
                score_block(q0, q1, c0, c1, block)
            q_in, c_in = _pairs_in_tile(pq, pc, c0, c1, len(tiles))
            relevant_hits = (block[q_in, c_in] >= best[q_in]).long()
            count += block.ge_(best[:, None]).sum(dim=1).long()
            count.scatter_add_(0, q_in, -relevant_hits)
        ranks[q0:q1] = count + 1
    if top_k is None:
        return ranks
    low = top_keys & (2 ** (_INDEX_BITS + 1) - 1)  # relevance bit and index bits
    top_relevant = low < 2**_INDEX_BITS  # the relevance bit is 0 for relevant candidates
    top_index = (2**_INDEX_BITS - 1) - (low & (2**_INDEX_BITS - 1))
    return ranks, top_index, top_relevant


def _order_keys(block: torch.Tensor, q_in: torch.Tensor, c_in: torch.Tensor, c0: int) -> torch.Tensor:
    """int64 keys of a float32 ``[rows, cols]`` score block whose decreasing order is the pessimistic order.

    ``score * 2**31 + (not relevant) * 2**30 + (2**30 - 1 - candidate index)`` on the
    order-preserving int32 image of the float32 score: higher scores first, then among equal
    scores non-relevant candidates first, then lower candidate indices first. Every key is
    distinct, so the selection does not depend on ``topk``'s handling of ties.
    """
    bits = (block + 0.0).view(torch.int32)  # + 0.0 turns -0.0 into +0.0, equal scores get equal bits
    bits = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits)  # negative floats: reverse the magnitude order
    keys = bits.long()
    del bits
    keys.mul_(2 ** (_INDEX_BITS + 1))
    index = torch.arange(c0, c0 + block.shape[1], device=block.device)
    keys.add_((2**_INDEX_BITS - 1) - index + 2**_INDEX_BITS)  # every candidate starts as non-relevant
    keys[q_in, c_in] -= 2**_INDEX_BITS
    return keys


def _pairs_in_tile(
    pair_query: torch.Tensor, pair_candidate: torch.Tensor, c0: int, c1: int, num_tiles: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Relevant pairs whose candidate lies in [c0, c1), with tile-local candidate indices."""
    if num_tiles == 1:  # skip the boolean mask (a device sync on GPU) in the common case
        return pair_query, pair_candidate
    in_tile = (pair_candidate >= c0) & (pair_candidate < c1)
    return pair_query[in_tile], pair_candidate[in_tile] - c0


def _as_text_to_image(text_to_image: ArrayLike, num_images: int, num_texts: int, device: torch.device) -> torch.Tensor:
    t2i = torch.as_tensor(np.asarray(text_to_image) if isinstance(text_to_image, Sequence) else text_to_image)
    if t2i.ndim != 1 or t2i.numel() != num_texts:
        raise ValueError(f"text_to_image must have shape [{num_texts}], got {tuple(t2i.shape)}")
    if num_texts == 0:
        raise ValueError("no texts to score")
    if t2i.is_floating_point() or t2i.dtype == torch.bool:
        raise ValueError(f"text_to_image must hold integer image indices, got {t2i.dtype}")
    t2i = t2i.to(device=device, dtype=torch.long)
    if t2i.min() < 0 or t2i.max() >= num_images:
        raise ValueError(f"text_to_image values must be in [0, {num_images}), got [{t2i.min()}, {t2i.max()}]")
    return t2i
