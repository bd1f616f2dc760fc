"""Decoding images from paths, bytes or PIL objects into RGB."""

from __future__ import annotations

import io
import os
from typing import Any, Mapping, Union

from PIL import Image, UnidentifiedImageError

ImageSource = Union[str, os.PathLike, bytes, bytearray, Image.Image, Mapping[str, Any]]


class ImageDecodeError(ValueError):
    """An image could not be read or decoded; the message names the file (or the byte source)."""


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if has_alpha:
        # composite onto white instead of letting convert() turn transparent pixels black
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _decode(opener: Any, name: str) -> Image.Image:
    try:
        with Image.open(opener) as image:
            image.load()
            rgb = _to_rgb(image)
            # detach from the file handle the context manager closes
            return rgb.copy() if rgb is image else rgb
    except FileNotFoundError:
        raise ImageDecodeError(f"image file not found: {name}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise ImageDecodeError(f"cannot decode image {name}: {type(error).__name__}: {error}") from error


def decode_image(source: ImageSource) -> Image.Image:
    """Return ``source`` as a fully loaded RGB ``PIL.Image``.

    ``source`` may be a file path, encoded bytes, a PIL image, or a ``{"bytes", "path"}`` dict as
    stored by ``datasets.Image(decode=False)``. Raises :class:`ImageDecodeError` naming the file
    when it is missing or cannot be decoded.
    """
    if isinstance(source, Image.Image):
        return _to_rgb(source)
    if isinstance(source, (bytes, bytearray)):
        return _decode(io.BytesIO(source), f"<{len(source)} bytes>")
    if isinstance(source, Mapping):
        data, path = source.get("bytes"), source.get("path")
        if data:
            return _decode(io.BytesIO(data), f"<{len(data)} bytes from {path or 'memory'}>")
        if path:
            return _decode(os.fspath(path), os.fspath(path))
        raise ImageDecodeError(f"image dict has neither bytes nor path: keys {sorted(source)}")
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        return _decode(path, path)
    raise TypeError(f"cannot decode an image from {type(source).__name__}")
