"""Fixed multi-label vocabulary for scenes.

Labels name what is visible, independent of position and size:

* ids 0-7: ``shape:<kind>`` for each kind in :data:`~mmml.data.scenes.spec.SHAPES`
* ids 8-15: ``color:<colour>`` for each colour in :data:`~mmml.data.scenes.spec.COLOR_NAMES`
* ids 16-79: ``object:<colour> <kind>`` for every colour/kind combination (colour-major order)

A scene's labels are the sorted ids of every label that at least one described object carries;
clutter marks never contribute labels.
"""

from __future__ import annotations

from typing import Iterable

from mmml.data.scenes.spec import COLOR_NAMES, SHAPES, SceneObject

LABEL_VOCABULARY: tuple[str, ...] = (
    tuple(f"shape:{shape}" for shape in SHAPES)
    + tuple(f"color:{color}" for color in COLOR_NAMES)
    + tuple(f"object:{color} {shape}" for color in COLOR_NAMES for shape in SHAPES)
)
_LABEL_IDS = {name: index for index, name in enumerate(LABEL_VOCABULARY)}


def label_vocabulary() -> list[str]:
    """The label names, indexed by label id."""
    return list(LABEL_VOCABULARY)


def object_label_names(obj: SceneObject) -> tuple[str, str, str]:
    """The three label names one object carries."""
    return (f"shape:{obj.shape}", f"color:{obj.color}", f"object:{obj.color} {obj.shape}")


def scene_labels(objects: Iterable[SceneObject]) -> list[int]:
    """Sorted, de-duplicated label ids present among ``objects``."""
    return sorted({_LABEL_IDS[name] for obj in objects for name in object_label_names(obj)})
