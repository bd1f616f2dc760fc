"""Training losses for multilingual multimodal retrieval."""

from mmml.losses.contrastive import ContrastiveLoss
from mmml.losses.distillation import DistillationLoss
from mmml.losses.distributed import gather_features
from mmml.losses.robust import RobustMatchingLoss
from mmml.losses.triplet import TripletLoss

__all__ = ["ContrastiveLoss", "DistillationLoss", "RobustMatchingLoss", "TripletLoss", "gather_features"]
