"""Output dataclasses shared by the encoder families (field names follow transformers' CLIP)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.utils import ModelOutput


@dataclass
class MultiEncoderOutput(ModelOutput):
    """Output of an mmml encoder; CLIP's names for image and text, the same pattern for the others.

    Args:
        loss: the summed training loss, when `return_loss=True`.
        logits_per_image: `[num_images, num_texts]` scores (scaled cosine by default).
        logits_per_text: `[num_texts, num_images]`, the transpose.
        text_embeds / image_embeds: L2-normalised projected embeddings.
        text_model_output / vision_model_output: the towers' outputs (`get_*_features`).
        image_hash / text_hash: `[n, hash_bits]` codes when the model has hash heads: tanh-relaxed
            in training mode, {-1, +1} in eval mode.
        loss_terms: the named, weighted terms whose sum is `loss` (what the training loop logs).
        video_embeds / audio_embeds, video_model_output / audio_model_output, video_hash / audio_hash:
            the same for video and audio.
        embeds: every present modality's normalised embedding, by modality name (also registered ones).
        logits: `"<a>_<b>"` -> `[n_a, n_b]` scores for every pair of present modalities.
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
    loss_terms: dict[str, torch.Tensor] | None = None
    video_embeds: torch.Tensor | None = None
    audio_embeds: torch.Tensor | None = None
    video_model_output: BaseModelOutputWithPooling | None = None
    audio_model_output: BaseModelOutputWithPooling | None = None
    video_hash: torch.Tensor | None = None
    audio_hash: torch.Tensor | None = None
    embeds: dict[str, torch.Tensor] | None = None
    logits: dict[str, torch.Tensor] | None = None

    def to_tuple(self) -> tuple[Any, ...]:
        return tuple(v.to_tuple() if isinstance(v, ModelOutput) else v for v in self.values())


# The name the image-text families have used since the start.
DualEncoderOutput = MultiEncoderOutput
