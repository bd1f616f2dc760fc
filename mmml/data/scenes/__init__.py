"""Deterministic generator of multilingual synthetic scenes (shapes on a 3x3 grid)."""

from mmml.data.scenes.captions import CAPTION_TEMPLATES, CaptionPlan
from mmml.data.scenes.config import SceneConfig
from mmml.data.scenes.dataset import build_scene_dataset, scene_features
from mmml.data.scenes.difficulty import DIFFICULTY_PROFILES
from mmml.data.scenes.grammars import SCENE_LANGUAGES, get_grammar
from mmml.data.scenes.labels import LABEL_VOCABULARY, label_vocabulary, scene_labels
from mmml.data.scenes.render import render_frame, render_scene
from mmml.data.scenes.sampling import SPLITS, split_of_layout
from mmml.data.scenes.spec import (
    COLORS,
    SHAPES,
    SIZES,
    Distractor,
    Scene,
    SceneObject,
    distractors_from_json,
    layout_key,
    objects_from_json,
)

__all__ = [
    "CAPTION_TEMPLATES",
    "COLORS",
    "CaptionPlan",
    "DIFFICULTY_PROFILES",
    "Distractor",
    "LABEL_VOCABULARY",
    "SCENE_LANGUAGES",
    "SHAPES",
    "SIZES",
    "SPLITS",
    "Scene",
    "SceneConfig",
    "SceneObject",
    "build_scene_dataset",
    "distractors_from_json",
    "get_grammar",
    "label_vocabulary",
    "layout_key",
    "objects_from_json",
    "render_frame",
    "render_scene",
    "scene_features",
    "scene_labels",
    "split_of_layout",
]
