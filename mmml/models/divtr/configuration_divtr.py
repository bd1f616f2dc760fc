"""Configuration of DI-vTR (video-text retrieval with a temporal encoder and dual inter-modal interaction)."""

from __future__ import annotations

from ...modeling.configuration_multi_encoder import MultiEncoderConfig

SIMILARITY_HEADS = ("meanP", "seqTransf", "divtr")
DEFAULT_MODALITIES = ("video", "text")


class DIVTRConfig(MultiEncoderConfig):
    """A video-text retrieval model: any image tower run on every frame, any (multilingual) text tower.

    Frames (`pixel_values_videos` `[batch, frames, 3, H, W]` + `video_frame_mask`) go through the
    image tower (`vision_config`) and `visual_projection`; the projected frame embeddings are then
    reduced to one clip embedding by the `similarity_head`:

    * `"meanP"` (CLIP4Clip): the mean of the L2-normalised frame embeddings; order-blind.
    * `"seqTransf"` (CLIP4Clip): frame position embeddings + `temporal_layers` transformer blocks
      (`temporal_heads` heads) + residual, then the mean of the normalised contextual frames.
    * `"divtr"` (DI-vTR): the same contextual temporal encoder for the global clip embedding, plus the
      dual inter-modal interaction: caption tokens cross-attend to the clip's contextual frames and the
      frames cross-attend to the caption's tokens (`interaction_layers` layers, `interaction_heads`
      heads, each direction its own weights). Each direction's result is compared (cosine) with the
      other side's global embedding; their mean, times `interaction_weight`, is added to the global
      cosine before the logit scale: `score = scale * (cos(video, text) + interaction_weight * interaction)`.
      The model then has a pairwise scorer (`score_pairs`), which `RetrievalEvaluator` uses to
      re-rank the dense top-k.

    Args (besides those of `mmml.modeling.MultiEncoderConfig`; `modalities` defaults to
    `["video", "text"]` and must contain both):
        similarity_head: "meanP", "seqTransf" or "divtr" (default).
        max_frames: frame positions of the temporal encoder (clips may have at most this many frames).
        temporal_layers: transformer blocks of the temporal encoder (CLIP4Clip: 4).
        temporal_heads: their attention heads (`projection_dim` must be divisible by it).
        interaction_layers: cross-attention layers per direction of the interaction ("divtr").
        interaction_heads: their attention heads (`projection_dim` must be divisible by it).
        interaction_weight: weight of the interaction score added to the global cosine ("divtr").
        interaction_loss_weight: weight of the `interaction` loss term: in-batch InfoNCE (both
            directions) on the full scores of all B x B pairs of the batch ("divtr"; 0 turns it off).
        temporal_position_init_std: standard deviation of the temporal encoder's frame position embeddings
            at initialisation (CLIP4Clip: 0.02). The blocks attend over frames without any other order
            signal and the clip embedding is a mean, so positions far smaller than the frame embeddings
            (whose norm is about 10 for CLIP-like projections) leave the head nearly order-blind at first;
            a value near `1 / sqrt(projection_dim) * |frame|` puts them on the frames' scale.
        temporal_order_loss_weight: weight of the `temporal_order` loss term (0, the default, turns it
            off): each caption must score its clip above the same clip played backwards (its real
            frames in reverse order, re-run through the temporal encoder only, so it costs little).
            In-batch negatives are other content and rarely differ from a clip only in direction or
            order, so without this term a head can solve the batch while staying order-blind. An
            order-blind head (meanP) gives the reversal its clip's score: the term is then log 2 with
            zero gradient. Turn it off for data whose clips read the same backwards.
    """

    model_type = "divtr"

    similarity_head: str = "divtr"
    max_frames: int = 32
    temporal_layers: int = 4
    temporal_heads: int = 8
    interaction_layers: int = 1
    interaction_heads: int = 8
    interaction_weight: float = 1.0
    interaction_loss_weight: float = 1.0
    temporal_order_loss_weight: float = 0.0
    temporal_position_init_std: float = 0.02

    def __post_init__(self, **kwargs):
        if self.modalities is None:
            self.modalities = list(DEFAULT_MODALITIES)
        super().__post_init__(**kwargs)
        self.validate_divtr_fields()

    def validate_divtr_fields(self) -> None:
        """Raise `ValueError` naming the field and its valid values."""
        missing = [name for name in DEFAULT_MODALITIES if name not in self.modalities]
        if missing:
            raise ValueError(f"modalities must include 'video' and 'text' for DI-vTR, got {self.modalities}")
        if self.similarity_head not in SIMILARITY_HEADS:
            raise ValueError(f"similarity_head must be one of {SIMILARITY_HEADS}, got {self.similarity_head!r}")
        for field in ("max_frames", "temporal_layers", "temporal_heads", "interaction_layers", "interaction_heads"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{field} must be a positive integer, got {value!r}")
        for field in ("interaction_weight", "interaction_loss_weight", "temporal_order_loss_weight",
                      "temporal_position_init_std"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"{field} must be a number >= 0, got {value!r}")
        used = {"seqTransf": ("temporal_heads",), "divtr": ("temporal_heads", "interaction_heads")}
        for field in used.get(self.similarity_head, ()):
            if self.projection_dim % getattr(self, field):
                raise ValueError(
                    f"projection_dim ({self.projection_dim}) must be divisible by {field} ({getattr(self, field)}): "
                    f"the {self.similarity_head} head works on the projected frame / token embeddings"
                )

    @property
    def uses_temporal_encoder(self) -> bool:
        return self.similarity_head in ("seqTransf", "divtr")

    @property
    def uses_interaction(self) -> bool:
        return self.similarity_head == "divtr"
