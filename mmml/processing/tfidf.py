"""A TF-IDF text featurizer fitted on a training corpus, serialisable to JSON (no scikit-learn).

It works on token lists (the processor feeds it its tokenizer's tokens), so its vocabulary is a
fitted subset of the tokenizer's pieces. Weights follow scikit-learn's defaults: raw term
counts times a smoothed idf, `ln((1 + n) / (1 + df)) + 1`, and each row L2-normalised.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import torch


class TfidfFeaturizer:
    """`fit(token_lists)` learns a vocabulary and idf weights; `transform` makes `[n, vocab]` float rows.

    Args:
        vocabulary: token -> column (set by `fit`, or restored with `from_dict`).
        idf: one idf weight per column.
    """

    def __init__(self, vocabulary: dict[str, int] | None = None, idf: Sequence[float] | None = None):
        self.vocabulary = dict(vocabulary or {})
        self.idf = [float(x) for x in (idf or [])]
        if len(self.vocabulary) != len(self.idf) or sorted(self.vocabulary.values()) != list(range(len(self.idf))):
            raise ValueError(
                f"vocabulary ({len(self.vocabulary)} tokens) must map to columns 0..{len(self.idf) - 1}, one idf each"
            )

    @property
    def vocab_size(self) -> int:
        return len(self.idf)

    @classmethod
    def fit(cls, token_lists: Iterable[Sequence[str]], max_features: int | None = None, min_df: int = 1) -> "TfidfFeaturizer":
        """Vocabulary: tokens in at least `min_df` documents, the `max_features` most frequent by document count."""
        document_frequency: Counter[str] = Counter()
        num_documents = 0
        for tokens in token_lists:
            num_documents += 1
            document_frequency.update(set(tokens))
        if num_documents == 0:
            raise ValueError("cannot fit TF-IDF on an empty corpus")
        kept = [(token, df) for token, df in document_frequency.items() if df >= min_df]
        kept.sort(key=lambda item: (-item[1], item[0]))  # by document frequency, ties alphabetically
        if max_features is not None:
            kept = kept[:max_features]
        if not kept:
            raise ValueError(f"no token occurs in at least min_df={min_df} documents")
        kept.sort(key=lambda item: item[0])
        vocabulary = {token: column for column, (token, _) in enumerate(kept)}
        idf = [math.log((1 + num_documents) / (1 + df)) + 1.0 for _, df in kept]
        return cls(vocabulary, idf)

    def transform(self, token_lists: Sequence[Sequence[str]]) -> torch.Tensor:
        """`[n, vocab_size]` float32 TF-IDF rows (L2-normalised; all-zero for a text with no known token)."""
        self._require_fitted()
        counts = torch.zeros(len(token_lists), self.vocab_size)
        for row, tokens in enumerate(token_lists):
            known = Counter(t for t in tokens if t in self.vocabulary)
            if known:
                columns = torch.tensor([self.vocabulary[t] for t in known])
                counts[row, columns] = torch.tensor(list(known.values()), dtype=torch.float32)
        return self.weight_counts(counts)

    def weight_counts(self, counts: torch.Tensor) -> torch.Tensor:
        """TF-IDF rows from `[n, vocab_size]` term counts: counts * idf, L2-normalised."""
        self._require_fitted()
        return torch.nn.functional.normalize(counts.float() * torch.tensor(self.idf), dim=1)

    def columns_of(self, tokens: Sequence[str]) -> list[int]:
        """The column of each token, -1 for tokens outside the vocabulary."""
        return [self.vocabulary.get(token, -1) for token in tokens]

    def _require_fitted(self) -> None:
        if not self.vocabulary:
            raise ValueError("this TfidfFeaturizer is not fitted: call TfidfFeaturizer.fit(corpus_tokens)")

    def to_dict(self) -> dict[str, Any]:
        return {"vocabulary": self.vocabulary, "idf": self.idf}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TfidfFeaturizer":
        return cls(data["vocabulary"], data["idf"])
