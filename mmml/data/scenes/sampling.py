"""Deterministic sampling of unique scene layouts and their split assignment.

A layout's split is a pure function of its :func:`~mmml.data.scenes.spec.layout_key` (a salted
SHA-256 bucket), so the train, validation and test splits can never share a layout, not even
across datasets built with different seeds or sizes. Layouts are drawn from a seeded numpy
generator, deduplicated, and kept while their split still needs scenes.
"""

from __future__ import annotations

import hashlib
from typing import Iterator

import numpy as np

from mmml.data.scenes.difficulty import DifficultyProfile
from mmml.data.scenes.spec import (
    COLOR_NAMES,
    COLORS,
    GRID_SIZE,
    SHAPES,
    SIZES,
    Distractor,
    Scene,
    SceneObject,
    layout_key,
)

SPLITS: tuple[str, ...] = ("train", "validation", "test")

_SPLIT_SALT = b"mmml/scenes/split/v1:"
#: out of 1000 hash buckets: 80% of all layouts belong to train, 10% to validation, 10% to test
_SPLIT_BUCKET_ENDS = (("train", 800), ("validation", 900), ("test", 1000))

# independent random streams derived from the config seed
LAYOUT_STREAM, CAPTION_STREAM, CLUTTER_STREAM = 0, 1, 2

_CLUTTER_GREYS = ((110, 110, 110), (160, 160, 160))
_CLUTTER_COLORS = tuple(COLORS.values()) + _CLUTTER_GREYS


def stream_rng(seed: int, stream: int) -> np.random.Generator:
    """The seeded generator of one random stream."""
    return np.random.default_rng([seed, stream])


def salted_split(key: str, salt: bytes, bucket_ends) -> str:
    """The split of `key`: its salted SHA-256 in one of 1,000 buckets, `bucket_ends` = ((split, end), ...)."""
    digest = hashlib.sha256(salt + key.encode("utf-8")).digest()
    bucket = int.from_bytes(digest[:8], "big") % 1000
    for split, end in bucket_ends:
        if bucket < end:
            return split
    raise ValueError(f"bucket {bucket} is past the last split's end in {bucket_ends}")


def split_of_layout(key: str) -> str:
    """The split a layout key belongs to: a salted SHA-256 bucket, the same in every process and build."""
    return salted_split(key, _SPLIT_SALT, _SPLIT_BUCKET_ENDS)


def candidate_layouts(
    rng: np.random.Generator, max_objects: int, batch_size: int = 4096
) -> Iterator[tuple[SceneObject, ...]]:
    """Endless stream of random layouts: 1..max_objects objects in distinct cells, in reading order.

    Random numbers are drawn in fixed-size batches (fast, and still one deterministic sequence).
    """
    cell_count = GRID_SIZE * GRID_SIZE
    while True:
        counts = rng.integers(1, max_objects + 1, size=batch_size)
        cells = np.argsort(rng.random((batch_size, cell_count)), axis=1)[:, :max_objects]
        shapes = rng.integers(0, len(SHAPES), size=(batch_size, max_objects))
        colors = rng.integers(0, len(COLOR_NAMES), size=(batch_size, max_objects))
        sizes = rng.integers(0, len(SIZES), size=(batch_size, max_objects))
        for count, row_cells, row_shapes, row_colors, row_sizes in zip(
            counts.tolist(), cells.tolist(), shapes.tolist(), colors.tolist(), sizes.tolist()
        ):
            picked = sorted(zip(row_cells[:count], row_shapes, row_colors, row_sizes))
            yield tuple(
                SceneObject(SHAPES[s], COLOR_NAMES[c], SIZES[z], cell // GRID_SIZE, cell % GRID_SIZE)
                for cell, s, c, z in picked
            )


def sample_distractors(rng: np.random.Generator, profile: DifficultyProfile) -> tuple[Distractor, ...]:
    """Clutter marks for one image: short thin lines and small dots, in unit coordinates."""
    if profile.max_distractors == 0:
        return ()
    count = int(rng.integers(profile.min_distractors, profile.max_distractors + 1))
    colors = rng.integers(len(_CLUTTER_COLORS), size=count)
    starts = rng.uniform(0.05, 0.95, size=(count, 2))
    is_line = rng.random(count) < 0.5
    lengths = rng.uniform(0.08, 0.25, size=count)
    angles = rng.uniform(0, 2 * np.pi, size=count)
    ends = np.clip(starts + lengths[:, None] * np.stack([np.cos(angles), np.sin(angles)], axis=1), 0.02, 0.98)
    # rounded so that the JSON spec reproduces the image exactly
    starts, ends = np.round(starts, 4).tolist(), np.round(ends, 4).tolist()
    return tuple(
        Distractor("line", (tuple(starts[i]), tuple(ends[i])), _CLUTTER_COLORS[colors[i]])
        if is_line[i]
        else Distractor("dot", (tuple(starts[i]),), _CLUTTER_COLORS[colors[i]])
        for i in range(count)
    )


def sample_split_layouts(
    split_sizes: dict[str, int], profile: DifficultyProfile, seed: int, max_draws: int | None = None
) -> dict[str, list[tuple[SceneObject, ...]]]:
    """Draw unique layouts until every split has ``split_sizes[split]`` of its own.

    Raises RuntimeError if ``max_draws`` (default: generous, 200 per requested scene) is exhausted,
    e.g. when more scenes are asked for than distinct layouts exist.
    """
    rng = stream_rng(seed, LAYOUT_STREAM)
    wanted = {split: split_sizes.get(split, 0) for split in SPLITS}
    layouts: dict[str, list[tuple[SceneObject, ...]]] = {split: [] for split in SPLITS}
    seen: set[str] = set()
    remaining = sum(wanted.values())
    budget = max_draws if max_draws is not None else 200 * remaining + 10_000
    draws = 0
    candidates = candidate_layouts(rng, profile.max_objects)
    while remaining:
        if draws >= budget:
            short = {s: wanted[s] - len(layouts[s]) for s in SPLITS if len(layouts[s]) < wanted[s]}
            raise RuntimeError(
                f"could not find enough distinct layouts after {draws} draws; still missing {short}"
            )
        draws += 1
        objects = next(candidates)
        key = layout_key(objects)
        if key in seen:
            continue
        seen.add(key)
        split = split_of_layout(key)
        if len(layouts[split]) < wanted[split]:
            layouts[split].append(objects)
            remaining -= 1
    return layouts


def sample_scenes(split_sizes: dict[str, int], profile: DifficultyProfile, seed: int) -> dict[str, list[Scene]]:
    """All scenes of all splits, with ids ``<split>-<index:06d>`` and their clutter."""
    layouts = sample_split_layouts(split_sizes, profile, seed)
    clutter_rng = stream_rng(seed, CLUTTER_STREAM)
    return {
        split: [
            Scene(f"{split}-{index:06d}", objects, sample_distractors(clutter_rng, profile))
            for index, objects in enumerate(layouts[split])
        ]
        for split in SPLITS
    }
