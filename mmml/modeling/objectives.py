"""Training objectives as parts a config composes; each returns named, weighted loss terms.

A model's config lists its objectives (`config.objectives`, dicts with a `type`), or the family
supplies defaults. `forward(..., return_loss=True)` builds an `ObjectiveContext` (normalised
embeddings, tower outputs, relaxed hash codes, the batch's extra inputs) and sums the terms of all
objectives; the output carries `loss` and `loss_terms`, which the training loop logs.

Add an objective with `register_objective("name", MyObjective)`: a subclass of `Objective` whose
constructor takes the spec's keys (and `config`), and whose `forward(context)` returns
`{term_name: weighted scalar}`. Batch inputs it reads are listed in `input_names`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..losses.contrastive import ContrastiveLoss
from ..losses.distillation import DistillationLoss
from ..losses.hashing import bit_balance_loss, quantization_loss, similarity_from_labels, similarity_from_pairs, \
    similarity_loss


@dataclass
class ObjectiveContext:
    """What objectives read: one entry per modality present in the batch."""

    model: nn.Module
    embeds: dict[str, torch.Tensor]  # L2-normalised projected embeddings
    features: dict[str, Any]  # `get_<modality>_features` outputs (pooler_output: projected, not normalised)
    logit_scale: torch.Tensor  # exponentiated and clamped
    hash_codes: dict[str, torch.Tensor] = field(default_factory=dict)  # tanh-relaxed in training mode
    inputs: dict[str, Any] = field(default_factory=dict)  # the batch's objective inputs (labels, ...)

    def require(self, modality: str, what: str = "embeds") -> torch.Tensor:
        table = self.embeds if what == "embeds" else self.hash_codes
        if modality not in table:
            raise ValueError(
                f"this objective needs {what} of modality {modality!r}, but the batch has {sorted(table) or 'none'}"
                + (" (build the model with hash_bits set)" if what == "hash codes" and not table else "")
            )
        return table[modality]


class Objective(nn.Module):
    """Base class: `forward(context) -> {name: weighted scalar term}`."""

    input_names: tuple[str, ...] = ()

    def forward(self, context: ObjectiveContext) -> dict[str, torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError


class ContrastiveObjective(Objective):
    """Symmetric InfoNCE (`mmml.losses.ContrastiveLoss`, exact under several processes) for each pair.

    The term is `contrastive` for a single pair, `contrastive_<a>_<b>` for several.
    """

    def __init__(self, pairs: Sequence[Sequence[str]] = (("image", "text"),), weights: Sequence[float] | None = None,
                 config=None):
        super().__init__()
        self.pairs = [tuple(pair) for pair in pairs]
        self.weights = [1.0] * len(self.pairs) if weights is None else [float(w) for w in weights]
        if len(self.weights) != len(self.pairs):
            raise ValueError(f"contrastive objective: {len(self.weights)} weights for {len(self.pairs)} pairs")
        self.loss = ContrastiveLoss(local_loss=True, gather_with_grad=True)

    def term_name(self, pair: tuple[str, str]) -> str:
        return "contrastive" if len(self.pairs) == 1 else f"contrastive_{pair[0]}_{pair[1]}"

    def forward(self, context: ObjectiveContext) -> dict[str, torch.Tensor]:
        return {
            self.term_name(pair): weight * self.loss(context.require(pair[0]), context.require(pair[1]),
                                                     context.logit_scale)
            for pair, weight in zip(self.pairs, self.weights) if weight
        }


class HashingObjective(Objective):
    """Cross-modal hashing on the relaxed codes of two modalities (DCMH-style pairwise likelihood,
    quantization and bit balance; see `mmml.losses.HashingLoss`). Terms: `hash_similarity`,
    `hash_quantization`, `hash_balance`.

    `labels` (multi-hot `[batch, num_labels]`) in the batch make items that share a label similar;
    without them only an item and its own pair are similar.
    """

    input_names = ("labels",)

    def __init__(self, pair: Sequence[str] = ("image", "text"), weight: float = 1.0,
                 similarity_weight: float | None = None, quantization_weight: float | None = None,
                 balance_weight: float | None = None, config=None):
        super().__init__()
        self.pair = tuple(pair)
        defaults = (1.0, 0.1, 0.01) if config is None else (
            config.hash_similarity_weight, config.hash_quantization_weight, config.hash_balance_weight)
        given = (similarity_weight, quantization_weight, balance_weight)
        self.similarity_weight, self.quantization_weight, self.balance_weight = (
            weight * (d if g is None else g) for g, d in zip(given, defaults))

    def forward(self, context: ObjectiveContext) -> dict[str, torch.Tensor]:
        first = context.require(self.pair[0], "hash codes")
        second = context.require(self.pair[1], "hash codes")
        labels = context.inputs.get("labels")
        similarity = similarity_from_labels(labels) if labels is not None else similarity_from_pairs(
            first.shape[0], first.device)
        return {
            "hash_similarity": self.similarity_weight * similarity_loss(first, second, similarity),
            "hash_quantization": self.quantization_weight * quantization_loss(first, second),
            "hash_balance": self.balance_weight * bit_balance_loss(first, second),
        }


class DistillationObjective(Objective):
    """M-CLIP teacher learning: MSE of a modality's projected features to `teacher_embeds` in the batch."""

    input_names = ("teacher_embeds",)

    def __init__(self, modality: str = "text", weight: float = 1.0, normalize: bool = False, config=None):
        super().__init__()
        self.modality, self.weight, self.normalize = modality, float(weight), normalize
        self.loss = DistillationLoss()

    def forward(self, context: ObjectiveContext) -> dict[str, torch.Tensor]:
        teacher = context.inputs.get("teacher_embeds")
        if teacher is None:
            raise ValueError("the distillation objective needs `teacher_embeds` in the batch")
        if self.modality not in context.features:
            context.require(self.modality)
        student = context.features[self.modality].pooler_output
        if self.normalize:
            student, teacher = F.normalize(student, dim=-1), F.normalize(teacher, dim=-1)
        return {"distillation": self.weight * self.loss(student, teacher.to(student.dtype))}


_OBJECTIVES: dict[str, type[Objective]] = {
    "contrastive": ContrastiveObjective,
    "hashing": HashingObjective,
    "distillation": DistillationObjective,
}


def register_objective(name: str, objective_class: type[Objective], exist_ok: bool = False) -> None:
    """Make `{"type": name, ...}` usable in `config.objectives`."""
    if name in _OBJECTIVES and not exist_ok:
        raise ValueError(f"an objective named {name!r} is already registered")
    _OBJECTIVES[name] = objective_class


def check_objective_specs(specs: Sequence[dict], modalities: Sequence[str]) -> None:
    """Raise `ValueError` for an unknown objective type or a modality the model does not have."""
    for index, spec in enumerate(specs):
        kind = spec.get("type")
        if kind not in _OBJECTIVES:
            raise ValueError(f"objectives[{index}] has type {kind!r}; valid: {sorted(_OBJECTIVES)}")
        named = [m for pair in spec.get("pairs", ()) for m in pair] + list(spec.get("pair", ()))
        named += [spec["modality"]] if "modality" in spec else []
        unknown = sorted(set(named) - set(modalities))
        if unknown:
            raise ValueError(f"objectives[{index}] ({kind}) names modalities {unknown}; the model has {list(modalities)}")


def build_objectives(specs: Sequence[dict], config) -> nn.ModuleList:
    """One module per spec (`{"type": ..., **kwargs}`)."""
    check_objective_specs(specs, config.modalities)
    modules = []
    for spec in specs:
        kwargs = {k: v for k, v in spec.items() if k != "type"}
        try:
            modules.append(_OBJECTIVES[spec["type"]](**kwargs, config=config))
        except TypeError as error:
            raise ValueError(f"bad arguments for the {spec['type']!r} objective {kwargs}: {error}") from None
    return nn.ModuleList(modules)
