"""VSE processor: the same image processor + tokenizer pairing as M-CLIP's, under the family's own name."""

from __future__ import annotations

from ..mclip.processing_mclip import MCLIPProcessor


class VSEProcessor(MCLIPProcessor):
    """Image processor + tokenizer; `processor(text=..., images=..., return_tensors="pt")`."""
