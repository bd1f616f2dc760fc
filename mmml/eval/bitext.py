"""Bitext retrieval: is a sentence's nearest neighbour among the translations its own translation?"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .retrieval import DEFAULT_CHUNK_SIZE, retrieval_metrics_from_embeddings


def bitext_accuracy(
    source_embeds: torch.Tensor, target_embeds: torch.Tensor, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> dict[str, float]:
    """Accuracy@1 of translation retrieval by cosine similarity, both directions, as fractions.

    Row i of `source_embeds` and of `target_embeds` are translations of each other.
    `source_to_target_acc1`: share of source sentences whose most similar target is their
    translation (ties count against it, as in `mmml.eval.retrieval`); `target_to_source_acc1`
    the other way round.
    """
    if source_embeds.shape != target_embeds.shape or source_embeds.dim() != 2:
        raise ValueError(
            f"source and target embeddings must both be [n, dim] with the same n, got "
            f"{list(source_embeds.shape)} and {list(target_embeds.shape)}"
        )
    metrics = retrieval_metrics_from_embeddings(
        F.normalize(target_embeds.float(), dim=-1),
        F.normalize(source_embeds.float(), dim=-1),
        torch.arange(source_embeds.shape[0]),
        chunk_size=chunk_size,
    )
    return {"source_to_target_acc1": metrics["t2i_r1"] / 100.0, "target_to_source_acc1": metrics["i2t_r1"] / 100.0}
