"""VSE processor: an image processor and a tokenizer, as every image-text family composes them."""

from __future__ import annotations

from ...processing.multimodal import MultimodalProcessor


class VSEProcessor(MultimodalProcessor):
    """Image processor + tokenizer; `processor(text=..., images=..., return_tensors="pt")`."""

    def __init__(self, image_processor=None, tokenizer=None, **kwargs):
        super().__init__(image_processor=image_processor, tokenizer=tokenizer, **kwargs)
