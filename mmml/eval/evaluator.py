"""Run a dual encoder over an image-caption dataset and report retrieval metrics per language."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

from mmml.data import decode_image
from mmml.eval.retrieval import DEFAULT_CHUNK_SIZE, retrieval_metrics_from_embeddings

__all__ = ["RetrievalEvaluator"]

logger = logging.getLogger(__name__)

MEAN_KEY = "mean"


class RetrievalEvaluator:
    """Image-text retrieval evaluation of a CLIP-like model, per caption language.

    The dataset is a ``datasets.Dataset`` or any sequence of dict rows with an ``image``
    (anything ``mmml.data.decode_image`` reads: PIL image, path, bytes or a
    ``{"bytes", "path"}`` dict) and ``captions`` (language -> list of str). Every image
    is a gallery item for every language; a row whose caption list for a language is
    missing, ``None`` or empty adds no text (and no image query) for that language.

    The model must provide ``get_image_features(pixel_values=...)`` and
    ``get_text_features(input_ids=..., attention_mask=...)`` returning outputs whose
    ``pooler_output`` is the projected embedding (as transformers' ``CLIPModel``);
    embeddings are L2-normalised here and scored by cosine similarity.

    ``evaluate`` returns ``{language: metrics, ..., "mean": metrics}`` where each
    ``metrics`` dict holds the keys of ``RETRIEVAL_METRIC_KEYS`` (see
    ``mmml.eval.retrieval`` for the protocol and tie rule) plus ``num_images`` (gallery
    size, the same for every language) and ``num_texts`` (captions of that language).
    ``"mean"`` is the arithmetic mean over languages of every one of these keys, so its
    ``num_texts`` is the mean caption count per language.
    """

    def __init__(
        self,
        processor: Any,
        languages: Sequence[str] | None = None,
        batch_size: int = 256,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        route_by_language: bool = False,
    ) -> None:
        """``languages=None`` evaluates every language that has at least one caption.

        ``route_by_language``: pass each caption's language code to the processor and to
        ``get_text_features`` (``language=``), for models with per-language parts (MLA).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if languages is not None:
            languages = list(languages)
            if not languages:
                raise ValueError("languages must be None or non-empty")
            if MEAN_KEY in languages:
                raise ValueError(f"{MEAN_KEY!r} is reserved for the average and cannot be a language")
        self.processor = processor
        self.languages = languages
        self.batch_size = batch_size
        self.chunk_size = chunk_size
        self.route_by_language = route_by_language

    def evaluate(self, model: torch.nn.Module, dataset: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
        """Embed every image once and each language's captions, then score retrieval."""
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                return self._evaluate(model, dataset)
        finally:
            model.train(was_training)

    def _evaluate(self, model: torch.nn.Module, dataset: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
        device, dtype = _device_and_dtype(model)
        image_embeds, captions = self._embed_images(model, dataset, device, dtype)
        num_images = image_embeds.shape[0]
        if num_images == 0:
            raise ValueError("the dataset is empty")
        languages = self.languages or sorted({lang for caps in captions for lang, texts in caps.items() if texts})
        if not languages:
            raise ValueError("the dataset has no captions")

        results: dict[str, dict[str, float]] = {}
        for lang in languages:
            texts: list[str] = []
            text_to_image: list[int] = []
            for image_idx, caps in enumerate(captions):
                lang_texts = caps.get(lang) or []
                if isinstance(lang_texts, str):
                    raise TypeError(f"captions[{lang!r}] of row {image_idx} must be a list of str, got a str")
                texts.extend(lang_texts)
                text_to_image.extend([image_idx] * len(lang_texts))
            if not texts:
                raise ValueError(f"no captions in language {lang!r}")
            text_embeds = self._embed_texts(model, texts, device, lang)
            metrics: dict[str, float] = retrieval_metrics_from_embeddings(
                image_embeds, text_embeds, text_to_image, chunk_size=self.chunk_size
            )
            metrics["num_images"] = num_images
            metrics["num_texts"] = len(texts)
            results[lang] = metrics
            logger.info("retrieval %s: %s", lang, metrics)
        results[MEAN_KEY] = {
            key: sum(results[lang][key] for lang in languages) / len(languages) for key in results[languages[0]]
        }
        return results

    def _embed_images(
        self, model: torch.nn.Module, dataset: Iterable[Mapping[str, Any]], device: torch.device, dtype: torch.dtype
    ) -> tuple[torch.Tensor, list[Mapping[str, Sequence[str]]]]:
        """One pass over the dataset: normalised image embeddings and each row's captions."""
        embeds: list[torch.Tensor] = []
        captions: list[Mapping[str, Sequence[str]]] = []
        batch: list[Image.Image] = []

        def flush() -> None:
            pixel_values = self.processor(images=batch, return_tensors="pt")["pixel_values"]
            if pixel_values.is_floating_point():
                pixel_values = pixel_values.to(dtype)
            out = model.get_image_features(pixel_values=pixel_values.to(device))
            embeds.append(F.normalize(out.pooler_output.float(), dim=-1))
            batch.clear()

        for row in dataset:
            batch.append(decode_image(row["image"]))
            captions.append(row.get("captions") or {})
            if len(batch) == self.batch_size:
                flush()
        if batch:
            flush()
        if not embeds:
            return torch.empty(0, 0, device=device), captions
        return torch.cat(embeds), captions

    def _embed_texts(self, model: torch.nn.Module, texts: Sequence[str], device: torch.device, lang: str) -> torch.Tensor:
        embeds: list[torch.Tensor] = []
        routing = {"language": lang} if self.route_by_language else {}
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            inputs = self.processor(text=batch, return_tensors="pt", padding=True, truncation=True, **routing)
            out = model.get_text_features(
                input_ids=inputs["input_ids"].to(device), attention_mask=inputs["attention_mask"].to(device), **routing
            )
            embeds.append(F.normalize(out.pooler_output.float(), dim=-1))
        return torch.cat(embeds)


def _device_and_dtype(model: torch.nn.Module) -> tuple[torch.device, torch.dtype]:
    """Device that receives the inputs and floating dtype of the model's first parameter."""
    param = next(model.parameters(), None)
    if param is None:
        return torch.device("cpu"), torch.float32
    dtype = param.dtype if param.is_floating_point() else torch.float32
    return param.device, dtype
