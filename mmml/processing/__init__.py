"""Processors and tokenizer helpers shared by the families."""

from .tokenization import sentencepiece_to_transformers, train_multilingual_tokenizer, train_sentencepiece

__all__ = ["sentencepiece_to_transformers", "train_multilingual_tokenizer", "train_sentencepiece"]
