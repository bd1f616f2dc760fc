"""Cross-modal hashing losses on relaxed codes: similarity preservation, quantization, bit balance."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def similarity_from_labels(image_labels: torch.Tensor, text_labels: torch.Tensor | None = None) -> torch.Tensor:
    """`[num_images, num_texts]` 0/1 similarity: 1 where the two items share at least one label.

    Labels are multi-hot `[n, num_labels]` tensors; `text_labels=None` means the texts carry the
    images' labels (one text per image, in the same order).
    """
    text_labels = image_labels if text_labels is None else text_labels
    if image_labels.ndim != 2 or text_labels.ndim != 2 or image_labels.shape[1] != text_labels.shape[1]:
        raise ValueError(
            "labels must be multi-hot [n, num_labels] tensors with the same num_labels, got "
            f"{tuple(image_labels.shape)} and {tuple(text_labels.shape)}"
        )
    return ((image_labels.float() @ text_labels.float().T) > 0).float()


def similarity_from_pairs(num_pairs: int, device: torch.device | None = None) -> torch.Tensor:
    """Pair identity (image-text matching data): image i is similar to text i only."""
    return torch.eye(num_pairs, device=device)


class HashingLoss(nn.Module):
    """`similarity_weight * L_sim + quantization_weight * L_q + balance_weight * L_b` on relaxed codes.

    * `L_sim`: the pairwise likelihood of DCMH / DPSH. With theta_ij = u_i . v_j / 2 (u image
      codes, v text codes, entries in [-1, 1]) and similarity S_ij in {0, 1},
      -log p(S_ij | u_i, v_j) = softplus(theta_ij) - S_ij * theta_ij. The mean is taken over the
      similar and the dissimilar pairs separately and the two means averaged, so that pair-identity
      supervision (one positive per row) is not swamped by its negatives.
    * `L_q`: mean squared distance of the relaxed codes to their signs (both modalities).
    * `L_b`: bit balance, mean over bits of the squared batch mean of each bit (each bit should be
      +1 for half the items), for both modalities.

    Call as `loss(image_codes, text_codes, similarity=None)`; `similarity=None` means pair
    identity. The loss uses the local batch only (no gathering across processes).
    """

    def __init__(self, similarity_weight: float = 1.0, quantization_weight: float = 0.1, balance_weight: float = 0.01):
        super().__init__()
        for name, value in (("similarity_weight", similarity_weight), ("quantization_weight", quantization_weight),
                            ("balance_weight", balance_weight)):
            if not value >= 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        self.similarity_weight = similarity_weight
        self.quantization_weight = quantization_weight
        self.balance_weight = balance_weight

    def forward(
        self, image_codes: torch.Tensor, text_codes: torch.Tensor, similarity: torch.Tensor | None = None
    ) -> torch.Tensor:
        if image_codes.ndim != 2 or text_codes.ndim != 2 or image_codes.shape[1] != text_codes.shape[1]:
            raise ValueError(
                "image_codes and text_codes must be [n, bits] tensors with the same bits, got "
                f"{tuple(image_codes.shape)} and {tuple(text_codes.shape)}"
            )
        if similarity is None:
            if image_codes.shape[0] != text_codes.shape[0]:
                raise ValueError("pair-identity similarity needs as many texts as images; pass `similarity`")
            similarity = similarity_from_pairs(image_codes.shape[0], image_codes.device)
        expected = (image_codes.shape[0], text_codes.shape[0])
        if tuple(similarity.shape) != expected:
            raise ValueError(f"similarity must have shape {expected}, got {tuple(similarity.shape)}")
        return (
            self.similarity_weight * similarity_loss(image_codes, text_codes, similarity)
            + self.quantization_weight * quantization_loss(image_codes, text_codes)
            + self.balance_weight * bit_balance_loss(image_codes, text_codes)
        )


def similarity_loss(image_codes: torch.Tensor, text_codes: torch.Tensor, similarity: torch.Tensor) -> torch.Tensor:
    """Balanced pairwise negative log-likelihood (see `HashingLoss`)."""
    theta = 0.5 * image_codes @ text_codes.T
    similarity = similarity.to(theta.dtype)
    nll = F.softplus(theta) - similarity * theta
    positives, negatives = similarity > 0, similarity <= 0
    terms = [nll[mask].mean() for mask in (positives, negatives) if mask.any()]
    return torch.stack(terms).mean()


def quantization_loss(*codes: torch.Tensor) -> torch.Tensor:
    """Mean of (sign(h) - h)^2 over every entry of the given relaxed codes."""
    return torch.stack([(torch.where(c >= 0, 1.0, -1.0) - c).pow(2).mean() for c in codes]).mean()


def bit_balance_loss(*codes: torch.Tensor) -> torch.Tensor:
    """Mean over bits of (batch mean of the bit)^2, averaged over the given code tensors."""
    return torch.stack([c.mean(dim=0).pow(2).mean() for c in codes]).mean()
