"""DI-vTR processor: a frame processor for the clips and a tokenizer for the (multilingual) captions."""

from __future__ import annotations

from ...processing.multimodal import MultimodalProcessor


class DIVTRProcessor(MultimodalProcessor):
    """Frame processor (`mmml.processing.FrameProcessor`) + tokenizer behind one call.

    `processor(text=[...], videos=[clip, ...], return_tensors="pt")` returns `input_ids`,
    `attention_mask`, `pixel_values_videos` `[B, F, 3, H, W]` and `video_frame_mask` `[B, F]` (clips
    are lists of decoded frames; shorter clips are padded with frames marked 0). Either component may
    be None (a text-only processor for queries). Saves and loads with `save_pretrained` /
    `AutoProcessor.from_pretrained`.
    """

    def __init__(self, video_processor=None, tokenizer=None, **kwargs):
        super().__init__(video_processor=video_processor, tokenizer=tokenizer, **kwargs)
