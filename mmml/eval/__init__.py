"""Retrieval evaluation: metrics with a pessimistic tie rule, chunked ranking, model evaluator."""

from mmml.eval.bitext import bitext_accuracy
from mmml.eval.evaluator import RetrievalEvaluator
from mmml.eval.retrieval import (
    DEFAULT_CHUNK_SIZE,
    RETRIEVAL_METRIC_KEYS,
    metrics_from_ranks,
    retrieval_metrics,
    retrieval_metrics_from_embeddings,
)

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "RETRIEVAL_METRIC_KEYS",
    "RetrievalEvaluator",
    "bitext_accuracy",
    "metrics_from_ranks",
    "retrieval_metrics",
    "retrieval_metrics_from_embeddings",
]
