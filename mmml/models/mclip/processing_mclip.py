"""M-CLIP processor: an image processor and any tokenizer behind one call."""

from __future__ import annotations

from ...processing.multimodal import MultimodalProcessor


class MCLIPProcessor(MultimodalProcessor):
    """Image processor + tokenizer; `processor(text=..., images=..., return_tensors="pt")`.

    Texts are padded to the longest in the batch and truncated to the tokenizer's
    `model_max_length` unless `padding` / `truncation` are given. Either component may be None
    (a text-only processor). Saves and loads with `save_pretrained` / `AutoProcessor.from_pretrained`.
    """

    def __init__(self, image_processor=None, tokenizer=None, **kwargs):
        super().__init__(image_processor=image_processor, tokenizer=tokenizer, **kwargs)
