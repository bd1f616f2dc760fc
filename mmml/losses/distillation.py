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


class ParallelDistillationLoss(nn.Module):
    """Teacher learning on parallel sentences: the student's embedding of a sentence should be where
    the teacher puts its translation.

    `mse_weight * MSE(student, teacher)` (M-CLIP's objective) plus, optionally,
    `contrastive_weight * InfoNCE` between students and teachers of the batch at `temperature`
    (every other teacher embedding of the batch is a negative; under several processes the batch
    is the global one). With `normalize`, both sides are L2-normalised first and the MSE term is
    the batch mean of the squared distance between the unit vectors (2 - 2 cos: an element-wise
    mean would shrink it by the dimension and leave it negligible next to the contrastive term);
    without, it is M-CLIP's element-wise MSE on the raw embeddings.
    """

    def __init__(
        self, mse_weight: float = 1.0, contrastive_weight: float = 0.0, temperature: float = 0.05, normalize: bool = True
    ) -> None:
        super().__init__()
        if mse_weight < 0 or contrastive_weight < 0 or mse_weight + contrastive_weight == 0:
            raise ValueError(
                f"mse_weight and contrastive_weight must be >= 0 and not both 0, got {mse_weight} and {contrastive_weight}"
            )
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        from mmml.losses.contrastive import ContrastiveLoss

        self.mse_weight, self.contrastive_weight = mse_weight, contrastive_weight
        self.temperature, self.normalize = temperature, normalize
        self.mse = DistillationLoss()
        self.contrastive = ContrastiveLoss(local_loss=True, gather_with_grad=True)

    def forward(self, student_embeds: torch.Tensor, teacher_embeds: torch.Tensor) -> torch.Tensor:
        teacher_embeds = teacher_embeds.detach().to(student_embeds.dtype)
        if self.normalize:
            student_embeds, teacher_embeds = F.normalize(student_embeds, dim=-1), F.normalize(teacher_embeds, dim=-1)
        if not self.mse_weight:
            loss = 0.0
        elif self.normalize:  # squared distance between unit vectors (= 2 - 2 cos), averaged over the batch
            loss = self.mse_weight * (student_embeds - teacher_embeds).pow(2).sum(dim=-1).mean()
        else:
            loss = self.mse_weight * self.mse(student_embeds, teacher_embeds)
        if self.contrastive_weight:
            loss = loss + self.contrastive_weight * self.contrastive(
                F.normalize(student_embeds, dim=-1), F.normalize(teacher_embeds, dim=-1), 1.0 / self.temperature
            )
        return loss
