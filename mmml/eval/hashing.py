"""Hashing retrieval metrics: mAP@K, precision within a Hamming radius, precision-recall curves.

Conventions:

* Relevance is a boolean `[num_queries, num_database]` matrix, from shared labels
  (`relevance_from_labels`) or from pairs (`relevance_from_pairs`: the same item id).
* Distances are lower-is-better: Hamming distances from `hamming_distances`, or any float
  distance (pass `-similarity` to rank dense embeddings by cosine the same way).
* Tie rule (Hamming distances take only `bits + 1` values, so ties are the rule, not the
  exception). `tie_rule="pessimistic"` (the default, as in `mmml.eval.retrieval`) ranks, among
  database items at the same distance, the non-relevant ones before the relevant ones, so a
  model cannot gain from ties and a constant code scores the worst possible mAP. `"optimistic"`
  puts the relevant ones first (the two bound the mAP of any tie order), and `"index"` keeps
  database order among ties (a stable sort, what DCMH-style codebases compute).
* AP@K of a query = sum over ranks i <= K of precision@i * rel_i, divided by the number of
  relevant items within the top K; a query with none in its top K scores 0 and still counts.
  mAP@K is the mean over all queries; K=None means the whole database (mAP@all).
* Precision within radius r: relevant / retrieved among database items at distance <= r; a
  query that retrieves nothing scores 0 (and counts).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

TIE_RULES = ("pessimistic", "optimistic", "index")
# Max number of entries of one query-by-database block sorted at a time (2**24 int64 = 128 MiB).
_BLOCK = 2**24


def _as_numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _as_signed_codes(codes) -> np.ndarray:
    """{-1, +1} float32 codes from {-1, +1} / {0, 1} codes or packed `uint8` bytes."""
    array = _as_numpy(codes)
    if array.dtype == np.uint8:
        array = np.unpackbits(array, axis=-1).astype(np.float32)
    array = array.astype(np.float32)
    return np.where(array > 0, 1.0, -1.0).astype(np.float32)


def hamming_distances(query_codes, database_codes) -> np.ndarray:
    """`[num_queries, num_database]` int32 Hamming distances; codes as {-1, +1} or packed uint8."""
    q, b = _as_signed_codes(query_codes), _as_signed_codes(database_codes)
    if q.ndim != 2 or b.ndim != 2 or q.shape[1] != b.shape[1]:
        raise ValueError(f"codes must be [n, bits] with the same bits, got {q.shape} and {b.shape}")
    return np.rint(0.5 * (q.shape[1] - q @ b.T)).astype(np.int32)


def relevance_from_labels(query_labels, database_labels) -> np.ndarray:
    """True where a query and a database item share at least one label (multi-hot rows)."""
    q, b = _as_numpy(query_labels).astype(np.float32), _as_numpy(database_labels).astype(np.float32)
    if q.ndim != 2 or b.ndim != 2 or q.shape[1] != b.shape[1]:
        raise ValueError(f"labels must be multi-hot [n, num_labels] with the same num_labels, got {q.shape}, {b.shape}")
    return (q @ b.T) > 0


def relevance_from_pairs(query_ids: Sequence, database_ids: Sequence) -> np.ndarray:
    """True where a query and a database item come from the same pair / item id."""
    q, b = _as_numpy(query_ids).reshape(-1), _as_numpy(database_ids).reshape(-1)
    return q[:, None] == b[None, :]


def _check(distances, relevance, tie_rule: str = "pessimistic") -> tuple[np.ndarray, np.ndarray]:
    d, rel = _as_numpy(distances), _as_numpy(relevance).astype(bool)
    if d.ndim != 2 or d.shape != rel.shape:
        raise ValueError(f"distances and relevance must be 2-D of the same shape, got {d.shape} and {rel.shape}")
    if d.shape[0] == 0 or d.shape[1] == 0:
        raise ValueError(f"need at least one query and one database item, got shape {d.shape}")
    if tie_rule not in TIE_RULES:
        raise ValueError(f"tie_rule must be one of {TIE_RULES}, got {tie_rule!r}")
    if np.issubdtype(d.dtype, np.floating) and np.isnan(d).any():
        raise ValueError("distances contain NaN")
    return d, rel


def rank_database(distances: np.ndarray, relevance: np.ndarray, tie_rule: str = "pessimistic") -> np.ndarray:
    """Per query, database indices in ranked order (closest first) under `tie_rule`."""
    if tie_rule == "index":
        return np.argsort(distances, axis=1, kind="stable")
    secondary = relevance.astype(np.int8) if tie_rule == "pessimistic" else -relevance.astype(np.int8)
    return np.lexsort((secondary, distances), axis=1)


def mean_average_precision(distances, relevance, k: int | None = None, tie_rule: str = "pessimistic") -> float:
    """mAP@K (K=None: all) of lower-is-better `distances` against boolean `relevance` (see module doc)."""
    d, rel = _check(distances, relevance, tie_rule)
    num_queries, num_database = d.shape
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise ValueError(f"k must be None (all) or a positive int, got {k!r}")
    top = num_database if k is None else min(k, num_database)
    ranks = np.arange(1, top + 1, dtype=np.float64)
    total = 0.0
    rows = max(1, _BLOCK // num_database)
    for start in range(0, num_queries, rows):
        block_d, block_rel = d[start : start + rows], rel[start : start + rows]
        order = rank_database(block_d, block_rel, tie_rule)[:, :top]
        hits = np.take_along_axis(block_rel, order, axis=1).astype(np.float64)
        found = hits.sum(axis=1)
        precision_sum = (np.cumsum(hits, axis=1) / ranks * hits).sum(axis=1)
        total += np.divide(precision_sum, found, out=np.zeros_like(found), where=found > 0).sum()
    return float(total / num_queries)


def precision_at_radius(distances, relevance, radius: int = 2) -> float:
    """Mean precision of the items within `radius` of each query (0 for a query that retrieves none)."""
    d, rel = _check(distances, relevance)
    within = d <= radius
    retrieved = within.sum(axis=1).astype(np.float64)
    correct = (within & rel).sum(axis=1).astype(np.float64)
    return float(np.divide(correct, retrieved, out=np.zeros_like(retrieved), where=retrieved > 0).mean())


def precision_recall_curve(distances, relevance, radii: Sequence[int] | None = None) -> dict[str, np.ndarray]:
    """Precision and recall of retrieving everything within each Hamming radius, averaged over queries.

    Precision follows `precision_at_radius` (0 for a query retrieving nothing); recall averages over
    the queries that have at least one relevant item. Default radii: 0 .. max distance.
    """
    d, rel = _check(distances, relevance)
    radii = np.arange(int(d.max()) + 1) if radii is None else np.asarray(list(radii))
    num_relevant = rel.sum(axis=1).astype(np.float64)
    has_relevant = num_relevant > 0
    precision, recall = [], []
    for radius in radii:
        within = d <= radius
        retrieved = within.sum(axis=1).astype(np.float64)
        correct = (within & rel).sum(axis=1).astype(np.float64)
        precision.append(np.divide(correct, retrieved, out=np.zeros_like(retrieved), where=retrieved > 0).mean())
        recall.append((correct[has_relevant] / num_relevant[has_relevant]).mean() if has_relevant.any() else 0.0)
    return {"radius": radii, "precision": np.asarray(precision), "recall": np.asarray(recall)}


def save_precision_recall_curve(curves: Mapping[str, Mapping[str, np.ndarray]], path: str | os.PathLike,
                                title: str = "Hamming ranking precision-recall") -> Path:
    """Plot `{name: precision_recall_curve(...)}` into a PNG at `path` (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    figure, axes = plt.subplots(figsize=(5, 4))
    for name, curve in curves.items():
        axes.plot(curve["recall"], curve["precision"], marker=".", label=name)
    axes.set_xlabel("recall")
    axes.set_ylabel("precision")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    tmp = path.with_name(path.name + ".tmp")
    figure.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    os.replace(tmp, path)
    return path


def hashing_metrics(image_codes, text_codes, relevance_i2t, k: int | None = None,
                    tie_rule: str = "pessimistic") -> dict[str, float]:
    """mAP@K and precision within radius 2 for image->text and text->image Hamming retrieval.

    `relevance_i2t` is `[num_images, num_texts]`; keys: `i2t_map`, `t2i_map`, `i2t_p_r2`, `t2i_p_r2`.
    """
    distances = hamming_distances(image_codes, text_codes)
    relevance = _as_numpy(relevance_i2t).astype(bool)
    return {
        "i2t_map": mean_average_precision(distances, relevance, k, tie_rule),
        "t2i_map": mean_average_precision(distances.T, relevance.T, k, tie_rule),
        "i2t_p_r2": precision_at_radius(distances, relevance, 2),
        "t2i_p_r2": precision_at_radius(distances.T, relevance.T, 2),
    }


def dense_map(image_embeds, text_embeds, relevance_i2t, k: int | None = None,
              tie_rule: str = "pessimistic") -> dict[str, float]:
    """mAP@K of cosine-similarity retrieval with float embeddings (the dense reference of a hashing model)."""
    image = torch.nn.functional.normalize(torch.as_tensor(_as_numpy(image_embeds)).float(), dim=-1)
    text = torch.nn.functional.normalize(torch.as_tensor(_as_numpy(text_embeds)).float(), dim=-1)
    distances = -(image @ text.T).numpy()
    relevance = _as_numpy(relevance_i2t).astype(bool)
    return {
        "i2t_map": mean_average_precision(distances, relevance, k, tie_rule),
        "t2i_map": mean_average_precision(distances.T, relevance.T, k, tie_rule),
    }
