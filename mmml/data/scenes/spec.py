"""Vocabulary and data classes describing one synthetic scene.

A scene is a 3x3 grid holding a few coloured shapes (at most one per cell) plus, at higher
difficulties, undescribed clutter marks. The spec is pure data: rendering, captioning and (later)
video, audio or question generation all read the same ``Scene`` so they can never disagree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterable, Sequence

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "diamond", "hexagon", "cross", "heart")

#: Fill colours, chosen to stay distinguishable from each other and from the background at 64 px.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (215, 38, 45),
    "orange": (245, 130, 32),
    "yellow": (230, 185, 0),
    "green": (40, 160, 60),
    "blue": (35, 85, 215),
    "purple": (135, 55, 185),
    "brown": (125, 80, 40),
    "black": (25, 25, 25),
}
COLOR_NAMES: tuple[str, ...] = tuple(COLORS)

SIZES: tuple[str, ...] = ("small", "large")

BACKGROUND_RGB: tuple[int, int, int] = (245, 245, 240)

GRID_SIZE = 3
ROW_NAMES: tuple[str, ...] = ("top", "middle", "bottom")
COL_NAMES: tuple[str, ...] = ("left", "middle", "right")

_SHAPE_SET = frozenset(SHAPES)
_SIZE_SET = frozenset(SIZES)


@dataclass(frozen=True, order=True)
class SceneObject:
    """One described shape, anchored to a grid cell (row 0 = top, col 0 = left)."""

    shape: str
    color: str
    size: str
    row: int
    col: int

    def __post_init__(self) -> None:
        if self.shape not in _SHAPE_SET:
            raise ValueError(f"shape must be one of {SHAPES}, got {self.shape!r}")
        if self.color not in COLORS:
            raise ValueError(f"color must be one of {COLOR_NAMES}, got {self.color!r}")
        if self.size not in _SIZE_SET:
            raise ValueError(f"size must be one of {SIZES}, got {self.size!r}")
        if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < GRID_SIZE for v in (self.row, self.col)):
            raise ValueError(f"row and col must be ints in 0..{GRID_SIZE - 1}, got {self.row!r}, {self.col!r}")

    @property
    def cell(self) -> tuple[int, int]:
        return (self.row, self.col)


@dataclass(frozen=True)
class Distractor:
    """An undescribed clutter mark (``kind`` "line" or "dot") in unit coordinates (0..1 of the image)."""

    kind: str
    points: tuple[tuple[float, float], ...]
    rgb: tuple[int, int, int]


@dataclass(frozen=True)
class Scene:
    """A complete scene: its id, the described objects and the undescribed clutter."""

    scene_id: str
    objects: tuple[SceneObject, ...]
    distractors: tuple[Distractor, ...] = ()

    def __post_init__(self) -> None:
        cells = [obj.cell for obj in self.objects]
        if len(set(cells)) != len(cells):
            raise ValueError(f"scene {self.scene_id!r} has two objects in one grid cell: {cells}")

    @property
    def layout_key(self) -> str:
        return layout_key(self.objects)


def layout_key(objects: Iterable[SceneObject]) -> str:
    """Canonical text key of a layout: the sorted (shape, color, size, row, col) tuples.

    Two scenes with the same key look the same (clutter aside), whatever their object order.
    """
    fields = sorted((o.shape, o.color, o.size, o.row, o.col) for o in objects)
    return ";".join(f"{shape},{color},{size},{row},{col}" for shape, color, size, row, col in fields)


def objects_to_json(objects: Sequence[SceneObject]) -> str:
    """Serialise objects as a JSON list of ``{shape, color, size, row, col}`` dicts."""
    return json.dumps(
        [{"shape": o.shape, "color": o.color, "size": o.size, "row": o.row, "col": o.col} for o in objects],
        separators=(",", ":"),
    )


def objects_from_json(text: str) -> tuple[SceneObject, ...]:
    """Inverse of :func:`objects_to_json`."""
    return tuple(SceneObject(**item) for item in json.loads(text))


def distractors_to_json(distractors: Sequence[Distractor]) -> str:
    """Serialise clutter marks as a JSON list of ``{kind, points, rgb}`` dicts."""
    return json.dumps(
        [{"kind": d.kind, "points": [list(p) for p in d.points], "rgb": list(d.rgb)} for d in distractors],
        separators=(",", ":"),
    )


def distractors_from_json(text: str) -> tuple[Distractor, ...]:
    """Inverse of :func:`distractors_to_json`."""
    return tuple(
        Distractor(kind=d["kind"], points=tuple(tuple(p) for p in d["points"]), rgb=tuple(d["rgb"]))
        for d in json.loads(text)
    )
