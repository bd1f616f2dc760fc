"""What each difficulty level changes, in one table.

=====  ===========================================================================================
level  effect (each level includes everything of the levels below)
=====  ===========================================================================================
0      1-4 objects per scene, every caption describes every object, no clutter.
1      a quarter of the captions of multi-object scenes are *partial*: they describe a random
       non-empty proper subset of the objects (never with the count-first phrasing, whose count
       would then be false). What they do say stays true.
2      1-6 objects per scene, and every image gets 2-5 undescribed clutter marks (thin line
       segments and small dots in palette or grey colours) drawn *under* the objects, so the
       described objects stay fully visible and their labels exact.
3      the test split defaults to 5,000 scenes instead of 1,000 (a larger retrieval gallery).
=====  ===========================================================================================
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DifficultyProfile:
    """The knobs one difficulty level sets."""

    max_objects: int
    partial_caption_rate: float
    min_distractors: int
    max_distractors: int
    default_num_test: int


_COMPLETE = dict(partial_caption_rate=0.0, min_distractors=0, max_distractors=0)
_CLUTTERED = dict(partial_caption_rate=0.25, min_distractors=2, max_distractors=5)

DIFFICULTY_PROFILES: dict[int, DifficultyProfile] = {
    0: DifficultyProfile(max_objects=4, default_num_test=1000, **_COMPLETE),
    1: DifficultyProfile(max_objects=4, default_num_test=1000, **dict(_COMPLETE, partial_caption_rate=0.25)),
    2: DifficultyProfile(max_objects=6, default_num_test=1000, **_CLUTTERED),
    3: DifficultyProfile(max_objects=6, default_num_test=5000, **_CLUTTERED),
}
