"""Attention blocks for interaction between token sets, and graph-convolution reasoning over them.

* :class:`InteractionBlock`: pre-norm transformer block. Without ``context`` it is intra-modality
  interaction (self-attention over one modality's tokens); with ``context`` (another modality's
  tokens) it adds inter-modality cross-attention, the building block of a fusion encoder.
* :class:`GraphReasoning`: VSRN/MVSEN-style graph convolution: a fully connected graph over the
  tokens whose edges are learned affinities, one residual GCN update per layer.

Attention dispatches through transformers' attention interface (``config._attn_implementation``:
"sdpa", "eager", ...), with q/k/v as separate ``nn.Linear`` so peft can target them.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS


def eager_attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """Reference attention on ``[B, H, L, D]`` tensors; returns ``([B, L, H, D], weights)``."""
    weights = torch.matmul(query, key.transpose(-1, -2)) * scaling
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = torch.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = nn.functional.dropout(weights, p=dropout, training=module.training)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


def additive_mask(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """``[B, Lk]`` 1/0 key mask -> ``[B, 1, 1, Lk]`` additive mask (0 or the dtype's minimum)."""
    if mask is None:
        return None
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


class Attention(nn.Module):
    """Multi-head attention of ``hidden`` over ``context`` (itself when None)."""

    is_causal = False

    def __init__(self, config, hidden_size: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden size {hidden_size} is not divisible by num_attention_heads {num_heads}")
        self.config = config
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.scaling = self.head_dim**-0.5
        self.dropout = dropout
        self.q_proj = nn.Linear(hidden_size, hidden_size)
        self.k_proj = nn.Linear(hidden_size, hidden_size)
        self.v_proj = nn.Linear(hidden_size, hidden_size)
        self.out_proj = nn.Linear(hidden_size, hidden_size)

    def forward(self, hidden: torch.Tensor, context: torch.Tensor | None = None,
                context_mask: torch.Tensor | None = None) -> torch.Tensor:
        context = hidden if context is None else context
        batch, length, _ = hidden.shape

        def heads(x: torch.Tensor) -> torch.Tensor:
            return x.view(batch, x.shape[1], self.num_heads, self.head_dim).transpose(1, 2)

        query, key, value = heads(self.q_proj(hidden)), heads(self.k_proj(context)), heads(self.v_proj(context))
        implementation = getattr(self.config, "_attn_implementation", None) or "eager"
        attention = eager_attention if implementation == "eager" else ALL_ATTENTION_FUNCTIONS.get(
            implementation, eager_attention)
        output, _ = attention(self, query, key, value, additive_mask(context_mask, query.dtype),
                              scaling=self.scaling, dropout=self.dropout if self.training else 0.0)
        return self.out_proj(output.reshape(batch, length, -1))


class InteractionBlock(nn.Module):
    """Pre-norm block: self-attention, optional cross-attention to ``context``, MLP; all residual."""

    def __init__(self, config, hidden_size: int, num_heads: int, cross_attention: bool = False) -> None:
        super().__init__()
        self.self_norm = nn.LayerNorm(hidden_size)
        self.self_attention = Attention(config, hidden_size, num_heads)
        self.cross_norm = nn.LayerNorm(hidden_size) if cross_attention else None
        self.cross_attention = Attention(config, hidden_size, num_heads) if cross_attention else None
        self.mlp_norm = nn.LayerNorm(hidden_size)
        self.mlp = nn.Sequential(nn.Linear(hidden_size, 4 * hidden_size), nn.GELU(), nn.Linear(4 * hidden_size, hidden_size))

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None = None, context: torch.Tensor | None = None,
                context_mask: torch.Tensor | None = None) -> torch.Tensor:
        hidden = hidden + self.self_attention(self.self_norm(hidden), context_mask=mask)
        if self.cross_attention is not None:
            if context is None:
                raise ValueError("this InteractionBlock has cross-attention and needs `context`")
            hidden = hidden + self.cross_attention(self.cross_norm(hidden), context, context_mask)
        return hidden + self.mlp(self.mlp_norm(hidden))


class GraphReasoning(nn.Module):
    """One GCN layer over a fully connected token graph with learned, masked affinities."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.phi = nn.Linear(hidden_size, hidden_size, bias=False)
        self.psi = nn.Linear(hidden_size, hidden_size, bias=False)
        self.update = nn.Linear(hidden_size, hidden_size, bias=False)
        self.norm = nn.LayerNorm(hidden_size)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        affinity = self.phi(hidden) @ self.psi(hidden).transpose(1, 2) / hidden.shape[-1] ** 0.5
        if mask is not None:
            affinity = affinity.masked_fill(~mask.bool()[:, None, :], torch.finfo(affinity.dtype).min)
        messages = torch.softmax(affinity, dim=-1) @ self.update(hidden)
        return hidden + torch.relu(self.norm(messages))
