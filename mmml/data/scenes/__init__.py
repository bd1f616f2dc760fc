"""Deterministic generator of multilingual synthetic scenes (shapes on a 3x3 grid) and clips of them moving."""

from mmml.data.scenes.captions import CAPTION_TEMPLATES, CaptionPlan
from mmml.data.scenes.clips import (
    CLIP_SPLITS,
    ClipConfig,
    build_clip_dataset,
    clip_features,
    render_clip,
    render_clip_frames,
    split_of_pair,
)
from mmml.data.scenes.config import SceneConfig
from mmml.data.scenes.dataset import build_scene_dataset, scene_features
from mmml.data.scenes.difficulty import DIFFICULTY_PROFILES
from mmml.data.scenes.grammars import SCENE_LANGUAGES, get_grammar
from mmml.data.scenes.labels import LABEL_VOCABULARY, label_vocabulary, scene_labels
from mmml.data.scenes.motion import (
    CLIP_CAPTION_TEMPLATES,
    MOTION_ACTIONS,
    Clip,
    ClipCaptionPlan,
    MotionEvent,
    caption_clip,
    clip_from_json,
    clip_key,
    clip_to_json,
    pair_key,
    reverse_clip,
)
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
    "CLIP_CAPTION_TEMPLATES",
    "CLIP_SPLITS",
    "COLORS",
    "CaptionPlan",
    "Clip",
    "ClipCaptionPlan",
    "ClipConfig",
    "DIFFICULTY_PROFILES",
    "Distractor",
    "LABEL_VOCABULARY",
    "MOTION_ACTIONS",
    "MotionEvent",
    "SCENE_LANGUAGES",
    "SHAPES",
    "SIZES",
    "SPLITS",
    "Scene",
    "SceneConfig",
    "SceneObject",
    "build_clip_dataset",
    "build_scene_dataset",
    "caption_clip",
    "clip_features",
    "clip_from_json",
    "clip_key",
    "clip_to_json",
    "distractors_from_json",
    "get_grammar",
    "label_vocabulary",
    "layout_key",
    "objects_from_json",
    "pair_key",
    "render_clip",
    "render_clip_frames",
    "render_frame",
    "render_scene",
    "reverse_clip",
    "scene_features",
    "scene_labels",
    "split_of_layout",
    "split_of_pair",
]
