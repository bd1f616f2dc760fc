"""Modalities as data: what a multi-encoder needs to know to build, call and route each one.

A `Modality` names its sub-config key, the attributes of its tower and projection, the model
inputs it owns and how they reach the tower. `MultiEncoderModel` builds one tower + pooling +
projection for every modality its config lists and routes `forward` inputs by these names.
Modalities may share a tower and a projection (video frames go through the image tower).

Register a new one with `register_modality(Modality(...))`; nothing else in mmml changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Modality:
    """Description of one input modality.

    Args:
        name: short name ("image", "text", ...): `get_<name>_features`, `<name>_embeds`, objectives.
        config_key: the composite config's field holding the tower's sub-config (`vision_config`).
        tower_attribute: module attribute of the tower (`vision_model`); shared by modalities that name it.
        projection_attribute: module attribute of the projection (`visual_projection`).
        pooling_field: the config field naming the pooling strategy ("pooler", "cls", "mean").
        input_names: the `forward` inputs this modality owns, its main input first.
        tower_arguments: model input name -> candidate argument names of the tower's forward; the
            first one the tower accepts is used (inputs not listed here are not passed to the tower).
        mask_name: the input marking real positions (tokens, frames), or None.
        embeds_name / output_name: output fields for the normalised embedding and the tower output.
        frames: the main input is `[batch, frames, ...]`; the tower runs on every frame and the
            per-frame embeddings are reduced over the frames marked in `mask_name`.
        default_model_type: the tower built when a config lists the modality without a sub-config.
    """

    name: str
    config_key: str
    tower_attribute: str
    projection_attribute: str
    pooling_field: str
    input_names: tuple[str, ...]
    tower_arguments: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    mask_name: str | None = None
    embeds_name: str = ""
    output_name: str = ""
    frames: bool = False
    default_model_type: str | None = None

    def __post_init__(self):
        if not self.input_names:
            raise ValueError(f"modality {self.name!r} must own at least one input name")
        if not self.embeds_name:
            object.__setattr__(self, "embeds_name", f"{self.name}_embeds")
        if not self.output_name:
            object.__setattr__(self, "output_name", f"{self.name}_model_output")

    @property
    def main_input(self) -> str:
        return self.input_names[0]


IMAGE = Modality(
    name="image", config_key="vision_config", tower_attribute="vision_model", projection_attribute="visual_projection",
    pooling_field="vision_pooling", input_names=("pixel_values",), tower_arguments={"pixel_values": ("pixel_values",)},
    output_name="vision_model_output", default_model_type="clip_vision_model",
)
TEXT = Modality(
    name="text", config_key="text_config", tower_attribute="text_model", projection_attribute="text_projection",
    pooling_field="text_pooling",
    input_names=("input_ids", "attention_mask", "token_type_ids", "position_ids", "inputs_embeds"),
    tower_arguments={name: (name,) for name in
                     ("input_ids", "attention_mask", "token_type_ids", "position_ids", "inputs_embeds")},
    mask_name="attention_mask", default_model_type="bert",
)
# Frames of a clip through the image tower and projection; the frame embeddings are then pooled in time.
VIDEO = Modality(
    name="video", config_key="vision_config", tower_attribute="vision_model", projection_attribute="visual_projection",
    pooling_field="vision_pooling", input_names=("pixel_values_videos", "video_frame_mask"),
    tower_arguments={"pixel_values_videos": ("pixel_values",)}, mask_name="video_frame_mask", frames=True,
    default_model_type="clip_vision_model",
)
AUDIO = Modality(
    name="audio", config_key="audio_config", tower_attribute="audio_model", projection_attribute="audio_projection",
    pooling_field="audio_pooling", input_names=("input_features", "audio_attention_mask"),
    tower_arguments={"input_features": ("input_features", "input_values"),
                     "audio_attention_mask": ("attention_mask",)},
    mask_name="audio_attention_mask", default_model_type="audio-spectrogram-transformer",
)

_REGISTRY: dict[str, Modality] = {}


def register_modality(modality: Modality, exist_ok: bool = False) -> Modality:
    """Add `modality` to the registry; its input names must not clash with another modality's."""
    if modality.name in _REGISTRY and not exist_ok:
        raise ValueError(f"a modality named {modality.name!r} is already registered; pass exist_ok=True to replace it")
    for other in _REGISTRY.values():
        if other.name == modality.name:
            continue
        clash = set(other.input_names) & set(modality.input_names)
        if clash:
            raise ValueError(f"modality {modality.name!r} input names {sorted(clash)} already belong to {other.name!r}")
    _REGISTRY[modality.name] = modality
    return modality


def get_modality(name: str) -> Modality:
    """The registered modality `name`; a KeyError lists the registered ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown modality {name!r}; registered: {sorted(_REGISTRY)}") from None


def registered_modalities() -> list[str]:
    return list(_REGISTRY)


def modality_of_input(input_name: str, among: Iterable[str] | None = None) -> Modality | None:
    """The modality (among `among`, default all registered) that owns `input_name`, or None."""
    for name in among if among is not None else _REGISTRY:
        modality = get_modality(name)
        if input_name in modality.input_names:
            return modality
    return None


for _builtin in (IMAGE, TEXT, VIDEO, AUDIO):
    register_modality(_builtin)
