"""M-CLIP configuration."""

from __future__ import annotations

from ...modeling.configuration_multi_encoder import MultiEncoderConfig


class MCLIPConfig(MultiEncoderConfig):
    """Configuration of a multilingual CLIP: any vision tower plus any (multilingual) text tower.

    All fields are those of `mmml.modeling.MultiEncoderConfig`: `vision_config`, `text_config`
    (any transformers encoder configs), `projection_dim`, `text_pooling` / `vision_pooling`
    ("pooler", "cls", "mean"), `logit_scale_init_value` and `logit_scale_max`.

    Example:
        >>> from transformers import BertConfig, CLIPVisionConfig
        >>> config = MCLIPConfig(
        ...     vision_config=CLIPVisionConfig(hidden_size=64, image_size=32, patch_size=8),
        ...     text_config=BertConfig(hidden_size=64, vocab_size=1000),
        ...     projection_dim=32,
        ... )
    """

    model_type = "mclip"
