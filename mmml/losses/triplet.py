"""VSE++ triplet ranking loss with the hardest in-batch negatives (Faghri et al., 2018)."""

from __future__ import annotations

import torch
from torch import nn

from mmml.losses.contrastive import _check_embeddings
from mmml.losses.distributed import gather_features, get_rank_and_world_size

_REDUCTIONS = ("mean", "sum", "none")


class TripletLoss(nn.Module):
    """Hinge triplet loss on cosine similarities, summed over both retrieval directions.

    For positive pair ``i`` with similarity ``s_ii`` and margin ``m_i``::

        loss_i = [m_i - s_ii + s_ij]_+ + [m_i - s_ii + s_ji]_+

    where, with ``max_violation=True`` (VSE++), ``j`` is the hardest negative of the row /
    column; otherwise the hinge is summed over every negative (VSE0). ``margin`` is a float or a
    per-pair tensor ``[batch]`` (RCAR's soft margins). Call with L2-normalised embeddings.

    Under several processes the columns span the global batch (features gathered with gradient,
    as :class:`~mmml.losses.ContrastiveLoss` does) and each rank scores its own rows.
    ``reduction="none"`` returns the per-pair losses ``[batch]``.
    """

    def __init__(self, margin: float = 0.2, max_violation: bool = True, reduction: str = "mean") -> None:
        super().__init__()
        if not margin >= 0:
            raise ValueError(f"margin must be >= 0, got {margin!r}")
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        self.margin = float(margin)
        self.max_violation = max_violation
        self.reduction = reduction

    def forward(
        self,
        image_embeds: torch.Tensor,
        text_embeds: torch.Tensor,
        margin: torch.Tensor | float | None = None,
    ) -> torch.Tensor:
        _check_embeddings(image_embeds, text_embeds)
        batch = image_embeds.shape[0]
        rank, world_size = get_rank_and_world_size()
        all_image, all_text = gather_features(image_embeds, text_embeds, local_loss=True)
        offset = rank * batch if world_size > 1 else 0
        scores_i2t = image_embeds @ all_text.T  # [batch, global]
        scores_t2i = text_embeds @ all_image.T
        rows = torch.arange(batch, device=image_embeds.device)
        positives = scores_i2t[rows, rows + offset]
        margin = self.margin if margin is None else margin
        if isinstance(margin, torch.Tensor) and margin.shape not in ((), (batch,)):
            raise ValueError(f"margin must be a float or a [{batch}] tensor, got shape {tuple(margin.shape)}")
        margin_column = margin.reshape(-1, 1) if isinstance(margin, torch.Tensor) else margin
        is_positive = torch.zeros_like(scores_i2t, dtype=torch.bool)
        is_positive[rows, rows + offset] = True
        cost_text = (margin_column + scores_i2t - positives.unsqueeze(1)).clamp(min=0).masked_fill(is_positive, 0)
        cost_image = (margin_column + scores_t2i - positives.unsqueeze(1)).clamp(min=0).masked_fill(is_positive, 0)
        if self.max_violation:
            per_pair = cost_text.max(dim=1).values + cost_image.max(dim=1).values
        else:
            per_pair = cost_text.sum(dim=1) + cost_image.sum(dim=1)
        if self.reduction == "none":
            return per_pair
        return per_pair.sum() if self.reduction == "sum" else per_pair.mean()
