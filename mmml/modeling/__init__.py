"""Parts shared by every mmml family: towers, pooling, outputs, dual-encoder base."""

from .configuration_dual_encoder import DualEncoderConfig
from .dual_encoder import DualEncoderModel
from .embedding_transfer import transfer_embeddings
from .language_adapters import LanguageAdapters
from .encoding import EncodedItems, encode_images, encode_texts
from .hashing import HashHead, binarize, hash_scale_schedule, pack_codes, unpack_codes
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
    "EncodedItems",
    "HashHead",
    "binarize",
    "hash_scale_schedule",
    "pack_codes",
    "unpack_codes",
    "build_tower",
    "encode_images",
    "encode_texts",
    "load_tower",
    "pool_tower_output",
    "transfer_embeddings",
]
