"""Configuration shared by image-text dual encoders: two towers, projections and a logit scale."""

from __future__ import annotations

import math

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from .pooling import POOLING_STRATEGIES
from .towers import tower_hidden_size


class DualEncoderConfig(PreTrainedConfig):
    """Base config of a dual encoder whose towers are any transformers text / vision backbones.

    Args:
        text_config: config (or dict with `model_type`) of the text backbone; BERT by default.
        vision_config: config (or dict with `model_type`) of the vision backbone; CLIP vision by default.
        projection_dim: size of the shared embedding space.
        text_pooling: how token states become one vector: "pooler", "cls" or "mean".
        vision_pooling: same for image patch states.
        logit_scale_init_value: initial log of the contrastive temperature scale (CLIP: ln(1/0.07)).
        logit_scale_max: upper bound of the exponentiated scale (CLIP: 100).
        initializer_factor: multiplies the init std of the projections.
        text_length_buckets: when > 1, `get_text_features` sorts a batch's texts by length, splits
            them into this many groups and runs the text tower on each group cut to its longest text:
            the same embeddings up to float rounding, without the work on padding (training speed
            on CPU). Needs right padding to save anything; 1 (default) runs one padded call.
        hash_bits: when set (a multiple of 8, e.g. 16, 32, 64, 128), each tower also gets a hash head
            (`mmml.modeling.HashHead`) and the output has `image_hash` / `text_hash` codes.
        hash_scale: initial scale of the tanh relaxation, tanh(hash_scale * logits); recipes anneal it up.
        hash_similarity_weight / hash_quantization_weight / hash_balance_weight: weights of the
            terms of `mmml.losses.HashingLoss`, added to the loss when the model has hash heads.
    """

    sub_configs_defaults = {
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="bert"),
        "vision_config": SubConfigSpec(config_class=AutoConfig, model_type="clip_vision_model"),
    }

    text_config: PreTrainedConfig | dict | None = None
    vision_config: PreTrainedConfig | dict | None = None
    projection_dim: int = 512
    text_pooling: str = "mean"
    vision_pooling: str = "pooler"
    logit_scale_init_value: float = 2.6592
    logit_scale_max: float = 100.0
    initializer_factor: float = 1.0
    text_length_buckets: int = 1
    hash_bits: int | None = None
    hash_scale: float = 1.0
    hash_similarity_weight: float = 1.0
    hash_quantization_weight: float = 0.1
    hash_balance_weight: float = 0.01

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        self.validate_dual_encoder_fields()

    def validate_dual_encoder_fields(self) -> None:
        """Raise `ValueError` naming the field and its valid values when a value is out of range."""
        if not isinstance(self.projection_dim, int) or self.projection_dim <= 0:
            raise ValueError(f"projection_dim must be a positive integer, got {self.projection_dim!r}")
        for field in ("text_pooling", "vision_pooling"):
            if getattr(self, field) not in POOLING_STRATEGIES:
                raise ValueError(f"{field} must be one of {POOLING_STRATEGIES}, got {getattr(self, field)!r}")
        if not math.isfinite(self.logit_scale_init_value):
            raise ValueError(f"logit_scale_init_value must be finite, got {self.logit_scale_init_value!r}")
        if not self.logit_scale_max > 0:
            raise ValueError(f"logit_scale_max must be > 0, got {self.logit_scale_max!r}")
        if not self.initializer_factor > 0:
            raise ValueError(f"initializer_factor must be > 0, got {self.initializer_factor!r}")
        if isinstance(self.text_length_buckets, bool) or not isinstance(self.text_length_buckets, int) \
                or self.text_length_buckets < 1:
            raise ValueError(f"text_length_buckets must be an integer >= 1, got {self.text_length_buckets!r}")
        for field in ("text_config", "vision_config"):
            if tower_hidden_size(getattr(self, field)) is None:
                raise ValueError(
                    f"{field} ({type(getattr(self, field)).__name__}) has no `hidden_size` (nor `hidden_sizes`); "
                    "use a transformers encoder config such as BERT, XLM-R, ViT, ResNet or CLIP vision/text"
                )
        self.validate_hash_fields()

    def validate_hash_fields(self) -> None:
        """Raise `ValueError` for a `hash_bits` that cannot be packed into bytes or a bad loss weight."""
        bits = self.hash_bits
        if bits is not None and (isinstance(bits, bool) or not isinstance(bits, int) or bits <= 0 or bits % 8):
            raise ValueError(f"hash_bits must be None or a positive multiple of 8 (16, 32, 64, 128, ...), got {bits!r}")
        if not self.hash_scale > 0:
            raise ValueError(f"hash_scale must be > 0, got {self.hash_scale!r}")
        for field in ("hash_similarity_weight", "hash_quantization_weight", "hash_balance_weight"):
            if not getattr(self, field) >= 0:
                raise ValueError(f"{field} must be >= 0, got {getattr(self, field)!r}")
