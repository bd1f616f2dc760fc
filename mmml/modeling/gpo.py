"""Generalized Pooling Operator (GPO, Chen et al. 2021, "VSE-infinity"): learned pooling over a set of features.

Each feature dimension is sorted over the set (descending) and the k-th largest values are
combined with weights ``theta_k`` that a small bidirectional GRU generates from positional encodings
of ``k`` and the set size. Mean pooling, max pooling and top-k averages are all special cases, and
the learned weights can discount the few extreme values a noisy region or word produces.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


def positional_encoding(length: int, dim: int, device=None) -> torch.Tensor:
    """Sinusoidal encodings ``[length, dim]`` of positions ``0..length-1``."""
    position = torch.arange(length, dtype=torch.float32, device=device).unsqueeze(1)
    frequencies = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32, device=device) * (-math.log(10000.0) / dim))
    encoding = torch.zeros(length, dim, device=device)
    encoding[:, 0::2] = torch.sin(position * frequencies)
    encoding[:, 1::2] = torch.cos(position * frequencies[: dim // 2])
    return encoding


class GPOPooling(nn.Module):
    """``forward(features [B, N, D], mask [B, N] | None) -> (pooled [B, D], weights [B, N])``.

    ``mask`` marks real elements (1) and padding (0); padding gets weight 0 and never enters the sort.
    """

    def __init__(self, encoding_dim: int = 32, hidden_size: int = 32, temperature: float = 0.1) -> None:
        super().__init__()
        if encoding_dim % 2:
            raise ValueError(f"encoding_dim must be even, got {encoding_dim}")
        self.encoding_dim = encoding_dim
        self.temperature = temperature
        self.gru = nn.GRU(encoding_dim, hidden_size, batch_first=True, bidirectional=True)
        self.score = nn.Linear(hidden_size, 1, bias=False)

    def pooling_weights(self, lengths: torch.Tensor, max_length: int) -> torch.Tensor:
        """Softmax weights ``[B, max_length]`` over the sorted positions of sets of these sizes."""
        encoding = positional_encoding(max_length, self.encoding_dim, lengths.device)
        encoding = encoding.unsqueeze(0).expand(lengths.shape[0], -1, -1)
        packed = pack_padded_sequence(encoding, lengths.cpu(), batch_first=True, enforce_sorted=False)
        output, _ = pad_packed_sequence(self.gru(packed)[0], batch_first=True, total_length=max_length)
        forward_half, backward_half = output.chunk(2, dim=-1)
        scores = self.score((forward_half + backward_half) / 2).squeeze(-1)
        valid = torch.arange(max_length, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)
        scores = scores.masked_fill(~valid, float("-inf"))
        return torch.softmax(scores / self.temperature, dim=1)

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        batch, length, _ = features.shape
        if mask is None:
            mask = torch.ones(batch, length, dtype=torch.bool, device=features.device)
        mask = mask.bool()
        lengths = mask.sum(dim=1)
        if (lengths == 0).any():
            raise ValueError("GPOPooling got a set with no valid element (an all-zero mask row)")
        weights = self.pooling_weights(lengths, length)
        padded = features.masked_fill(~mask.unsqueeze(-1), float("-inf"))
        sorted_features = padded.sort(dim=1, descending=True).values
        sorted_features = sorted_features.masked_fill(torch.isinf(sorted_features), 0.0)
        return (sorted_features * weights.unsqueeze(-1).to(features.dtype)).sum(dim=1), weights
