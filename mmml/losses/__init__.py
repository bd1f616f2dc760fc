"""Training losses for multilingual multimodal retrieval."""

from mmml.losses.contrastive import ContrastiveLoss
from mmml.losses.distillation import DistillationLoss, ParallelDistillationLoss
from mmml.losses.distributed import gather_features

__all__ = ["ContrastiveLoss", "DistillationLoss", "ParallelDistillationLoss", "gather_features"]
