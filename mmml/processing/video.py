"""Video clips as frames: an image processor applied to every frame, clips padded to the longest.

Decoding and frame sampling live elsewhere (a clip reaches this processor as its frames); this
processor only turns frames into tensors and saves / loads with the multimodal processor.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import BatchFeature, FeatureExtractionMixin, ImageProcessingMixin, ProcessorMixin

from .image import pixel_values

__all__ = ["FrameProcessor"]


def _is_frame(value: Any) -> bool:
    return isinstance(value, Image.Image) or (isinstance(value, (np.ndarray, torch.Tensor)) and value.ndim == 3)


def _as_clips(videos: Any) -> list[list]:
    """A batch of clips as lists of frames.

    One clip alone (a list of frames, or a `[F, H, W, C]` array) is a batch of one.
    """
    if isinstance(videos, (np.ndarray, torch.Tensor)):
        if videos.ndim == 4:
            return [list(videos)]
        if videos.ndim == 5:
            return [list(clip) for clip in videos]
        raise ValueError(
            f"a video array must be [frames, H, W, C] or [clips, frames, H, W, C], got shape {tuple(videos.shape)}"
        )
    if not isinstance(videos, Sequence) or isinstance(videos, (str, bytes)):
        raise TypeError(f"videos must be a list of clips (each a list of frames), got {type(videos).__name__}")
    if videos and _is_frame(videos[0]):
        return [list(videos)]
    clips = []
    for position, clip in enumerate(videos):
        if isinstance(clip, (np.ndarray, torch.Tensor)) and clip.ndim == 4:
            clips.append(list(clip))
        elif isinstance(clip, Sequence) and not isinstance(clip, (str, bytes)):
            clips.append(list(clip))
        else:
            raise TypeError(
                f"video {position} is a {type(clip).__name__}, not a list of frames or a [F, H, W, C] array"
            )
    return clips


def _image_processor_from_dict(config: dict[str, Any]) -> ImageProcessingMixin:
    config = dict(config)
    class_name = config.get("image_processor_type")
    if class_name is None:
        raise ValueError(
            f"the frame processor's saved image_processor has no 'image_processor_type' (keys {sorted(config)})"
        )
    return ProcessorMixin.get_possibly_dynamic_module(class_name).from_dict(config)


class FrameProcessor(FeatureExtractionMixin):
    """`processor(videos, return_tensors="pt")`: `pixel_values_videos` `[B, F, C, H, W]` + `video_frame_mask` `[B, F]`.

    `videos` is a list of clips, each a list of frames (PIL images or `[H, W, C]` arrays) or a
    `[F, H, W, C]` array; a single clip is a batch of one. Every frame goes through
    `image_processor` (e.g. a `CLIPImageProcessor`); clips shorter than the longest are padded
    with zero frames, marked 0 in `video_frame_mask` (1 = real frame). Saved inside the
    multimodal processor's `processor_config.json` as `video_processor`.
    """

    model_input_names = ["pixel_values_videos", "video_frame_mask"]

    def __init__(self, image_processor: ImageProcessingMixin | dict[str, Any] | None = None, **kwargs):
        kwargs.pop("video_processor_type", None)
        kwargs.pop("feature_extractor_type", None)
        super().__init__(**kwargs)
        if isinstance(image_processor, dict):
            image_processor = _image_processor_from_dict(image_processor)
        if not isinstance(image_processor, ImageProcessingMixin):
            raise TypeError(
                f"FrameProcessor needs an image processor for the frames (e.g. CLIPImageProcessor), got "
                f"{type(image_processor).__name__}"
            )
        self.image_processor = image_processor

    def __call__(self, videos, return_tensors: str | None = None, **kwargs) -> BatchFeature:
        clips = _as_clips(videos)
        if not clips:
            raise ValueError("got no videos")
        for position, clip in enumerate(clips):
            if not clip:
                raise ValueError(f"video {position} has no frames")
        valid = set(getattr(getattr(self.image_processor, "valid_kwargs", None), "__annotations__", {}))
        image_kwargs = {key: value for key, value in kwargs.items() if key in valid and key != "return_tensors"}
        frames = [frame for clip in clips for frame in clip]
        pixels = pixel_values(self.image_processor, frames, **image_kwargs)  # [N, C, H, W]
        lengths = [len(clip) for clip in clips]
        batch = pixels.new_zeros((len(clips), max(lengths)) + tuple(pixels.shape[1:]))
        mask = torch.zeros(len(clips), max(lengths), dtype=torch.long)
        start = 0
        for position, length in enumerate(lengths):
            batch[position, :length] = pixels[start : start + length]
            mask[position, :length] = 1
            start += length
        data = {"pixel_values_videos": batch, "video_frame_mask": mask}
        return BatchFeature(data, tensor_type=return_tensors)

    def to_dict(self) -> dict[str, Any]:
        output = {key: copy.deepcopy(value) for key, value in self.__dict__.items() if key != "image_processor"}
        output["image_processor"] = self.image_processor.to_dict()
        output["video_processor_type"] = type(self).__name__
        return output
