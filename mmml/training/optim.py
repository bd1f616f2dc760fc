"""Optimizer and schedule construction shared by the recipes."""

from __future__ import annotations

import logging

import torch
from torch import nn
from transformers import get_cosine_schedule_with_warmup

logger = logging.getLogger(__name__)


def parameter_groups(model: nn.Module, weight_decay: float, learning_rate: float | None = None,
                     lr_multipliers: dict[str, float] | None = None) -> list[dict]:
    """AdamW groups: no weight decay on biases, norms, embeddings' scalars and the logit scale.

    `lr_multipliers` maps parameter-name prefixes (e.g. `"temporal_encoder"`) to a factor on
    `learning_rate` for those parameters (freshly added heads next to pretrained towers, as CLIP4Clip
    trains its temporal transformer at 10x); the longest matching prefix wins.
    """
    lr_multipliers = dict(lr_multipliers or {})
    if lr_multipliers and learning_rate is None:
        raise ValueError("lr_multipliers need the base learning_rate")
    groups: dict[tuple[bool, float], list[nn.Parameter]] = {(True, 1.0): [], (False, 1.0): []}
    used = set()
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        decays = not (param.ndim < 2 or "norm" in name.lower() or name.endswith("logit_scale"))
        prefix = max((p for p in lr_multipliers if name == p or name.startswith(p + ".")), key=len, default=None)
        used.update([prefix] if prefix else [])
        groups.setdefault((decays, lr_multipliers.get(prefix, 1.0)), []).append(param)
    unused = sorted(set(lr_multipliers) - used)
    if unused:  # e.g. a head that this configuration does not build
        logger.warning("lr_multipliers %s match no trainable parameter of %s", unused, type(model).__name__)
    ordered = sorted(groups.items(), key=lambda item: (not item[0][0], item[0][1]))
    return [{"params": params, "weight_decay": weight_decay if decays else 0.0,
             **({"lr": learning_rate * factor} if factor != 1.0 else {})}
            for (decays, factor), params in ordered]


def build_optimizer_and_schedule(
    model: nn.Module, learning_rate: float, weight_decay: float, warmup_steps: int, total_steps: int,
    lr_multipliers: dict[str, float] | None = None,
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    groups = parameter_groups(model, weight_decay, learning_rate, lr_multipliers)
    optimizer = torch.optim.AdamW(groups, lr=learning_rate, betas=(0.9, 0.98), eps=1e-6)
    scheduler = get_cosine_schedule_with_warmup(optimizer, warmup_steps, total_steps)
    return optimizer, scheduler
