"""Batch encoding of images and texts with any mmml dual encoder: embeddings and, with hash heads, codes.

Images arrive as anything `mmml.data.decode_image` reads (paths, bytes, PIL images) and are
decoded here, batch by batch: this is the evaluation side, above the model layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from mmml.data import decode_image
from mmml.modeling.hashing import binarize

__all__ = ["EncodedItems", "encode_images", "encode_texts"]


@dataclass
class EncodedItems:
    """`embeds`: L2-normalised projected embeddings; `hash_logits`: pre-sign hash outputs (None without heads)."""

    embeds: torch.Tensor
    hash_logits: torch.Tensor | None = None

    @property
    def codes(self) -> torch.Tensor:
        """{-1, +1} codes (`binarize` of the hash logits)."""
        if self.hash_logits is None:
            raise ValueError("these items were encoded by a model without hash heads (no `hash_bits`)")
        return binarize(self.hash_logits)


def _hash_head(model, modality: str):
    """The model's hash head for `modality`, or None.

    Works with `model.hash_heads` (a mapping keyed by modality: a `ModuleDict` or a property; empty
    without `hash_bits`) and with the older per-modality attributes `model.<modality>_hash_head`.
    """
    heads = getattr(model, "hash_heads", None)
    if heads is not None:
        return heads[modality] if modality in heads else None
    return getattr(model, f"{modality}_hash_head", None)


def _encode(model, batches, head, get_features, total: int, progress: bool, desc: str) -> EncodedItems:
    embeds, logits = [], []
    with torch.inference_mode():
        bar = tqdm(total=total, disable=not progress, desc=desc, unit="item")
        for size, inputs in batches:
            features = get_features(inputs).pooler_output
            embeds.append(F.normalize(features.float(), dim=-1).cpu())
            if head is not None:
                logits.append(head.logits(features).float().cpu())
            bar.update(size)
        bar.close()
    if not embeds:
        raise ValueError(f"nothing to encode: got no {desc}")
    return EncodedItems(torch.cat(embeds), torch.cat(logits) if head is not None else None)


def _device(model) -> torch.device:
    return next(model.parameters()).device


def encode_images(model, processor, images: Sequence, batch_size: int = 256, progress: bool = False) -> EncodedItems:
    """Encode images (anything `mmml.data.decode_image` reads) in batches; the model is put in eval mode."""
    model.eval()

    def batches():
        for start in range(0, len(images), batch_size):
            chunk = [decode_image(image) for image in images[start : start + batch_size]]
            pixel_values = processor(images=chunk, return_tensors="pt")["pixel_values"].to(_device(model))
            yield len(chunk), pixel_values

    return _encode(model, batches(), _hash_head(model, "image"), lambda x: model.get_image_features(pixel_values=x),
                   len(images), progress, "images")


def encode_texts(model, processor, texts: Sequence[str], batch_size: int = 256, progress: bool = False) -> EncodedItems:
    """Encode texts with the processor's text inputs (token ids or TF-IDF features)."""
    model.eval()

    def batches():
        for start in range(0, len(texts), batch_size):
            chunk = list(texts[start : start + batch_size])
            inputs = processor(text=chunk, return_tensors="pt")
            yield len(chunk), {key: value.to(_device(model)) for key, value in inputs.items()}

    return _encode(model, batches(), _hash_head(model, "text"), lambda x: model.get_text_features(**x),
                   len(texts), progress, "texts")
