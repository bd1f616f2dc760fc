"""Embedding distillation loss for M-CLIP style teacher learning."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_REDUCTIONS = ("mean", "sum", "none")


class DistillationLoss(nn.Module):
    """Mean squared error between student and teacher embeddings.

    The teacher is treated as a constant (detached), so no gradient reaches it.
    Needs no gathering under data parallelism: with equal per-rank batches, DDP's
    average of per-rank ``"mean"`` losses equals the full-batch mean.
    """

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction

    def forward(self, student_embeds: torch.Tensor, teacher_embeds: torch.Tensor) -> torch.Tensor:
        """Return the MSE of ``student_embeds`` to ``teacher_embeds``."""
        if student_embeds.shape != teacher_embeds.shape:
            raise ValueError(
                "student_embeds and teacher_embeds must have the same shape, got "
                f"student_embeds {tuple(student_embeds.shape)} and "
                f"teacher_embeds {tuple(teacher_embeds.shape)}"
            )
        return F.mse_loss(student_embeds, teacher_embeds.detach(), reduction=self.reduction)
