"""Processors the families compose (image / video / audio / text behind one call) and tokenizer helpers."""

from .image import pixel_values
from .multimodal import MultimodalProcessor
from .tfidf import TfidfFeaturizer
from .tokenization import sentencepiece_to_transformers, train_multilingual_tokenizer, train_sentencepiece
from .video import FrameProcessor

__all__ = [
    "FrameProcessor",
    "MultimodalProcessor",
    "TfidfFeaturizer",
    "pixel_values",
    "sentencepiece_to_transformers",
    "train_multilingual_tokenizer",
    "train_sentencepiece",
]
