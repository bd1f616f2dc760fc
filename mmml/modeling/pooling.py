"""Pooling of a backbone's token states into one vector per sequence."""

from __future__ import annotations

import torch

POOLING_STRATEGIES = ("pooler", "cls", "mean")


def pool_tower_output(
    outputs,
    strategy: str,
    attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Reduce a backbone output to `[batch, hidden]`.

    - `pooler`: the backbone's own `pooler_output` (CLIP's EOS / post-layernorm CLS, BERT's tanh pooler).
    - `cls`: the first token of `last_hidden_state`.
    - `mean`: the mean of `last_hidden_state` over non-padding positions (all positions when
      `attention_mask` is None, e.g. image patches).

    Convolutional backbones (ResNet) return `[batch, channels, height, width]` maps: their
    `pooler_output` (`[batch, channels, 1, 1]`) is flattened and their maps become tokens first.
    """
    if strategy == "pooler":
        pooled = getattr(outputs, "pooler_output", None)
        if pooled is None:
            raise ValueError(
                f"pooling='pooler' needs a backbone that returns `pooler_output`, but "
                f"{type(outputs).__name__} has none; use one of {POOLING_STRATEGIES[1:]}"
            )
        return pooled.flatten(1) if pooled.ndim > 2 else pooled
    hidden = token_states(outputs)
    if strategy == "cls":
        return hidden[:, 0]
    if strategy == "mean":
        if attention_mask is None:
            return hidden.mean(dim=1)
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    raise ValueError(f"unknown pooling strategy {strategy!r}; valid: {POOLING_STRATEGIES}")


def token_states(outputs) -> torch.Tensor:
    """`[batch, tokens, hidden]` states of a backbone; a conv feature map's positions become tokens."""
    hidden = outputs.last_hidden_state
    if hidden.ndim == 4:
        return hidden.flatten(2).transpose(1, 2)
    return hidden
