"""Language-independent description of a clip: objects, their motion events, and when they happen.

A :class:`Clip` is pure data, like :class:`~mmml.data.scenes.spec.Scene`: rendering
(:mod:`mmml.data.scenes.clips`) and captioning (the grammars' ``clip_caption``) read the same
spec, so frames and captions can never disagree.

Timeline. A clip of ``T`` frames with ``K`` events shows frame ``t`` at time ``s = (t + 1/2) / T``
(the middle of the ``t``-th of ``T`` equal bins); event ``k`` owns the time segment ``[k/K, (k+1)/K]``
and ``u`` is the time local to it (0..1). Within its segment,

* a move shifts its object by one grid cell, eased: still for the first and last fifth of the segment,
  at constant speed in between (progress ``clamp((5u - 1) / 3, 0, 1)``);
* ``appear`` shows its object from ``u > 1/2`` on; ``disappear`` shows it only while ``u < 1/2``.

Between its events an object stands still; every object not yet appeared (or already gone) is absent.
All times are exact (integer arithmetic), and the rules are symmetric under ``s -> 1 - s``: the frames of
:func:`reverse_clip` (inverse actions in reverse order) are exactly the original frames in reverse
order, the property the temporal test split is built on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from mmml.data.scenes.spec import GRID_SIZE, SceneObject

#: Every event an object can take part in.
MOTION_ACTIONS: tuple[str, ...] = ("move_left", "move_right", "move_up", "move_down", "appear", "disappear")
MOVE_ACTIONS: tuple[str, ...] = MOTION_ACTIONS[:4]
#: (row, col) step of each move
MOVE_DELTAS: dict[str, tuple[int, int]] = {
    "move_left": (0, -1), "move_right": (0, 1), "move_up": (-1, 0), "move_down": (1, 0),
}
#: the action that undoes each action (what it looks like played backwards)
INVERSE_ACTIONS: dict[str, str] = {
    "move_left": "move_right", "move_right": "move_left", "move_up": "move_down", "move_down": "move_up",
    "appear": "disappear", "disappear": "appear",
}
#: at most this many events per clip (each a segment of the timeline)
MAX_EVENTS = 2
MAX_CLIP_OBJECTS = 2

#: Phrasings of a two-event caption, in the order of the English examples:
#: ``then``        "A small red circle moves to the left, then a large blue square appears."
#: ``and_then``    "A small red circle appears and then moves to the left."
#: ``first_then``  "First, a small red circle moves to the left, then a large blue square appears."
#: ``after_that``  "A small red circle moves to the left. After that, a large blue square appears."
#: A one-event caption is a single clause, the same under every template.
CLIP_CAPTION_TEMPLATES: tuple[str, ...] = ("then", "and_then", "first_then", "after_that")
#: Lexical variants of each action per language ("moves to the left" / "slides to the left" / "goes left").
NUM_MOTION_STYLES = 3

_ACTION_SET = frozenset(MOTION_ACTIONS)


def action_direction(action: str) -> str | None:
    """``"left"`` for ``"move_left"``; None for ``appear`` / ``disappear``."""
    return action[len("move_"):] if action in MOVE_DELTAS else None


@dataclass(frozen=True)
class MotionEvent:
    """Object ``actor`` (an index into :attr:`Clip.objects`) performs ``action``."""

    actor: int
    action: str

    def __post_init__(self) -> None:
        if self.action not in _ACTION_SET:
            raise ValueError(f"action must be one of {MOTION_ACTIONS}, got {self.action!r}")
        if isinstance(self.actor, bool) or not isinstance(self.actor, int) or self.actor < 0:
            raise ValueError(f"actor must be an object index >= 0, got {self.actor!r}")


def _step(cell: tuple[int, int], action: str) -> tuple[int, int]:
    dr, dc = MOVE_DELTAS.get(action, (0, 0))
    return (cell[0] + dr, cell[1] + dc)


def _in_grid(cell: tuple[int, int]) -> bool:
    return 0 <= cell[0] < GRID_SIZE and 0 <= cell[1] < GRID_SIZE


def action_path(start: tuple[int, int], actions: Sequence[str]) -> list[tuple[int, int]] | None:
    """Cells an object visits from ``start`` under ``actions`` (start first), or None if it leaves the grid."""
    path = [start]
    for action in actions:
        if action in MOVE_DELTAS:
            path.append(_step(path[-1], action))
            if not _in_grid(path[-1]):
                return None
    return path


@dataclass(frozen=True)
class Clip:
    """A short clip: objects (each at its start cell, or where it appears) and the events, in time order.

    Rules, checked here: 1..:data:`MAX_EVENTS` events; every object acts, objects are numbered in the
    order of their first event; an object appears only as its first event and disappears only as its
    last; moves stay on the 3x3 grid; no two objects ever touch a common cell; no two objects look
    the same (the captions could not tell them apart); and the clip does not read the same backwards
    (its reversal would be the same clip, useless for the temporal split).
    """

    clip_id: str
    objects: tuple[SceneObject, ...]
    events: tuple[MotionEvent, ...]

    def __post_init__(self) -> None:
        where = f"clip {self.clip_id!r}"
        if not 1 <= len(self.events) <= MAX_EVENTS:
            raise ValueError(f"{where}: needs 1..{MAX_EVENTS} events, got {len(self.events)}")
        if not 1 <= len(self.objects) <= MAX_CLIP_OBJECTS:
            raise ValueError(f"{where}: needs 1..{MAX_CLIP_OBJECTS} objects, got {len(self.objects)}")
        first_seen = list(dict.fromkeys(event.actor for event in self.events))
        if first_seen != list(range(len(self.objects))):
            raise ValueError(
                f"{where}: every object must act and objects must be numbered in order of their first event; "
                f"actors in order: {[event.actor for event in self.events]}"
            )
        looks = [(o.shape, o.color, o.size) for o in self.objects]
        if len(set(looks)) != len(looks):
            raise ValueError(f"{where}: two objects look the same: {looks}")
        cells: set[tuple[int, int]] = set()
        for index, obj in enumerate(self.objects):
            actions = self.actions_of(index)
            if "appear" in actions[1:]:
                raise ValueError(f"{where}: object {index} can appear only as its first event, got {actions}")
            if "disappear" in actions[:-1]:
                raise ValueError(f"{where}: object {index} can disappear only as its last event, got {actions}")
            path = action_path(obj.cell, actions)
            if path is None:
                raise ValueError(f"{where}: object {index} leaves the grid from {obj.cell} with {actions}")
            if cells & set(path):
                raise ValueError(f"{where}: object {index}'s cells {path} touch another object's")
            cells |= set(path)
        if clip_key(self) == clip_key(reverse_clip(self)):
            raise ValueError(f"{where}: reads the same backwards ({[e.action for e in self.events]})")

    def actions_of(self, index: int) -> list[str]:
        return [event.action for event in self.events if event.actor == index]

    @property
    def key(self) -> str:
        return clip_key(self)


def clip_key(clip: Clip) -> str:
    """Canonical text key of what a clip's captions say: the objects' looks and the events in order.

    Start cells are not part of it (the captions do not name them): two clips with one key are the
    same content, whatever their positions, and a dataset holds at most one of them.
    """
    looks = "|".join(f"{o.shape},{o.color},{o.size}" for o in clip.objects)
    return looks + ";" + ";".join(f"{e.actor}:{e.action}" for e in clip.events)


def end_cell(clip: Clip, index: int) -> tuple[int, int]:
    """The cell object ``index`` ends the clip in (or disappears from)."""
    return action_path(clip.objects[index].cell, clip.actions_of(index))[-1]  # type: ignore[index]


def reverse_clip(clip: Clip, clip_id: str | None = None) -> Clip:
    """The clip played backwards: inverse actions in reverse order, each object starting where it ended.

    Its frames are exactly ``clip``'s frames in reverse order (see the module docstring).
    """
    reversed_events = [(event.actor, INVERSE_ACTIONS[event.action]) for event in reversed(clip.events)]
    order = list(dict.fromkeys(actor for actor, _ in reversed_events))
    renumber = {old: new for new, old in enumerate(order)}
    objects = []
    for old in order:
        obj = clip.objects[old]
        row, col = end_cell(clip, old)
        objects.append(SceneObject(obj.shape, obj.color, obj.size, row, col))
    # not validated again (which would recurse): the reverse of a valid clip is valid by symmetry
    return unchecked_clip(
        clip.clip_id + "-reversed" if clip_id is None else clip_id,
        tuple(objects),
        tuple(MotionEvent(renumber[a], action) for a, action in reversed_events),
    )


def unchecked_clip(clip_id: str, objects: tuple[SceneObject, ...], events: tuple[MotionEvent, ...]) -> Clip:
    """A :class:`Clip` built without its checks: for specs derived from an already valid clip."""
    clip = object.__new__(Clip)
    object.__setattr__(clip, "clip_id", clip_id)
    object.__setattr__(clip, "objects", objects)
    object.__setattr__(clip, "events", events)
    return clip


def pair_key(clip: Clip) -> str:
    """The same key for a clip and its reversal (the smaller of their two :func:`clip_key`)."""
    return min(clip_key(clip), clip_key(reverse_clip(clip)))


# ---------------------------------------------------------------- timeline


def object_states(clip: Clip, num_frames: int) -> list[list[tuple[SceneObject, tuple[float, float]]]]:
    """Per frame, the visible objects with their centres in unit image coordinates (x right, y down).

    Exact integer arithmetic: with ``T = num_frames``, the local time of event ``k`` at frame ``t`` is
    ``U / 2T`` with ``U = clamp(K(2t + 1) - 2kT, 0, 2T)``, a move's progress is ``E / 6T`` with
    ``E = clamp(5U - 2T, 0, 6T)`` and a centre coordinate is ``(6T * cell + delta * E + 3T) / 18T``,
    (here GRID_SIZE = 3), one correctly rounded division; so a clip and its reversal get bit-identical centres.
    """
    count, two_t = len(clip.events), 2 * num_frames
    frames = []
    for t in range(num_frames):
        local = [min(max(count * (2 * t + 1) - k * two_t, 0), two_t) for k in range(count)]
        placed = []
        for index, obj in enumerate(clip.objects):
            row, col, visible = 6 * num_frames * obj.row, 6 * num_frames * obj.col, True
            for k, event in enumerate(clip.events):
                if event.actor != index:
                    continue
                if event.action == "appear":
                    visible = visible and local[k] > num_frames
                elif event.action == "disappear":
                    visible = visible and local[k] < num_frames
                else:
                    dr, dc = MOVE_DELTAS[event.action]
                    progress = min(max(5 * local[k] - two_t, 0), 3 * two_t)
                    row, col = row + dr * progress, col + dc * progress
            if visible:
                scale = 6 * num_frames * GRID_SIZE
                center = ((col + 3 * num_frames) / scale, (row + 3 * num_frames) / scale)
                placed.append((obj, center))
        # a canonical drawing order, the same for a clip and its reversal
        placed.sort(key=lambda item: (item[0].shape, item[0].color, item[0].size))
        frames.append(placed)
    return frames


# ---------------------------------------------------------------- captions


@dataclass(frozen=True)
class MotionStep:
    """One event as a caption says it: the acting object, the action, and whether the previous
    clause already named this object (a pronoun or an elided subject then refers to it)."""

    obj: SceneObject
    action: str
    continues: bool = False


def motion_steps(clip: Clip) -> tuple[MotionStep, ...]:
    steps = []
    previous = None
    for event in clip.events:
        steps.append(MotionStep(clip.objects[event.actor], event.action, continues=event.actor == previous))
        previous = event.actor
    return tuple(steps)


@dataclass(frozen=True)
class ClipCaptionPlan:
    """How one caption of a clip is phrased: a template and a lexical style (0..NUM_MOTION_STYLES-1)."""

    template: str
    style: int = 0

    def __post_init__(self) -> None:
        if self.template not in CLIP_CAPTION_TEMPLATES:
            raise ValueError(f"template must be one of {CLIP_CAPTION_TEMPLATES}, got {self.template!r}")
        if self.style not in range(NUM_MOTION_STYLES):
            raise ValueError(f"style must be in 0..{NUM_MOTION_STYLES - 1}, got {self.style!r}")


def plan_clip_captions(count: int, rng: np.random.Generator) -> list[ClipCaptionPlan]:
    """``count`` plans with pairwise different templates and styles (so even one-event captions differ)."""
    if not 1 <= count <= NUM_MOTION_STYLES:
        raise ValueError(f"count must be in 1..{NUM_MOTION_STYLES}, got {count}")
    templates = rng.permutation(len(CLIP_CAPTION_TEMPLATES))[:count].tolist()
    styles = rng.permutation(NUM_MOTION_STYLES)[:count].tolist()
    return [ClipCaptionPlan(CLIP_CAPTION_TEMPLATES[t], s) for t, s in zip(templates, styles)]


def caption_clip(clip: Clip, plan: ClipCaptionPlan, language: str) -> str:
    """One caption of ``clip`` in ``language``."""
    from mmml.data.scenes.grammars import get_grammar

    return get_grammar(language).clip_caption(plan, motion_steps(clip))


# ---------------------------------------------------------------- JSON


def clip_to_json(clip: Clip) -> str:
    """``{"objects": [{shape, color, size, row, col}], "events": [{object, action, from, to}]}``.

    ``row`` / ``col`` are each object's start cell (where it appears, for ``appear``); ``from`` / ``to``
    are the cells the acting object is in before and after each event.
    """
    cells = {index: obj.cell for index, obj in enumerate(clip.objects)}
    events = []
    for event in clip.events:
        before = cells[event.actor]
        after = _step(before, event.action)
        cells[event.actor] = after
        events.append({"object": event.actor, "action": event.action, "from": list(before), "to": list(after)})
    objects = [{"shape": o.shape, "color": o.color, "size": o.size, "row": o.row, "col": o.col} for o in clip.objects]
    return json.dumps({"objects": objects, "events": events}, separators=(",", ":"))


def clip_from_json(text: str, clip_id: str = "") -> Clip:
    """Inverse of :func:`clip_to_json` (validates the clip)."""
    data = json.loads(text)
    return Clip(
        clip_id,
        tuple(SceneObject(**item) for item in data["objects"]),
        tuple(MotionEvent(item["object"], item["action"]) for item in data["events"]),
    )
