"""Embedded video clips: 1-2 shapes moving, appearing and disappearing on the scenes' 3x3 grid.

``build_clip_dataset(ClipConfig(...))`` gives the splits ``train``, ``validation``, ``test`` and
``temporal_test``. Each clip is one or two events (:mod:`mmml.data.scenes.motion`), captioned in
every scene language in time order ("A small red circle moves to the left, then a large blue square
appears.").

Content and splits. What a caption says (the objects' looks and the events, not the start cells) is
the clip's :func:`~mmml.data.scenes.motion.clip_key`; a dataset never holds two clips with one key.
A clip and its reversal share a :func:`~mmml.data.scenes.motion.pair_key`, and the split of a pair
key is a salted SHA-256 bucket (65% train, 7.5% validation, 15% test, 12.5% temporal_test), so no
content, nor its reversal, is ever in two splits, whatever the seed or sizes.

The temporal split. ``temporal_test`` holds pairs: a clip and its reversal (inverse actions in
reverse order, ``group`` = the pair's index, rows ``2g`` and ``2g + 1``). The reversal's frames are
exactly the clip's frames in reverse order, so a head that ignores frame order (meanP: the mean of
per-frame embeddings) gives both clips of a pair the same embedding, up to float rounding, and
cannot tell them apart: with equal scores the pessimistic tie rule of :mod:`mmml.eval.retrieval`
ranks the twin first, otherwise rounding noise decides (about 50% R@1 at best). Their captions
differ in direction ("moves to the left" / "moves to the right"), in appearing versus disappearing,
and in the order of the events. (A frame sampler keeps the property when it takes every frame, or
picks indices symmetric under ``i -> T - 1 - i``.)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any, Iterator, Sequence

import numpy as np
import pyarrow as pa
from datasets import Dataset, DatasetDict, DatasetInfo, Features, List, Value

from mmml.data.scenes.config import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE
from mmml.data.scenes.grammars import SCENE_LANGUAGES
from mmml.data.scenes.labels import scene_labels
from mmml.data.scenes.motion import (
    MOTION_ACTIONS,
    MOVE_ACTIONS,
    NUM_MOTION_STYLES,
    Clip,
    MotionEvent,
    action_path,
    caption_clip,
    clip_key,
    clip_to_json,
    object_states,
    pair_key,
    plan_clip_captions,
    reverse_clip,
    unchecked_clip,
)
from mmml.data.scenes.render import encode_png, render_frame
from mmml.data.scenes.sampling import salted_split, stream_rng
from mmml.data.scenes.spec import COLOR_NAMES, GRID_SIZE, SHAPES, SIZES, SceneObject

CLIP_SPLITS: tuple[str, ...] = ("train", "validation", "test", "temporal_test")

MIN_FRAMES, MAX_FRAMES = 4, 64

_SPLIT_SALT = b"mmml/scenes/clips/split/v1:"
#: out of 1000 hash buckets of a pair key
_SPLIT_BUCKET_ENDS = (("train", 650), ("validation", 725), ("test", 875), ("temporal_test", 1000))

# random streams derived from the config seed (independent of the image scenes' streams 0-2)
CLIP_STREAM, CLIP_CAPTION_STREAM = 10, 11

#: what a drawn clip is: one object with one event, one object with two, or two objects with one each
CLIP_KINDS: tuple[str, ...] = ("one_event", "one_object_two_events", "two_objects")
#: draw probabilities of the kinds (the two-object space is by far the largest: ~585k contents vs 768 / 2,048)
CLIP_KIND_WEIGHTS: tuple[float, ...] = (0.2, 0.3, 0.5)

# two events of one object: appear then move, move then disappear, or two perpendicular moves
# (a move and its opposite, or appear then disappear, read the same backwards; two equal moves look like one)
_PERPENDICULAR = {"move_left": ("move_up", "move_down"), "move_right": ("move_up", "move_down"),
                  "move_up": ("move_left", "move_right"), "move_down": ("move_left", "move_right")}
ONE_OBJECT_SEQUENCES: tuple[tuple[str, str], ...] = (
    tuple(("appear", move) for move in MOVE_ACTIONS)
    + tuple((move, "disappear") for move in MOVE_ACTIONS)
    + tuple((move, other) for move in MOVE_ACTIONS for other in _PERPENDICULAR[move])
)
_CELLS = tuple((row, col) for row in range(GRID_SIZE) for col in range(GRID_SIZE))


def _require_int(name: str, value: Any, low: int, high: int | None = None) -> None:
    upper = "" if high is None else f" and <= {high}"
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        raise ValueError(f"ClipConfig.{name} must be an int >= {low}{upper}, got {value!r}")


@dataclass
class ClipConfig:
    """How many clips to generate and how.

    Args:
        num_train / num_val / num_test: clips of the train / validation / test splits.
        num_temporal_test: clips of the temporal split (pairs of a clip and its reversal; even).
        num_frames: frames per clip (4..64).
        image_size: side of the square RGB frames in pixels. 60 (the default) is what the tiny
            recipes feed their image towers (20 px patches = one grid cell).
        captions_per_language: captions per clip and language, each with a different template and
            verb style (1..3).
        languages: caption languages, a subset of :data:`SCENE_LANGUAGES`.
        seed: the same config and seed give byte-identical frames and identical captions.
    """

    num_train: int = 5000
    num_val: int = 500
    num_test: int = 1000
    num_temporal_test: int = 1000
    num_frames: int = 8
    image_size: int = 60
    captions_per_language: int = 2
    languages: tuple[str, ...] = SCENE_LANGUAGES
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.languages, str):
            raise ValueError(
                f"ClipConfig.languages must be a sequence of language codes such as ('en', 'de'), "
                f"got the string {self.languages!r}"
            )
        self.languages = tuple(self.languages)
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first invalid field and its valid values."""
        for name in ("num_train", "num_val", "num_test", "num_temporal_test"):
            _require_int(name, getattr(self, name), 0)
        if self.num_temporal_test % 2:
            raise ValueError(
                f"ClipConfig.num_temporal_test must be even (the split holds pairs of a clip and its reversal), "
                f"got {self.num_temporal_test}"
            )
        _require_int("num_frames", self.num_frames, MIN_FRAMES, MAX_FRAMES)
        _require_int("image_size", self.image_size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)
        _require_int("captions_per_language", self.captions_per_language, 1, NUM_MOTION_STYLES)
        if not self.languages:
            raise ValueError(f"ClipConfig.languages must not be empty; supported: {list(SCENE_LANGUAGES)}")
        unknown = [lang for lang in self.languages if lang not in SCENE_LANGUAGES]
        if unknown:
            raise ValueError(
                f"ClipConfig.languages has unsupported language(s) {unknown}; supported: {list(SCENE_LANGUAGES)}"
            )
        if len(set(self.languages)) != len(self.languages):
            raise ValueError(f"ClipConfig.languages has duplicates: {list(self.languages)}")
        _require_int("seed", self.seed, 0)
        if sum(self.split_sizes.values()) == 0:
            raise ValueError(
                "ClipConfig asks for zero clips: set num_train, num_val, num_test or num_temporal_test > 0"
            )

    @property
    def split_sizes(self) -> dict[str, int]:
        return {
            "train": self.num_train,
            "validation": self.num_val,
            "test": self.num_test,
            "temporal_test": self.num_temporal_test,
        }

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["languages"] = list(self.languages)
        return data


# ---------------------------------------------------------------- sampling


def split_of_pair(key: str) -> str:
    """The split of a clip's :func:`~mmml.data.scenes.motion.pair_key`: a salted SHA-256 bucket."""
    return salted_split(key, _SPLIT_SALT, _SPLIT_BUCKET_ENDS)


@lru_cache(maxsize=None)
def _start_cells(
    actions: tuple[str, ...], taken: frozenset[tuple[int, int]] = frozenset()
) -> tuple[tuple[int, int], ...]:
    """Start cells from which ``actions`` stay on the grid and never touch a cell in ``taken``."""
    cells = []
    for cell in _CELLS:
        path = action_path(cell, actions)
        if path is not None and not taken.intersection(path):
            cells.append(cell)
    return tuple(cells)


def _pick(values: Sequence, u: float):
    return values[min(int(u * len(values)), len(values) - 1)]


def _decode_candidate(u: Sequence[float]) -> Clip | None:
    """Turn 11 uniform numbers into a clip (None when the two objects would look the same)."""
    kind_u, cumulative = u[0], 0.0
    kind = CLIP_KINDS[-1]
    for name, weight in zip(CLIP_KINDS, CLIP_KIND_WEIGHTS):
        cumulative += weight
        if kind_u < cumulative:
            kind = name
            break
    looks_a = (_pick(SHAPES, u[1]), _pick(COLOR_NAMES, u[2]), _pick(SIZES, u[3]))
    if kind == "two_objects":
        looks_b = (_pick(SHAPES, u[4]), _pick(COLOR_NAMES, u[5]), _pick(SIZES, u[6]))
        if looks_b == looks_a:
            return None
        action_a, action_b = _pick(MOTION_ACTIONS, u[7]), _pick(MOTION_ACTIONS, u[8])
        cell_a = _pick(_start_cells((action_a,)), u[9])
        path_a = frozenset(action_path(cell_a, [action_a]))  # type: ignore[arg-type]
        cell_b = _pick(_start_cells((action_b,), path_a), u[10])
        objects = (SceneObject(*looks_a, *cell_a), SceneObject(*looks_b, *cell_b))
        events = (MotionEvent(0, action_a), MotionEvent(1, action_b))
    else:
        actions = (_pick(MOTION_ACTIONS, u[7]),) if kind == "one_event" else _pick(ONE_OBJECT_SEQUENCES, u[7])
        cell = _pick(_start_cells(actions), u[9])
        objects = (SceneObject(*looks_a, *cell),)
        events = tuple(MotionEvent(0, action) for action in actions)
    return Clip("", objects, events)


def candidate_clips(rng: np.random.Generator, batch_size: int = 4096) -> Iterator[Clip]:
    """Endless stream of random valid clips (ids empty), from uniform numbers drawn in fixed batches."""
    while True:
        for row in rng.random((batch_size, 11)).tolist():
            clip = _decode_candidate(row)
            if clip is not None:
                yield clip


def _with_id(clip: Clip, clip_id: str) -> Clip:
    return unchecked_clip(clip_id, clip.objects, clip.events)


def sample_clip_splits(
    split_sizes: dict[str, int], seed: int, max_draws: int | None = None
) -> dict[str, list[Clip]]:
    """Draw clips with unique content until every split has ``split_sizes[split]`` of its own.

    ``temporal_test`` is filled with (clip, reversal) pairs. Raises RuntimeError when ``max_draws``
    (default: 200 per requested clip) runs out, e.g. when more clips are asked for than exist.
    """
    wanted = {split: split_sizes.get(split, 0) for split in CLIP_SPLITS}
    if wanted["temporal_test"] % 2:
        raise ValueError(f"temporal_test holds pairs: its size must be even, got {wanted['temporal_test']}")
    clips: dict[str, list[Clip]] = {split: [] for split in CLIP_SPLITS}
    seen: set[str] = set()  # clip keys
    remaining = sum(wanted.values())
    budget = max_draws if max_draws is not None else 200 * remaining + 10_000
    draws = 0
    candidates = candidate_clips(stream_rng(seed, CLIP_STREAM))
    while remaining:
        if draws >= budget:
            short = {s: wanted[s] - len(clips[s]) for s in CLIP_SPLITS if len(clips[s]) < wanted[s]}
            raise RuntimeError(f"could not find enough distinct clips after {draws} draws; still missing {short}")
        draws += 1
        clip = next(candidates)
        key = clip_key(clip)
        if key in seen:
            continue
        split = split_of_pair(pair_key(clip))
        have = clips[split]
        if len(have) >= wanted[split]:
            continue
        seen.add(key)
        if split == "temporal_test":
            group = len(have) // 2
            reverse = reverse_clip(clip, f"{split}-{2 * group + 1:06d}")
            seen.add(clip_key(reverse))
            have.extend([_with_id(clip, f"{split}-{2 * group:06d}"), reverse])
            remaining -= 2
        else:
            # a clip's reversal may join it in its split later (a hard negative there), never another split
            have.append(_with_id(clip, f"{split}-{len(have):06d}"))
            remaining -= 1
    return clips


# ---------------------------------------------------------------- rendering


def render_clip_frames(clip: Clip, num_frames: int = 8, image_size: int = 60) -> list:
    """The clip's frames as RGB PIL images."""
    return [render_frame(placed, (), image_size) for placed in object_states(clip, num_frames)]


def render_clip(clip: Clip, num_frames: int = 8, image_size: int = 60) -> list[bytes]:
    """The clip as PNG-encoded frames (what the dataset's ``video`` column holds).

    Frames that show the same state (an object standing still) are rendered once.
    """
    encoded: dict[tuple, bytes] = {}
    frames = []
    for placed in object_states(clip, num_frames):
        state = tuple((o.shape, o.color, o.size, center) for o, center in placed)
        if state not in encoded:
            encoded[state] = encode_png(render_frame(placed, (), image_size))
        frames.append(encoded[state])
    return frames


# ---------------------------------------------------------------- dataset


def clip_features(languages: Sequence[str]) -> Features:
    """Column schema of a clip split.

    ``clip_id`` str; ``video`` the PNG-encoded frames in time order (a list of bytes); ``captions``
    one list of str per language code; ``labels`` ids into
    :data:`~mmml.data.scenes.labels.LABEL_VOCABULARY` (the objects' shapes, colours and kinds);
    ``events`` JSON ``{"objects": [...], "events": [{object, action, from, to}]}``
    (:func:`~mmml.data.scenes.motion.clip_to_json`); ``group`` the index of the reversal pair in
    ``temporal_test`` (its rows ``2g`` and ``2g + 1``), -1 in the other splits.
    """
    return Features(
        {
            "clip_id": Value("string"),
            "video": List(Value("binary")),
            "captions": {language: List(Value("string")) for language in languages},
            "labels": List(Value("int64")),
            "events": Value("string"),
            "group": Value("int64"),
        }
    )


def _split_columns(clips: Sequence[Clip], split: str, config: ClipConfig, caption_rng: np.random.Generator) -> dict:
    names = ("clip_id", "video", "captions", "labels", "events", "group")
    columns: dict[str, list] = {name: [] for name in names}
    plans: list = []
    for index, clip in enumerate(clips):
        paired = split == "temporal_test"
        # the two clips of a temporal pair share their caption plans: the captions differ only in content
        if not paired or index % 2 == 0:
            plans = plan_clip_captions(config.captions_per_language, caption_rng)
        columns["clip_id"].append(clip.clip_id)
        columns["video"].append(render_clip(clip, config.num_frames, config.image_size))
        columns["captions"].append(
            {language: [caption_clip(clip, plan, language) for plan in plans] for language in config.languages}
        )
        columns["labels"].append(scene_labels(clip.objects))
        columns["events"].append(clip_to_json(clip))
        columns["group"].append(index // 2 if paired else -1)
    return columns


def _to_dataset(columns: dict[str, list], features: Features, info: DatasetInfo, split: str) -> Dataset:
    schema = features.arrow_schema
    arrays = {name: pa.array(values, type=schema.field(name).type) for name, values in columns.items()}
    return Dataset.from_dict(arrays, features=features, info=info, split=split)


def build_clip_dataset(config: ClipConfig | None = None) -> DatasetDict:
    """Generate the ``train`` / ``validation`` / ``test`` / ``temporal_test`` clip splits of ``config``.

    The same config (seed included) gives byte-identical frames and identical captions in any
    process; nothing is cached on disk.
    """
    config = config or ClipConfig()
    config.validate()
    clips = sample_clip_splits(config.split_sizes, config.seed)
    caption_rng = stream_rng(config.seed, CLIP_CAPTION_STREAM)
    features = clip_features(config.languages)
    description = "mmml synthetic multilingual clips; ClipConfig = " + json.dumps(config.to_dict(), sort_keys=True)
    return DatasetDict(
        {
            split: _to_dataset(
                _split_columns(clips[split], split, config, caption_rng),
                features,
                DatasetInfo(description=description, features=features),
                split,
            )
            for split in CLIP_SPLITS
        }
    )


__all__ = [
    "CLIP_KINDS",
    "CLIP_KIND_WEIGHTS",
    "CLIP_SPLITS",
    "ONE_OBJECT_SEQUENCES",
    "ClipConfig",
    "build_clip_dataset",
    "candidate_clips",
    "clip_features",
    "render_clip",
    "render_clip_frames",
    "sample_clip_splits",
    "split_of_pair",
]
