"""Backbone towers built from any transformers sub-config or checkpoint."""

from __future__ import annotations

import inspect
import logging

from transformers import AutoConfig, AutoModel, PreTrainedConfig, PreTrainedModel

logger = logging.getLogger(__name__)

# Composite checkpoints whose towers live in sub-configs: loading one as a "vision" tower takes its
# vision part, as a "text" tower its text part (or name the sub-config key itself, e.g. "audio_config").
_COMPOSITE_TOWER_KEYS = {"vision": "vision_config", "text": "text_config", "audio": "audio_config"}


def tower_hidden_size(config: PreTrainedConfig) -> int | None:
    """Width of a backbone's output features: `hidden_size`, or the last of `hidden_sizes` (ResNet)."""
    if getattr(config, "hidden_size", None) is not None:
        return config.hidden_size
    sizes = getattr(config, "hidden_sizes", None)
    return sizes[-1] if sizes else None


def _accepts(model_class: type, argument: str) -> bool:
    return argument in inspect.signature(model_class.__init__).parameters


def build_tower(config: PreTrainedConfig, uses_backbone_pooler: bool) -> PreTrainedModel:
    """A randomly initialised backbone for `config`; drops the backbone's pooler when unused.

    An unused pooler would hold parameters that never get gradients, which breaks DDP
    (`find_unused_parameters`) and wastes memory.
    """
    model_class = AutoModel._model_mapping[type(config)]
    kwargs = {}
    if not uses_backbone_pooler and _accepts(model_class, "add_pooling_layer"):
        kwargs["add_pooling_layer"] = False
    return model_class._from_config(config, **kwargs)


def load_tower(path: str, modality: str, uses_backbone_pooler: bool, **kwargs) -> PreTrainedModel:
    """Load a pretrained backbone for `modality` ("vision", "text", "audio" or a config key) from a folder or Hub id.

    A composite checkpoint (e.g. a `CLIPModel`) contributes only its tower for that modality.
    """
    config = AutoConfig.from_pretrained(path, **{k: v for k, v in kwargs.items() if k in ("revision", "token")})
    sub_key = _COMPOSITE_TOWER_KEYS.get(modality, modality)
    if hasattr(config, sub_key) and getattr(config, sub_key) is not None and not _is_tower_config(config):
        tower_config = getattr(config, sub_key)
        model_class = AutoModel._model_mapping[type(tower_config)]
        logger.info("taking the %s tower (%s) of the composite checkpoint %s", modality, model_class.__name__, path)
    else:
        model_class = AutoModel._model_mapping[type(config)]
    if not uses_backbone_pooler and _accepts(model_class, "add_pooling_layer"):
        kwargs.setdefault("add_pooling_layer", False)
    return model_class.from_pretrained(path, **kwargs)


def _is_tower_config(config: PreTrainedConfig) -> bool:
    return type(config) in AutoModel._model_mapping and not config.sub_configs
