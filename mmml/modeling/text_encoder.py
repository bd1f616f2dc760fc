"""One embedding per text from any text model: an mmml / CLIP-like model or a plain backbone."""

from __future__ import annotations

import torch
from torch import nn

from .pooling import POOLING_STRATEGIES, pool_tower_output


class TextEncoder(nn.Module):
    """Wraps a text model so that `forward(input_ids, attention_mask)` returns `[batch, dim]` embeddings.

    - A model with `get_text_features` (mmml dual encoders, transformers' `CLIPModel`): its
      projected text features; `language` is passed on when given (MLA's acquirers).
    - Any other transformers text backbone (BERT, XLM-R, MiniLM, ...): its token states pooled
      with `pooling` ("mean", "cls" or "pooler").

    Being an `nn.Module` whose forward is the whole computation, it can be handed to
    `accelerator.prepare` (DDP needs the forward to go through the wrapper).
    """

    def __init__(self, model: nn.Module, pooling: str = "mean", language: str | None = None):
        super().__init__()
        if pooling not in POOLING_STRATEGIES:
            raise ValueError(f"pooling must be one of {POOLING_STRATEGIES}, got {pooling!r}")
        self.model = model
        self.pooling = pooling
        self.language = language

    @property
    def has_projection(self) -> bool:
        return hasattr(self.model, "get_text_features")

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, language=None, **kwargs
    ) -> torch.Tensor:
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        if self.has_projection:
            language = language if language is not None else self.language
            if language is not None:
                kwargs["language"] = language
            return self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask, **kwargs).pooler_output
        outputs = self.model(input_ids=input_ids, attention_mask=attention_mask, return_dict=True, **kwargs)
        return pool_tower_output(outputs, self.pooling, attention_mask)
