"""Configuration shared by mmml's encoders: one tower, pooling and projection per listed modality."""

from __future__ import annotations

import math

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from .modalities import get_modality
from .objectives import check_objective_specs
from .pooling import POOLING_STRATEGIES
from .towers import tower_hidden_size

DEFAULT_MODALITIES = ("image", "text")


class MultiEncoderConfig(PreTrainedConfig):
    """Base config of an encoder whose towers are any transformers backbones, one per modality.

    Args:
        modalities: the modalities the model encodes (names registered in `mmml.modeling.modalities`);
            default `["image", "text"]`. Each gets its tower from its sub-config (`vision_config`,
            `text_config`, `audio_config`, ...; video frames share `vision_config`), a pooling and a
            projection into the shared space.
        text_config / vision_config / audio_config: config (or dict with `model_type`) of the backbone;
            a listed modality without one gets its default tower (BERT, CLIP vision, AST).
        projection_dim: size of the shared embedding space.
        text_pooling / vision_pooling / audio_pooling: how a tower's states become one vector:
            "pooler", "cls" or "mean".
        logit_scale_init_value: initial log of the contrastive temperature scale (CLIP: ln(1/0.07)).
        logit_scale_max: upper bound of the exponentiated scale (CLIP: 100).
        initializer_factor: multiplies the init std of the projections.
        text_length_buckets: when > 1, `get_text_features` sorts a batch's texts by length, splits
            them into this many groups and runs the text tower on each group cut to its longest text:
            the same embeddings up to float rounding, without the work on padding (training speed
            on CPU). Needs right padding to save anything; 1 (default) runs one padded call.
        hash_bits: when set (a multiple of 8, e.g. 16, 32, 64, 128), every modality also gets a hash
            head (`<modality>_hash_head`, `mmml.modeling.HashHead`), the output carries `image_hash` /
            `text_hash` codes and the default objectives include hashing.
        hash_scale: initial scale of the tanh relaxation, tanh(hash_scale * logits); recipes anneal it up.
        hash_similarity_weight / hash_quantization_weight / hash_balance_weight: weights of the
            terms of `mmml.losses.HashingLoss` in the hashing objective.
        objectives: the training objectives, a list of dicts such as
            `{"type": "contrastive", "pairs": [["image", "text"]], "weights": [1.0]}`,
            `{"type": "hashing"}`, `{"type": "distillation", "modality": "text"}`
            (see `mmml.modeling.objectives`); None: the family's defaults.
    """

    sub_configs_defaults = {
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="bert", optional=True),
        "vision_config": SubConfigSpec(config_class=AutoConfig, model_type="clip_vision_model", optional=True),
        "audio_config": SubConfigSpec(config_class=AutoConfig, model_type="audio-spectrogram-transformer",
                                      optional=True),
    }

    modalities: list[str] | None = None
    text_config: PreTrainedConfig | dict | None = None
    vision_config: PreTrainedConfig | dict | None = None
    audio_config: PreTrainedConfig | dict | None = None
    projection_dim: int = 512
    text_pooling: str = "mean"
    vision_pooling: str = "pooler"
    audio_pooling: str = "mean"
    logit_scale_init_value: float = 2.6592
    logit_scale_max: float = 100.0
    initializer_factor: float = 1.0
    text_length_buckets: int = 1
    hash_bits: int | None = None
    hash_scale: float = 1.0
    hash_similarity_weight: float = 1.0
    hash_quantization_weight: float = 0.1
    hash_balance_weight: float = 0.01
    objectives: list[dict] | None = None

    def __post_init__(self, **kwargs):
        self.modalities = list(self.modalities or DEFAULT_MODALITIES)
        for name in self.modalities:
            key = get_modality(name).config_key
            if key in self.sub_configs_defaults and getattr(self, key) is None:
                setattr(self, key, {})  # the spec's default tower
        super().__post_init__(**kwargs)
        self._build_registered_sub_configs()
        self.validate_dual_encoder_fields()

    def _build_registered_sub_configs(self) -> None:
        """Sub-configs of registered modalities that this class does not declare (e.g. added by a user)."""
        for name in self.modalities:
            modality = get_modality(name)
            if modality.config_key in self.sub_configs_defaults:
                continue
            value = getattr(self, modality.config_key, None)
            if isinstance(value, PreTrainedConfig):
                continue
            value = dict(value or {})
            model_type = value.pop("model_type", modality.default_model_type)
            if model_type is None:
                raise ValueError(f"{modality.config_key} needs a `model_type` (modality {name!r} has no default tower)")
            setattr(self, modality.config_key, AutoConfig.for_model(model_type, **value))

    def modality_config(self, name: str) -> PreTrainedConfig:
        """The tower sub-config of modality `name`."""
        return getattr(self, get_modality(name).config_key)

    def pooling(self, name: str) -> str:
        """The pooling strategy of modality `name` (its `<x>_pooling` field; "mean" when the class has none)."""
        return getattr(self, get_modality(name).pooling_field, "mean")

    def validate_dual_encoder_fields(self) -> None:
        """Raise `ValueError` naming the field and its valid values when a value is out of range."""
        if len(set(self.modalities)) != len(self.modalities) or not self.modalities:
            raise ValueError(f"modalities must be a non-empty list without repeats, got {self.modalities}")
        if not isinstance(self.projection_dim, int) or self.projection_dim <= 0:
            raise ValueError(f"projection_dim must be a positive integer, got {self.projection_dim!r}")
        for name in self.modalities:
            field = get_modality(name).pooling_field
            if self.pooling(name) not in POOLING_STRATEGIES:
                raise ValueError(f"{field} must be one of {POOLING_STRATEGIES}, got {self.pooling(name)!r}")
        if not math.isfinite(self.logit_scale_init_value):
            raise ValueError(f"logit_scale_init_value must be finite, got {self.logit_scale_init_value!r}")
        if not self.logit_scale_max > 0:
            raise ValueError(f"logit_scale_max must be > 0, got {self.logit_scale_max!r}")
        if not self.initializer_factor > 0:
            raise ValueError(f"initializer_factor must be > 0, got {self.initializer_factor!r}")
        if isinstance(self.text_length_buckets, bool) or not isinstance(self.text_length_buckets, int) \
                or self.text_length_buckets < 1:
            raise ValueError(f"text_length_buckets must be an integer >= 1, got {self.text_length_buckets!r}")
        for key in dict.fromkeys(get_modality(name).config_key for name in self.modalities):
            if tower_hidden_size(getattr(self, key)) is None:
                raise ValueError(
                    f"{key} ({type(getattr(self, key)).__name__}) has no `hidden_size` (nor `hidden_sizes`); "
                    "use a transformers encoder config such as BERT, XLM-R, ViT, ResNet or CLIP vision/text"
                )
        self.validate_hash_fields()
        if self.objectives is not None:
            self.objectives = [dict(spec) for spec in self.objectives]
            check_objective_specs(self.objectives, self.modalities)

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
