"""Data: the synthetic multilingual scene generator, manifests and image decoding."""

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
    LABEL_VOCABULARY,
    SCENE_LANGUAGES,
    SceneConfig,
    build_scene_dataset,
    label_vocabulary,
)

__all__ = [
    "BadSampleError",
    "ImageDecodeError",
    "LABEL_VOCABULARY",
    "ManifestFormatError",
    "ManifestReport",
    "SCENE_LANGUAGES",
    "SceneConfig",
    "SkippedRow",
    "build_scene_dataset",
    "decode_image",
    "label_vocabulary",
    "load_manifest",
    "load_manifest_with_report",
    "write_manifest",
]
