"""Retrieval evaluation: metrics with a pessimistic tie rule, chunked ranking, model evaluator, hashing mAP."""

from mmml.eval.bitext import bitext_accuracy
from mmml.eval.encoding import EncodedItems, encode_images, encode_texts
from mmml.eval.evaluator import RetrievalEvaluator
from mmml.eval.hashing_evaluator import HashingEvaluator
from mmml.eval.hashing import (
    TIE_RULES,
    dense_map,
    hamming_distances,
    hashing_metrics,
    mean_average_precision,
    precision_at_radius,
    precision_recall_curve,
    relevance_from_labels,
    relevance_from_pairs,
    save_precision_recall_curve,
)
from mmml.eval.retrieval import (
    DEFAULT_CHUNK_SIZE,
    RETRIEVAL_METRIC_KEYS,
    metrics_from_ranks,
    retrieval_metrics,
    retrieval_metrics_from_embeddings,
)

__all__ = [
    "EncodedItems",
    "encode_images",
    "encode_texts",
    "DEFAULT_CHUNK_SIZE",
    "RETRIEVAL_METRIC_KEYS",
    "HashingEvaluator",
    "RetrievalEvaluator",
    "bitext_accuracy",
    "TIE_RULES",
    "dense_map",
    "hamming_distances",
    "hashing_metrics",
    "mean_average_precision",
    "precision_at_radius",
    "precision_recall_curve",
    "relevance_from_labels",
    "relevance_from_pairs",
    "save_precision_recall_curve",
    "metrics_from_ranks",
    "retrieval_metrics",
    "retrieval_metrics_from_embeddings",
]
