"""PIL rendering of scenes.

Every shape is drawn as a mask at :data:`SUPERSAMPLE` times the target resolution and
box-filtered down, which antialiases edges so that even small shapes stay recognisable at 64 px.
Geometry is expressed in continuous unit coordinates (object centre in 0..1 of the image side),
so a later video renderer can move objects smoothly between cells by calling
:func:`render_frame` with interpolated centres.
"""

from __future__ import annotations

import math
import struct
import zlib
from functools import lru_cache
from typing import Callable, Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw

from mmml.data.scenes.spec import BACKGROUND_RGB, COLORS, GRID_SIZE, Distractor, Scene, SceneObject

SUPERSAMPLE = 4
#: radius of an object's bounding circle, as a fraction of a grid cell's side
SIZE_RADIUS = {"large": 0.42, "small": 0.22}

Point = tuple[float, float]
#: draws a mark in white on a mask, given the mask's offset in supersampled pixels
MaskPainter = Callable[[ImageDraw.ImageDraw, int, int], None]
#: a mask and the image pixel its top-left corner goes to
PlacedMask = tuple[int, int, Image.Image]


def cell_center(row: float, col: float) -> Point:
    """Centre of grid cell (row, col) in unit image coordinates (fractional cells allowed)."""
    return ((col + 0.5) / GRID_SIZE, (row + 0.5) / GRID_SIZE)


def _regular_polygon(radius: float, corners: int, start_deg: float, dy: float = 0.0) -> list[Point]:
    return [
        (radius * math.cos(math.radians(start_deg + 360 * k / corners)),
         dy + radius * math.sin(math.radians(start_deg + 360 * k / corners)))
        for k in range(corners)
    ]


def _star() -> list[Point]:
    points = []
    for k in range(10):
        r = 1.0 if k % 2 == 0 else 0.48
        angle = math.radians(-90 + 36 * k)
        points.append((r * math.cos(angle), 0.08 + r * math.sin(angle)))
    return points


def _cross() -> list[Point]:
    a, w = 0.92, 0.32
    return [
        (-w, -a), (w, -a), (w, -w), (a, -w), (a, w), (w, w),
        (w, a), (-w, a), (-w, w), (-a, w), (-a, -w), (-w, -w),
    ]


def _heart() -> list[Point]:
    # classic parametric heart, spanning about x in [-16, 16], y in [-17, 12]
    points = []
    for k in range(48):
        t = 2 * math.pi * k / 48
        x = 16 * math.sin(t) ** 3
        y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
        points.append((x / 16.5, -(y + 2.5) / 16.5))
    return points


@lru_cache(maxsize=None)
def unit_outline(shape: str) -> tuple[Point, ...]:
    """Polygon of ``shape`` centred on the origin, fitting (about) the unit circle; y points down."""
    if shape == "circle":
        return tuple(_regular_polygon(0.92, 64, 0))
    if shape == "square":
        return ((-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8))
    if shape == "triangle":
        # centroid below the circle centre so the triangle looks centred in its cell
        return tuple(_regular_polygon(1.05, 3, -90, dy=0.15))
    if shape == "star":
        return tuple(_star())
    if shape == "diamond":
        return ((0.0, -1.0), (0.68, 0.0), (0.0, 1.0), (-0.68, 0.0))
    if shape == "hexagon":
        return tuple(_regular_polygon(0.95, 6, 0))
    if shape == "cross":
        return tuple(_cross())
    if shape == "heart":
        return tuple(_heart())
    raise ValueError(f"no outline for shape {shape!r}")


def _rasterise(image_size: int, bounds: Sequence[Point], paint: MaskPainter) -> PlacedMask | None:
    """Antialiased 8-bit mask of a shape, and where its top-left corner goes in the image.

    ``bounds`` (supersampled pixel coordinates) enclose the shape. Only that patch is drawn, at
    :data:`SUPERSAMPLE` times the resolution, then box-filtered down: in effect the same as
    supersampling the whole image (objects never overlap), for a fraction of the work.
    """
    xs, ys = [x for x, _ in bounds], [y for _, y in bounds]
    left, top = max(0, math.floor(min(xs) / SUPERSAMPLE) - 1), max(0, math.floor(min(ys) / SUPERSAMPLE) - 1)
    right = min(image_size, math.ceil(max(xs) / SUPERSAMPLE) + 1)
    bottom = min(image_size, math.ceil(max(ys) / SUPERSAMPLE) + 1)
    if right <= left or bottom <= top:
        return None
    mask = Image.new("L", ((right - left) * SUPERSAMPLE, (bottom - top) * SUPERSAMPLE), 0)
    paint(ImageDraw.Draw(mask), left * SUPERSAMPLE, top * SUPERSAMPLE)
    return left, top, mask.reduce(SUPERSAMPLE)


def _blend(image: Image.Image, rgb: tuple[int, int, int], placed: PlacedMask | None) -> None:
    if placed is not None:
        left, top, mask = placed
        image.paste(rgb, (left, top, left + mask.width, top + mask.height), mask)


@lru_cache(maxsize=4096)
def object_mask(shape: str, size: str, image_size: int, center: Point) -> PlacedMask | None:
    """The placed antialiased mask of a shape; cached, as still images reuse the same 9 centres."""
    scale = image_size * SUPERSAMPLE
    cx, cy = center[0] * scale, center[1] * scale
    radius = SIZE_RADIUS[size] * scale / GRID_SIZE
    outline = [(cx + radius * x, cy + radius * y) for x, y in unit_outline(shape)]

    def paint(draw: ImageDraw.ImageDraw, dx: int, dy: int) -> None:
        draw.polygon([(x - dx, y - dy) for x, y in outline], fill=255)

    return _rasterise(image_size, outline, paint)


def draw_object(image: Image.Image, obj: SceneObject, center: Point) -> None:
    """Draw ``obj`` centred at ``center`` (unit coordinates) onto ``image``."""
    _blend(image, COLORS[obj.color], object_mask(obj.shape, obj.size, image.width, center))


def draw_distractor(draw: ImageDraw.ImageDraw, mark: Distractor, image_size: int) -> None:
    """Draw one clutter mark, sized relative to a 64 px image.

    Clutter is drawn without antialiasing: it is noise anyway, and this keeps it cheap.
    """
    points = [(x * image_size, y * image_size) for x, y in mark.points]
    unit = image_size / 64
    if mark.kind == "line":
        draw.line(points, fill=mark.rgb, width=max(1, round(1.2 * unit)))
    elif mark.kind == "dot":
        (x, y), r = points[0], 1.5 * unit
        draw.ellipse((x - r, y - r, x + r, y + r), fill=mark.rgb)
    else:
        raise ValueError(f"unknown distractor kind {mark.kind!r}")


def render_frame(
    placed_objects: Iterable[tuple[SceneObject, Point]], distractors: Sequence[Distractor], image_size: int
) -> Image.Image:
    """Render objects at explicit unit-coordinate centres over their clutter (one image or video frame)."""
    image = Image.new("RGB", (image_size, image_size), BACKGROUND_RGB)
    if distractors:
        draw = ImageDraw.Draw(image)
        for mark in distractors:
            draw_distractor(draw, mark, image_size)
    for obj, center in placed_objects:
        draw_object(image, obj, center)
    return image


def render_scene(scene: Scene, image_size: int = 64) -> Image.Image:
    """The scene's still image: every object in the centre of its grid cell."""
    return render_frame(((obj, cell_center(obj.row, obj.col)) for obj in scene.objects), scene.distractors, image_size)


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def encode_png(image: Image.Image) -> bytes:
    """PNG bytes of an RGB ``image``, deterministic for a given zlib.

    A minimal writer (no row filters, fast zlib level): about twice as fast as Pillow's encoder,
    which tries every row filter, and smaller on these flat images. Any PNG reader decodes it.
    """
    if image.mode != "RGB":
        image = image.convert("RGB")
    width, height = image.size
    # each scanline is prefixed with its filter type, 0 = none
    scanlines = np.zeros((height, 1 + 3 * width), dtype=np.uint8)
    scanlines[:, 1:] = np.asarray(image, dtype=np.uint8).reshape(height, 3 * width)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(scanlines.tobytes(), 1))
        + _png_chunk(b"IEND", b"")
    )
