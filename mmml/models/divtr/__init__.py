from .configuration_divtr import DIVTRConfig
from .modeling_divtr import DIVTRModel, DIVTROutput, DIVTRTextOutput, DIVTRVideoOutput
from .processing_divtr import DIVTRProcessor

__all__ = ["DIVTRConfig", "DIVTRModel", "DIVTROutput", "DIVTRProcessor", "DIVTRTextOutput", "DIVTRVideoOutput"]
