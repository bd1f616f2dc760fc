"""Parts shared by every mmml family: modalities, towers, pooling, objectives, outputs, the multi-encoder base."""

from .configuration_dual_encoder import DualEncoderConfig
from .configuration_multi_encoder import MultiEncoderConfig
from .dual_encoder import DualEncoderModel
from .embedding_transfer import retokenize_text_tower, transfer_embeddings
from .language_adapters import LanguageAdapters
from .hashing import HashHead, binarize, hash_scale_schedule, pack_codes, unpack_codes
from .modalities import Modality, get_modality, register_modality, registered_modalities
from .multi_encoder import MultiEncoderModel
from .objectives import (
    ContrastiveObjective,
    DistillationObjective,
    HashingObjective,
    Objective,
    ObjectiveContext,
    register_objective,
)
from .outputs import DualEncoderOutput, MultiEncoderOutput
from .pooling import POOLING_STRATEGIES, pool_tower_output
from .text_encoder import TextEncoder
from .towers import build_tower, load_tower

__all__ = [
    "POOLING_STRATEGIES",
    "ContrastiveObjective",
    "DistillationObjective",
    "DualEncoderConfig",
    "DualEncoderModel",
    "DualEncoderOutput",
    "HashHead",
    "HashingObjective",
    "LanguageAdapters",
    "Modality",
    "MultiEncoderConfig",
    "MultiEncoderModel",
    "MultiEncoderOutput",
    "Objective",
    "ObjectiveContext",
    "TextEncoder",
    "binarize",
    "build_tower",
    "get_modality",
    "hash_scale_schedule",
    "load_tower",
    "pack_codes",
    "pool_tower_output",
    "register_modality",
    "register_objective",
    "registered_modalities",
    "retokenize_text_tower",
    "transfer_embeddings",
    "unpack_codes",
]
