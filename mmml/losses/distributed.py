"""Gathering of per-rank features for losses that need the global batch.

Every rank must pass tensors of the same shape (accelerate's default
``even_batches=True`` and ``drop_last`` samplers guarantee this); the
collectives below concatenate them along dimension 0 in rank order.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def get_rank_and_world_size() -> tuple[int, int]:
    """Return ``(rank, world_size)``, or ``(0, 1)`` when no process group is running."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _AllGatherWithGrad(torch.autograd.Function):
    """All-gather along dim 0 whose backward sums the slot gradients over ranks.

    Written on public collectives instead of ``torch.distributed.nn.functional.all_gather``,
    which is deprecated (FutureWarning) in recent torch releases. The backward uses
    ``all_reduce`` because gloo lacks reduce-scatter; the gathered features are tiny next
    to DDP's own gradient all-reduce.
    """

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        rank, world_size = get_rank_and_world_size()
        chunks = [torch.empty_like(tensor) for _ in range(world_size)]
        dist.all_gather(chunks, tensor.contiguous())
        ctx.rows = slice(rank * tensor.shape[0], (rank + 1) * tensor.shape[0])
        return torch.cat(chunks, dim=0)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
        grad = grad_output.contiguous().clone()  # never reduce into autograd's buffer
        dist.all_reduce(grad)
        return grad[ctx.rows]


def all_gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` from every rank, differentiably.

    The backward pass sums, over ranks, the gradients that each rank's graph sends
    to a slot and returns that sum to the slot's owner.
    """
    return _AllGatherWithGrad.apply(tensor)


def all_gather_no_grad(tensor: torch.Tensor, *, keep_local_grad: bool = True) -> torch.Tensor:
    """Concatenate ``tensor`` from every rank without autograd through the collective.

    With ``keep_local_grad`` this rank's slot holds ``tensor`` itself, so gradients
    still reach the local features from this rank's own loss (never from other ranks').
    """
    rank, world_size = get_rank_and_world_size()
    chunks = [torch.empty_like(tensor) for _ in range(world_size)]
    dist.all_gather(chunks, tensor.detach().contiguous())
    if keep_local_grad:
        chunks[rank] = tensor
    return torch.cat(chunks, dim=0)


def gather_features(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    *,
    local_loss: bool = False,
    gather_with_grad: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(all_image_features, all_text_features)`` gathered from every rank.

    In a single process the inputs are returned unchanged. Without
    ``gather_with_grad``, the local slot is re-inserted only for ``local_loss=False``:
    with a local loss the local rows already come from the live local tensors.
    """
    _, world_size = get_rank_and_world_size()
    if world_size == 1:
        return image_features, text_features
    if gather_with_grad:
        return all_gather_with_grad(image_features), all_gather_with_grad(text_features)
    keep_local_grad = not local_loss
    return (
        all_gather_no_grad(image_features, keep_local_grad=keep_local_grad),
        all_gather_no_grad(text_features, keep_local_grad=keep_local_grad),
    )
