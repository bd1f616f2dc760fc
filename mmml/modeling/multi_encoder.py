"""Multi-encoder base: one tower + pooling + projection per modality, routed inputs, composable objectives.

Families (M-CLIP, MLA, hashing, VSE, video and audio models) subclass `MultiEncoderModel` with
their own config class; the towers, pooling, projections, scoring and objectives live here once.
Which modalities a model has is data (`config.modalities`, described in `modalities.py`); image
and text keep CLIP's attribute and output names, so `MCLIPModel.from_clip` stays exact.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import itertools
import logging
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutputWithPooling

from ..losses import ContrastiveLoss, HashingLoss
from .configuration_multi_encoder import MultiEncoderConfig
from .hashing import HashHead
from .loading import CheckedLoadingMixin
from .modalities import Modality, get_modality
from .objectives import ObjectiveContext, build_objectives
from .outputs import MultiEncoderOutput
from .pooling import pool_tower_output, token_states
from .remote_code import RemoteCodeMixin
from .towers import build_tower, load_tower, tower_hidden_size

logger = logging.getLogger(__name__)

_TOWER_PREFIXES = ("vision_", "text_")
_TOWER_FLAGS = ("output_attentions", "output_hidden_states")


@functools.lru_cache(maxsize=None)
def _forward_parameters(tower_class: type) -> tuple[frozenset[str], bool]:
    """(named parameters of `tower_class.forward`, whether it takes **kwargs)."""
    parameters = inspect.signature(tower_class.forward).parameters
    takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    return frozenset(parameters), takes_kwargs


class MultiEncoderModel(RemoteCodeMixin, CheckedLoadingMixin, PreTrainedModel):
    """Base of mmml's encoders (not registered itself; families subclass it)."""

    config_class = MultiEncoderConfig
    base_model_prefix = "multi_encoder"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    # Families whose text path routes or fuses per sample across the whole batch set this False.
    supports_text_length_buckets = True
    # A family that cannot carry hash heads sets this False: `hash_bits` then raises instead of being ignored.
    supports_hashing = True
    # True when `score_pairs` scores a pair jointly (cross-attention, ITM) instead of the scaled cosine.
    has_pairwise_scorer = False
    # Further inputs a family's `get_<modality>_features` takes, by modality (MLA: text -> language).
    extra_modality_inputs: dict[str, tuple[str, ...]] = {}
    # Inputs that stand in for a modality's main input (text as embeddings; TF-IDF rows for CMHR-DRN).
    alternative_main_inputs: dict[str, tuple[str, ...]] = {"text": ("inputs_embeds",)}
    # Batch inputs a family's own objectives read (VSE: the second caption).
    extra_objective_inputs: tuple[str, ...] = ()
    # The loss terms that match the modalities to each other; RCAR replaces them with its robust loss.
    matching_terms: tuple[str, ...] = ("contrastive",)

    def __init__(self, config: MultiEncoderConfig, vision_model: PreTrainedModel | None = None,
                 text_model: PreTrainedModel | None = None, **towers: PreTrainedModel):
        super().__init__(config)
        if config.text_length_buckets > 1 and not self.supports_text_length_buckets:
            raise ValueError(
                f"{type(self).__name__} runs its text path on whole batches; set text_length_buckets to 1 "
                f"(got {config.text_length_buckets})"
            )
        if config.hash_bits is not None and not self.supports_hashing:
            raise ValueError(
                f"{type(self).__name__} cannot carry hash heads (hash_bits={config.hash_bits}); set hash_bits to "
                "None, or use a family that supports hashing (e.g. mmml.CrossModalHashingModel, MCLIPModel)"
            )
        given = {"vision_model": vision_model, "text_model": text_model, **towers}
        for modality in self.modality_records:
            if modality.tower_attribute not in self._modules:
                sub_config = getattr(config, modality.config_key)
                tower = given.get(modality.tower_attribute) or build_tower(
                    sub_config, config.pooling(modality.name) == "pooler")
                # The tower reads its config from the composite config, so edits to one show in the other.
                tower.config = sub_config
                setattr(self, modality.tower_attribute, tower)
        for modality in self.modality_records:
            if modality.projection_attribute not in self._modules:
                width = self.projection_input_size(modality.name)
                setattr(self, modality.projection_attribute, nn.Linear(width, config.projection_dim, bias=False))
        self.logit_scale = nn.Parameter(torch.tensor(float(config.logit_scale_init_value)))
        self.contrastive_loss = ContrastiveLoss(local_loss=True, gather_with_grad=True)
        self.hashing_loss = None
        for name in config.modalities:  # `<modality>_hash_head`: None without hash_bits
            setattr(self, f"{name}_hash_head", None if config.hash_bits is None else HashHead(
                config.projection_dim, config.hash_bits, config.hash_scale))
        if config.hash_bits is not None:
            self.hashing_loss = HashingLoss(
                config.hash_similarity_weight, config.hash_quantization_weight, config.hash_balance_weight
            )
        self.build_extra_modules()
        self.objectives = build_objectives(self.objective_specs(), config)
        self.post_init()

    # -- structure -----------------------------------------------------------------------------

    @property
    def modality_records(self) -> list[Modality]:
        return [get_modality(name) for name in self.config.modalities]

    def build_extra_modules(self) -> None:
        """Hook for families: create further modules here so that `post_init` initialises them too."""

    def projection_input_size(self, modality: str) -> int:
        """Width of the features that `modality`'s projection reads; families with fusion override it."""
        if modality in ("image", "text"):
            return self.projection_input_sizes()[0 if modality == "image" else 1]
        return tower_hidden_size(self.config.modality_config(modality))

    def projection_input_sizes(self) -> tuple[int, int]:
        """Widths of the (vision, text) features that the projections read (image-text families override it)."""
        config = self.config
        widths = [tower_hidden_size(config.vision_config) if config.vision_config is not None else None,
                  tower_hidden_size(config.text_config) if config.text_config is not None else None]
        return widths[0], widths[1]

    def contrastive_weight(self) -> float:
        """Weight of the default contrastive objective (families without it return 0)."""
        return 1.0

    def default_objective_specs(self) -> list[dict]:
        """Contrastive over every pair of modalities, plus hashing when the model has hash heads."""
        specs = []
        if self.contrastive_weight() > 0:
            pairs = [list(pair) for pair in itertools.combinations(self.config.modalities, 2)]
            if pairs:
                specs.append({"type": "contrastive", "pairs": pairs, "weights": [self.contrastive_weight()] * len(pairs)})
        if self.config.hash_bits is not None:
            specs.append({"type": "hashing", "pair": list(self.config.modalities[:2])})
        return specs

    def training_item_options(self) -> dict[str, Any]:
        """What training items must carry for this model's objectives (`MultimodalPairs` options such as
        `paired_caption=True` or `labels=<count>`); the recipes build their data from it."""
        return {}

    def objective_specs(self) -> list[dict]:
        return self.config.objectives if self.config.objectives is not None else self.default_objective_specs()

    def _init_weights(self, module: nn.Module) -> None:
        factor = self.config.initializer_factor
        if isinstance(module, MultiEncoderModel):
            projections = dict.fromkeys(m.projection_attribute for m in module.modality_records)
            # text first: the order the image-text base always initialised them in (same seeds, same weights)
            for name in sorted(projections, key=lambda attr: attr != "text_projection"):
                projection = getattr(module, name)
                init.normal_(projection.weight, std=projection.in_features**-0.5 * factor)
            init.constant_(module.logit_scale, self.config.logit_scale_init_value)
        elif isinstance(module, HashHead):
            # Small logits at first: tanh starts in its linear range instead of saturated (no gradient).
            init.normal_(module.weight, std=0.02 * factor)
            init.zeros_(module.bias)
        else:
            super()._init_weights(module)

    def _require_modality(self, name: str) -> Modality:
        if name not in self.config.modalities:
            raise ValueError(f"this {type(self).__name__} has no {name!r} modality; it encodes {self.config.modalities}")
        return get_modality(name)

    # -- encoding ------------------------------------------------------------------------------

    def _tower_arguments(self, modality: Modality, tower: nn.Module, inputs: dict[str, Any]) -> dict[str, Any]:
        names, takes_kwargs = _forward_parameters(type(tower))
        arguments = {}
        for input_name, candidates in modality.tower_arguments.items():
            value = inputs.get(input_name)
            if value is None:
                continue
            target = next((c for c in candidates if c in names), candidates[0] if takes_kwargs else None)
            if target is None:
                raise TypeError(f"the {modality.name} tower {type(tower).__name__} takes none of {candidates} "
                                f"(for input {input_name!r})")
            arguments[target] = value
        return arguments

    def encode_modality(self, name: str, output_attentions: bool | None = None,
                        output_hidden_states: bool | None = None, **inputs) -> BaseModelOutputWithPooling:
        """Tower -> pooling -> projection for modality `name` (and for frames: per frame, then `pool_frames`).

        Returns the tower output whose `pooler_output` is the projected, not normalised, embedding.
        """
        modality = self._require_modality(name)
        unknown = sorted(set(inputs) - set(modality.input_names))
        if unknown:
            raise TypeError(f"the {name} modality takes {list(modality.input_names)}, got unexpected {unknown}")
        main_names = (modality.main_input, *self.alternative_main_inputs.get(name, ()))
        main = next((inputs[k] for k in main_names if inputs.get(k) is not None), None)
        if main is None:
            raise ValueError(f"encoding {name} needs one of {list(main_names)}")
        tower = getattr(self, modality.tower_attribute)
        tower_inputs = dict(inputs)
        frame_mask = None
        if modality.frames:
            if main.ndim < 3:
                raise ValueError(f"`{modality.main_input}` must be [batch, frames, ...], got shape {tuple(main.shape)}")
            batch, frames = main.shape[:2]
            frame_mask = inputs.get(modality.mask_name)
            if frame_mask is not None and tuple(frame_mask.shape) != (batch, frames):
                raise ValueError(f"`{modality.mask_name}` must have shape {(batch, frames)}, got {tuple(frame_mask.shape)}")
            tower_inputs[modality.main_input] = main.reshape(batch * frames, *main.shape[2:])
        flags = {k: v for k, v in (("output_attentions", output_attentions),
                                   ("output_hidden_states", output_hidden_states)) if v is not None}
        outputs = tower(**self._tower_arguments(modality, tower, tower_inputs), return_dict=True, **flags)
        mask = None if modality.frames or modality.mask_name is None else inputs.get(modality.mask_name)
        if mask is not None and mask.shape[1] != token_states(outputs).shape[1]:
            mask = None  # the tower changed the sequence length (e.g. audio patches): pool over all positions
        pooled = pool_tower_output(outputs, self.config.pooling(name), mask)
        projected = getattr(self, modality.projection_attribute)(pooled)
        last_hidden_state = outputs.last_hidden_state
        if modality.frames:
            projected = self.pool_frames(projected.reshape(batch, frames, -1), frame_mask)
            last_hidden_state = last_hidden_state.reshape(batch, frames, *last_hidden_state.shape[1:])
        return BaseModelOutputWithPooling(
            last_hidden_state=last_hidden_state,
            pooler_output=projected,
            hidden_states=getattr(outputs, "hidden_states", None),
            attentions=getattr(outputs, "attentions", None),  # convolutional towers have none
        )

    def pool_frames(self, frame_embeds: torch.Tensor, frame_mask: torch.Tensor | None) -> torch.Tensor:
        """`[batch, frames, dim]` projected frame embeddings -> `[batch, dim]`: the mean of the L2-normalised
        embeddings of the real frames (CLIP4Clip's meanP). Video families override it (temporal encoders)."""
        frame_embeds = F.normalize(frame_embeds, dim=-1)
        if frame_mask is None:
            return frame_embeds.mean(dim=1)
        weights = frame_mask.unsqueeze(-1).to(frame_embeds.dtype)
        if (weights.sum(dim=1) == 0).any():
            raise ValueError("a clip has no real frame (an all-zero video_frame_mask row)")
        return (frame_embeds * weights).sum(dim=1) / weights.sum(dim=1)

    def get_features(self, modality: str, **inputs) -> BaseModelOutputWithPooling:
        """`get_<modality>_features` for any modality, registered ones included."""
        return getattr(self, f"get_{modality}_features")(**inputs)

    def __getattr__(self, name: str):
        # `get_<modality>_features` of a modality registered outside mmml (the built-in ones are methods).
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name.startswith("get_") and name.endswith("_features"):
                config = self.__dict__.get("config")
                modality = name[len("get_"):-len("_features")]
                if config is not None and modality in getattr(config, "modalities", ()):
                    return functools.partial(self.encode_modality, modality)
            raise

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
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("the text tower needs exactly one of input_ids and inputs_embeds")
        text_inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids,
                       "position_ids": position_ids, "inputs_embeds": inputs_embeds}
        if self.config.text_length_buckets > 1 and attention_mask is not None and not kwargs:
            last_hidden_state, pooled = self._run_text_tower_in_length_buckets(text_inputs)
            return BaseModelOutputWithPooling(last_hidden_state=last_hidden_state,
                                              pooler_output=self.text_projection(pooled))
        return self.encode_modality("text", **{k: v for k, v in text_inputs.items() if v is not None}, **kwargs)

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
        return self.encode_modality("image", pixel_values=pixel_values, **kwargs)

    def get_video_features(self, pixel_values_videos: torch.Tensor, video_frame_mask: torch.Tensor | None = None,
                           **kwargs) -> BaseModelOutputWithPooling:
        """`[batch, frames, 3, H, W]` clips (frame mask: 1 = real frame) -> `pooler_output` `[batch, dim]`."""
        return self.encode_modality("video", pixel_values_videos=pixel_values_videos,
                                    video_frame_mask=video_frame_mask, **kwargs)

    def get_audio_features(self, input_features: torch.Tensor, audio_attention_mask: torch.Tensor | None = None,
                           **kwargs) -> BaseModelOutputWithPooling:
        """Audio features (e.g. log-mel) -> tower output whose `pooler_output` is the projected embedding."""
        return self.encode_modality("audio", input_features=input_features,
                                    audio_attention_mask=audio_attention_mask, **kwargs)

    # -- scoring -------------------------------------------------------------------------------

    def scaled_logit_scale(self) -> torch.Tensor:
        """exp(logit_scale), clamped to `config.logit_scale_max` as CLIP trainers do."""
        return self.logit_scale.exp().clamp(max=self.config.logit_scale_max)

    def similarity(self, embeds: torch.Tensor, other_embeds: torch.Tensor) -> torch.Tensor:
        """Dense `[n, m]` scores of independent normalised embeddings: the scaled cosine."""
        return self.scaled_logit_scale() * embeds @ other_embeds.t()

    def scoring_inputs(self, modality: str, features: BaseModelOutputWithPooling,
                       inputs: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """Row-aligned per-item tensors that `score_pairs` needs: the normalised embedding by default."""
        return {"embeds": F.normalize(features.pooler_output, dim=-1)}

    def score_pairs(self, query: dict[str, torch.Tensor], gallery: dict[str, torch.Tensor], query_modality: str,
                    gallery_modality: str) -> torch.Tensor:
        """`[n]` scores of the aligned pairs (query row i, gallery row i); default: the scaled cosine.

        Families that score a pair jointly (cross-attention, ITM) override this and set
        `has_pairwise_scorer = True`; the evaluator then re-ranks its dense top-k with it.
        """
        return self.scaled_logit_scale() * (query["embeds"] * gallery["embeds"]).sum(dim=-1)

    # -- hashing -------------------------------------------------------------------------------

    @property
    def hash_heads(self) -> dict[str, HashHead]:
        """The hash head of every modality (empty without `hash_bits`)."""
        if self.config.hash_bits is None:
            return {}
        return {name: getattr(self, f"{name}_hash_head") for name in self.config.modalities}

    def _hash_head(self, modality: str) -> HashHead:
        heads = self.hash_heads
        if modality not in heads:
            raise ValueError(
                f"this {type(self).__name__} has no hash heads: build it with `hash_bits` set in its config "
                "(e.g. hash_bits=64) to get binary codes"
            )
        return heads[modality]

    def _require_hash_heads(self) -> None:
        self._hash_head(self.config.modalities[0])

    def get_codes(self, modality: str, **inputs) -> torch.Tensor:
        """`[n, hash_bits]` {-1, +1} codes of `modality`'s inputs (pack them with `mmml.modeling.pack_codes`)."""
        head = self._hash_head(modality)
        return head.binarize(self.get_features(modality, **inputs).pooler_output)

    def get_image_codes(self, pixel_values: torch.Tensor, **kwargs) -> torch.Tensor:
        """`[num_images, hash_bits]` {-1, +1} codes (pack them with `mmml.modeling.pack_codes`)."""
        return self.get_codes("image", pixel_values=pixel_values, **kwargs)

    def get_text_codes(self, **text_inputs) -> torch.Tensor:
        """`[num_texts, hash_bits]` {-1, +1} codes of the processor's text inputs."""
        return self.get_codes("text", **text_inputs)

    def set_hash_scale(self, scale: float) -> None:
        """Set the tanh relaxation scale of every hash head (annealed upward during training)."""
        self._require_hash_heads()
        for head in self.hash_heads.values():
            head.set_scale(scale)

    # -- forward -------------------------------------------------------------------------------

    def objective_input_names(self) -> set[str]:
        names = {"labels", *self.extra_objective_inputs}
        for objective in self.objectives:
            names.update(objective.input_names)
        return names

    def route_inputs(self, inputs: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
        """Split `forward`'s inputs into `{modality: its inputs}` and the objectives' inputs.

        An input that no modality of this model and no objective takes raises a `TypeError`
        listing the valid names.
        """
        owners = {}
        for modality in self.modality_records:
            for name in (*modality.input_names, *self.extra_modality_inputs.get(modality.name, ())):
                owners[name] = modality.name
        objective_names = self.objective_input_names()
        per_modality: dict[str, dict[str, Any]] = {}
        objective_inputs: dict[str, Any] = {}
        for name, value in inputs.items():
            if name in owners:
                per_modality.setdefault(owners[name], {})[name] = value
            elif name in objective_names:
                objective_inputs[name] = value
            else:
                raise TypeError(
                    f"{type(self).__name__}.forward got an unexpected input {name!r}; it takes "
                    f"{sorted(owners)} (modalities {self.config.modalities}) and {sorted(objective_names)} (objectives)"
                )
        # Only the modalities whose main input is present are encoded (a text mask alone encodes nothing).
        encoded = {}
        for modality_name, modality_inputs in per_modality.items():
            mains = (get_modality(modality_name).main_input, *self.alternative_main_inputs.get(modality_name, ()))
            if any(modality_inputs.get(name) is not None for name in mains):
                encoded[modality_name] = modality_inputs
        return encoded, objective_inputs

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        video_frame_mask: torch.Tensor | None = None,
        input_features: torch.Tensor | None = None,
        audio_attention_mask: torch.Tensor | None = None,
        return_loss: bool = False,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> MultiEncoderOutput | tuple:
        """Encode every modality present, score every pair of them and, with `return_loss`, the objectives.

        Each input goes to the tower of the modality that owns it (see `mmml.modeling.modalities`);
        `labels` and the other objective inputs go to the objectives. The loss is the sum of the
        objectives' named terms, which the output also carries (`loss_terms`). Under several
        processes the contrastive terms gather the embeddings of all ranks (with gradient).
        `return_dict=False` returns `to_tuple()` of the output, as transformers' models do.
        """
        named = {"input_ids": input_ids, "pixel_values": pixel_values, "attention_mask": attention_mask,
                 "token_type_ids": token_type_ids, "position_ids": position_ids,
                 "pixel_values_videos": pixel_values_videos, "video_frame_mask": video_frame_mask,
                 "input_features": input_features, "audio_attention_mask": audio_attention_mask}
        inputs = {k: v for k, v in {**named, **kwargs}.items() if v is not None}
        per_modality, objective_inputs = self.route_inputs(inputs)
        flags = {k: v for k, v in (("output_attentions", output_attentions),
                                   ("output_hidden_states", output_hidden_states)) if v is not None}
        features = {name: self.get_features(name, **modality_inputs, **flags)
                    for name, modality_inputs in per_modality.items()}
        output = self.assemble_output(features, return_loss, objective_inputs)
        return_dict = return_dict if return_dict is not None else getattr(self.config, "return_dict", True)
        return output if return_dict else output.to_tuple()

    def compute_loss_terms(self, context: ObjectiveContext) -> dict[str, torch.Tensor]:
        """The named, weighted terms of every configured objective (families add their own)."""
        terms: dict[str, torch.Tensor] = {}
        for objective in self.objectives:
            for name, value in objective(context).items():
                if name in terms:
                    raise ValueError(f"two objectives return a loss term named {name!r}")
                terms[name] = value
        return terms

    def assemble_output(
        self,
        features: dict[str, BaseModelOutputWithPooling],
        return_loss: bool = False,
        objective_inputs: dict[str, Any] | None = None,
        family_terms: dict[str, torch.Tensor] | None = None,
        output_class: type[MultiEncoderOutput] = MultiEncoderOutput,
        **extra_fields,
    ) -> MultiEncoderOutput:
        """Normalised embeddings, pairwise scores, hash codes and (optionally) the loss and its terms."""
        order = [name for name in self.config.modalities if name in features]
        embeds = {name: F.normalize(features[name].pooler_output, dim=-1) for name in order}
        logits = {f"{a}_{b}": self.similarity(embeds[a], embeds[b]) for a, b in itertools.combinations(order, 2)}
        hash_codes = {name: head(features[name].pooler_output)
                      for name, head in self.hash_heads.items() if name in features}
        loss = terms = None
        if return_loss:
            context = ObjectiveContext(model=self, embeds=embeds, features=features,
                                       logit_scale=self.scaled_logit_scale(), hash_codes=hash_codes,
                                       inputs=dict(objective_inputs or {}))
            terms = {**(family_terms or {}), **self.compute_loss_terms(context)}
            if not terms:
                raise ValueError("the loss has no terms: configure an objective (e.g. contrastive weight > 0 or "
                                 "`hash_bits`)")
            loss = torch.stack(list(terms.values())).sum()
        image_text = logits.get("image_text")
        fields = dict(
            loss=loss,
            logits_per_image=image_text,
            logits_per_text=None if image_text is None else image_text.t(),
            text_embeds=embeds.get("text"),
            image_embeds=embeds.get("image"),
            text_model_output=features.get("text"),
            vision_model_output=features.get("image"),
            image_hash=hash_codes.get("image"),
            text_hash=hash_codes.get("text"),
            loss_terms=terms,
            video_embeds=embeds.get("video"),
            audio_embeds=embeds.get("audio"),
            video_model_output=features.get("video"),
            audio_model_output=features.get("audio"),
            video_hash=hash_codes.get("video"),
            audio_hash=hash_codes.get("audio"),
            embeds=embeds,
            logits=logits,
        )
        return output_class(**fields, **extra_fields)

    # -- construction from pretrained towers ---------------------------------------------------

    @classmethod
    def from_vision_text_pretrained(
        cls,
        vision_model_name_or_path: str,
        text_model_name_or_path: str,
        **kwargs,
    ) -> "MultiEncoderModel":
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
