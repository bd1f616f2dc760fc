"""Cross-attention of many (item, other item) pairs at once, for pairwise scorers.

A pairwise scorer (DI-vTR's inter-modal interaction, an ITM-style re-ranker) attends from the
positions of one item (a caption's tokens, a clip's frames) to the positions of an item of the
other modality, for every pair it scores: all n x m pairs of a training batch (`grid`), or the
aligned (query, candidate) pairs of a re-ranking call (`forward`, pairs given as index vectors).

Both run one attention call whose batch is the context items: in `grid`, every attending item's
positions are concatenated into one query sequence per context item (so nothing is gathered per
pair, the key / value projections run once per context item and the first layer's query projection
once per attending item); in `forward`, each pair is one batch row. The output is pooled over the
attending item's real positions before the last output projection (a linear map, so pooling first
gives the same result for less work).

Attention dispatches through transformers' attention interface (`config._attn_implementation`:
"sdpa", "eager", ...), with q/k/v as separate `nn.Linear` so peft can target them.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from .interaction import additive_mask, eager_attention

__all__ = ["PairCrossAttentionLayer", "PairwiseCrossAttention", "attention_function"]


def attention_function(config):
    """The attention function `config._attn_implementation` names; eager when unset or unknown."""
    implementation = getattr(config, "_attn_implementation", None) or "eager"
    if implementation == "eager":
        return eager_attention
    return ALL_ATTENTION_FUNCTIONS.get(implementation, eager_attention)


class PairCrossAttentionLayer(nn.Module):
    """One pre-norm cross-attention layer: `norm` on the attending stream, `context_norm` on the other item."""

    is_causal = False

    def __init__(self, config, hidden_size: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden size {hidden_size} is not divisible by the {num_heads} attention heads")
        self.config = config
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.scaling = self.head_dim**-0.5
        self.dropout = dropout
        self.norm = nn.LayerNorm(hidden_size)
        self.context_norm = nn.LayerNorm(hidden_size)
        self.q_proj = nn.Linear(hidden_size, hidden_size)
        self.k_proj = nn.Linear(hidden_size, hidden_size)
        self.v_proj = nn.Linear(hidden_size, hidden_size)
        self.out_proj = nn.Linear(hidden_size, hidden_size)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], x.shape[1], self.num_heads, self.head_dim).transpose(1, 2)

    def attend(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
               mask: torch.Tensor | None) -> torch.Tensor:
        """Projected `[P, Lq, d]` queries over `[P, Lk, d]` keys / values (additive mask `[P, 1, 1, Lk]`)
        -> `[P, Lq, d]`."""
        output, _ = attention_function(self.config)(
            self, self._heads(query), self._heads(key), self._heads(value), mask, scaling=self.scaling,
            dropout=self.dropout if self.training else 0.0)
        return output.reshape(query.shape[0], query.shape[1], -1)


class PairwiseCrossAttention(nn.Module):
    """`num_layers` cross-attention layers from the positions of one item to those of another, for many pairs.

    Items: `hidden` `[n_h, L_h, dim]` (the attending items, e.g. caption tokens) with `hidden_mask`
    `[n_h, L_h]` (1 = real position), `context` `[n_c, L_c, dim]` (the attended items, e.g. frames) with
    `context_mask` `[n_c, L_c]`.

    - `grid(hidden, context, hidden_mask, context_mask)` -> `[n_h, n_c, dim]`: every pair;
    - `forward(hidden, context, hidden_mask, context_mask, hidden_index, context_index)` -> `[P, dim]`:
      pair `p` is `(hidden[hidden_index[p]], context[context_index[p]])`; without indices the rows are
      aligned (pair `i` = row `i` of both, which must then have as many rows).

    Per pair, the result is what the attending item found in the other item: the last layer's attention
    output (after its output projection) averaged over the attending item's real positions. Layers before
    the last update the attending stream residually (`x + out_proj(attention)`), so later layers attend
    with context-aware queries. Padding positions of the context (mask 0) are never attended to; padding
    positions of the attending item are left out of the average, so neither changes the result.
    """

    def __init__(self, config, hidden_size: int, num_heads: int, num_layers: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"PairwiseCrossAttention needs at least one layer, got num_layers={num_layers}")
        self.layers = nn.ModuleList(
            PairCrossAttentionLayer(config, hidden_size, num_heads, dropout) for _ in range(num_layers))

    def grid(self, hidden: torch.Tensor, context: torch.Tensor, hidden_mask: torch.Tensor | None = None,
             context_mask: torch.Tensor | None = None) -> torch.Tensor:
        """`[n_h, n_c, dim]`: the result of every (hidden item, context item) pair."""
        groups = hidden[None]  # one group of n_h items, shared by every context item
        masks = None if hidden_mask is None else hidden_mask[None]
        return self._attend(groups, masks, context, context_mask).transpose(0, 1)

    def forward(self, hidden: torch.Tensor, context: torch.Tensor, hidden_mask: torch.Tensor | None = None,
                context_mask: torch.Tensor | None = None, hidden_index: torch.Tensor | None = None,
                context_index: torch.Tensor | None = None) -> torch.Tensor:
        if (hidden_index is None) != (context_index is None):
            raise ValueError("give both hidden_index and context_index, or neither (aligned rows)")
        if hidden_index is None:
            if hidden.shape[0] != context.shape[0]:
                raise ValueError(f"aligned pairs need as many hidden as context rows, got {hidden.shape[0]} and "
                                 f"{context.shape[0]}; pass hidden_index / context_index")
        else:
            if hidden_index.shape != context_index.shape or hidden_index.ndim != 1:
                raise ValueError(f"hidden_index and context_index must be 1-D of one length, got "
                                 f"{tuple(hidden_index.shape)} and {tuple(context_index.shape)}")
            hidden, context = hidden[hidden_index], context[context_index]
            hidden_mask = None if hidden_mask is None else hidden_mask[hidden_index]
            context_mask = None if context_mask is None else context_mask[context_index]
        masks = None if hidden_mask is None else hidden_mask[:, None]
        return self._attend(hidden[:, None], masks, context, context_mask)[:, 0]

    def _attend(self, groups: torch.Tensor, group_mask: torch.Tensor | None, context: torch.Tensor,
                context_mask: torch.Tensor | None) -> torch.Tensor:
        """`groups` `[1 or n_c, G, L_h, dim]` (the G attending items of each context item; 1: the same for
        all), `group_mask` `[1 or n_c, G, L_h]`, `context` `[n_c, L_c, dim]` -> `[n_c, G, dim]`."""
        num_context, (_, num_groups, length, width) = context.shape[0], groups.shape
        attention_mask = additive_mask(context_mask, groups.dtype)
        stream = groups
        for position, layer in enumerate(self.layers):
            query = layer.q_proj(layer.norm(stream)).reshape(stream.shape[0], num_groups * length, width)
            normed = layer.context_norm(context)
            attended = layer.attend(query.expand(num_context, -1, -1), layer.k_proj(normed), layer.v_proj(normed),
                                    attention_mask).view(num_context, num_groups, length, width)
            if position == len(self.layers) - 1:
                if group_mask is None:
                    return layer.out_proj(attended.mean(dim=2))
                weights = group_mask.to(attended.dtype)
                weights = weights / weights.sum(dim=-1, keepdim=True).clamp(min=1.0)
                return layer.out_proj((weights.unsqueeze(-2) @ attended).squeeze(-2))
            stream = stream + layer.out_proj(attended)
        raise AssertionError("unreachable")  # pragma: no cover
