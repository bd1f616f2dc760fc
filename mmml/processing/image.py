"""Image batches through any transformers image processor, with an exact fast path for already-sized images.

`pixel_values(image_processor, images)` returns what `image_processor(images=images,
return_tensors="pt")["pixel_values"]` returns. When the processor is a PIL-backend processor with
the standard pipeline (resize -> center crop -> rescale -> normalize, e.g. `CLIPImageProcessor`
without torchvision) and every image is an RGB `PIL.Image` whose resize and crop are no-ops (the
images already have the processor's size, as the embedded scenes do), the per-image numpy pipeline
is replaced by one table lookup per pixel: rescale and normalize map each uint8 value to one
float32 through the same float operations the processor runs, so the output is bit-identical
(tests/test_processing.py checks it) at a fraction of the cost (~40 ms -> ~5 ms of CPU time for 128 60-px images).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

__all__ = ["fast_path_applies", "pixel_values"]

# The methods a PIL-backend processor must inherit unchanged for the fast path to reproduce it.
_PIPELINE_METHODS = (
    "preprocess", "_standardize_kwargs", "_preprocess_image_like_inputs", "_prepare_image_like_inputs",
    "_prepare_images_structure", "process_image", "_preprocess", "resize", "center_crop", "rescale", "normalize",
)


@functools.cache
def _reference_methods() -> dict[str, object] | None:
    try:
        from transformers.image_processing_backends import PilBackend
    except ImportError:  # another transformers layout: no fast path
        return None
    return {name: getattr(PilBackend, name, None) for name in _PIPELINE_METHODS}


def _standard_pil_pipeline(image_processor) -> bool:
    reference = _reference_methods()
    if reference is None:
        return False
    cls = type(image_processor)
    return all(getattr(cls, name, None) is method for name, method in reference.items())


def _resize_is_noop(image_processor, height: int, width: int) -> bool:
    if not image_processor.do_resize:
        return True
    size = image_processor.size
    if getattr(size, "height", None) and getattr(size, "width", None):
        return (size.height, size.width) == (height, width)
    shortest = getattr(size, "shortest_edge", None)
    other = ("longest_edge", "max_height", "max_width", "min_pixels", "max_pixels")
    if shortest and not any(getattr(size, name, None) for name in other):
        # `get_resize_output_image_size(shortest_edge=s)` keeps (h, w) exactly when min(h, w) == s
        return min(height, width) == shortest
    return False


def _crop_is_noop(image_processor, height: int, width: int) -> bool:
    if not image_processor.do_center_crop:
        return True
    crop = image_processor.crop_size
    return (getattr(crop, "height", None), getattr(crop, "width", None)) == (height, width)


def fast_path_applies(image_processor, images: Sequence) -> bool:
    """Whether `pixel_values` can skip the processor's per-image pipeline for these images."""
    if not images or not _standard_pil_pipeline(image_processor):
        return False
    if getattr(image_processor, "do_pad", None) or not (image_processor.do_rescale or image_processor.do_normalize):
        return False
    first = images[0]
    if not isinstance(first, Image.Image):
        return False
    size = first.size
    if any(not isinstance(image, Image.Image) or image.mode != "RGB" or image.size != size for image in images):
        return False
    width, height = size
    return _resize_is_noop(image_processor, height, width) and _crop_is_noop(image_processor, height, width)


def _channels(value, name: str) -> tuple[float, ...]:
    values = tuple(float(v) for v in value) if isinstance(value, (list, tuple, np.ndarray)) else (float(value),) * 3
    if len(values) != 3:
        raise ValueError(f"{name} must have 3 values for RGB images, got {values}")
    return values


@functools.lru_cache(maxsize=32)
def _lookup_table(do_rescale: bool, rescale_factor: float, do_normalize: bool,
                  mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """`[3, 256]` float32: the processor's output for each channel and uint8 value.

    The same operations as transformers' numpy `rescale` (float64 product, cast to float32) and
    `normalize` (float32 `(x - mean) / std`), applied to the 256 possible values.
    """
    values = np.arange(256, dtype=np.uint8)
    x = (values.astype(np.float64) * rescale_factor).astype(np.float32) if do_rescale else values.astype(np.float32)
    if not do_normalize:
        return np.ascontiguousarray(np.broadcast_to(x, (3, 256)))
    mean_array = np.array(mean, dtype=np.float32)
    std_array = np.array(std, dtype=np.float32)
    return ((x[None, :] - mean_array[:, None]) / std_array[:, None]).astype(np.float32)


def _fast_pixel_values(image_processor, images: Sequence[Image.Image]) -> torch.Tensor:
    table = _lookup_table(
        bool(image_processor.do_rescale), float(image_processor.rescale_factor), bool(image_processor.do_normalize),
        _channels(image_processor.image_mean, "image_mean") if image_processor.do_normalize else (0.0,) * 3,
        _channels(image_processor.image_std, "image_std") if image_processor.do_normalize else (1.0,) * 3,
    )
    pixels = torch.from_numpy(np.stack([np.asarray(image) for image in images]))  # [B, H, W, 3] uint8
    batch, height, width, _ = pixels.shape
    index = pixels.permute(0, 3, 1, 2).reshape(batch, 3, height * width).to(torch.int64)
    values = torch.from_numpy(table).unsqueeze(0).expand(batch, 3, 256)
    return torch.gather(values, 2, index).view(batch, 3, height, width)


def pixel_values(image_processor, images: Sequence, **kwargs) -> torch.Tensor:
    """`image_processor(images=images, return_tensors="pt", **kwargs)["pixel_values"]`, fast when it can be.

    The fast path is taken only without `kwargs` (call-time overrides go to the processor itself).
    """
    images = list(images)
    if not kwargs and fast_path_applies(image_processor, images):
        return _fast_pixel_values(image_processor, images)
    return image_processor(images=images, return_tensors="pt", **kwargs)["pixel_values"]
