"""Image-text dual encoder: any vision and text backbone, linear projections, CLIP-style outputs.

Families (M-CLIP, MLA, hashing, VSE, ...) subclass `DualEncoderModel` with their own config
class and add heads; the towers, pooling, projections and loss live here once.
"""

from __future__ import annotations

import dataclasses
import logging

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutputWithPooling

from ..losses import ContrastiveLoss, HashingLoss, similarity_from_labels
from .configuration_dual_encoder import DualEncoderConfig
from .hashing import HashHead
from .outputs import DualEncoderOutput
from .pooling import pool_tower_output, token_states
from .loading import CheckedLoadingMixin
from .remote_code import RemoteCodeMixin
from .towers import build_tower, load_tower, tower_hidden_size

logger = logging.getLogger(__name__)

_TOWER_PREFIXES = ("vision_", "text_")


class DualEncoderModel(RemoteCodeMixin, CheckedLoadingMixin, PreTrainedModel):
    """Base of mmml's image-text dual encoders (not registered itself; families subclass it)."""

    config_class = DualEncoderConfig
    base_model_prefix = "dual_encoder"
    main_input_name = "input_ids"
    input_modalities = ("image", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    # Families whose text path routes or fuses per sample across the whole batch set this False.
    supports_text_length_buckets = True

    def __init__(
        self,
        config: DualEncoderConfig,
        vision_model: PreTrainedModel | None = None,
        text_model: PreTrainedModel | None = None,
    ):
        super().__init__(config)
        if config.text_length_buckets > 1 and not self.supports_text_length_buckets:
            raise ValueError(
                f"{type(self).__name__} runs its text path on whole batches; set text_length_buckets to 1 "
                f"(got {config.text_length_buckets})"
            )
        self.vision_model = vision_model or build_tower(config.vision_config, config.vision_pooling == "pooler")
        self.text_model = text_model or build_tower(config.text_config, config.text_pooling == "pooler")
        # The towers read their configs from the composite config, so edits to one show in the other.
        self.vision_model.config = config.vision_config
        self.text_model.config = config.text_config
        vision_width, text_width = self.projection_input_sizes()
        self.visual_projection = nn.Linear(vision_width, config.projection_dim, bias=False)
        self.text_projection = nn.Linear(text_width, config.projection_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(float(config.logit_scale_init_value)))
        self.contrastive_loss = ContrastiveLoss(local_loss=True, gather_with_grad=True)
        self.image_hash_head = self.text_hash_head = self.hashing_loss = None
        if config.hash_bits is not None:
            self.image_hash_head = HashHead(config.projection_dim, config.hash_bits, config.hash_scale)
            self.text_hash_head = HashHead(config.projection_dim, config.hash_bits, config.hash_scale)
            self.hashing_loss = HashingLoss(
                config.hash_similarity_weight, config.hash_quantization_weight, config.hash_balance_weight
            )
        self.build_extra_modules()
        self.post_init()

    def build_extra_modules(self) -> None:
        """Hook for families: create further modules here so that `post_init` initialises them too."""

    def projection_input_sizes(self) -> tuple[int, int]:
        """Widths of the (vision, text) features that the projections read; families with fusion override it."""
        return tower_hidden_size(self.config.vision_config), tower_hidden_size(self.config.text_config)

    def _init_weights(self, module: nn.Module) -> None:
        factor = self.config.initializer_factor
        if isinstance(module, DualEncoderModel):
            init.normal_(module.text_projection.weight, std=module.text_projection.in_features**-0.5 * factor)
            init.normal_(module.visual_projection.weight, std=module.visual_projection.in_features**-0.5 * factor)
            init.constant_(module.logit_scale, self.config.logit_scale_init_value)
        elif isinstance(module, HashHead):
            # Small logits at first: tanh starts in its linear range instead of saturated (no gradient).
            init.normal_(module.weight, std=0.02 * factor)
            init.zeros_(module.bias)
        else:
            super()._init_weights(module)

    def run_text_tower(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs,
    ):
        """The text backbone's own output (token states, before pooling and projection).

        Give `input_ids`, or `inputs_embeds` (token embeddings, e.g. from another vocabulary's table).
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("the text tower needs exactly one of input_ids and inputs_embeds")
        tower_inputs = {"attention_mask": attention_mask}
        if input_ids is not None:
            tower_inputs["input_ids"] = input_ids
        else:
            tower_inputs["inputs_embeds"] = inputs_embeds
        if token_type_ids is not None:
            tower_inputs["token_type_ids"] = token_type_ids
        if position_ids is not None:
            tower_inputs["position_ids"] = position_ids
        return self.text_model(**tower_inputs, return_dict=True, **kwargs)

    def get_text_features(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPooling:
        """Text tower output whose `pooler_output` is the projected (not normalised) text embedding.

        Give `input_ids`, or `inputs_embeds` (token embeddings, e.g. from another vocabulary's table).
        """
        text_inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids,
                       "position_ids": position_ids, "inputs_embeds": inputs_embeds}
        if self.config.text_length_buckets > 1 and attention_mask is not None and not kwargs:
            last_hidden_state, pooled = self._run_text_tower_in_length_buckets(text_inputs)
            return BaseModelOutputWithPooling(last_hidden_state=last_hidden_state,
                                              pooler_output=self.text_projection(pooled))
        outputs = self.run_text_tower(**text_inputs, **kwargs)
        pooled = pool_tower_output(outputs, self.config.text_pooling, attention_mask)
        return BaseModelOutputWithPooling(
            last_hidden_state=outputs.last_hidden_state,
            pooler_output=self.text_projection(pooled),
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )

    def _run_text_tower_in_length_buckets(self, text_inputs: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(token states, pooled states) computed on groups of rows of similar length, each cut to its longest row.

        Padding positions come back as zeros in the token states. The rows' results equal one
        padded call's up to float rounding; only the work on padding is skipped.
        """
        mask = text_inputs["attention_mask"]
        positions = torch.arange(1, mask.shape[1] + 1, device=mask.device)
        extents = (mask.ne(0) * positions).amax(dim=1)  # one past each row's last real token
        order = torch.argsort(extents, stable=True)
        states, pooled = [], []
        for rows in order.tensor_split(min(self.config.text_length_buckets, len(order))):
            width = max(int(extents[rows].max()), 1)
            chunk = {name: None if value is None else value[rows, :width] for name, value in text_inputs.items()}
            outputs = self.run_text_tower(**chunk)
            chunk_mask = chunk["attention_mask"].unsqueeze(-1).to(outputs.last_hidden_state.dtype)
            states.append(F.pad(token_states(outputs) * chunk_mask, (0, 0, 0, mask.shape[1] - width)))
            pooled.append(pool_tower_output(outputs, self.config.text_pooling, chunk["attention_mask"]))
        original_order = torch.argsort(order)
        return torch.cat(states)[original_order], torch.cat(pooled)[original_order]

    def get_image_features(self, pixel_values: torch.Tensor, **kwargs) -> BaseModelOutputWithPooling:
        """Vision tower output whose `pooler_output` is the projected (not normalised) image embedding."""
        outputs = self.vision_model(pixel_values=pixel_values, return_dict=True, **kwargs)
        pooled = pool_tower_output(outputs, self.config.vision_pooling)
        return BaseModelOutputWithPooling(
            last_hidden_state=outputs.last_hidden_state,
            pooler_output=self.visual_projection(pooled),
            hidden_states=outputs.hidden_states,
            attentions=getattr(outputs, "attentions", None),  # convolutional towers have none
        )

    def scaled_logit_scale(self) -> torch.Tensor:
        """exp(logit_scale), clamped to `config.logit_scale_max` as CLIP trainers do."""
        return self.logit_scale.exp().clamp(max=self.config.logit_scale_max)

    def _require_hash_heads(self) -> None:
        if self.image_hash_head is None:
            raise ValueError(
                f"this {type(self).__name__} has no hash heads: build it with `hash_bits` set in its config "
                "(e.g. hash_bits=64) to get binary codes"
            )

    def get_image_codes(self, pixel_values: torch.Tensor, **kwargs) -> torch.Tensor:
        """`[num_images, hash_bits]` {-1, +1} codes (pack them with `mmml.modeling.pack_codes`)."""
        self._require_hash_heads()
        return self.image_hash_head.binarize(self.get_image_features(pixel_values=pixel_values, **kwargs).pooler_output)

    def get_text_codes(self, **text_inputs) -> torch.Tensor:
        """`[num_texts, hash_bits]` {-1, +1} codes of the processor's text inputs."""
        self._require_hash_heads()
        return self.text_hash_head.binarize(self.get_text_features(**text_inputs).pooler_output)

    def set_hash_scale(self, scale: float) -> None:
        """Set the tanh relaxation scale of both hash heads (annealed upward during training)."""
        self._require_hash_heads()
        self.image_hash_head.set_scale(scale)
        self.text_hash_head.set_scale(scale)

    def contrastive_weight(self) -> float:
        """Weight of the contrastive term in the training loss (families without it return 0)."""
        return 1.0

    def compute_loss(
        self,
        image_embeds: torch.Tensor,
        text_embeds: torch.Tensor,
        logit_scale: torch.Tensor,
        image_hash: torch.Tensor | None,
        text_hash: torch.Tensor | None,
        labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Contrastive loss, plus `HashingLoss` on the relaxed codes when the model has hash heads.

        `labels` (multi-hot `[batch, num_labels]`) make items that share a label similar for the
        hashing loss; without them only an image and its own text are similar (pair identity).
        """
        terms = []
        if self.contrastive_weight() > 0:
            terms.append(self.contrastive_weight() * self.contrastive_loss(image_embeds, text_embeds, logit_scale))
        if self.hashing_loss is not None:
            similarity = similarity_from_labels(labels) if labels is not None else None
            terms.append(self.hashing_loss(image_hash, text_hash, similarity))
        if not terms:
            raise ValueError("the loss has no terms: set a contrastive weight > 0 or `hash_bits`")
        return torch.stack(terms).sum()

    def forward(
        self,
        input_ids: torch.Tensor,
        pixel_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        return_loss: bool = False,
        labels: torch.Tensor | None = None,
        **kwargs,
    ) -> DualEncoderOutput:
        """Embed both modalities, score every image against every text, optionally the loss.

        The loss is the symmetric InfoNCE of `mmml.losses.ContrastiveLoss`; under several processes
        it gathers the embeddings of all ranks (with gradient) so the negatives span the global batch.
        With hash heads (`config.hash_bits`) the output also holds `image_hash` / `text_hash` and the
        loss adds `mmml.losses.HashingLoss` (see `compute_loss`; `labels` are multi-hot label rows).
        """
        vision_outputs = self.get_image_features(pixel_values=pixel_values, **kwargs)
        text_outputs = self.get_text_features(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            **kwargs,
        )
        return self.output_from_features(vision_outputs, text_outputs, return_loss, labels)

    def output_from_features(
        self,
        vision_outputs: BaseModelOutputWithPooling,
        text_outputs: BaseModelOutputWithPooling,
        return_loss: bool = False,
        labels: torch.Tensor | None = None,
    ) -> DualEncoderOutput:
        """Scores, hash codes and (optionally) the loss from the two `get_*_features` outputs."""
        image_embeds = F.normalize(vision_outputs.pooler_output, dim=-1)
        text_embeds = F.normalize(text_outputs.pooler_output, dim=-1)
        logit_scale = self.scaled_logit_scale()
        logits_per_image = logit_scale * image_embeds @ text_embeds.t()
        image_hash = text_hash = None
        if self.image_hash_head is not None:
            image_hash = self.image_hash_head(vision_outputs.pooler_output)
            text_hash = self.text_hash_head(text_outputs.pooler_output)
        loss = None
        if return_loss:
            loss = self.compute_loss(image_embeds, text_embeds, logit_scale, image_hash, text_hash, labels)
        return DualEncoderOutput(
            loss=loss,
            logits_per_image=logits_per_image,
            logits_per_text=logits_per_image.t(),
            text_embeds=text_embeds,
            image_embeds=image_embeds,
            text_model_output=text_outputs,
            vision_model_output=vision_outputs,
            image_hash=image_hash,
            text_hash=text_hash,
        )

    @classmethod
    def from_vision_text_pretrained(
        cls,
        vision_model_name_or_path: str,
        text_model_name_or_path: str,
        **kwargs,
    ) -> "DualEncoderModel":
        """Build the model from two pretrained towers; projections and logit scale start fresh.

        Keyword arguments starting with `vision_` / `text_` go (without the prefix) to the
        respective tower's `from_pretrained`; the rest configure the composite model
        (`projection_dim`, `text_pooling`, ...). A composite checkpoint such as a `CLIPModel`
        contributes its tower of the requested modality.
        """
        config_fields = {f.name for f in dataclasses.fields(cls.config_class)}
        tower_kwargs: dict[str, dict] = {prefix: {} for prefix in _TOWER_PREFIXES}
        config_kwargs = {}
        for key, value in kwargs.items():
            prefix = next((p for p in _TOWER_PREFIXES if key.startswith(p)), None)
            if prefix is None or key in config_fields:  # e.g. text_pooling is the composite's own field
                config_kwargs[key] = value
            else:
                tower_kwargs[prefix][key[len(prefix) :]] = value
        text_pooling = config_kwargs.get("text_pooling", cls.config_class.text_pooling)
        vision_pooling = config_kwargs.get("vision_pooling", cls.config_class.vision_pooling)
        vision_model = load_tower(vision_model_name_or_path, "vision", vision_pooling == "pooler", **tower_kwargs["vision_"])
        text_model = load_tower(text_model_name_or_path, "text", text_pooling == "pooler", **tower_kwargs["text_"])
        attn_implementations = (vision_model.config._attn_implementation, text_model.config._attn_implementation)
        config = cls.config_class(vision_config=vision_model.config, text_config=text_model.config, **config_kwargs)
        # Building the composite config resets the sub-configs' attention implementation: keep the towers'.
        config.vision_config._attn_implementation, config.text_config._attn_implementation = attn_implementations
        model = cls(config, vision_model=vision_model, text_model=text_model)
        logger.warning(
            "%s: visual_projection, text_projection and logit_scale are newly initialized; "
            "train the model before using it for retrieval.",
            cls.__name__,
        )
        return model
