"""Configuration of the scene generator."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from mmml.data.scenes.captions import CAPTION_TEMPLATES
from mmml.data.scenes.difficulty import DIFFICULTY_PROFILES, DifficultyProfile
from mmml.data.scenes.grammars import SCENE_LANGUAGES

MIN_IMAGE_SIZE = 24
MAX_IMAGE_SIZE = 1024


def _require_int(name: str, value: Any, low: int, high: int | None = None) -> None:
    upper = "" if high is None else f" and <= {high}"
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        raise ValueError(f"SceneConfig.{name} must be an int >= {low}{upper}, got {value!r}")


@dataclass
class SceneConfig:
    """How many scenes to generate and how.

    Args:
        num_train / num_val / num_test: scenes per split (train / validation / test). ``num_test=None``
            means the difficulty's default (1,000; 5,000 at difficulty 3), see :attr:`test_size`.
        languages: caption languages, a subset of :data:`SCENE_LANGUAGES` (ISO 639-1 codes).
        captions_per_language: captions per scene and language, each with a different phrasing
            (1 to the number of phrasings, 5).
        image_size: side of the square RGB images in pixels.
        difficulty: 0..3 (details in :mod:`mmml.data.scenes.difficulty`): 0 = 1-4 objects, every
            caption complete, no clutter; 1 = also a quarter of the captions of multi-object scenes
            describe only some objects; 2 = also up to 6 objects and 2-5 undescribed clutter marks
            per image; 3 = also a 5,000-scene test gallery unless ``num_test`` is given.
        seed: same config and seed give byte-identical images and identical captions.
    """

    num_train: int = 20000
    num_val: int = 500
    num_test: int | None = None
    languages: tuple[str, ...] = SCENE_LANGUAGES
    captions_per_language: int = 2
    image_size: int = 64
    difficulty: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.languages, str):
            raise ValueError(
                f"SceneConfig.languages must be a sequence of language codes such as ('en', 'de'), "
                f"got the string {self.languages!r}"
            )
        self.languages = tuple(self.languages)
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first invalid field and its valid values."""
        _require_int("num_train", self.num_train, 0)
        _require_int("num_val", self.num_val, 0)
        if self.num_test is not None:
            _require_int("num_test", self.num_test, 0)
        if not self.languages:
            raise ValueError(f"SceneConfig.languages must not be empty; supported: {list(SCENE_LANGUAGES)}")
        unknown = [lang for lang in self.languages if lang not in SCENE_LANGUAGES]
        if unknown:
            raise ValueError(
                f"SceneConfig.languages has unsupported language(s) {unknown}; supported: {list(SCENE_LANGUAGES)}"
            )
        if len(set(self.languages)) != len(self.languages):
            raise ValueError(f"SceneConfig.languages has duplicates: {list(self.languages)}")
        _require_int("captions_per_language", self.captions_per_language, 1, len(CAPTION_TEMPLATES))
        _require_int("image_size", self.image_size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)
        if (
            isinstance(self.difficulty, bool)
            or not isinstance(self.difficulty, int)
            or self.difficulty not in DIFFICULTY_PROFILES
        ):
            raise ValueError(
                f"SceneConfig.difficulty must be one of {sorted(DIFFICULTY_PROFILES)}, got {self.difficulty!r}"
            )
        _require_int("seed", self.seed, 0)
        if self.num_train + self.num_val + self.test_size == 0:
            raise ValueError("SceneConfig asks for zero scenes: set num_train, num_val or num_test > 0")

    @property
    def profile(self) -> DifficultyProfile:
        return DIFFICULTY_PROFILES[self.difficulty]

    @property
    def test_size(self) -> int:
        """``num_test``, or the difficulty's default gallery size when it is None."""
        return self.profile.default_num_test if self.num_test is None else self.num_test

    @property
    def split_sizes(self) -> dict[str, int]:
        return {"train": self.num_train, "validation": self.num_val, "test": self.test_size}

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["languages"] = list(self.languages)
        return data
