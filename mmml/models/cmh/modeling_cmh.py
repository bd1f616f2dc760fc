"""Cross-modal hashing models: ViT2CMH, FGCMH and CMHR-DRN as presets of one family."""

from __future__ import annotations

import torch
from torch import nn
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutputWithPooling

from ...modeling.multi_encoder import MultiEncoderModel
from ...modeling.pooling import token_states
from ...modeling.towers import build_tower, tower_hidden_size
from .configuration_cmh import CrossModalHashingConfig

IMAGE_TOKEN_TYPE, TEXT_TOKEN_TYPE = 0, 1


class TokenRefiner(nn.Module):
    """Maps a tower's token states into the fusion width: Linear + LayerNorm."""

    def __init__(self, in_features: int, out_features: int, eps: float = 1e-12):
        super().__init__()
        self.dense = nn.Linear(in_features, out_features)
        self.LayerNorm = nn.LayerNorm(out_features, eps=eps)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(tokens))


class CrossModalHashingModel(MultiEncoderModel):
    """Image and text towers, projections and hash heads mapping both modalities to binary codes.

    One family, three presets (`CrossModalHashingConfig.from_preset`):

    * `vit2cmh`: ViT and BERT towers, pooled, projected and hashed.
    * `fgcmh`: the towers' token states are refined (Linear + LayerNorm), prefixed with a learned
      hash token and fused by a transformer encoder (`token_fusion_config`); the mean of the fused
      states (hash token and real tokens) is the item's fine-grained global feature. Each item is
      encoded alone, so its code does not depend on the other items and can be indexed.
    * `cmhr-drn`: a ResNet image tower and fully connected layers over TF-IDF text features (the
      processor's `text_features`).

    `forward` returns a `MultiEncoderOutput` with `image_hash` / `text_hash`; with `return_loss=True`
    the loss is `mmml.losses.HashingLoss` (similarity from `labels` when given, else pair identity)
    plus `contrastive_weight` times the CLIP loss.
    """

    config_class = CrossModalHashingConfig
    base_model_prefix = "cross_modal_hashing"
    supports_text_length_buckets = False  # its TF-IDF / fusion text paths ignore length buckets
    # CMHR-DRN's text tower reads TF-IDF rows (`text_features`) from the processor instead of token ids.
    extra_modality_inputs = {"text": ("text_features",)}
    alternative_main_inputs = {"text": ("inputs_embeds", "text_features")}

    def build_extra_modules(self) -> None:
        self.fusion = None
        token_fusion_config = self.config.token_fusion_config
        if token_fusion_config is not None:
            width = token_fusion_config.hidden_size
            self.fusion = build_tower(token_fusion_config, uses_backbone_pooler=False)
            self.fusion.config = token_fusion_config
            self.vision_token_refiner = TokenRefiner(tower_hidden_size(self.config.vision_config), width)
            self.text_token_refiner = TokenRefiner(tower_hidden_size(self.config.text_config), width)
            self.hash_token = nn.Parameter(torch.zeros(1, 1, width))

    @property
    def uses_tfidf(self) -> bool:
        return self.config.text_config.model_type == "tfidf_encoder"

    def projection_input_sizes(self) -> tuple[int, int]:
        if self.config.token_fusion_config is not None:
            width = self.config.token_fusion_config.hidden_size
            return width, width
        return super().projection_input_sizes()

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, CrossModalHashingModel) and module.fusion is not None:
            init.normal_(module.hash_token, std=0.02)

    def contrastive_weight(self) -> float:
        return self.config.contrastive_weight

    def _fuse(self, tokens: torch.Tensor, attention_mask: torch.Tensor | None, token_type: int) -> torch.Tensor:
        """Global feature of each item: fuse [hash token; refined tokens], then average the fused states."""
        batch = tokens.shape[0]
        tokens = torch.cat([self.hash_token.expand(batch, -1, -1).to(tokens.dtype), tokens], dim=1)
        if attention_mask is None:
            attention_mask = torch.ones(batch, tokens.shape[1] - 1, dtype=torch.long, device=tokens.device)
        attention_mask = torch.cat([attention_mask.new_ones(batch, 1), attention_mask], dim=1)
        limit = self.config.token_fusion_config.max_position_embeddings
        if tokens.shape[1] > limit:
            raise ValueError(
                f"{tokens.shape[1] - 1} tokens (+1 hash token) exceed token_fusion_config.max_position_embeddings={limit}; "
                "raise it or feed shorter inputs"
            )
        token_type_ids = torch.full(attention_mask.shape, token_type, dtype=torch.long, device=tokens.device)
        fused = self.fusion(inputs_embeds=tokens, attention_mask=attention_mask, token_type_ids=token_type_ids,
                            return_dict=True)
        # Mean over the hash token and the item's real tokens: reading the hash token alone starts out
        # almost constant across items (its residual stream dominates), which stalls early training.
        mask = attention_mask.unsqueeze(-1).to(fused.last_hidden_state.dtype)
        return (fused.last_hidden_state * mask).sum(dim=1) / mask.sum(dim=1)

    def get_image_features(self, pixel_values: torch.Tensor, **kwargs) -> BaseModelOutputWithPooling:
        """Image tower output whose `pooler_output` is the projected image feature (fused for FGCMH)."""
        if self.fusion is None:
            return super().get_image_features(pixel_values=pixel_values, **kwargs)
        outputs = self.vision_model(pixel_values=pixel_values, return_dict=True, **kwargs)
        fused = self._fuse(self.vision_token_refiner(token_states(outputs)), None, IMAGE_TOKEN_TYPE)
        return BaseModelOutputWithPooling(
            last_hidden_state=outputs.last_hidden_state,
            pooler_output=self.visual_projection(fused),
            hidden_states=outputs.hidden_states,
            attentions=getattr(outputs, "attentions", None),
        )

    def get_text_features(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        text_features: torch.Tensor | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPooling:
        """Text output whose `pooler_output` is the projected text feature.

        CMHR-DRN reads `text_features` (TF-IDF rows from the processor); the others `input_ids`.
        """
        if self.uses_tfidf:
            if text_features is None:
                raise ValueError("this model's text tower reads TF-IDF `text_features` (from its processor), got none")
            outputs = self.text_model(input_features=text_features)
            return BaseModelOutputWithPooling(
                last_hidden_state=outputs.last_hidden_state, pooler_output=self.text_projection(outputs.pooler_output)
            )
        if input_ids is None:
            raise ValueError("input_ids are required for this model's text tower")
        if self.fusion is None:
            return super().get_text_features(input_ids, attention_mask, token_type_ids, position_ids, **kwargs)
        outputs = self.run_text_tower(input_ids, attention_mask, token_type_ids, position_ids, **kwargs)
        fused = self._fuse(self.text_token_refiner(outputs.last_hidden_state), attention_mask, TEXT_TOKEN_TYPE)
        return BaseModelOutputWithPooling(
            last_hidden_state=outputs.last_hidden_state,
            pooler_output=self.text_projection(fused),
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )
