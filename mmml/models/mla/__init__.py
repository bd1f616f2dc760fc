from .acquirer_files import AcquirerMismatchError
from .configuration_mla import MLAConfig
from .modeling_mla import MLAModel, UnknownLanguageError
from .processing_mla import MLAProcessor

__all__ = ["AcquirerMismatchError", "MLAConfig", "MLAModel", "MLAProcessor", "UnknownLanguageError"]
