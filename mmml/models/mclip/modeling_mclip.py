"""M-CLIP: multilingual CLIP as a transformers model."""

from __future__ import annotations

from transformers import CLIPModel

from ...modeling.multi_encoder import MultiEncoderModel
from .configuration_mclip import MCLIPConfig


class MCLIPModel(MultiEncoderModel):
    """Multilingual CLIP (Carlsson et al.): a vision tower and a multilingual text tower in one space.

    Works like transformers' `CLIPModel`: `get_text_features` / `get_image_features` return a
    `BaseModelOutputWithPooling` whose `pooler_output` holds the projected features, and
    `forward(input_ids, pixel_values, ..., return_loss=False)` returns a `DualEncoderOutput` with
    CLIP's field names. Build it from a config, from two pretrained towers
    (`from_vision_text_pretrained`), or from a CLIP checkpoint (`from_clip`).
    """

    config_class = MCLIPConfig
    base_model_prefix = "mclip"

    @classmethod
    def from_clip(cls, clip_model_or_path: CLIPModel | str, **kwargs) -> "MCLIPModel":
        """Convert a transformers `CLIPModel` (instance, folder or Hub id) into an `MCLIPModel`.

        The result computes exactly CLIP's `get_image_features` / `get_text_features`; its text
        tower can then be replaced or distilled into a multilingual one. `kwargs` go to
        `CLIPModel.from_pretrained` when a path is given.
        """
        clip = clip_model_or_path if isinstance(clip_model_or_path, CLIPModel) else CLIPModel.from_pretrained(
            clip_model_or_path, **kwargs
        )
        clip_config = clip.config
        config = cls.config_class(
            text_config=clip_config.text_config.to_dict(),
            vision_config=clip_config.vision_config.to_dict(),
            projection_dim=clip_config.projection_dim,
            text_pooling="pooler",
            vision_pooling="pooler",
            logit_scale_init_value=float(clip_config.logit_scale_init_value),
            logit_scale_max=max(100.0, float(clip.logit_scale.detach().exp())),
        )
        model = cls(config)
        # Same module names as CLIPModel (text_model, vision_model, *_projection, logit_scale): a strict
        # load fails loudly if transformers ever changes CLIP's layout.
        model.load_state_dict(clip.state_dict(), strict=True)
        return model.to(clip.dtype)
