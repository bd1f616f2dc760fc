"""The image-text name of the multi-encoder base (kept for code written against it)."""

from .multi_encoder import MultiEncoderModel

DualEncoderModel = MultiEncoderModel

__all__ = ["DualEncoderModel"]
