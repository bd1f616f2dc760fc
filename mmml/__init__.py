"""mmml: multilingual, multimodal retrieval and pretraining models for the Hugging Face ecosystem.

Importing mmml registers every mmml config, model and processor with transformers' Auto classes.
"""

from ._registry import register_auto_classes
from .models.cmh import CrossModalHashingConfig, CrossModalHashingModel, CrossModalHashingProcessor
from .models.divtr import DIVTRConfig, DIVTRModel, DIVTROutput, DIVTRProcessor
from .models.efficientnet_lite import EfficientNetLiteConfig, EfficientNetLiteForImageClassification, EfficientNetLiteModel
from .models.mclip import MCLIPConfig, MCLIPModel, MCLIPProcessor
from .models.mla import MLAConfig, MLAModel, MLAProcessor
from .models.vse import VSEConfig, VSEModel, VSEOutput, VSEProcessor

__version__ = "0.1.0"

register_auto_classes()

__all__ = [
    "CrossModalHashingConfig",
    "CrossModalHashingModel",
    "CrossModalHashingProcessor",
    "DIVTRConfig",
    "DIVTRModel",
    "DIVTROutput",
    "DIVTRProcessor",
    "EfficientNetLiteConfig",
    "EfficientNetLiteForImageClassification",
    "EfficientNetLiteModel",
    "MCLIPConfig",
    "MCLIPModel",
    "MCLIPProcessor",
    "MLAConfig",
    "MLAModel",
    "MLAProcessor",
    "VSEConfig",
    "VSEModel",
    "VSEOutput",
    "VSEProcessor",
    "__version__",
]
