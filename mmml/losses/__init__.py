"""Training losses for multilingual multimodal retrieval."""

from mmml.losses.contrastive import ContrastiveLoss
from mmml.losses.distillation import DistillationLoss, ParallelDistillationLoss
from mmml.losses.distributed import gather_features
from mmml.losses.hashing import (
    HashingLoss,
    bit_balance_loss,
    quantization_loss,
    similarity_from_labels,
    similarity_from_pairs,
    similarity_loss,
)
from mmml.losses.robust import RobustMatchingLoss
from mmml.losses.triplet import TripletLoss

__all__ = [
    "ContrastiveLoss",
    "DistillationLoss",
    "HashingLoss",
    "ParallelDistillationLoss",
    "RobustMatchingLoss",
    "TripletLoss",
    "bit_balance_loss",
    "gather_features",
    "quantization_loss",
    "similarity_from_labels",
    "similarity_from_pairs",
    "similarity_loss",
]
