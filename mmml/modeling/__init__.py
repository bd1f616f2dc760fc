"""Parts shared by every mmml family: towers, pooling, outputs, dual-encoder base."""

from .configuration_dual_encoder import DualEncoderConfig
from .dual_encoder import DualEncoderModel
from .embedding_transfer import transfer_embeddings
from .language_adapters import LanguageAdapters
from .outputs import DualEncoderOutput
from .pooling import POOLING_STRATEGIES, pool_tower_output
from .text_encoder import TextEncoder
from .towers import build_tower, load_tower

__all__ = [
    "POOLING_STRATEGIES",
    "DualEncoderConfig",
    "DualEncoderModel",
    "DualEncoderOutput",
    "LanguageAdapters",
    "TextEncoder",
    "build_tower",
    "load_tower",
    "pool_tower_output",
    "transfer_embeddings",
]
