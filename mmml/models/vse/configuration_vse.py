"""Configuration of the visual-semantic embedding (VSE) family."""

from __future__ import annotations

from ...modeling.configuration_multi_encoder import MultiEncoderConfig

TOKEN_POOLINGS = ("gpo", "mean")
MATCHING_LOSSES = ("contrastive", "triplet")


class VSEConfig(MultiEncoderConfig):
    """A dual encoder whose embeddings pool *projected token features* after optional reasoning.

    Every part is an option, so one family covers plain VSE, VSE with alignment and fusion, and
    MVSEN. The retrieval embeddings of the two modalities stay independent (one image or one text
    at a time); the modules that look at both modalities serve as training objectives.

    Embedding path (both modalities): tower tokens -> projection -> `interaction_layers`
    intra-modality self-attention blocks -> `gcn_layers` graph-convolution reasoning layers ->
    `token_pooling` ("gpo": learned GPO pooling; "mean").

    Objectives (`forward(..., return_loss=True)`): the `matching_loss` ("contrastive" InfoNCE or
    "triplet" VSE++ hardest negatives with `triplet_margin`), plus, each when its weight is > 0:

    * `alignment_weight`: alignment module: InfoNCE between the modalities' intermediate features
      (hidden states of tower layer `alignment_layer`, mean-pooled and projected).
    * `itm_weight`: multimodal fusion encoder (`fusion_layers` blocks in which text tokens
      cross-attend to image tokens, inter-modality interaction) with an image-text matching head,
      trained on the positives and the hardest in-batch negatives of both directions.
    * `text_matching_weight` (MVSEN): InfoNCE between two captions of the same image
      (`paired_input_ids`).
    * `classification_weight` (MVSEN): multi-label classification of both embeddings into
      `num_labels` labels (`labels`, multi-hot), one shared linear head.
    """

    model_type = "vse"

    text_pooling: str = "mean"
    vision_pooling: str = "mean"
    token_pooling: str = "gpo"
    gpo_hidden_size: int = 32
    interaction_layers: int = 0
    gcn_layers: int = 0
    num_attention_heads: int = 4
    matching_loss: str = "contrastive"
    triplet_margin: float = 0.2
    alignment_weight: float = 0.0
    alignment_layer: int = 1
    fusion_layers: int = 1
    itm_weight: float = 0.0
    text_matching_weight: float = 0.0
    classification_weight: float = 0.0
    num_labels: int = 80

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        self.validate_vse_fields()

    def validate_vse_fields(self) -> None:
        """Raise `ValueError` naming the field and its valid values."""
        if self.token_pooling not in TOKEN_POOLINGS:
            raise ValueError(f"token_pooling must be one of {TOKEN_POOLINGS}, got {self.token_pooling!r}")
        if self.matching_loss not in MATCHING_LOSSES:
            raise ValueError(f"matching_loss must be one of {MATCHING_LOSSES}, got {self.matching_loss!r}")
        for field in ("gpo_hidden_size", "num_attention_heads", "num_labels"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{field} must be a positive integer, got {value!r}")
        for field in ("interaction_layers", "gcn_layers", "fusion_layers", "alignment_layer"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{field} must be an integer >= 0, got {value!r}")
        for field in ("triplet_margin", "alignment_weight", "itm_weight", "text_matching_weight",
                      "classification_weight"):
            if not getattr(self, field) >= 0:
                raise ValueError(f"{field} must be >= 0, got {getattr(self, field)!r}")
        if self.projection_dim % self.num_attention_heads:
            raise ValueError(
                f"projection_dim ({self.projection_dim}) must be divisible by num_attention_heads "
                f"({self.num_attention_heads}): the interaction and fusion blocks work in the projected space"
            )
        if self.itm_weight > 0 and self.fusion_layers == 0:
            raise ValueError("itm_weight > 0 needs fusion_layers >= 1 (the fusion encoder the ITM head reads)")
        for field in ("text_config", "vision_config"):
            layers = getattr(getattr(self, field), "num_hidden_layers", None)
            if self.alignment_weight > 0 and layers is not None and self.alignment_layer > layers:
                raise ValueError(
                    f"alignment_layer ({self.alignment_layer}) must be <= the {field}'s num_hidden_layers ({layers})"
                )
