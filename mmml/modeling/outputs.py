"""Output dataclasses shared by the dual-encoder families (field names follow transformers' CLIP)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.utils import ModelOutput


@dataclass
class DualEncoderOutput(ModelOutput):
    """Output of an image-text dual encoder.

    Args:
        loss: contrastive loss, when `return_loss=True`.
        logits_per_image: `[num_images, num_texts]` scaled cosine similarities.
        logits_per_text: `[num_texts, num_images]`, the transpose.
        text_embeds: L2-normalised projected text embeddings.
        image_embeds: L2-normalised projected image embeddings.
        text_model_output: the text tower's output.
        vision_model_output: the vision tower's output.
        image_hash: `[num_images, hash_bits]` codes when the model has hash heads (`hash_bits`), else None:
            tanh-relaxed in training mode, {-1, +1} in eval mode.
        text_hash: the same for the texts.
    """

    loss: torch.Tensor | None = None
    logits_per_image: torch.Tensor | None = None
    logits_per_text: torch.Tensor | None = None
    text_embeds: torch.Tensor | None = None
    image_embeds: torch.Tensor | None = None
    text_model_output: BaseModelOutputWithPooling | None = None
    vision_model_output: BaseModelOutputWithPooling | None = None
    image_hash: torch.Tensor | None = None
    text_hash: torch.Tensor | None = None

    def to_tuple(self) -> tuple[Any, ...]:
        return tuple(v.to_tuple() if isinstance(v, ModelOutput) else v for v in self.values())
