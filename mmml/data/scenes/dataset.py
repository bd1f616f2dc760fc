"""Assemble sampled, rendered and captioned scenes into a ``datasets.DatasetDict``."""

from __future__ import annotations

import json
from typing import Sequence

import numpy as np
import pyarrow as pa
from datasets import Dataset, DatasetDict, DatasetInfo, Features, Image, List, Value

from mmml.data.scenes.captions import plan_captions
from mmml.data.scenes.config import SceneConfig
from mmml.data.scenes.grammars import get_grammar
from mmml.data.scenes.labels import scene_labels
from mmml.data.scenes.render import encode_png, render_scene
from mmml.data.scenes.sampling import CAPTION_STREAM, SPLITS, sample_scenes, stream_rng
from mmml.data.scenes.spec import Scene, distractors_to_json, objects_to_json


def scene_features(languages: Sequence[str]) -> Features:
    """Column schema of a scene split.

    ``scene_id`` str; ``image`` PNG image; ``captions`` one list of str per language code;
    ``labels`` ids into :data:`~mmml.data.scenes.labels.LABEL_VOCABULARY`; ``objects`` JSON list of
    ``{shape, color, size, row, col}``; ``distractors`` JSON list of undescribed clutter marks
    (``[]`` below difficulty 2).
    """
    return Features(
        {
            "scene_id": Value("string"),
            "image": Image(),
            "captions": {language: List(Value("string")) for language in languages},
            "labels": List(Value("int64")),
            "objects": Value("string"),
            "distractors": Value("string"),
        }
    )


def caption_scene(scene: Scene, config: SceneConfig, rng: np.random.Generator) -> dict[str, list[str]]:
    """``captions_per_language`` captions per language; caption i is the same plan in every language."""
    plans = plan_captions(scene.objects, config.captions_per_language, config.profile.partial_caption_rate, rng)
    return {language: [get_grammar(language).caption(plan) for plan in plans] for language in config.languages}


def _split_columns(
    scenes: Sequence[Scene], config: SceneConfig, caption_rng: np.random.Generator
) -> dict[str, list]:
    names = ("scene_id", "image", "captions", "labels", "objects", "distractors")
    columns: dict[str, list] = {name: [] for name in names}
    for scene in scenes:
        columns["scene_id"].append(scene.scene_id)
        columns["image"].append({"bytes": encode_png(render_scene(scene, config.image_size)), "path": None})
        columns["captions"].append(caption_scene(scene, config, caption_rng))
        columns["labels"].append(scene_labels(scene.objects))
        columns["objects"].append(objects_to_json(scene.objects))
        columns["distractors"].append(distractors_to_json(scene.distractors))
    return columns


def _to_dataset(columns: dict[str, list], features: Features, info: DatasetInfo, split: str) -> Dataset:
    # typed Arrow arrays skip datasets' per-row python encoding (a large share of the build time)
    schema = features.arrow_schema
    arrays = {name: pa.array(values, type=schema.field(name).type) for name, values in columns.items()}
    return Dataset.from_dict(arrays, features=features, info=info, split=split)


def build_scene_dataset(config: SceneConfig | None = None) -> DatasetDict:
    """Generate the train / validation / test scene splits described by ``config``.

    The same config (seed included) gives byte-identical images and identical captions in any
    process. Layouts never repeat, within or across splits (see :mod:`mmml.data.scenes.sampling`).
    """
    config = config or SceneConfig()
    config.validate()
    scenes = sample_scenes(config.split_sizes, config.profile, config.seed)
    caption_rng = stream_rng(config.seed, CAPTION_STREAM)
    features = scene_features(config.languages)
    description = "mmml synthetic multilingual scenes; SceneConfig = " + json.dumps(config.to_dict(), sort_keys=True)
    return DatasetDict(
        {
            split: _to_dataset(
                _split_columns(scenes[split], config, caption_rng),
                features,
                DatasetInfo(description=description, features=features),
                split,
            )
            for split in SPLITS
        }
    )
