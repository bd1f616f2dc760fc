"""The image-text name of the multi-encoder config (kept for code written against it)."""

from .configuration_multi_encoder import MultiEncoderConfig

DualEncoderConfig = MultiEncoderConfig

__all__ = ["DualEncoderConfig"]
