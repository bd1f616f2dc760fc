from .configuration_cmh import PRESETS, CrossModalHashingConfig
from .modeling_cmh import CrossModalHashingModel
from .processing_cmh import CrossModalHashingProcessor

__all__ = ["PRESETS", "CrossModalHashingConfig", "CrossModalHashingModel", "CrossModalHashingProcessor"]
