"""A text "tower" over TF-IDF vectors: fully connected layers (CMHR-DRN's text branch)."""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutputWithPooling


class TfidfEncoderConfig(PreTrainedConfig):
    """Config of `TfidfEncoderModel`.

    Args:
        vocab_size: width of the TF-IDF vectors (the processor's fitted vocabulary).
        hidden_size: width of every hidden layer and of the output.
        num_hidden_layers: number of Linear + ReLU layers (>= 1).
        hidden_dropout_prob: dropout after each layer.
    """

    model_type = "tfidf_encoder"

    vocab_size: int = 5000
    hidden_size: int = 512
    num_hidden_layers: int = 2
    hidden_dropout_prob: float = 0.1
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        for field in ("vocab_size", "hidden_size", "num_hidden_layers"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{field} must be a positive int, got {value!r}")


class TfidfEncoderModel(PreTrainedModel):
    """`input_features` `[batch, vocab_size]` TF-IDF rows -> `[batch, hidden_size]` through an MLP.

    Returns `BaseModelOutputWithPooling` with the features as `pooler_output` and as a one-token
    `last_hidden_state`, so it slots in wherever a transformers text tower does.
    """

    config_class = TfidfEncoderConfig
    base_model_prefix = "tfidf_encoder"
    main_input_name = "input_features"

    def __init__(self, config: TfidfEncoderConfig):
        super().__init__(config)
        layers: list[nn.Module] = []
        width = config.vocab_size
        for _ in range(config.num_hidden_layers):
            layers += [nn.Linear(width, config.hidden_size), nn.ReLU(), nn.Dropout(config.hidden_dropout_prob)]
            width = config.hidden_size
        self.layers = nn.Sequential(*layers)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        # He init for ReLU layers. The first layer reads L2-normalised TF-IDF rows (norm 1, not
        # unit variance per entry), so its std is sqrt(2) rather than sqrt(2 / vocab_size): with
        # transformers' default 0.02 the text features would start ~1e-4 and barely differ.
        if isinstance(module, nn.Linear):
            first = module is self.layers[0]
            init.normal_(module.weight, std=2**0.5 if first else (2 / module.in_features) ** 0.5)
            init.zeros_(module.bias)
        else:
            super()._init_weights(module)

    def forward(self, input_features: torch.Tensor, return_dict: bool = True, **kwargs) -> BaseModelOutputWithPooling:
        if input_features.ndim != 2 or input_features.shape[1] != self.config.vocab_size:
            raise ValueError(
                f"input_features must be [batch, {self.config.vocab_size}] TF-IDF rows, got {tuple(input_features.shape)}"
            )
        hidden = self.layers(input_features.to(self.dtype))
        return BaseModelOutputWithPooling(last_hidden_state=hidden.unsqueeze(1), pooler_output=hidden)
