"""Encode images and texts with a hashing model and score Hamming (and dense) retrieval."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from mmml.eval.encoding import encode_images, encode_texts
from mmml.eval.hashing import (
    dense_map,
    hamming_distances,
    hashing_metrics,
    precision_recall_curve,
    relevance_from_labels,
    relevance_from_pairs,
)

__all__ = ["HashingEvaluator"]


class HashingEvaluator:
    """Hashing retrieval of a model with hash heads (`config.hash_bits`) over an image-caption dataset.

    The dataset is a `datasets.Dataset` / sequence of rows with `image`, `captions` (language ->
    list of str) and, for label relevance, `labels` (label ids). Every image is an i2t query and
    a t2i database item; every caption of `language` is a t2i query and an i2t database item.
    Relevance is `"labels"` (share a label among `label_ids`, or any label when None) or
    `"pairs"` (the caption belongs to the image). The dense reference ranks by cosine of the
    pre-sign hash-layer outputs of the same model.
    """

    def __init__(self, processor: Any, language: str = "en", relevance: str = "pairs", batch_size: int = 256,
                 label_ids: Sequence[int] | None = None, k: int | None = None, tie_rule: str = "pessimistic"):
        if relevance not in ("labels", "pairs"):
            raise ValueError(f"relevance must be 'labels' or 'pairs', got {relevance!r}")
        self.processor = processor
        self.language = language
        self.relevance = relevance
        self.batch_size = batch_size
        self.label_ids = None if label_ids is None else list(label_ids)
        self.k = k
        self.tie_rule = tie_rule

    def relevance_matrix(self, rows: Sequence[dict]) -> tuple[list[str], np.ndarray]:
        """The captions of `language` and the `[num_images, num_texts]` boolean relevance."""
        texts, text_to_image = [], []
        for index, row in enumerate(rows):
            captions = (row.get("captions") or {}).get(self.language) or []
            texts.extend(captions)
            text_to_image.extend([index] * len(captions))
        if not texts:
            raise ValueError(f"no captions in language {self.language!r}")
        if self.relevance == "pairs":
            return texts, relevance_from_pairs(np.arange(len(rows)), np.asarray(text_to_image))
        num_labels = 1 + max((max(row["labels"]) for row in rows if row.get("labels")), default=0)
        multi_hot = np.zeros((len(rows), num_labels), dtype=bool)
        for index, row in enumerate(rows):
            if "labels" not in row:
                raise ValueError("relevance='labels' needs a `labels` column in the dataset")
            multi_hot[index, row["labels"]] = True
        if self.label_ids is not None:
            keep = [i for i in self.label_ids if i < num_labels]
            multi_hot = multi_hot[:, keep]
        return texts, relevance_from_labels(multi_hot, multi_hot[np.asarray(text_to_image)])

    def evaluate(self, model, dataset) -> dict[str, Any]:
        """`{"hash": {i2t_map, t2i_map, i2t_p_r2, t2i_p_r2}, "dense": {i2t_map, t2i_map}, "chance": ..., "pr_curve": ...}`."""
        was_training = model.training
        model.eval()
        try:
            rows = [dict(row) for row in dataset]
            texts, relevance = self.relevance_matrix(rows)
            images = encode_images(model, self.processor, [row["image"] for row in rows], self.batch_size)
            captions = encode_texts(model, self.processor, texts, self.batch_size)
        finally:
            model.train(was_training)
        generator = torch.Generator().manual_seed(0)
        bits = images.codes.shape[1]
        random_images = torch.where(torch.rand(images.codes.shape, generator=generator) > 0.5, 1.0, -1.0)
        random_texts = torch.where(torch.rand(captions.codes.shape, generator=generator) > 0.5, 1.0, -1.0)
        distances = hamming_distances(images.codes, captions.codes)
        return {
            "hash": hashing_metrics(images.codes, captions.codes, relevance, self.k, self.tie_rule),
            "dense": dense_map(images.hash_logits, captions.hash_logits, relevance, self.k, self.tie_rule),
            "chance": hashing_metrics(random_images, random_texts, relevance, self.k, self.tie_rule),
            "pr_curve": {
                "i2t": {key: value.tolist() for key, value in precision_recall_curve(distances, relevance).items()},
                "t2i": {key: value.tolist() for key, value in precision_recall_curve(distances.T, relevance.T).items()},
            },
            "num_images": len(rows),
            "num_texts": len(texts),
            "hash_bits": bits,
        }
