"""Configuration of EfficientNet-Lite (Tan & Le's EfficientNet without squeeze-excitation, ReLU6, fixed stem/head)."""

from __future__ import annotations

import math

from transformers import PreTrainedConfig

# variant -> (width coefficient, depth coefficient, image size, dropout), as in the TF reference.
EFFICIENTNET_LITE_VARIANTS: dict[str, tuple[float, float, int, float]] = {
    "efficientnet-lite0": (1.0, 1.0, 224, 0.2),
    "efficientnet-lite1": (1.0, 1.1, 240, 0.2),
    "efficientnet-lite2": (1.1, 1.2, 260, 0.3),
    "efficientnet-lite3": (1.2, 1.4, 280, 0.3),
    "efficientnet-lite4": (1.4, 1.8, 300, 0.3),
}

_STAGE_FIELDS = ("kernel_sizes", "strides", "expand_ratios", "in_channels", "out_channels", "num_repeats")


class EfficientNetLiteConfig(PreTrainedConfig):
    """Config of `EfficientNetLiteModel`; the defaults are EfficientNet-Lite0.

    The seven stages are given unscaled (B0 widths and repeats); `width_coefficient` and
    `depth_coefficient` scale them as the reference does, except that the stem (`stem_channels`),
    the head (`hidden_size`, the output width) and the first and last stages' repeats stay fixed.

    Args:
        num_channels: input channels.
        image_size: the resolution the variant was trained at (the processor's crop size).
        width_coefficient / depth_coefficient: compound scaling of channels / repeats.
        stem_channels: width of the stride-2 stem convolution.
        hidden_size: width of the 1x1 head convolution: the pooled and per-position output width.
        kernel_sizes, strides, expand_ratios, in_channels, out_channels, num_repeats: one entry per stage.
        depth_divisor: channel counts are rounded to multiples of this.
        batch_norm_eps / batch_norm_momentum: BatchNorm settings (momentum in PyTorch's convention).
        dropout_rate: dropout before the classifier (`EfficientNetLiteForImageClassification`).
        drop_connect_rate: stochastic depth of the last block; block i gets rate * i / num_blocks.
    """

    model_type = "efficientnet_lite"

    num_channels: int = 3
    image_size: int = 224
    width_coefficient: float = 1.0
    depth_coefficient: float = 1.0
    stem_channels: int = 32
    hidden_size: int = 1280
    kernel_sizes: list[int] | tuple[int, ...] = (3, 3, 5, 3, 5, 5, 3)
    strides: list[int] | tuple[int, ...] = (1, 2, 2, 2, 1, 2, 1)
    expand_ratios: list[int] | tuple[int, ...] = (1, 6, 6, 6, 6, 6, 6)
    in_channels: list[int] | tuple[int, ...] = (32, 16, 24, 40, 80, 112, 192)
    out_channels: list[int] | tuple[int, ...] = (16, 24, 40, 80, 112, 192, 320)
    num_repeats: list[int] | tuple[int, ...] = (1, 2, 2, 3, 3, 4, 1)
    depth_divisor: int = 8
    batch_norm_eps: float = 1e-3
    batch_norm_momentum: float = 0.01
    dropout_rate: float = 0.2
    drop_connect_rate: float = 0.2

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        for name in _STAGE_FIELDS:
            setattr(self, name, [int(v) for v in getattr(self, name)])
        lengths = {name: len(getattr(self, name)) for name in _STAGE_FIELDS}
        if len(set(lengths.values())) != 1 or not self.num_stages:
            raise ValueError(f"the per-stage fields must be non-empty lists of one length, got lengths {lengths}")
        for name in ("num_channels", "image_size", "stem_channels", "hidden_size", "depth_divisor"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        for name in ("width_coefficient", "depth_coefficient"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("dropout_rate", "drop_connect_rate"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")

    @classmethod
    def from_variant(cls, variant: str, **kwargs) -> "EfficientNetLiteConfig":
        """The config of a named variant (`efficientnet-lite0` ... `efficientnet-lite4`)."""
        if variant not in EFFICIENTNET_LITE_VARIANTS:
            raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}; valid: {sorted(EFFICIENTNET_LITE_VARIANTS)}")
        width, depth, size, dropout = EFFICIENTNET_LITE_VARIANTS[variant]
        return cls(**{"width_coefficient": width, "depth_coefficient": depth, "image_size": size,
                      "dropout_rate": dropout, **kwargs})

    @property
    def num_stages(self) -> int:
        return len(self.kernel_sizes)

    def round_channels(self, channels: int) -> int:
        """`channels` scaled by `width_coefficient`, rounded to `depth_divisor` (never down by more than 10%)."""
        scaled = channels * self.width_coefficient
        rounded = max(self.depth_divisor, int(scaled + self.depth_divisor / 2) // self.depth_divisor * self.depth_divisor)
        return int(rounded + self.depth_divisor if rounded < 0.9 * scaled else rounded)

    def stage_repeats(self, stage: int) -> int:
        """Blocks in `stage`: scaled by `depth_coefficient`, except in the first and last stage."""
        if stage in (0, self.num_stages - 1):
            return self.num_repeats[stage]
        return int(math.ceil(self.depth_coefficient * self.num_repeats[stage]))

    def stage_channels(self, stage: int) -> tuple[int, int]:
        """(input, output) channels of `stage`'s first block; the first stage reads the unscaled stem."""
        first_in = self.stem_channels if stage == 0 else self.round_channels(self.in_channels[stage])
        return first_in, self.round_channels(self.out_channels[stage])
