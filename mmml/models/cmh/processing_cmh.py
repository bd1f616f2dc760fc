"""Processor of the cross-modal hashing family: image processor + tokenizer, optionally TF-IDF."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from transformers import BatchFeature, ProcessorMixin

from ...modeling.remote_code import RemoteCodeProcessorMixin
from ...processing.tfidf import TfidfFeaturizer


class CrossModalHashingProcessor(RemoteCodeProcessorMixin, ProcessorMixin):
    """`processor(text=..., images=..., return_tensors="pt")` for `CrossModalHashingModel`.

    Without `tfidf` it tokenizes like `MCLIPProcessor` (`input_ids`, `attention_mask`). With a
    fitted `TfidfFeaturizer` (CMHR-DRN) texts become `text_features`, TF-IDF rows over the
    tokenizer's tokens. The featurizer is saved in `processor_config.json`, so
    `AutoProcessor.from_pretrained` restores it. Build one for a new corpus with
    `with_tfidf_fitted_on(texts, max_features=...)`.
    """

    def __init__(self, image_processor=None, tokenizer=None, tfidf: TfidfFeaturizer | dict | None = None, **kwargs):
        super().__init__(image_processor, tokenizer, **kwargs)
        self.tfidf = TfidfFeaturizer.from_dict(tfidf) if isinstance(tfidf, dict) else tfidf

    def with_tfidf_fitted_on(self, texts: Sequence[str], max_features: int | None = None,
                             min_df: int = 1) -> "CrossModalHashingProcessor":
        """A copy of this processor with a TF-IDF featurizer fitted on `texts` (the training corpus)."""
        tfidf = TfidfFeaturizer.fit((self.tokenizer.tokenize(t) for t in texts), max_features, min_df)
        return type(self)(self.image_processor, self.tokenizer, tfidf)

    def to_dict(self) -> dict[str, Any]:
        output = super().to_dict()
        output["tfidf"] = self.tfidf.to_dict() if self.tfidf is not None else None
        return output

    def __call__(self, images=None, text=None, **kwargs):
        if self.tfidf is None:
            if text is not None:
                kwargs.setdefault("padding", True)
                kwargs.setdefault("truncation", True)
            return super().__call__(images=images, text=text, **kwargs)
        if images is None and text is None:
            raise ValueError("pass `images`, `text` or both")
        return_tensors = kwargs.get("return_tensors")
        data = {}
        if images is not None:
            data.update(self.image_processor(images=images, return_tensors=return_tensors))
        if text is not None:
            texts = [text] if isinstance(text, str) else list(text)
            data["text_features"] = self.tfidf.transform([self.tokenizer.tokenize(t) for t in texts])
        return BatchFeature(data, tensor_type=return_tensors)
