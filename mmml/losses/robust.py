"""RCAR's noise-aware matching loss: refurbished soft targets and soft margins from clean probabilities.

Given each pair's probability ``w_i`` of being clean (from :func:`mmml.losses.beta_mixture.clean_probability`):

* **InfoNCE with refurbished targets**: the target of row ``i`` is ``w_i * onehot(i) + (1 - w_i) * p_i``
  where ``p_i`` is the model's own (detached) softmax over the row, the label co-refinement of
  noisy-label learning. A pair believed noisy stops pulling its image and caption together
  (its gradient vanishes at ``w_i = 0``); at ``w_i = 1`` this is exactly the plain InfoNCE.
* **Triplet loss with soft margins** (VSE++ hardest negatives): margin ``m_i = margin * (base**w_i - 1) /
  (base - 1)``, which equals ``margin`` for a clean pair and 0 for a noisy one.
* **Multi-task**: the loss is ``contrastive_weight * InfoNCE + triplet_weight * triplet``; RCAR observes
  that learning several objectives at once slows down memorisation of the noisy pairs, so the
  per-sample losses stay separable for longer.

It also returns the *plain* per-pair InfoNCE (detached), the signal the beta mixture is fitted to.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mmml.losses.contrastive import _check_embeddings, _check_scale
from mmml.losses.distributed import gather_features, get_rank_and_world_size
from mmml.losses.triplet import TripletLoss


@dataclass
class RobustLossOutput:
    """``loss``: scalar to backpropagate; ``per_sample_loss``: plain InfoNCE per local pair, detached."""

    loss: torch.Tensor
    per_sample_loss: torch.Tensor


def refurbished_targets(logits: torch.Tensor, clean_prob: torch.Tensor | None, offset: int = 0) -> torch.Tensor:
    """Soft targets ``w_i * onehot(i + offset) + (1 - w_i) * softmax(logits_i)`` (detached), ``[rows, cols]``.

    ``clean_prob=None`` means every pair is clean: the one-hot targets of plain InfoNCE.
    """
    rows = logits.shape[0]
    one_hot = torch.zeros_like(logits)
    one_hot[torch.arange(rows, device=logits.device), torch.arange(rows, device=logits.device) + offset] = 1.0
    if clean_prob is None:
        return one_hot
    weight = clean_prob.to(logits.dtype).reshape(-1, 1)
    return weight * one_hot + (1 - weight) * logits.detach().softmax(dim=1)


def soft_margins(clean_prob: torch.Tensor, margin: float, base: float = 10.0) -> torch.Tensor:
    """``margin * (base**w - 1) / (base - 1)``: ``margin`` at ``w = 1``, 0 at ``w = 0``, convex between."""
    return margin * (base ** clean_prob - 1) / (base - 1)


class RobustMatchingLoss(nn.Module):
    """RCAR's multi-task matching loss for any dual encoder's normalised embeddings.

    ``forward(image_embeds, text_embeds, logit_scale, clean_prob=None)`` returns a
    :class:`RobustLossOutput`. With ``clean_prob=None`` (or all ones) the contrastive part equals
    :class:`~mmml.losses.ContrastiveLoss` (local-loss form) and the triplet part equals
    :class:`~mmml.losses.TripletLoss`. Under several processes the columns span the global batch.
    """

    def __init__(
        self,
        contrastive_weight: float = 1.0,
        triplet_weight: float = 1.0,
        margin: float = 0.2,
        soft_margin_base: float = 10.0,
    ) -> None:
        super().__init__()
        if contrastive_weight < 0 or triplet_weight < 0 or contrastive_weight + triplet_weight == 0:
            raise ValueError(
                "contrastive_weight and triplet_weight must be >= 0 and not both 0, got "
                f"{contrastive_weight} and {triplet_weight}"
            )
        if not soft_margin_base > 1:
            raise ValueError(f"soft_margin_base must be > 1, got {soft_margin_base}")
        self.contrastive_weight = contrastive_weight
        self.triplet_weight = triplet_weight
        self.margin = margin
        self.soft_margin_base = soft_margin_base
        self.triplet = TripletLoss(margin=margin, max_violation=True, reduction="none")

    def forward(
        self,
        image_embeds: torch.Tensor,
        text_embeds: torch.Tensor,
        logit_scale: torch.Tensor | float,
        clean_prob: torch.Tensor | None = None,
    ) -> RobustLossOutput:
        _check_embeddings(image_embeds, text_embeds)
        scale = _check_scale(logit_scale)
        batch = image_embeds.shape[0]
        if clean_prob is not None:
            if clean_prob.shape != (batch,):
                raise ValueError(f"clean_prob must have shape ({batch},), got {tuple(clean_prob.shape)}")
            if not torch.isfinite(clean_prob).all() or (clean_prob < 0).any() or (clean_prob > 1).any():
                raise ValueError("clean_prob must hold finite probabilities in [0, 1]")
            clean_prob = clean_prob.to(image_embeds.device)
        rank, world_size = get_rank_and_world_size()
        offset = rank * batch if world_size > 1 else 0
        all_image, all_text = gather_features(image_embeds, text_embeds, local_loss=True)
        logits_i2t = scale * image_embeds @ all_text.T
        logits_t2i = scale * text_embeds @ all_image.T
        log_p_i2t, log_p_t2i = logits_i2t.log_softmax(dim=1), logits_t2i.log_softmax(dim=1)
        rows = torch.arange(batch, device=image_embeds.device)
        plain = -0.5 * (log_p_i2t[rows, rows + offset] + log_p_t2i[rows, rows + offset])

        loss = image_embeds.new_zeros(())
        if self.contrastive_weight:
            targets_i2t = refurbished_targets(logits_i2t, clean_prob, offset)
            targets_t2i = refurbished_targets(logits_t2i, clean_prob, offset)
            contrastive = -0.5 * ((targets_i2t * log_p_i2t).sum(1) + (targets_t2i * log_p_t2i).sum(1))
            loss = loss + self.contrastive_weight * contrastive.mean()
        if self.triplet_weight:
            margin = None if clean_prob is None else soft_margins(clean_prob, self.margin, self.soft_margin_base)
            loss = loss + self.triplet_weight * self.triplet(image_embeds, text_embeds, margin).mean()
        return RobustLossOutput(loss=loss, per_sample_loss=plain.detach())
