"""Hash heads: a projection to `hash_bits`, a tanh relaxation for training and `sign` for inference.

Codes are {-1, +1} float tensors; `pack_codes` turns them into bytes (8 bits per `uint8`, first
bit in the most significant position, as `numpy.packbits`), the layout faiss' binary indexes
take. A code bit is +1 where the hash logit is >= 0, so a logit of exactly 0 becomes +1.
"""

from __future__ import annotations

import torch
from torch import nn

_BIT_WEIGHTS = (128, 64, 32, 16, 8, 4, 2, 1)


def binarize(values: torch.Tensor) -> torch.Tensor:
    """{-1, +1} codes of the same dtype: +1 where `values >= 0`, else -1 (never 0, unlike `torch.sign`)."""
    return torch.where(values >= 0, 1.0, -1.0).to(values.dtype if values.is_floating_point() else torch.float32)


def pack_codes(codes: torch.Tensor) -> torch.Tensor:
    """Pack `[..., bits]` {-1, +1} (or {0, 1}) codes into `[..., bits // 8]` `uint8` bytes."""
    bits = codes.shape[-1]
    if bits % 8:
        raise ValueError(f"codes must have a multiple of 8 bits to pack into bytes, got {bits}")
    weights = torch.tensor(_BIT_WEIGHTS, dtype=torch.uint8, device=codes.device)
    ones = (codes > 0).to(torch.uint8).reshape(*codes.shape[:-1], bits // 8, 8)
    return (ones * weights).sum(dim=-1, dtype=torch.uint8)


def unpack_codes(packed: torch.Tensor) -> torch.Tensor:
    """Inverse of `pack_codes`: `[..., bytes]` `uint8` to `[..., bytes * 8]` float {-1, +1} codes."""
    if packed.dtype != torch.uint8:
        raise ValueError(f"packed codes must be uint8, got {packed.dtype}")
    shifts = torch.arange(7, -1, -1, device=packed.device, dtype=torch.uint8)
    ones = (packed.unsqueeze(-1) >> shifts) & 1
    return ones.reshape(*packed.shape[:-1], packed.shape[-1] * 8).float() * 2 - 1


def hash_scale_schedule(step: int, initial: float = 1.0, growth: float = 0.0, power: float = 0.5) -> float:
    """HashNet's continuation: `initial * (1 + growth * step) ** power`; tanh(scale * x) -> sign(x) as it grows."""
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    return float(initial * (1.0 + growth * step) ** power)


class HashHead(nn.Module):
    """Linear projection to `hash_bits` logits; tanh(scale * logits) in training, {-1, +1} in eval.

    `scale` (a plain attribute, set with `set_scale`) sharpens the relaxation; a recipe anneals
    it upward with `hash_scale_schedule` so that the relaxed codes approach the binary ones.
    """

    def __init__(self, in_features: int, hash_bits: int, scale: float = 1.0):
        super().__init__()
        self.in_features = in_features
        self.hash_bits = hash_bits
        # Parameters of the head itself (no child nn.Linear): with a child Linear the owning model's
        # small init of the head did not take effect (the generic std-1.0 init saturated tanh).
        self.weight = nn.Parameter(torch.empty(hash_bits, in_features))
        self.bias = nn.Parameter(torch.zeros(hash_bits))
        nn.init.normal_(self.weight, std=0.02)
        self.set_scale(scale)

    def set_scale(self, scale: float) -> None:
        if not scale > 0:
            raise ValueError(f"hash scale must be > 0, got {scale!r}")
        self.scale = float(scale)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """The real-valued hash layer output (before any relaxation)."""
        return nn.functional.linear(features, self.weight, self.bias)

    def relax(self, features: torch.Tensor) -> torch.Tensor:
        """tanh(scale * logits), in (-1, 1) and differentiable."""
        return torch.tanh(self.scale * self.logits(features))

    def binarize(self, features: torch.Tensor) -> torch.Tensor:
        """{-1, +1} codes (see `binarize`)."""
        return binarize(self.logits(features))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.relax(features) if self.training else self.binarize(features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, hash_bits={self.hash_bits}, scale={self.scale:g}"
