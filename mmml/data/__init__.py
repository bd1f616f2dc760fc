"""Data: the synthetic multilingual scene and clip generators, manifests and image decoding."""

from mmml.data.images import ImageDecodeError, decode_image
from mmml.data.manifest import (
    BadSampleError,
    ManifestFormatError,
    ManifestReport,
    SkippedRow,
    load_manifest,
    load_manifest_with_report,
    write_manifest,
)
from mmml.data.scenes import (
    CLIP_SPLITS,
    LABEL_VOCABULARY,
    SCENE_LANGUAGES,
    ClipConfig,
    SceneConfig,
    build_clip_dataset,
    build_scene_dataset,
    label_vocabulary,
)

__all__ = [
    "BadSampleError",
    "CLIP_SPLITS",
    "ClipConfig",
    "ImageDecodeError",
    "LABEL_VOCABULARY",
    "ManifestFormatError",
    "ManifestReport",
    "SCENE_LANGUAGES",
    "SceneConfig",
    "SkippedRow",
    "build_clip_dataset",
    "build_scene_dataset",
    "decode_image",
    "label_vocabulary",
    "load_manifest",
    "load_manifest_with_report",
    "write_manifest",
]
