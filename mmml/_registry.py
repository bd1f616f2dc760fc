"""The one explicit list of mmml types registered with transformers' Auto classes."""

from __future__ import annotations

from transformers import AutoConfig, AutoModel, AutoModelForImageClassification, AutoProcessor

from .modeling.tfidf_tower import TfidfEncoderConfig, TfidfEncoderModel
from .models.cmh import CrossModalHashingConfig, CrossModalHashingModel, CrossModalHashingProcessor
from .models.divtr import DIVTRConfig, DIVTRModel, DIVTRProcessor
from .models.efficientnet_lite import (
    EfficientNetLiteConfig,
    EfficientNetLiteForImageClassification,
    EfficientNetLiteModel,
)
from .models.mclip import MCLIPConfig, MCLIPModel, MCLIPProcessor
from .models.mla import MLAConfig, MLAModel, MLAProcessor
from .models.vse import VSEConfig, VSEModel, VSEProcessor

# (config, model, processor) per model type.
AUTO_REGISTRY = [
    (MCLIPConfig, MCLIPModel, MCLIPProcessor),
    (MLAConfig, MLAModel, MLAProcessor),
    (CrossModalHashingConfig, CrossModalHashingModel, CrossModalHashingProcessor),
    (VSEConfig, VSEModel, VSEProcessor),
    (DIVTRConfig, DIVTRModel, DIVTRProcessor),
]
# (config, model) of towers that families build from sub-configs; they have no processor of their own.
TOWER_REGISTRY = [
    (TfidfEncoderConfig, TfidfEncoderModel),
    (EfficientNetLiteConfig, EfficientNetLiteModel),
]
# (config, model) of towers' task heads (a converted checkpoint keeps its ImageNet classifier).
IMAGE_CLASSIFICATION_REGISTRY = [
    (EfficientNetLiteConfig, EfficientNetLiteForImageClassification),
]


def register_auto_classes() -> None:
    """Register every mmml family and tower with transformers' Auto classes (idempotent)."""
    for config_class, model_class, processor_class in AUTO_REGISTRY:
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
        AutoModel.register(config_class, model_class, exist_ok=True)
        AutoProcessor.register(config_class, processor_class, exist_ok=True)
    for config_class, model_class in TOWER_REGISTRY:
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
        AutoModel.register(config_class, model_class, exist_ok=True)
    for config_class, model_class in IMAGE_CLASSIFICATION_REGISTRY:
        AutoModelForImageClassification.register(config_class, model_class, exist_ok=True)
