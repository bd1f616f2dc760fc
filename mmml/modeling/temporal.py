"""Temporal stage over per-frame embeddings: frame position embeddings, transformer blocks, residual.

:class:`TemporalTransformer` is CLIP4Clip's "seqTransf" temporal encoder: learned position
embeddings are added to the frame embeddings, a stack of pre-norm transformer blocks
(:class:`mmml.modeling.interaction.InteractionBlock`: self-attention + MLP, attention through
transformers' attention interface) models the frames' context, and the input frames are added back
(residual), so an untrained stage stays close to the frames themselves. Padding frames (mask 0) are
masked out as attention keys and do not change the real frames' outputs.
"""

from __future__ import annotations

import torch
from torch import nn

from .interaction import InteractionBlock

__all__ = ["TemporalTransformer"]


class TemporalTransformer(nn.Module):
    """`[batch, frames, dim]` frame embeddings (+ a `[batch, frames]` 1/0 frame mask) -> contextual ones, same shape.

    Args:
        config: the model config whose `_attn_implementation` picks the attention function.
        hidden_size: width of the frame embeddings.
        num_layers: transformer blocks (CLIP4Clip: 4).
        num_heads: attention heads per block (`hidden_size` must be divisible by it).
        max_positions: frame positions with an embedding; longer clips raise a `ValueError`.
    """

    def __init__(self, config, hidden_size: int, num_layers: int, num_heads: int, max_positions: int) -> None:
        super().__init__()
        self.max_positions = max_positions
        self.position_embeddings = nn.Embedding(max_positions, hidden_size)
        self.layers = nn.ModuleList(InteractionBlock(config, hidden_size, num_heads) for _ in range(num_layers))

    def forward(self, frames: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        if frames.ndim != 3:
            raise ValueError(f"frames must be [batch, frames, dim], got shape {tuple(frames.shape)}")
        num_frames = frames.shape[1]
        if num_frames > self.max_positions:
            raise ValueError(
                f"clips of {num_frames} frames are longer than the temporal encoder's {self.max_positions} frame "
                f"positions (max_frames); sample at most {self.max_positions} frames or build the model with a "
                "larger max_frames"
            )
        hidden = frames + self.position_embeddings.weight[:num_frames].to(frames.dtype)
        for layer in self.layers:
            hidden = layer(hidden, frame_mask)
        return hidden + frames
