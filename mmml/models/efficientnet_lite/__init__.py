"""EfficientNet-Lite: a pretrained convolutional vision tower any family can name in `vision_config`."""

from .configuration_efficientnet_lite import EFFICIENTNET_LITE_VARIANTS, EfficientNetLiteConfig
from .modeling_efficientnet_lite import (
    EfficientNetLiteForImageClassification,
    EfficientNetLiteModel,
    EfficientNetLiteOutput,
)

__all__ = [
    "EFFICIENTNET_LITE_VARIANTS",
    "EfficientNetLiteConfig",
    "EfficientNetLiteForImageClassification",
    "EfficientNetLiteModel",
    "EfficientNetLiteOutput",
]
