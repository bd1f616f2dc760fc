"""Processors and tokenizer helpers shared by the families."""

from .tfidf import TfidfFeaturizer
from .tokenization import sentencepiece_to_transformers, train_multilingual_tokenizer, train_sentencepiece

__all__ = ["TfidfFeaturizer", "sentencepiece_to_transformers", "train_multilingual_tokenizer", "train_sentencepiece"]
