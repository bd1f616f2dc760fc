"""One processor for any subset of modalities: image / video / audio processors and a tokenizer.

Families subclass `MultimodalProcessor` and name their components in `__init__` (transformers'
`ProcessorMixin` discovers a processor's components from its `__init__` signature):

    class MCLIPProcessor(MultimodalProcessor):
        def __init__(self, image_processor=None, tokenizer=None, **kwargs):
            super().__init__(image_processor=image_processor, tokenizer=tokenizer, **kwargs)

A component may be None (a text-only or video+text processor of a family): it is saved as
`null` in `processor_config.json` and loads back as None, so `save_pretrained` /
`AutoProcessor.from_pretrained` round-trip any subset.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PIL import Image
from transformers import BatchFeature, ProcessorMixin

from ..utils.remote_code import RemoteCodeProcessorMixin
from .image import pixel_values
from .video import FrameProcessor

__all__ = ["AUDIO_RENAMES", "MODALITY_COMPONENTS", "MultimodalProcessor"]

# `__call__` argument -> the component that processes it.
MODALITY_COMPONENTS = {
    "text": "tokenizer",
    "images": "image_processor",
    "videos": "video_processor",
    "audio": "feature_extractor",
}
# Audio outputs renamed so they cannot clash with the text inputs.
AUDIO_RENAMES = {"attention_mask": "audio_attention_mask"}
# Component classes of mmml (saved with their `<modality>_type`), instantiated from their saved dicts.
_MMML_COMPONENT_CLASSES = {"FrameProcessor": FrameProcessor}


class _ClassOrInstanceMethod:
    """A method that receives `(cls, instance_or_None)`: `get_attributes` on the class lists every
    component the class accepts; on an instance only those it holds (what `save_pretrained` saves)."""

    def __init__(self, function):
        self.function = function

    def __get__(self, instance, owner):
        function = self.function

        def bound(*args, **kwargs):
            return function(owner, instance, *args, **kwargs)

        bound.__doc__ = function.__doc__
        return bound


def _get_attributes(cls, instance=None) -> list[str]:
    """The processor's components (from its `__init__` signature); on an instance, those present."""
    names = ProcessorMixin.__dict__["get_attributes"].__func__(cls)
    if instance is None:
        return names
    return [name for name in names if getattr(instance, name, None) is not None]


def _modality_of(attribute: str) -> str:
    from transformers.processing_utils import _get_modality_for_attribute

    return _get_modality_for_attribute(attribute)


def _dedupe(names: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(names))


class MultimodalProcessor(RemoteCodeProcessorMixin, ProcessorMixin):
    """Any subset of `image_processor`, `video_processor` (e.g. `FrameProcessor`), `feature_extractor`
    (audio, e.g. `WhisperFeatureExtractor`) and `tokenizer` behind one call.

    `processor(text=..., images=..., videos=..., audio=..., return_tensors="pt")` returns a
    `BatchFeature` with

    - text: `input_ids`, `attention_mask` (and whatever else the tokenizer returns), padded to the
      longest text and truncated to the tokenizer's `model_max_length` unless `padding` /
      `truncation` / `max_length` say otherwise;
    - images: `pixel_values` `[B, C, H, W]`;
    - videos: `pixel_values_videos` `[B, F, C, H, W]` + `video_frame_mask` `[B, F]`;
    - audio: the extractor's features (`input_features`) + `audio_attention_mask` (the extractor's
      `attention_mask`, renamed); pass `sampling_rate=`.

    Keyword arguments are routed to the components as transformers' processors route them (flat,
    or per modality as `text_kwargs={...}`, `images_kwargs`, `videos_kwargs`, `audio_kwargs`).
    Asking for a modality whose component is missing raises a ValueError naming the component.
    `model_input_names` lists the inputs of the components present.
    """

    # Lowest-priority defaults per modality (transformers' `_merge_kwargs` step 7).
    text_kwargs = {"padding": True, "truncation": True}
    audio_kwargs = {"return_attention_mask": True}

    get_attributes = _ClassOrInstanceMethod(_get_attributes)

    def __init__(self, image_processor=None, video_processor=None, feature_extractor=None, tokenizer=None, **kwargs):
        self.chat_template = kwargs.pop("chat_template", None)
        if kwargs:
            raise TypeError(f"{type(self).__name__} got unexpected keyword arguments {sorted(kwargs)}")
        components = {"image_processor": image_processor, "video_processor": video_processor,
                      "feature_extractor": feature_extractor, "tokenizer": tokenizer}
        accepted = type(self).get_attributes()
        for name, component in components.items():
            if component is not None:
                if name not in accepted:
                    raise TypeError(f"{type(self).__name__} takes no {name} (its components: {', '.join(accepted)})")
                if not isinstance(component, FrameProcessor):
                    self.check_argument_for_proper_class(name, component)
            setattr(self, name, component)
        if all(component is None for component in components.values()):
            raise ValueError(f"{type(self).__name__} needs at least one of {', '.join(accepted)}")

    # -- components ----------------------------------------------------------------------------

    @property
    def components(self) -> list[str]:
        """The names of the components this processor holds."""
        return self.get_attributes()

    def _require(self, modality: str) -> Any:
        name = MODALITY_COMPONENTS[modality]
        component = getattr(self, name, None)
        if component is None:
            raise ValueError(
                f"this {type(self).__name__} has no {name}, so it cannot process `{modality}` (its components: "
                f"{', '.join(self.components)}); build it with {name}=... to process {modality}"
            )
        return component

    @property
    def model_input_names(self) -> list[str]:
        """The inputs this processor produces for the model: text, image, video, audio (components present)."""
        names: list[str] = []
        if getattr(self, "tokenizer", None) is not None:
            names += list(self.tokenizer.model_input_names)
        if getattr(self, "image_processor", None) is not None:
            names += list(self.image_processor.model_input_names)
        if getattr(self, "video_processor", None) is not None:
            names += list(self.video_processor.model_input_names)
        if getattr(self, "feature_extractor", None) is not None:
            names += [AUDIO_RENAMES.get(name, name) for name in self.feature_extractor.model_input_names]
            names.append(AUDIO_RENAMES["attention_mask"])
        return _dedupe(names)

    def adapted_to_corpus(self, texts: Sequence[str], model_config=None, **kwargs) -> "MultimodalProcessor":
        """This processor prepared for a training corpus and a model config; `self` by default.

        Recipes call it for every family with the training captions; a family whose text inputs
        depend on the corpus (CMHR-DRN's TF-IDF) returns a fitted copy. Unknown `kwargs` are ignored.
        """
        return self

    # -- calling -------------------------------------------------------------------------------

    def __call__(self, text=None, images=None, videos=None, audio=None, **kwargs) -> BatchFeature:
        inputs = {"text": text, "images": images, "videos": videos, "audio": audio}
        given = [modality for modality, value in inputs.items() if value is not None]
        if not given:
            raise ValueError(f"pass at least one of text, images, videos or audio to {type(self).__name__}")
        for modality in given:
            self._require(modality)
        return_tensors = kwargs.get("return_tensors")
        data: dict[str, Any] = {}
        if text is not None:
            # The tokenizer's saved defaults (e.g. `max_length`) apply to the text only: transformers'
            # `_merge_kwargs` would also hand them to the audio extractor (a 32-sample `max_length`).
            text_kwargs = self._merge_kwargs(
                self.valid_processor_kwargs, tokenizer_init_kwargs=self.tokenizer.init_kwargs, **kwargs
            )["text_kwargs"]
            data.update(self._encode_text(text, **text_kwargs))
        if given == ["text"]:
            return BatchFeature(data, tensor_type=return_tensors)
        merged = self._merge_kwargs(self.valid_processor_kwargs, tokenizer_init_kwargs=None, **kwargs)
        if images is not None:
            data.update(self._encode_images(images, **merged["images_kwargs"]))
        if videos is not None:
            data.update(self._encode_videos(videos, **merged["videos_kwargs"]))
        if audio is not None:
            data.update(self._encode_audio(audio, **merged["audio_kwargs"]))
        return BatchFeature(data, tensor_type=return_tensors)

    # The hooks below are what a family overrides for one modality (e.g. TF-IDF text features).

    def _encode_text(self, text, **kwargs) -> dict[str, Any]:
        return dict(self.tokenizer(text, **kwargs))

    def _encode_images(self, images, **kwargs) -> dict[str, Any]:
        return_tensors = kwargs.pop("return_tensors", None)
        if return_tensors == "pt" and isinstance(images, (list, tuple, Image.Image)):
            flat = [images] if isinstance(images, Image.Image) else list(images)
            overrides = {key: value for key, value in kwargs.items()
                         if getattr(self.image_processor, key, None) != value}
            return {"pixel_values": pixel_values(self.image_processor, flat, **overrides)}
        return dict(self.image_processor(images, return_tensors=return_tensors, **kwargs))

    def _encode_videos(self, videos, **kwargs) -> dict[str, Any]:
        return dict(self.video_processor(videos, **kwargs))

    def _encode_audio(self, audio, **kwargs) -> dict[str, Any]:
        encoded = self.feature_extractor(audio, **kwargs)
        return {AUDIO_RENAMES.get(key, key): value for key, value in encoded.items()}

    def batch_decode(self, *args, **kwargs):
        return self._require("text").batch_decode(*args, **kwargs)

    def decode(self, *args, **kwargs):
        return self._require("text").decode(*args, **kwargs)

    # -- saving and loading --------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        output = super().to_dict()
        for name in type(self).get_attributes():
            if getattr(self, name, None) is None:
                output[name] = None  # absent: loads back as None (a present tokenizer has no entry)
        return output

    @classmethod
    def _get_arguments_from_pretrained(cls, pretrained_model_name_or_path, processor_dict=None, **kwargs):
        """The saved components, None for those saved as absent (`null`).

        A tokenizer is present unless `processor_config.json` says `"tokenizer": null` (tokenizers are
        saved in their own files); another component is present when its config is in the file.
        """
        processor_dict = processor_dict or {}
        subfolder = kwargs.pop("subfolder", "")
        args = []
        for name in cls.get_attributes():
            modality = _modality_of(name)
            if modality == "tokenizer":
                if name in processor_dict and processor_dict[name] is None:
                    args.append(None)
                else:
                    args.append(cls._load_tokenizer_from_pretrained(name, pretrained_model_name_or_path,
                                                                    subfolder=subfolder, **kwargs))
                continue
            config = processor_dict.get(name)
            if config is None:
                args.append(None)
                continue
            if not isinstance(config, dict):
                raise ValueError(f"expected a dict for {name} in processor_config.json, got {type(config).__name__}")
            class_name = config.get(f"{modality}_type")
            if class_name in _MMML_COMPONENT_CLASSES:
                args.append(_MMML_COMPONENT_CLASSES[class_name].from_dict(config))
            elif name == modality:
                from transformers.processing_utils import MODALITY_TO_AUTOPROCESSOR_MAPPING

                auto_class = MODALITY_TO_AUTOPROCESSOR_MAPPING[modality]
                args.append(auto_class.from_pretrained(pretrained_model_name_or_path, subfolder=subfolder, **kwargs))
            else:
                if class_name is None:
                    raise ValueError(f"cannot rebuild {name}: its saved config has no {modality}_type")
                args.append(cls.get_possibly_dynamic_module(class_name)(**config))
        return args
