"""Language-independent caption planning.

A :class:`CaptionPlan` fixes *what* a caption says (phrasing template, which objects, in which
order); a grammar from :mod:`mmml.data.scenes.grammars` decides *how* to say it in one language.
Plans are drawn once per scene and realised in every language, so caption ``i`` of a scene is a
translation of caption ``i`` in every other language.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np

from mmml.data.scenes.spec import SceneObject

#: Phrasings, in the order of the examples:
#: ``listing``        "A small red circle in the top left corner and a large blue square in the center."
#: ``existential``    "There is a small red circle in the top left corner and ..."
#: ``count_first``    "Two shapes: a small red circle in the top left corner and ..."
#: ``position_first`` "In the top left corner there is a small red circle and in the center there is ..."
#: ``relational``     "A small red circle is to the left of a large blue square."
CAPTION_TEMPLATES: tuple[str, ...] = ("listing", "existential", "count_first", "position_first", "relational")

RELATIONS: tuple[str, ...] = ("left_of", "right_of", "above", "below")


@dataclass(frozen=True)
class Relation:
    """``subject`` is ``relation`` ``reference`` (e.g. left_of), read off their grid cells."""

    subject: SceneObject
    relation: str
    reference: SceneObject


@dataclass(frozen=True)
class Placement:
    """``obj`` is at its absolute grid position."""

    obj: SceneObject


Clause = Union[Relation, Placement]


@dataclass(frozen=True)
class CaptionPlan:
    """What one caption says: a phrasing and the objects it mentions, in mention order."""

    template: str
    objects: tuple[SceneObject, ...]
    complete: bool = True

    def __post_init__(self) -> None:
        if self.template not in CAPTION_TEMPLATES:
            raise ValueError(f"template must be one of {CAPTION_TEMPLATES}, got {self.template!r}")
        if not self.objects:
            raise ValueError("a caption must mention at least one object")


def relation_between(subject: SceneObject, reference: SceneObject) -> str | None:
    """The relation of ``subject`` to ``reference`` when they share a row or a column, else None.

    Diagonal pairs get no relation: "left of" would be true but would hide the vertical offset.
    """
    if subject.row == reference.row and subject.col != reference.col:
        return "left_of" if subject.col < reference.col else "right_of"
    if subject.col == reference.col and subject.row != reference.row:
        return "above" if subject.row < reference.row else "below"
    return None


def relational_clauses(objects: Sequence[SceneObject]) -> list[Clause]:
    """Pair objects (greedily, in the given order) that share a row or column into relations.

    Objects left without a partner get an absolute :class:`Placement`, so every object is
    mentioned exactly once.
    """
    clauses: list[Clause] = []
    used: set[int] = set()
    for i, subject in enumerate(objects):
        if i in used:
            continue
        used.add(i)
        for j in range(i + 1, len(objects)):
            if j in used:
                continue
            relation = relation_between(subject, objects[j])
            if relation is not None:
                used.add(j)
                clauses.append(Relation(subject, relation, objects[j]))
                break
        else:
            clauses.append(Placement(subject))
    return clauses


def has_relation(objects: Sequence[SceneObject]) -> bool:
    """Whether any two objects share a row or column (so the relational phrasing says something)."""
    return any(relation_between(a, b) for i, a in enumerate(objects) for b in objects[i + 1 :])


def plan_captions(
    objects: Sequence[SceneObject], count: int, partial_rate: float, rng: np.random.Generator
) -> list[CaptionPlan]:
    """Draw ``count`` plans with pairwise different phrasings where the scene allows it.

    The relational phrasing needs two objects in one row or column; when fewer phrasings apply
    than ``count``, phrasings repeat with a different object order. With probability
    ``partial_rate`` a plan of a multi-object scene mentions only a random non-empty proper
    subset of the objects (never with ``count_first``, whose count would be false).
    """
    templates = [t for t in CAPTION_TEMPLATES if t != "relational" or has_relation(objects)]
    order = [templates[i] for i in rng.permutation(len(templates))]
    chosen = (order * (count // len(order) + 1))[:count]
    plans = []
    for template in chosen:
        shuffled = tuple(objects[i] for i in rng.permutation(len(objects)))
        partial = (
            template != "count_first"
            and len(shuffled) > 1
            and partial_rate > 0
            and rng.random() < partial_rate
        )
        if partial:
            shuffled = shuffled[: int(rng.integers(1, len(shuffled)))]
        plans.append(CaptionPlan(template, shuffled, complete=not partial))
    return plans
