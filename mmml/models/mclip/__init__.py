from .configuration_mclip import MCLIPConfig
from .modeling_mclip import MCLIPModel
from .processing_mclip import MCLIPProcessor

__all__ = ["MCLIPConfig", "MCLIPModel", "MCLIPProcessor"]
