from .configuration_vse import VSEConfig
from .modeling_vse import VSEModel, VSEOutput
from .processing_vse import VSEProcessor

__all__ = ["VSEConfig", "VSEModel", "VSEOutput", "VSEProcessor"]
