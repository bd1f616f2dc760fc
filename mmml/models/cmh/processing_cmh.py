"""Processor of the cross-modal hashing family: image processor + tokenizer, optionally TF-IDF."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ...processing.multimodal import MultimodalProcessor
from ...processing.tfidf import TfidfFeaturizer

# The `model_type` of the TF-IDF text tower: a model config whose text tower is this needs fitted TF-IDF features.
TFIDF_TEXT_MODEL_TYPE = "tfidf_encoder"


class CrossModalHashingProcessor(MultimodalProcessor):
    """`processor(text=..., images=..., return_tensors="pt")` for `CrossModalHashingModel`.

    Without `tfidf` it tokenizes like `MCLIPProcessor` (`input_ids`, `attention_mask`). With a
    fitted `TfidfFeaturizer` (CMHR-DRN) texts become `text_features`, TF-IDF rows over the
    tokenizer's tokens. The featurizer is saved in `processor_config.json`, so
    `AutoProcessor.from_pretrained` restores it. Build one for a new corpus with
    `with_tfidf_fitted_on(texts, max_features=...)`, or generically with
    `adapted_to_corpus(texts, model_config, max_features=...)`.
    """

    def __init__(self, image_processor=None, tokenizer=None, tfidf: TfidfFeaturizer | dict | None = None, **kwargs):
        super().__init__(image_processor=image_processor, tokenizer=tokenizer, **kwargs)
        self.tfidf = TfidfFeaturizer.from_dict(tfidf) if isinstance(tfidf, dict) else tfidf
        if self.tfidf is not None and self.tokenizer is None:
            raise ValueError("a TF-IDF featurizer counts the tokenizer's tokens: pass a tokenizer too")
        self._tfidf_column_of_id: np.ndarray | None = None

    @property
    def model_input_names(self) -> list[str]:
        names = super().model_input_names
        if self.tfidf is None:
            return names
        text_names = set(self.tokenizer.model_input_names)
        return [name for name in names if name not in text_names] + ["text_features"]

    def adapted_to_corpus(self, texts: Sequence[str], model_config=None, max_features: int | None = None,
                          min_df: int = 1, **kwargs) -> "CrossModalHashingProcessor":
        """With a TF-IDF text tower (`model_config.text_config.model_type == "tfidf_encoder"`): a copy
        fitted on `texts` (`with_tfidf_fitted_on`); otherwise this processor."""
        text_config = getattr(model_config, "text_config", None)
        if isinstance(text_config, dict):
            model_type = text_config.get("model_type")
        else:
            model_type = getattr(text_config, "model_type", None)
        if model_type == TFIDF_TEXT_MODEL_TYPE:
            return self.with_tfidf_fitted_on(texts, max_features=max_features, min_df=min_df)
        return self

    def with_tfidf_fitted_on(self, texts: Sequence[str], max_features: int | None = None,
                             min_df: int = 1) -> "CrossModalHashingProcessor":
        """A copy of this processor with a TF-IDF featurizer fitted on `texts` (the training corpus)."""
        tfidf = TfidfFeaturizer.fit(self.text_tokens(texts), max_features, min_df)
        return type(self)(image_processor=self.image_processor, tokenizer=self.tokenizer, tfidf=tfidf)

    def text_tokens(self, texts: Sequence[str]) -> list[list[str]]:
        """The tokens TF-IDF counts: the tokenizer's pieces of each text (characters it lacks are `unk`)."""
        ids = self.tokenizer(list(texts), add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
        return [self.tokenizer.convert_ids_to_tokens(row) for row in ids]

    def to_dict(self) -> dict[str, Any]:
        output = super().to_dict()
        output["tfidf"] = self.tfidf.to_dict() if self.tfidf is not None else None
        output.pop("_tfidf_column_of_id", None)
        return output

    def text_features(self, texts: Sequence[str]) -> torch.Tensor:
        """TF-IDF rows of `texts` over the tokenizer's tokens (no special tokens, no truncation).

        Equal to `tfidf.transform(self.text_tokens(texts))`, but counts token ids
        with the batched (Rust) tokenizer and a token-id -> column table, ~10x faster.
        """
        if self._tfidf_column_of_id is None:
            tokens = self.tokenizer.convert_ids_to_tokens(list(range(len(self.tokenizer))))
            self._tfidf_column_of_id = np.asarray(self.tfidf.columns_of(tokens), dtype=np.int64)
        ids = self.tokenizer(list(texts), add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
        lengths = np.fromiter((len(row) for row in ids), dtype=np.int64, count=len(ids))
        flat = np.fromiter((token for row in ids for token in row), dtype=np.int64, count=int(lengths.sum()))
        rows = np.repeat(np.arange(len(ids)), lengths)
        columns = self._tfidf_column_of_id[flat]
        known = columns >= 0
        counts = np.zeros((len(ids), self.tfidf.vocab_size), dtype=np.float32)
        np.add.at(counts, (rows[known], columns[known]), 1.0)
        return self.tfidf.weight_counts(torch.from_numpy(counts))

    def _encode_text(self, text, **kwargs) -> dict[str, Any]:
        if self.tfidf is None:
            return super()._encode_text(text, **kwargs)
        texts = [text] if isinstance(text, str) else list(text)
        return {"text_features": self.text_features(texts)}
