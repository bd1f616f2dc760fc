"""Run an mmml model over a captioned image (or video / audio) dataset and report retrieval metrics per language."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from mmml.data.collate import MEDIA_DECODERS, MediaDecoder, evaluation_media_decoder
from mmml.eval.retrieval import DEFAULT_CHUNK_SIZE, retrieval_metrics_from_embeddings, two_stage_retrieval_metrics

__all__ = ["DEFAULT_RERANK_TOP_K", "RetrievalEvaluator"]

logger = logging.getLogger(__name__)

MEAN_KEY = "mean"
# Dense candidates re-ranked per query by a model whose `has_pairwise_scorer` is True.
DEFAULT_RERANK_TOP_K = 16
AUTO = "auto"


class RetrievalEvaluator:
    """Text-to-gallery retrieval evaluation of a CLIP-like model, per caption language.

    The gallery is images by default; ``gallery_modality="video"`` (or ``"audio"``) evaluates
    that modality instead: its column (``video``) is decoded with the decoder registered in
    ``mmml.data.collate`` (or ``media_decoder``), processed and embedded with
    ``get_<modality>_features``, and the metric keys say so (``t2v_r1``, ``v2t_medr``,
    ``num_videos``, ...).

    The dataset is a ``datasets.Dataset`` or any sequence of dict rows with an ``image``
    (anything ``mmml.data.decode_image`` reads: PIL image, path, bytes or a
    ``{"bytes", "path"}`` dict) and ``captions`` (language -> list of str). Every image
    is a gallery item for every language; a row whose caption list for a language is
    missing, ``None`` or empty adds no text (and no image query) for that language.

    The model must provide ``get_image_features(pixel_values=...)`` and
    ``get_text_features(input_ids=..., attention_mask=...)`` returning outputs whose
    ``pooler_output`` is the projected embedding (as transformers' ``CLIPModel``);
    embeddings are L2-normalised here and scored by cosine similarity.

    Two-stage mode (ALBEF/BLIP): after the dense (cosine) ranking, each query's top
    ``rerank_top_k`` candidates are re-scored by the model's pairwise scorer
    ``model.score_pairs(query, gallery, query_modality, gallery_modality)``, fed with the
    per-item tensors of ``model.scoring_inputs(modality, features, inputs)``; models
    without these hooks get the defaults (``{"embeds": normalised pooler_output}`` and
    ``scaled_logit_scale() * cosine``, the scale being 1 for models without
    ``scaled_logit_scale``). See ``mmml.eval.retrieval.two_stage_retrieval_metrics`` for
    the ranks: a relevant item inside the dense top k gets its pessimistic rank among the
    k pairwise scores, otherwise the query keeps its dense rank (> k).

    Memory: the dense stage holds at most ``chunk_size`` scores at a time (in two-stage
    mode plus an int64 key per score and transient copies, about 5x that block) and
    ``[num_queries, k]`` candidate indices. For a
    model with ``has_pairwise_scorer`` the whole output of ``scoring_inputs`` of every
    image, and of every caption of the language being scored, is kept on the CPU in the
    model's dtype, one entry per encoder batch (text token tensors padded only to their
    batch's longest caption); each ``score_pairs`` call gets at most ``rerank_batch_size``
    pairs, gathered and zero-padded to the longest stored row of each tensor (so a pair's
    inputs do not depend on the other pairs of its call), and moved to the model's device.
    Models without a pairwise scorer store nothing beyond the dense embeddings.

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
        rerank_top_k: int | str | None = AUTO,
        rerank_batch_size: int | None = None,
        gallery_modality: str = "image",
        media_decoder: MediaDecoder | None = None,
    ) -> None:
        """``languages=None`` evaluates every language that has at least one caption.

        ``route_by_language``: pass each caption's language code to the processor and to
        ``get_text_features`` (``language=``), for models with per-language parts (MLA).

        ``rerank_top_k``: ``"auto"`` re-ranks the dense top ``DEFAULT_RERANK_TOP_K`` with
        the model's pairwise scorer when ``model.has_pairwise_scorer`` is True and ranks
        densely otherwise; an int forces the two-stage mode with that many candidates,
        even with the default (cosine) scorer; ``None`` ranks densely only (for a model
        with a pairwise scorer: its dual-encoder scores alone).
        ``rerank_batch_size``: most (query, candidate) pairs per ``score_pairs`` call;
        ``None`` uses ``batch_size``.
        ``gallery_modality``: what the captions retrieve ("image", "video", "audio"); the rows'
        column of that name is decoded with ``media_decoder`` (default: the registered decoder).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if rerank_top_k != AUTO and rerank_top_k is not None:
            if isinstance(rerank_top_k, bool) or not isinstance(rerank_top_k, int) or rerank_top_k < 1:
                raise ValueError(f"rerank_top_k must be 'auto', None or an int >= 1, got {rerank_top_k!r}")
        if rerank_batch_size is not None and rerank_batch_size < 1:
            raise ValueError(f"rerank_batch_size must be >= 1, got {rerank_batch_size}")
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
        self.rerank_top_k = rerank_top_k
        self.rerank_batch_size = rerank_batch_size or batch_size
        if gallery_modality == "text":
            raise ValueError("gallery_modality must be a non-text modality (image, video, audio); captions are the queries")
        decoder = media_decoder or evaluation_media_decoder(gallery_modality)  # deterministic (uniform clips)
        if decoder is None:
            raise ValueError(f"no media decoder is registered for {gallery_modality!r} (registered: "
                             f"{sorted(MEDIA_DECODERS)}); pass media_decoder= or register one in mmml.data.collate")
        self.gallery_modality = gallery_modality
        self.media_decoder = decoder

    def top_k_for(self, model: torch.nn.Module) -> int | None:
        """Dense candidates re-ranked per query for this model; None: dense ranking only."""
        if self.rerank_top_k == AUTO:
            return DEFAULT_RERANK_TOP_K if _has_pairwise_scorer(model) else None
        return self.rerank_top_k

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
        top_k = self.top_k_for(model)
        keep_inputs = top_k is not None and _has_pairwise_scorer(model)
        image_store = _ScoringStore() if keep_inputs else None
        image_embeds, captions = self._embed_images(model, dataset, device, dtype, image_store)
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
            text_store = _ScoringStore() if keep_inputs else None
            text_embeds = self._embed_texts(model, texts, device, lang, text_store)
            if top_k is None:
                metrics: dict[str, float] = retrieval_metrics_from_embeddings(
                    image_embeds, text_embeds, text_to_image, chunk_size=self.chunk_size
                )
            else:
                images = image_store or _ScoringStore.of_embeds(image_embeds)
                texts_inputs = text_store or _ScoringStore.of_embeds(text_embeds)
                metrics = two_stage_retrieval_metrics(
                    image_embeds,
                    text_embeds,
                    text_to_image,
                    top_k=top_k,
                    score_pairs=_pair_scorer(model, images, texts_inputs, device, self.gallery_modality),
                    pair_batch_size=self.rerank_batch_size,
                    chunk_size=self.chunk_size,
                )
                del text_store, texts_inputs
            metrics["num_images"] = num_images
            metrics["num_texts"] = len(texts)
            metrics = _named_for(self.gallery_modality, metrics)
            results[lang] = metrics
            logger.info("retrieval %s: %s", lang, metrics)
        results[MEAN_KEY] = {
            key: sum(results[lang][key] for lang in languages) / len(languages) for key in results[languages[0]]
        }
        return results

    def _embed_images(
        self,
        model: torch.nn.Module,
        dataset: Iterable[Mapping[str, Any]],
        device: torch.device,
        dtype: torch.dtype,
        store: _ScoringStore | None = None,
    ) -> tuple[torch.Tensor, list[Mapping[str, Sequence[str]]]]:
        """One pass over the dataset: normalised image embeddings and each row's captions.

        With a ``store``, also keeps every image's ``scoring_inputs`` in it.
        """
        embeds: list[torch.Tensor] = []
        captions: list[Mapping[str, Sequence[str]]] = []
        batch: list[Any] = []
        modality = self.gallery_modality

        def flush() -> None:
            encoded = self.processor(**{self.media_decoder.processor_argument: batch}, return_tensors="pt")
            inputs = {}
            for name, value in encoded.items():
                value = value.to(dtype) if value.is_floating_point() else value
                inputs[name] = value.to(device)
            out = _gallery_features(model, modality, inputs)
            embeds.append(F.normalize(out.pooler_output.float(), dim=-1))
            if store is not None:
                store.append(_scoring_inputs(model, modality, out, inputs), len(batch))
            batch.clear()

        for row in dataset:
            if modality not in row:
                raise ValueError(f"the dataset rows have no {modality!r} column (keys: {sorted(row)})")
            batch.append(self.media_decoder.decode(row[modality]))
            captions.append(row.get("captions") or {})
            if len(batch) == self.batch_size:
                flush()
        if batch:
            flush()
        if not embeds:
            return torch.empty(0, 0, device=device), captions
        return torch.cat(embeds), captions

    def _embed_texts(
        self,
        model: torch.nn.Module,
        texts: Sequence[str],
        device: torch.device,
        lang: str,
        store: _ScoringStore | None = None,
    ) -> torch.Tensor:
        embeds: list[torch.Tensor] = []
        routing = {"language": lang} if self.route_by_language else {}
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            encoded = self.processor(text=batch, return_tensors="pt", padding=True, truncation=True, **routing)
            inputs = {name: encoded[name].to(device) for name in ("input_ids", "attention_mask")}
            out = model.get_text_features(**inputs, **routing)
            embeds.append(F.normalize(out.pooler_output.float(), dim=-1))
            if store is not None:
                store.append(_scoring_inputs(model, "text", out, inputs), len(batch))
        return torch.cat(embeds)


class _ScoringStore:
    """Row-aligned per-item scoring inputs, kept as one dict of tensors per encoder batch.

    Tensors of one name may differ between batches in every dimension but the first (e.g.
    token states padded to each batch's longest text); ``gather`` zero-pads the rows it
    returns to the largest size of each dimension over all batches.
    """

    def __init__(self) -> None:
        self.batches: list[dict[str, torch.Tensor]] = []
        self.starts: list[int] = [0]
        self.shapes: dict[str, list[int]] = {}
        self.dtypes: dict[str, torch.dtype] = {}

    @classmethod
    def of_embeds(cls, embeds: torch.Tensor) -> _ScoringStore:
        """The default scoring inputs: the normalised dense embeddings (left on their device)."""
        store = cls()
        store.append({"embeds": embeds}, embeds.shape[0], to_cpu=False)
        return store

    def append(self, inputs: Mapping[str, torch.Tensor], batch_size: int, to_cpu: bool = True) -> None:
        if not isinstance(inputs, Mapping) or not inputs:
            raise TypeError(f"scoring_inputs must return a non-empty dict of tensors, got {type(inputs).__name__}")
        if self.batches and set(inputs) != set(self.batches[0]):
            raise ValueError(f"scoring_inputs returned keys {sorted(inputs)}, earlier {sorted(self.batches[0])}")
        batch: dict[str, torch.Tensor] = {}
        for name, value in inputs.items():
            if not isinstance(value, torch.Tensor) or value.ndim == 0 or value.shape[0] != batch_size:
                shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                raise ValueError(f"scoring_inputs[{name!r}] must be a tensor with {batch_size} rows, got {shape}")
            if name not in self.shapes:
                self.shapes[name], self.dtypes[name] = list(value.shape[1:]), value.dtype
            elif value.ndim != len(self.shapes[name]) + 1 or value.dtype != self.dtypes[name]:
                raise ValueError(f"scoring_inputs[{name!r}] changed its number of dimensions or dtype between batches")
            else:
                self.shapes[name] = [max(a, b) for a, b in zip(self.shapes[name], value.shape[1:])]
            batch[name] = value.detach().cpu() if to_cpu else value.detach()
        self.batches.append(batch)
        self.starts.append(self.starts[-1] + batch_size)

    def gather(self, index: torch.Tensor, device: torch.device) -> dict[str, torch.Tensor]:
        """Rows ``index`` of every tensor, zero-padded to the stored maximum sizes, on ``device``."""
        index = index.cpu()
        batch_of = torch.searchsorted(torch.tensor(self.starts), index, right=True) - 1
        out: dict[str, torch.Tensor] = {}
        for name, shape in self.shapes.items():
            first = self.batches[0][name]
            gathered = torch.zeros((index.numel(), *shape), dtype=self.dtypes[name], device=first.device)
            for b in batch_of.unique().tolist():
                rows = (batch_of == b).nonzero().view(-1)
                value = self.batches[b][name]
                local = (index[rows] - self.starts[b]).to(value.device)
                gathered[(rows.to(value.device), *(slice(0, n) for n in value.shape[1:]))] = value[local]
            out[name] = gathered.to(device)
        return out


def _has_pairwise_scorer(model: torch.nn.Module) -> bool:
    return bool(getattr(model, "has_pairwise_scorer", False))


def _scoring_inputs(
    model: torch.nn.Module, modality: str, features: Any, inputs: dict[str, torch.Tensor]
) -> Mapping[str, torch.Tensor]:
    """``model.scoring_inputs``, or the default (normalised embeddings) for models without it."""
    hook = getattr(model, "scoring_inputs", None)
    if hook is not None:
        return hook(modality, features, inputs)
    return {"embeds": F.normalize(features.pooler_output, dim=-1)}


def _pair_scorer(
    model: torch.nn.Module, images: _ScoringStore, texts: _ScoringStore, device: torch.device,
    gallery_modality: str = "image",
) -> Callable[[str, torch.Tensor, torch.Tensor], torch.Tensor]:
    """The ``score_pairs`` callback of ``two_stage_retrieval_metrics`` for one language."""
    hook = getattr(model, "score_pairs", None)
    if hook is None:
        scale_fn = getattr(model, "scaled_logit_scale", None)

        def hook(query, gallery, query_modality, gallery_modality):
            scale = scale_fn() if scale_fn is not None else 1.0
            return scale * (query["embeds"] * gallery["embeds"]).sum(-1)

    def score(direction: str, query: torch.Tensor, candidate: torch.Tensor) -> torch.Tensor:
        if direction == "t2i":
            return hook(texts.gather(query, device), images.gather(candidate, device), "text", gallery_modality)
        return hook(images.gather(query, device), texts.gather(candidate, device), gallery_modality, "text")

    return score


_GALLERY_LETTERS = {"image": "i", "video": "v", "audio": "a"}


def _named_for(modality: str, metrics: dict[str, float]) -> dict[str, float]:
    """Metric keys for a gallery of `modality`: `t2i_r1` -> `t2v_r1`, `num_images` -> `num_videos`, ..."""
    if modality == "image":
        return metrics
    letter = _GALLERY_LETTERS.get(modality, modality)
    renamed = {}
    for key, value in metrics.items():
        if key == "num_images":
            key = f"num_{modality}s"
        elif key.startswith(("t2i_", "i2t_")):
            key = (f"t2{letter}_" if key.startswith("t2i_") else f"{letter}2t_") + key[4:]
        renamed[key] = value
    return renamed


def _gallery_features(model: torch.nn.Module, modality: str, inputs: dict[str, torch.Tensor]):
    """`get_<modality>_features` (mmml models route any modality; a plain CLIPModel has the image one)."""
    getter = getattr(model, "get_features", None)
    if getter is not None:
        return getter(modality, **inputs)
    return getattr(model, f"get_{modality}_features")(**inputs)


def _device_and_dtype(model: torch.nn.Module) -> tuple[torch.device, torch.dtype]:
    """Device that receives the inputs and floating dtype of the model's first parameter."""
    param = next(model.parameters(), None)
    if param is None:
        return torch.device("cpu"), torch.float32
    dtype = param.dtype if param.is_floating_point() else torch.float32
    return param.device, dtype
