"""Training a multilingual sentencepiece tokenizer and wrapping it as a transformers tokenizer."""

from __future__ import annotations

import io
import re
from collections.abc import Iterable

import sentencepiece as spm
from transformers import XLMRobertaTokenizer

# XLM-R's special-token layout, so the wrapped tokenizer behaves like XLM-R's.
_SPECIAL_IDS = {"bos_id": 0, "pad_id": 1, "eos_id": 2, "unk_id": 3}
# Marks a boundary for training only: sentencepiece never learns a piece across it, and encoding
# ignores it. Placed between two CJK ideographs it keeps Chinese pieces to one character.
_TRAINING_DELIMITER = "\u2063"
_BETWEEN_IDEOGRAPHS = re.compile(r"(?<=[\u3400-\u9fff\uf900-\ufaff])(?=[\u3400-\u9fff\uf900-\ufaff])")


def train_sentencepiece(
    texts: Iterable[str],
    vocab_size: int = 2000,
    model_type: str = "unigram",
    character_coverage: float = 1.0,
    seed_sentencepiece_size: int = 100_000,
    single_character_cjk: bool = True,
) -> spm.SentencePieceProcessor:
    """Train a sentencepiece model on `texts` (any languages and scripts) and return it loaded.

    No normalisation rule is applied (identity), so the transformers wrapper, which has no
    sentencepiece normaliser, tokenises exactly like the trained model. `vocab_size` is an upper
    bound: a small corpus yields fewer pieces. With `single_character_cjk`, Chinese / Japanese
    ideographs become one piece each instead of frequent multi-character runs (on the scene
    captions those runs glue colour, size and shape words together, and Chinese retrieval lagged
    far behind the other languages).
    """
    if model_type not in ("unigram", "bpe"):
        raise ValueError(f"model_type must be 'unigram' or 'bpe', got {model_type!r}")
    sentences = [t for t in texts if t and t.strip()]
    if single_character_cjk:
        sentences = [_BETWEEN_IDEOGRAPHS.sub(_TRAINING_DELIMITER, t) for t in sentences]
    if not sentences:
        raise ValueError("cannot train a tokenizer on an empty corpus")
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=buffer,
        vocab_size=vocab_size,
        model_type=model_type,
        character_coverage=character_coverage,
        normalization_rule_name="identity",
        user_defined_symbols=["<mask>"],
        hard_vocab_limit=False,
        seed_sentencepiece_size=seed_sentencepiece_size,
        num_threads=1,
        minloglevel=2,
        pretokenization_delimiter=_TRAINING_DELIMITER if single_character_cjk else "",
        **_SPECIAL_IDS,
    )
    return spm.SentencePieceProcessor(model_proto=buffer.getvalue())


def sentencepiece_to_transformers(
    processor: spm.SentencePieceProcessor, model_max_length: int = 64
) -> XLMRobertaTokenizer:
    """Wrap a trained sentencepiece model as a transformers (tokenizers-backed) XLM-R tokenizer."""
    vocab = [(processor.id_to_piece(i), processor.get_score(i)) for i in range(processor.get_piece_size())]
    return XLMRobertaTokenizer(vocab=vocab, model_max_length=model_max_length)


def train_multilingual_tokenizer(
    texts: Iterable[str], vocab_size: int = 2000, model_max_length: int = 64, model_type: str = "unigram"
) -> XLMRobertaTokenizer:
    """Train a sentencepiece tokenizer on a multilingual corpus, ready for `save_pretrained`."""
    return sentencepiece_to_transformers(train_sentencepiece(texts, vocab_size, model_type), model_max_length)
