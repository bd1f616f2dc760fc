"""DI-vTR: video-text retrieval with a contextual temporal encoder and dual inter-modal interaction.

The frame tower is the image tower of the core's `video` modality (any transformers image backbone;
`from_mclip` takes a trained M-CLIP's vision side), the text tower any text backbone (an M-CLIP or
MLA text side gives multilingual queries). The `similarity_head` picks how frames become a clip
embedding and how pairs are scored: CLIP4Clip's `meanP` and `seqTransf` baselines, or `divtr`, whose
pairwise scorer adds the interaction score to the global cosine (see `DIVTRConfig`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutputWithPooling

from ...modeling.interaction import Attention, InteractionBlock
from ...modeling.multi_encoder import MultiEncoderModel
from ...modeling.outputs import MultiEncoderOutput
from ...modeling.pair_attention import PairCrossAttentionLayer, PairwiseCrossAttention
from ...modeling.temporal import TemporalTransformer
from .configuration_divtr import DIVTRConfig

__all__ = ["DIVTRModel", "DIVTROutput", "DIVTRTextOutput", "DIVTRVideoOutput"]

# What `from_mclip` copies from an image-text model (exactly; strict on these keys).
MCLIP_COPIED_MODULES = ("vision_model", "visual_projection", "text_model", "text_projection", "logit_scale")
# Pairs of one all-pairs interaction call (bounds the memory of `forward` on large batches).
_PAIR_CHUNK = 8192


@dataclass
class DIVTRVideoOutput(BaseModelOutputWithPooling):
    """`get_video_features` output: `pooler_output` `[batch, dim]` is the projected clip embedding (not
    normalised); `last_hidden_state` the image tower's states per frame `[batch, frames, ...]`.

    Args:
        frame_embeds: `[batch, frames, dim]` the frame embeddings the head pools: the projected frame
            embeddings for "meanP", the contextual ones (after the temporal encoder) for "seqTransf" / "divtr".
        frame_mask: `[batch, frames]` 1 = real frame (all ones when the call gave no mask).
        projected_frames: `[batch, frames, dim]` the projected frame embeddings before the temporal
            encoder (the same as `frame_embeds` for "meanP").
    """

    frame_embeds: torch.Tensor | None = None
    frame_mask: torch.Tensor | None = None
    projected_frames: torch.Tensor | None = None


@dataclass
class DIVTRTextOutput(BaseModelOutputWithPooling):
    """`get_text_features` output of the "divtr" head: also the projected token states the interaction reads.

    Args:
        token_embeds: `[batch, tokens, dim]` the text tower's token states through `text_projection`.
        attention_mask: `[batch, tokens]` 1 = real token.
    """

    token_embeds: torch.Tensor | None = None
    attention_mask: torch.Tensor | None = None


@dataclass
class DIVTROutput(MultiEncoderOutput):
    """:class:`MultiEncoderOutput` with video-text names (as transformers' X-CLIP).

    Args:
        logits_per_video: `[num_videos, num_texts]` the model's scores: the scaled cosine of the global
            embeddings, plus the weighted interaction scores for the "divtr" head (what `score_pairs`
            gives for each pair). `logits["video_text"]` is the same tensor.
        logits_per_text: `[num_texts, num_videos]`, its transpose (when the model has no image modality).
        dense_logits_per_video: the scaled cosine of the global embeddings alone (the dual-encoder scores
            that a retrieval index ranks by).
        interaction_logits: `[num_videos, num_texts]` the interaction part of `logits_per_video`
            (`scale * interaction_weight * interaction`), "divtr" head only.
    """

    logits_per_video: torch.Tensor | None = None
    dense_logits_per_video: torch.Tensor | None = None
    interaction_logits: torch.Tensor | None = None


class DIVTRModel(MultiEncoderModel):
    """DI-vTR video-text retrieval (`similarity_head` "divtr"), or CLIP4Clip's meanP / seqTransf heads.

    `get_video_features(pixel_values_videos=..., video_frame_mask=...)` returns a
    :class:`DIVTRVideoOutput` whose `pooler_output` is the projected clip embedding (not normalised);
    `get_text_features(input_ids=..., attention_mask=...)` the projected text embedding.
    `forward` returns a :class:`DIVTROutput` (`logits_per_video`, `logits_per_text`, `video_embeds`,
    `text_embeds`, ...); with `return_loss=True` its `loss_terms` are `contrastive` (InfoNCE on the
    global embeddings, gathered over processes), for "divtr" `interaction` (InfoNCE on the full
    scores of the local batch's B x B pairs), and with `temporal_order_loss_weight` `temporal_order`
    (each caption against its clip and that clip reversed).

    Two-stage retrieval (head "divtr"): `has_pairwise_scorer` is True, `scoring_inputs` keeps per
    clip the normalised embedding, the contextual frame embeddings and the frame mask, per caption the
    normalised embedding, the projected token states and the attention mask; `score_pairs` scores
    aligned (query, candidate) rows in either direction (text queries against clips, clips against
    texts) with the same function of the pair.
    """

    config_class = DIVTRConfig
    base_model_prefix = "divtr"
    matching_terms = ("contrastive", "interaction")

    def build_extra_modules(self) -> None:
        config = self.config
        dim = config.projection_dim
        self._frame_sink: list | None = None
        self.temporal_encoder = TemporalTransformer(
            config, dim, config.temporal_layers, config.temporal_heads, config.max_frames
        ) if config.uses_temporal_encoder else None
        if config.uses_interaction:
            heads, layers = config.interaction_heads, config.interaction_layers
            self.text_to_video = PairwiseCrossAttention(config, dim, heads, layers)  # tokens attend to frames
            self.video_to_text = PairwiseCrossAttention(config, dim, heads, layers)  # frames attend to tokens
        else:
            self.text_to_video = self.video_to_text = None
        self._mark_init_stds()

    @property
    def has_pairwise_scorer(self) -> bool:  # the class attribute of the base, per head here
        return self.config.uses_interaction

    def _mark_init_stds(self) -> None:
        """CLIP's transformer init for the family's blocks, scaled to their width: q/k/v `width**-0.5`,
        output projections `width**-0.5 * (2 * layers)**-0.5`, MLP input `(2 * width)**-0.5` (stored on the
        linear layers: transformers initialises custom code module by module)."""
        if self.temporal_encoder is not None:
            self.temporal_encoder.position_embeddings._mmml_init_std = self.config.temporal_position_init_std
        for stack in (self.temporal_encoder, self.text_to_video, self.video_to_text):
            if stack is None:
                continue
            depth = (2 * len(stack.layers)) ** -0.5
            for module in stack.modules():
                if isinstance(module, (Attention, PairCrossAttentionLayer)):
                    width = module.q_proj.in_features
                    for linear in (module.q_proj, module.k_proj, module.v_proj):
                        linear._mmml_init_std = width**-0.5
                    module.out_proj._mmml_init_std = width**-0.5 * depth
                elif isinstance(module, InteractionBlock):
                    width = module.mlp[0].in_features
                    module.mlp[0]._mmml_init_std = (2 * width) ** -0.5
                    module.mlp[2]._mmml_init_std = width**-0.5 * depth

    def _init_weights(self, module: nn.Module) -> None:
        # The family's own blocks (the towers come initialised by their own classes; the projections and
        # the logit scale by the base, which runs on the model itself after its children).
        factor = self.config.initializer_factor
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, std=getattr(module, "_mmml_init_std", 0.02) * factor)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):  # frame positions (CLIP4Clip: normal, std 0.02)
            init.normal_(module.weight, std=getattr(module, "_mmml_init_std", 0.02) * factor)
        else:
            super()._init_weights(module)

    # -- encoding ------------------------------------------------------------------------------

    def pool_frames(self, frame_embeds: torch.Tensor, frame_mask: torch.Tensor | None) -> torch.Tensor:
        """meanP: the base's mean of normalised frames; seqTransf / divtr: the same over the contextual frames
        (position embeddings + temporal transformer + residual)."""
        projected = frame_embeds
        if self.temporal_encoder is not None:
            frame_embeds = self.temporal_encoder(frame_embeds, frame_mask)
        if self._frame_sink is not None:
            self._frame_sink.append((projected, frame_embeds))
        return super().pool_frames(frame_embeds, frame_mask)

    def get_video_features(self, pixel_values_videos: torch.Tensor, video_frame_mask: torch.Tensor | None = None,
                           **kwargs) -> DIVTRVideoOutput:
        """`[batch, frames, 3, H, W]` clips (frame mask: 1 = real frame) -> :class:`DIVTRVideoOutput`."""
        sink: list[torch.Tensor] = []
        previous, self._frame_sink = self._frame_sink, sink
        try:
            out = super().get_video_features(pixel_values_videos, video_frame_mask, **kwargs)
        finally:
            self._frame_sink = previous
        projected, frame_embeds = sink[-1]
        if video_frame_mask is None:
            video_frame_mask = torch.ones(frame_embeds.shape[:2], dtype=torch.long, device=frame_embeds.device)
        return DIVTRVideoOutput(last_hidden_state=out.last_hidden_state, pooler_output=out.pooler_output,
                                hidden_states=out.hidden_states, attentions=out.attentions,
                                frame_embeds=frame_embeds, frame_mask=video_frame_mask.long(),
                                projected_frames=projected)

    def reversed_video_inputs(self, features: DIVTRVideoOutput) -> dict[str, torch.Tensor]:
        """`scoring_inputs` of the same clips played backwards: each clip's real frames in reverse order
        (padding stays at the end), through the temporal encoder and the pooling again (not the image tower)."""
        if features.projected_frames is None:
            raise ValueError("reversed_video_inputs needs the output of DIVTRModel.get_video_features")
        mask = features.frame_mask
        order = _reversed_frame_order(mask)
        projected = features.projected_frames.gather(1, order[..., None].expand_as(features.projected_frames))
        contextual = projected if self.temporal_encoder is None else self.temporal_encoder(projected, mask)
        pooled = super().pool_frames(contextual, mask)
        reversed_features = DIVTRVideoOutput(pooler_output=pooled, frame_embeds=contextual, frame_mask=mask,
                                             projected_frames=projected)
        return self.scoring_inputs("video", reversed_features)

    def get_text_features(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                          token_type_ids: torch.Tensor | None = None, position_ids: torch.Tensor | None = None,
                          inputs_embeds: torch.Tensor | None = None, **kwargs) -> BaseModelOutputWithPooling:
        """Text tower output whose `pooler_output` is the projected text embedding; for "divtr" a
        :class:`DIVTRTextOutput` that also holds the projected token states and their mask."""
        out = super().get_text_features(input_ids=input_ids, attention_mask=attention_mask,
                                        token_type_ids=token_type_ids, position_ids=position_ids,
                                        inputs_embeds=inputs_embeds, **kwargs)
        if not self.config.uses_interaction:
            return out
        states = out.last_hidden_state
        if states is None or states.ndim != 3:
            raise ValueError("the divtr head needs a text tower that returns [batch, tokens, hidden] token states")
        if attention_mask is None:
            attention_mask = torch.ones(states.shape[:2], dtype=torch.long, device=states.device)
        return DIVTRTextOutput(last_hidden_state=states, pooler_output=out.pooler_output,
                               hidden_states=out.hidden_states, attentions=out.attentions,
                               token_embeds=self.text_projection(states), attention_mask=attention_mask.long())

    # -- scoring -------------------------------------------------------------------------------

    def scoring_inputs(self, modality: str, features: BaseModelOutputWithPooling,
                       inputs: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """Per-item tensors for `score_pairs` (row-aligned with the batch).

        Always `embeds` (the normalised embedding). "divtr" head, video: `frame_embeds` `[n, frames, dim]`
        (contextual) and `frame_mask` `[n, frames]`; text: `token_embeds` `[n, tokens, dim]` and
        `attention_mask` `[n, tokens]`. Zero-padding these along frames / tokens (mask 0) does not
        change the scores.
        """
        stored = super().scoring_inputs(modality, features, inputs)
        if not self.config.uses_interaction or modality not in ("video", "text"):
            return stored
        inputs = inputs or {}
        states, mask_name = ("frame_embeds", "frame_mask") if modality == "video" else ("token_embeds", "attention_mask")
        input_mask = "video_frame_mask" if modality == "video" else "attention_mask"
        tensor = getattr(features, states, None)
        if tensor is None:
            raise ValueError(f"scoring_inputs({modality!r}, ...) needs the output of DIVTRModel.get_{modality}_features")
        mask = getattr(features, mask_name, None)
        if mask is None:
            mask = inputs.get(input_mask)
        if mask is None:
            mask = torch.ones(tensor.shape[:2], dtype=torch.long, device=tensor.device)
        return {**stored, states: tensor, mask_name: mask.long()}

    def interaction_scores(self, video: dict[str, torch.Tensor], text: dict[str, torch.Tensor],
                           video_index: torch.Tensor | None = None,
                           text_index: torch.Tensor | None = None) -> torch.Tensor:
        """Unweighted, unscaled dual-interaction scores in [-1, 1] of the pairs
        `(video[video_index[p]], text[text_index[p]])` (aligned rows without indices); `video` / `text` are
        `scoring_inputs` dicts.

        Text-to-frames: the caption's tokens attend to the clip's contextual frames; the result, averaged
        over the real tokens, is the clip as the caption sees it, compared (cosine) with the caption's
        global embedding. Frames-to-text: the frames attend to the tokens; averaged over the real frames,
        compared with the clip's global embedding. The score is the mean of the two cosines.
        """
        self._require_interaction()
        if (video_index is None) != (text_index is None):
            raise ValueError("give both video_index and text_index, or neither (aligned rows)")
        frames, frame_mask = video["frame_embeds"], video["frame_mask"]
        tokens, token_mask = text["token_embeds"], text["attention_mask"]
        seen_by_text = self.text_to_video(tokens, frames, token_mask, frame_mask, text_index, video_index)
        seen_by_video = self.video_to_text(frames, tokens, frame_mask, token_mask, video_index, text_index)
        video_embeds = video["embeds"] if video_index is None else video["embeds"][video_index]
        text_embeds = text["embeds"] if text_index is None else text["embeds"][text_index]
        return _interaction(video_embeds, text_embeds, seen_by_video, seen_by_text)

    def all_pairs_interaction(self, video: dict[str, torch.Tensor], text: dict[str, torch.Tensor]) -> torch.Tensor:
        """`[num_videos, num_texts]` `interaction_scores` of every (video, text) pair, computed as a grid (one
        attention call per direction and chunk of videos, no per-pair gathering)."""
        self._require_interaction()
        num_videos, num_texts = video["embeds"].shape[0], text["embeds"].shape[0]
        tokens, token_mask = text["token_embeds"], text["attention_mask"]
        step = max(1, _PAIR_CHUNK // max(num_texts, 1))
        rows = []
        for start in range(0, num_videos, step):
            chunk = slice(start, start + step)
            frames, frame_mask = video["frame_embeds"][chunk], video["frame_mask"][chunk]
            seen_by_text = self.text_to_video.grid(tokens, frames, token_mask, frame_mask).transpose(0, 1)
            seen_by_video = self.video_to_text.grid(frames, tokens, frame_mask, token_mask)  # [videos, texts, dim]
            rows.append(_interaction(video["embeds"][chunk, None], text["embeds"][None], seen_by_video, seen_by_text))
        return torch.cat(rows)

    def _require_interaction(self) -> None:
        if not self.config.uses_interaction:
            raise ValueError(f"interaction scores need similarity_head='divtr' (this model has "
                             f"{self.config.similarity_head!r})")

    def score_pairs(self, query: dict[str, torch.Tensor], gallery: dict[str, torch.Tensor], query_modality: str,
                    gallery_modality: str) -> torch.Tensor:
        """`[n]` scores of aligned pairs (query row i, gallery row i), in either direction: the scaled
        cosine, plus (head "divtr") `scale * interaction_weight * interaction_scores`."""
        dense = super().score_pairs(query, gallery, query_modality, gallery_modality)
        if not self.config.uses_interaction or {query_modality, gallery_modality} != {"video", "text"}:
            return dense
        items = {query_modality: query, gallery_modality: gallery}
        interaction = self.interaction_scores(items["video"], items["text"])
        return dense + self.scaled_logit_scale() * self.config.interaction_weight * interaction

    # -- forward -------------------------------------------------------------------------------

    def assemble_output(self, features, return_loss=False, objective_inputs=None, family_terms=None,
                        output_class=DIVTROutput, **extra_fields) -> DIVTROutput:
        """The base's output plus the video-text scores (and, for "divtr", the interaction and its loss term)."""
        full = dense = interaction = None
        terms = dict(family_terms or {})
        if "video" in features and "text" in features:
            video = self.scoring_inputs("video", features["video"])
            text = self.scoring_inputs("text", features["text"])
            dense = self.similarity(video["embeds"], text["embeds"])
            full = dense
            if self.config.uses_interaction:
                interaction = (self.scaled_logit_scale() * self.config.interaction_weight
                               * self.all_pairs_interaction(video, text))
                full = dense + interaction
                if return_loss and self.config.interaction_loss_weight > 0:
                    terms["interaction"] = self.config.interaction_loss_weight * _symmetric_info_nce(full)
            if return_loss and self.config.temporal_order_loss_weight > 0:
                terms["temporal_order"] = self.config.temporal_order_loss_weight * self._temporal_order_loss(
                    full, text, self.reversed_video_inputs(features["video"]))

        def build(**fields):
            if full is not None:
                fields["logits"]["video_text"] = full
                if fields.get("logits_per_image") is None:
                    fields["logits_per_text"] = full.t()
            return output_class(**fields)

        return super().assemble_output(features, return_loss, objective_inputs, family_terms=terms or None,
                                       output_class=build, logits_per_video=full, dense_logits_per_video=dense,
                                       interaction_logits=interaction, **extra_fields)

    def _temporal_order_loss(self, full: torch.Tensor, text: dict[str, torch.Tensor],
                             reversed_video: dict[str, torch.Tensor]) -> torch.Tensor:
        """Cross-entropy of each caption choosing its clip (`full`'s diagonal) over that clip reversed."""
        if full.shape[0] != full.shape[1]:
            raise ValueError(f"the temporal order loss needs as many videos as texts (pairs), got {tuple(full.shape)}")
        backwards = self.score_pairs(text, reversed_video, "text", "video")
        logits = torch.stack([full.diagonal(), backwards], dim=1)
        return F.cross_entropy(logits, torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device))

    # -- construction --------------------------------------------------------------------------

    @classmethod
    def from_mclip(cls, mclip_model, **config_overrides) -> "DIVTRModel":
        """A DI-vTR model whose towers, projections and logit scale are exactly those of a trained
        image-text mmml model (`MCLIPModel`, or a folder / Hub id of one); the temporal encoder and the
        interaction start fresh. `config_overrides` set further `DIVTRConfig` fields (`similarity_head`,
        `temporal_layers`, ...); the copied parts must keep their shapes, or a `ValueError` names the
        tensors that differ.
        """
        if isinstance(mclip_model, (str, os.PathLike)):
            mclip_model = AutoModel.from_pretrained(mclip_model)
        source_config = mclip_model.config
        modalities = getattr(source_config, "modalities", None) or ()
        if "image" not in modalities or "text" not in modalities:
            raise ValueError(f"from_mclip needs an image-text mmml model (modalities image and text), got "
                             f"{type(mclip_model).__name__} with modalities {list(modalities)}")
        values = dict(
            vision_config=source_config.vision_config.to_dict(),
            text_config=source_config.text_config.to_dict(),
            projection_dim=source_config.projection_dim,
            text_pooling=source_config.text_pooling,
            vision_pooling=source_config.vision_pooling,
            logit_scale_init_value=float(mclip_model.logit_scale.detach()),
            logit_scale_max=source_config.logit_scale_max,
            initializer_factor=source_config.initializer_factor,
        )
        values.update(config_overrides)
        model = cls(cls.config_class(**values))

        def copied(state):
            return {name: tensor for name, tensor in state.items() if name.split(".", 1)[0] in MCLIP_COPIED_MODULES}

        source, target = copied(mclip_model.state_dict()), copied(model.state_dict())
        missing, unexpected = sorted(set(target) - set(source)), sorted(set(source) - set(target))
        mismatched = sorted(f"{name} {tuple(source[name].shape)} vs {tuple(target[name].shape)}"
                            for name in set(source) & set(target) if source[name].shape != target[name].shape)
        if missing or unexpected or mismatched:
            raise ValueError(
                f"from_mclip copies {', '.join(MCLIP_COPIED_MODULES)} exactly, but they do not fit: missing in the "
                f"source {missing[:8]}, not in the DI-vTR model {unexpected[:8]}, other shapes {mismatched[:8]} "
                "(do not override the towers, projection_dim or the poolings)"
            )
        result = model.load_state_dict(source, strict=False)
        assert not result.unexpected_keys and not set(result.missing_keys) & set(target)
        dtype = next(mclip_model.parameters()).dtype
        return model.to(dtype).train(mclip_model.training)


def _interaction(video_embeds, text_embeds, seen_by_video, seen_by_text) -> torch.Tensor:
    """Mean of cos(caption, clip as the caption sees it) and cos(clip, caption as the clip sees it)."""
    text_side = (text_embeds * F.normalize(seen_by_text, dim=-1)).sum(dim=-1)
    video_side = (video_embeds * F.normalize(seen_by_video, dim=-1)).sum(dim=-1)
    return (text_side + video_side) / 2


def _reversed_frame_order(frame_mask: torch.Tensor) -> torch.Tensor:
    """`[batch, frames]` gather indices that reverse the order of each clip's real frames (mask 1, wherever
    they are) and keep its padding positions in place."""
    real = frame_mask.bool()
    positions = torch.arange(frame_mask.shape[1], device=frame_mask.device).expand_as(frame_mask)
    real_first = torch.argsort(torch.where(real, positions, positions + frame_mask.shape[1]), dim=1)
    rank = real.long().cumsum(dim=1) - 1
    source_rank = (real.long().sum(dim=1, keepdim=True) - 1 - rank).clamp(min=0)
    return torch.where(real, real_first.gather(1, source_rank), positions)


def _symmetric_info_nce(logits: torch.Tensor) -> torch.Tensor:
    """Mean of the row-wise and column-wise cross-entropy of a square `[B, B]` score matrix (diagonal: the pairs)."""
    if logits.shape[0] != logits.shape[1]:
        raise ValueError(f"the interaction loss needs as many videos as texts (pairs), got {tuple(logits.shape)}")
    targets = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.t(), targets)) / 2
