"""Configuration of the cross-modal hashing family and its presets (ViT2CMH, FGCMH, CMHR-DRN)."""

from __future__ import annotations

import copy
from typing import Any

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from ...modeling.configuration_multi_encoder import MultiEncoderConfig

# Architecture of each preset; sizes come from the towers' defaults unless overridden.
PRESETS: dict[str, dict[str, Any]] = {
    # ViT image tower + BERT text tower, each ending in a hash layer.
    "vit2cmh": {
        "vision_config": {"model_type": "vit"},
        "text_config": {"model_type": "bert"},
        "token_fusion_config": None,
        # Mean over patches / tokens: a freshly initialised ViT's CLS state barely differs between
        # images, and the hashing loss then settles on one code per modality.
        "vision_pooling": "mean",
        "text_pooling": "mean",
    },
    # Token-level image and text features, refined and fused by a transformer encoder into one
    # fine-grained global feature per item, then hashed. Trained on image-text matching pairs.
    "fgcmh": {
        "vision_config": {"model_type": "vit"},
        "text_config": {"model_type": "bert"},
        "token_fusion_config": {"model_type": "bert", "num_hidden_layers": 2, "vocab_size": 2},
        "vision_pooling": "mean",  # unused: the fusion encoder makes the global feature
        "text_pooling": "mean",
    },
    # ResNet image features and TF-IDF text features through fully connected layers into Hamming space.
    "cmhr-drn": {
        "vision_config": {"model_type": "resnet"},
        "text_config": {"model_type": "tfidf_encoder"},
        "token_fusion_config": None,
        "vision_pooling": "pooler",
        "text_pooling": "pooler",
    },
}


class CrossModalHashingConfig(MultiEncoderConfig):
    """Config of `CrossModalHashingModel`: a dual encoder with hash heads, optional token fusion.

    Besides the `MultiEncoderConfig` fields (towers, `projection_dim`, pooling, `hash_bits` - 64 by
    default here - `hash_scale` and the hashing loss weights):

    Args:
        token_fusion_config: config of a transformer encoder (BERT layers, run on `inputs_embeds`) that
            fuses each item's refined token features, prefixed with a learned hash token, into one
            global feature (the mean of the fused states; FGCMH); None projects the pooled tower
            output directly.
        contrastive_weight: weight of a CLIP contrastive loss on the projected embeddings added to
            the hashing loss (0: hashing loss only, as in the papers).
        preset: the preset this config was made from (informational).

    Build one with `CrossModalHashingConfig.from_preset("vit2cmh" | "fgcmh" | "cmhr-drn", **overrides)`;
    dict overrides of `vision_config` / `text_config` / `token_fusion_config` update the preset's dicts.
    """

    model_type = "cross_modal_hashing"
    sub_configs_defaults = {
        **MultiEncoderConfig.sub_configs_defaults,
        "token_fusion_config": SubConfigSpec(config_class=AutoConfig, model_type="bert", optional=True),
    }

    token_fusion_config: PreTrainedConfig | dict | None = None
    hash_bits: int | None = 64
    # A strong bit-balance term and a light quantization term: with the DualEncoderConfig defaults
    # (0.1 / 0.01) tiny towers trained from scratch collapse to one code per modality on the scenes.
    hash_quantization_weight: float = 0.01
    hash_balance_weight: float = 1.0
    contrastive_weight: float = 0.0
    preset: str | None = None

    def validate_dual_encoder_fields(self) -> None:
        super().validate_dual_encoder_fields()
        if self.hash_bits is None:
            raise ValueError("hash_bits must be set for a cross-modal hashing model (e.g. 16, 32, 64, 128)")
        if not self.contrastive_weight >= 0:
            raise ValueError(f"contrastive_weight must be >= 0, got {self.contrastive_weight!r}")
        if self.preset is not None and self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)} or None, got {self.preset!r}")
        if self.token_fusion_config is not None and not hasattr(self.token_fusion_config, "hidden_size"):
            raise ValueError("token_fusion_config must be a transformer encoder config with `hidden_size` (e.g. BERT)")

    @classmethod
    def from_preset(cls, preset: str, **overrides: Any) -> "CrossModalHashingConfig":
        """The config of `preset` ("vit2cmh", "fgcmh", "cmhr-drn") with `overrides` applied."""
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; valid: {sorted(PRESETS)}")
        values = copy.deepcopy(PRESETS[preset])
        for key, value in overrides.items():
            if key.endswith("_config") and isinstance(value, dict) and isinstance(values.get(key), dict):
                values[key].update(value)
            else:
                values[key] = value
        return cls(preset=preset, **values)
