"""VSE family: token-level projection, interaction, graph reasoning, GPO pooling; alignment, fusion and
MVSEN's auxiliary tasks as training objectives."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutputWithPooling

from ...losses import ContrastiveLoss, TripletLoss
from ...modeling.multi_encoder import MultiEncoderModel
from ...modeling.gpo import GPOPooling
from ...modeling.interaction import GraphReasoning, InteractionBlock
from ...modeling.outputs import MultiEncoderOutput
from .configuration_vse import VSEConfig


@dataclass
class VSEOutput(MultiEncoderOutput):
    """:class:`MultiEncoderOutput` plus the VSE objectives (None when not computed / not enabled).

    Args:
        matching_loss: the image-text matching loss (InfoNCE or triplet).
        auxiliary_loss: weighted sum of the enabled auxiliary losses (0 when none is enabled).
        itm_logits: `[3 * batch, 2]` fusion-encoder match logits: positives, then hard negatives.
        label_logits: `[batch, num_labels]` multi-label logits of the image embeddings.
    """

    matching_loss: torch.Tensor | None = None
    auxiliary_loss: torch.Tensor | None = None
    itm_logits: torch.Tensor | None = None
    label_logits: torch.Tensor | None = None


class TokenEmbedder(nn.Module):
    """Projected tokens -> intra-modality interaction -> graph reasoning -> pooled embedding."""

    def __init__(self, config: VSEConfig) -> None:
        super().__init__()
        dim = config.projection_dim
        self.interaction = nn.ModuleList(
            InteractionBlock(config, dim, config.num_attention_heads) for _ in range(config.interaction_layers)
        )
        self.reasoning = nn.ModuleList(GraphReasoning(dim) for _ in range(config.gcn_layers))
        self.gpo = GPOPooling(hidden_size=config.gpo_hidden_size) if config.token_pooling == "gpo" else None

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        for block in self.interaction:
            tokens = block(tokens, mask)
        for layer in self.reasoning:
            tokens = layer(tokens, mask)
        if self.gpo is not None:
            return self.gpo(tokens, mask)[0], tokens
        if mask is None:
            return tokens.mean(dim=1), tokens
        weights = mask.unsqueeze(-1).to(tokens.dtype)
        return (tokens * weights).sum(1) / weights.sum(1).clamp(min=1e-9), tokens


class VSEModel(MultiEncoderModel):
    """Visual-semantic embedding with learned GPO pooling, alignment + fusion objectives and MVSEN's
    auxiliary tasks; all options in :class:`VSEConfig`.

    `get_image_features` / `get_text_features` return `BaseModelOutputWithPooling` whose
    `pooler_output` is the pooled embedding (not normalised) and `last_hidden_state` the tower's
    tokens, as transformers' CLIP does; `forward` returns a :class:`VSEOutput`.
    """

    config_class = VSEConfig
    base_model_prefix = "vse"
    supports_text_length_buckets = False  # its own text path ignores length buckets
    extra_objective_inputs = ("paired_input_ids", "paired_attention_mask")
    matching_terms = ("matching",)  # RCAR replaces this term with its robust loss

    def __init__(self, config: VSEConfig, vision_model=None, text_model=None):
        super().__init__(config, vision_model=vision_model, text_model=text_model)
        dim = config.projection_dim
        self.vision_embedder = TokenEmbedder(config)
        self.text_embedder = TokenEmbedder(config)
        self.triplet_loss = TripletLoss(margin=config.triplet_margin, max_violation=True)
        if config.alignment_weight > 0:
            self.vision_alignment = nn.Linear(config.vision_config.hidden_size, dim, bias=False)
            self.text_alignment = nn.Linear(config.text_config.hidden_size, dim, bias=False)
        if config.itm_weight > 0:
            self.fusion = nn.ModuleList(
                InteractionBlock(config, dim, config.num_attention_heads, cross_attention=True)
                for _ in range(config.fusion_layers)
            )
            self.itm_head = nn.Linear(dim, 2)
        if config.classification_weight > 0:
            self.classifier = nn.Linear(dim, config.num_labels)
        self.post_init()

    def training_item_options(self) -> dict:
        options = {}
        if self.config.text_matching_weight > 0:
            options["paired_caption"] = True  # MVSEN's text-text matching: a second caption of the image
        if self.config.classification_weight > 0:
            options["labels"] = self.config.num_labels
        return options

    def contrastive_weight(self) -> float:
        return 0.0  # the matching term (InfoNCE or triplet) is VSE's own, computed in `forward`

    def _init_weights(self, module: nn.Module) -> None:
        # the heads and blocks of this family (the towers come initialised by their own classes)
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, nn.GRU):
            bound = module.hidden_size**-0.5
            for parameter in module.parameters():
                init.uniform_(parameter, -bound, bound)
        else:
            super()._init_weights(module)

    # --- embeddings -------------------------------------------------------------------------
    def _image_tokens(self, pixel_values, output_hidden_states=False, **kwargs):
        outputs = self.vision_model(pixel_values=pixel_values, return_dict=True,
                                    output_hidden_states=output_hidden_states, **kwargs)
        pooled, tokens = self.vision_embedder(self.visual_projection(outputs.last_hidden_state), None)
        return outputs, pooled, tokens

    def _text_tokens(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
                     output_hidden_states=False, **kwargs):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        tower_inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            tower_inputs["token_type_ids"] = token_type_ids
        if position_ids is not None:
            tower_inputs["position_ids"] = position_ids
        outputs = self.text_model(**tower_inputs, return_dict=True, output_hidden_states=output_hidden_states, **kwargs)
        pooled, tokens = self.text_embedder(self.text_projection(outputs.last_hidden_state), attention_mask)
        return outputs, pooled, tokens

    def get_text_features(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
                          **kwargs) -> BaseModelOutputWithPooling:
        """Text tower output whose `pooler_output` is the pooled projected text embedding (not normalised)."""
        outputs, pooled, _ = self._text_tokens(input_ids, attention_mask, token_type_ids, position_ids, **kwargs)
        return BaseModelOutputWithPooling(last_hidden_state=outputs.last_hidden_state, pooler_output=pooled,
                                          hidden_states=outputs.hidden_states, attentions=outputs.attentions)

    def get_image_features(self, pixel_values, **kwargs) -> BaseModelOutputWithPooling:
        """Vision tower output whose `pooler_output` is the pooled projected image embedding (not normalised)."""
        outputs, pooled, _ = self._image_tokens(pixel_values, **kwargs)
        return BaseModelOutputWithPooling(last_hidden_state=outputs.last_hidden_state, pooler_output=pooled,
                                          hidden_states=outputs.hidden_states, attentions=outputs.attentions)

    # --- forward ----------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        paired_input_ids: torch.Tensor | None = None,
        paired_attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        return_loss: bool = False,
        return_dict: bool | None = None,
        **kwargs,
    ) -> VSEOutput | tuple:
        """Embed both modalities and score them; with `return_loss`, the matching loss plus the enabled
        auxiliary objectives (`paired_input_ids` for text-text matching, multi-hot `labels` for
        classification), each a named term of `loss_terms` (`matching`, `alignment`, `itm`,
        `text_matching`, `classification`; plus the hashing terms when the model has hash heads)."""
        if kwargs:
            raise TypeError(f"VSEModel.forward got unexpected inputs {sorted(kwargs)}")
        if input_ids is None or pixel_values is None:
            raise ValueError("VSEModel.forward needs both input_ids and pixel_values")
        config = self.config
        align = return_loss and config.alignment_weight > 0
        vision_out, image_pooled, image_tokens = self._image_tokens(pixel_values, output_hidden_states=align)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        text_out, text_pooled, text_tokens = self._text_tokens(
            input_ids, attention_mask, token_type_ids, position_ids, output_hidden_states=align)
        image_embeds, text_embeds = F.normalize(image_pooled, dim=-1), F.normalize(text_pooled, dim=-1)
        logit_scale = self.scaled_logit_scale()
        logits_per_image = self.similarity(image_embeds, text_embeds)
        label_logits = self.classifier(image_embeds) if config.classification_weight > 0 else None
        terms = matching = auxiliary = itm_logits = None
        if return_loss:
            if config.matching_loss == "triplet":
                matching = self.triplet_loss(image_embeds, text_embeds)
            else:
                matching = self.contrastive_loss(image_embeds, text_embeds, logit_scale)
            terms = {"matching": matching}
            if align:
                terms["alignment"] = config.alignment_weight * self._alignment_loss(
                    vision_out, text_out, attention_mask, logit_scale)
            if config.itm_weight > 0:
                itm_logits, itm_loss = self._itm(image_tokens, text_tokens, attention_mask, logits_per_image)
                terms["itm"] = config.itm_weight * itm_loss
            if config.text_matching_weight > 0:
                if paired_input_ids is None:
                    raise ValueError("text_matching_weight > 0 needs `paired_input_ids` (a second caption per image)")
                paired = self._text_tokens(paired_input_ids, paired_attention_mask)[1]
                terms["text_matching"] = config.text_matching_weight * self.contrastive_loss(
                    text_embeds, F.normalize(paired, dim=-1), logit_scale)
            if config.classification_weight > 0:
                if labels is None:
                    raise ValueError("classification_weight > 0 needs multi-hot `labels` [batch, num_labels]")
                targets = labels.to(label_logits.dtype)
                terms["classification"] = config.classification_weight * 0.5 * (
                    F.binary_cross_entropy_with_logits(label_logits, targets)
                    + F.binary_cross_entropy_with_logits(self.classifier(text_embeds), targets))
            auxiliary = sum((value for name, value in terms.items() if name != "matching"), image_embeds.new_zeros(()))
        features = {"image": _with_pooled(vision_out, image_pooled), "text": _with_pooled(text_out, text_pooled)}
        output = self.assemble_output(
            features, return_loss, {"labels": labels} if labels is not None else {}, family_terms=terms,
            output_class=VSEOutput, matching_loss=matching, auxiliary_loss=auxiliary, itm_logits=itm_logits,
            label_logits=label_logits,
        )
        return_dict = return_dict if return_dict is not None else getattr(config, "return_dict", True)
        return output if return_dict else output.to_tuple()

    def _alignment_loss(self, vision_out, text_out, attention_mask, logit_scale) -> torch.Tensor:
        layer = self.config.alignment_layer
        image_mid = vision_out.hidden_states[layer].mean(dim=1)
        mask = attention_mask.unsqueeze(-1).to(text_out.hidden_states[layer].dtype)
        text_mid = (text_out.hidden_states[layer] * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return self.contrastive_loss(F.normalize(self.vision_alignment(image_mid), dim=-1),
                                     F.normalize(self.text_alignment(text_mid), dim=-1), logit_scale)

    def fuse(self, image_tokens, text_tokens, attention_mask) -> torch.Tensor:
        """Match logits `[batch, 2]` (no match, match) of text i with image i from the fusion encoder."""
        hidden = text_tokens
        for block in self.fusion:
            hidden = block(hidden, attention_mask, context=image_tokens)
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return self.itm_head((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9))

    def _itm(self, image_tokens, text_tokens, attention_mask, similarity) -> tuple[torch.Tensor, torch.Tensor]:
        """ITM on positives and, per image and per text, the most similar other item of the batch."""
        batch = similarity.shape[0]
        if batch < 2:
            raise ValueError("image-text matching needs a batch of at least 2 pairs (for negatives)")
        scores = similarity.detach().masked_fill(torch.eye(batch, dtype=torch.bool, device=similarity.device), float("-inf"))
        hard_text = scores.argmax(dim=1)  # for each image, its hardest other caption
        hard_image = scores.argmax(dim=0)  # for each caption, its hardest other image
        images = torch.cat([image_tokens, image_tokens, image_tokens[hard_image]])
        texts = torch.cat([text_tokens, text_tokens[hard_text], text_tokens])
        masks = torch.cat([attention_mask, attention_mask[hard_text], attention_mask])
        logits = self.fuse(images, texts, masks)
        targets = torch.cat([torch.ones(batch), torch.zeros(2 * batch)]).long().to(logits.device)
        return logits, F.cross_entropy(logits, targets)


def _with_pooled(outputs, pooled: torch.Tensor) -> BaseModelOutputWithPooling:
    return BaseModelOutputWithPooling(last_hidden_state=outputs.last_hidden_state, pooler_output=pooled,
                                      hidden_states=outputs.hidden_states, attentions=outputs.attentions)
