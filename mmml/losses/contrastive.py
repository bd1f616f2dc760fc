"""Symmetric InfoNCE (CLIP) loss that spans the global batch under data parallelism."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmml.losses.distributed import gather_features, get_rank_and_world_size


class ContrastiveLoss(nn.Module):
    """CLIP loss: mean of image->text and text->image cross-entropy.

    Call as ``loss_fn(image_embeds, text_embeds, logit_scale)`` with L2-normalised
    ``(batch, dim)`` embeddings and the already exponentiated scale (float or
    one-element tensor). Returns a scalar tensor.

    In a single process (or a world of size 1) this is the plain full-batch loss.
    When ``torch.distributed`` is initialised with several ranks (torchrun,
    ``accelerate launch``; gloo or nccl), features are gathered from all ranks:

    * ``local_loss=False``: every rank builds the full global logit matrix, so every
      rank returns the global loss ``L``.
    * ``local_loss=True``: a rank scores only its own rows against all gathered
      columns (labels offset by ``rank * local_batch``) and returns ``L_r``, the mean
      over its rows; ``L`` is the mean of ``L_r`` over ranks. Cheaper in memory.

    Gradient-scaling convention: the returned loss is **not** rescaled by the world
    size; call ``backward()`` on it and let DDP (or accelerate) average gradients.

    * ``gather_with_grad=True`` (exact): the autograd all_gather's backward sums over
      ranks the gradients every rank's graph sends to a rank's features, so rank
      ``r``'s features receive ``W * dL/dx_r`` in both modes, and DDP's average over
      the ``W`` ranks gives exactly the full-batch ``dL/dtheta``. ``logit_scale`` is
      never gathered: rank ``r`` gets ``dL_r/ds`` and the average is ``dL/ds``.
      Multiplying the loss by ``W`` would overcount by ``W``.
    * ``gather_with_grad=False`` (open_clip's cheaper variant): other ranks' features
      are constants. With ``local_loss=False`` the local features are re-inserted at
      this rank's slot, so rank ``r`` receives exactly ``dL/dx_r``; after DDP's
      average the tower gradients are ``dL/dtheta / W`` (their *sum* over ranks is
      exact), i.e. an effective learning-rate division by ``W``. With
      ``local_loss=True`` only the local rows carry gradient: the column (negative)
      terms that every rank's loss sends to ``x_r`` are dropped, which makes the
      gradient an approximation. In both cases the loss value and the
      ``logit_scale`` gradient remain exact.

    Every rank must pass the same local batch size.
    """

    def __init__(self, local_loss: bool = False, gather_with_grad: bool = True) -> None:
        super().__init__()
        self.local_loss = local_loss
        self.gather_with_grad = gather_with_grad
        self._labels: dict[tuple[torch.device, int, int], torch.Tensor] = {}

    def forward(
        self,
        image_embeds: torch.Tensor,
        text_embeds: torch.Tensor,
        logit_scale: torch.Tensor | float,
    ) -> torch.Tensor:
        """Return the symmetric InfoNCE loss as a scalar tensor."""
        _check_embeddings(image_embeds, text_embeds)
        scale = _check_scale(logit_scale)
        logits_per_image, logits_per_text, label_offset = self._logits(image_embeds, text_embeds, scale)
        labels = self._get_labels(logits_per_image.shape[0], label_offset, logits_per_image.device)
        return 0.5 * (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels))

    def _logits(
        self,
        image_embeds: torch.Tensor,
        text_embeds: torch.Tensor,
        scale: torch.Tensor | float,
    ) -> tuple[torch.Tensor, torch.Tensor, int]:
        rank, world_size = get_rank_and_world_size()
        if world_size == 1:
            logits_per_image = scale * image_embeds @ text_embeds.T
            return logits_per_image, logits_per_image.T, 0
        all_image, all_text = gather_features(
            image_embeds,
            text_embeds,
            local_loss=self.local_loss,
            gather_with_grad=self.gather_with_grad,
        )
        if self.local_loss:
            logits_per_image = scale * image_embeds @ all_text.T
            logits_per_text = scale * text_embeds @ all_image.T
            return logits_per_image, logits_per_text, rank * image_embeds.shape[0]
        logits_per_image = scale * all_image @ all_text.T
        return logits_per_image, logits_per_image.T, 0

    def _get_labels(self, num_rows: int, offset: int, device: torch.device) -> torch.Tensor:
        key = (device, num_rows, offset)
        labels = self._labels.get(key)
        if labels is None:
            labels = torch.arange(offset, offset + num_rows, device=device, dtype=torch.long)
            self._labels[key] = labels
        return labels


def _check_embeddings(image_embeds: torch.Tensor, text_embeds: torch.Tensor) -> None:
    if image_embeds.ndim != 2 or image_embeds.shape != text_embeds.shape or image_embeds.shape[0] == 0:
        raise ValueError(
            "image_embeds and text_embeds must be non-empty 2-D tensors of the same "
            f"(batch, dim) shape, got image_embeds {tuple(image_embeds.shape)} and "
            f"text_embeds {tuple(text_embeds.shape)}"
        )


def _check_scale(logit_scale: torch.Tensor | float) -> torch.Tensor | float:
    if not isinstance(logit_scale, torch.Tensor):
        return float(logit_scale)
    if logit_scale.numel() != 1:
        raise ValueError(f"logit_scale must be a scalar, got a tensor of shape {tuple(logit_scale.shape)}")
    return logit_scale.reshape(())
