"""M-CLIP processor: an image processor and any tokenizer behind one call."""

from __future__ import annotations

from transformers import ProcessorMixin

from ...modeling.remote_code import RemoteCodeProcessorMixin


class MCLIPProcessor(RemoteCodeProcessorMixin, ProcessorMixin):
    """Image processor + tokenizer; `processor(text=..., images=..., return_tensors="pt")`.

    Texts are padded to the longest in the batch and truncated to the tokenizer's
    `model_max_length` unless `padding` / `truncation` are given. Saves and loads with
    `save_pretrained` / `AutoProcessor.from_pretrained`.
    """

    def __init__(self, image_processor=None, tokenizer=None, **kwargs):
        super().__init__(image_processor, tokenizer, **kwargs)

    def __call__(self, images=None, text=None, **kwargs):
        if text is not None:
            kwargs.setdefault("padding", True)
            kwargs.setdefault("truncation", True)
        return super().__call__(images=images, text=text, **kwargs)
