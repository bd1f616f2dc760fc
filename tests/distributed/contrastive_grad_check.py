"""Multi-process gradient check for ``ContrastiveLoss``; run it under a launcher.

    python -m torch.distributed.run --nproc_per_node 2 \
        tests/distributed/contrastive_grad_check.py RESULT.json

(``accelerate launch --multi_gpu --num_processes 2 ...`` works too.) Each rank runs
its slice of a fixed global batch through identical tiny image/text towers wrapped in
DDP, which averages parameter gradients as in training. For every
``(local_loss, gather_with_grad)`` setting, the DDP gradients and the rank-averaged
loss are compared with a single-process full-batch reference computed with a
hand-written CLIP loss. Rank 0 writes the max absolute differences to RESULT.json;
every rank exits with status 1 if any difference exceeds ``TOLERANCE``.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from mmml.losses import ContrastiveLoss

TOLERANCE = 1e-5
GLOBAL_BATCH = 8
IMAGE_IN, TEXT_IN, EMBED_DIM = 7, 6, 5
DTYPE = torch.float64


class Towers(nn.Module):
    """Linear image and text towers with a learnable log temperature."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)  # identical weights on every rank and in the reference
        self.image = nn.Linear(IMAGE_IN, EMBED_DIM, dtype=DTYPE)
        self.text = nn.Linear(TEXT_IN, EMBED_DIM, dtype=DTYPE)
        self.log_scale = nn.Parameter(torch.tensor(math.log(10.0), dtype=DTYPE))

    def forward(self, image_x: torch.Tensor, text_x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        image = F.normalize(self.image(image_x), dim=-1)
        text = F.normalize(self.text(text_x), dim=-1)
        return image, text, self.log_scale.exp()


def global_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    image_x = torch.randn(GLOBAL_BATCH, IMAGE_IN, generator=generator, dtype=DTYPE)
    text_x = torch.randn(GLOBAL_BATCH, TEXT_IN, generator=generator, dtype=DTYPE)
    return image_x, text_x


def _symmetric_ce(logits_per_image: torch.Tensor, logits_per_text: torch.Tensor, labels: torch.Tensor):
    return 0.5 * (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels))


def reference_loss(image: torch.Tensor, text: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Full-batch CLIP loss, written out independently of ``mmml``."""
    logits = scale * image @ text.T
    return _symmetric_ce(logits, logits.T, torch.arange(image.shape[0]))


def rows_only_reference_loss(
    image: torch.Tensor, text: torch.Tensor, scale: torch.Tensor, world_size: int
) -> torch.Tensor:
    """What ``local_loss=True, gather_with_grad=False`` optimises: the mean over ranks of
    each rank's row losses, with gradient only through that rank's own rows."""
    local = image.shape[0] // world_size
    losses = []
    for rank in range(world_size):
        rows = slice(rank * local, (rank + 1) * local)
        labels = torch.arange(rank * local, (rank + 1) * local)
        losses.append(
            _symmetric_ce(
                scale * image[rows] @ text.detach().T,
                scale * text[rows] @ image.detach().T,
                labels,
            )
        )
    return torch.stack(losses).mean()


def expected(
    local_loss: bool, gather_with_grad: bool, world_size: int
) -> tuple[float, dict[str, torch.Tensor]]:
    """Single-process loss and the parameter gradients DDP should end up with."""
    model = Towers()
    image, text, scale = model(*global_inputs())
    loss = reference_loss(image, text, scale)
    if local_loss and not gather_with_grad:
        rows_only_reference_loss(image, text, scale, world_size).backward()
    else:
        loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    if not local_loss and not gather_with_grad:
        # Each rank gets the exact gradient of its own features; DDP's average divides
        # the tower gradients by the world size. logit_scale is not gathered: exact.
        grads = {name: g if name == "log_scale" else g / world_size for name, g in grads.items()}
    return loss.item(), grads


def distributed(local_loss: bool, gather_with_grad: bool, rank: int, world_size: int):
    """Loss averaged over ranks and DDP-averaged gradients on this rank."""
    model = DistributedDataParallel(Towers())
    local = GLOBAL_BATCH // world_size
    image_x, text_x = (x[rank * local : (rank + 1) * local] for x in global_inputs())
    loss_fn = ContrastiveLoss(local_loss=local_loss, gather_with_grad=gather_with_grad)
    loss = loss_fn(*model(image_x, text_x))
    loss.backward()
    mean_loss = loss.detach().clone()
    dist.all_reduce(mean_loss)
    mean_loss /= world_size
    return mean_loss.item(), {name: p.grad for name, p in model.module.named_parameters()}


def main(result_path: Path) -> int:
    dist.init_process_group("gloo")
    rank, world_size = dist.get_rank(), dist.get_world_size()
    assert GLOBAL_BATCH % world_size == 0, "global batch must split evenly across ranks"
    results = {}
    for local_loss in (False, True):
        for gather_with_grad in (True, False):
            ref_loss, ref_grads = expected(local_loss, gather_with_grad, world_size)
            loss, grads = distributed(local_loss, gather_with_grad, rank, world_size)
            name = f"local_loss={local_loss},gather_with_grad={gather_with_grad}"
            results[name] = {
                "loss_max_abs_diff": abs(loss - ref_loss),
                "grad_max_abs_diff": max((grads[k] - ref_grads[k]).abs().max().item() for k in ref_grads),
                "grad_max_abs": max(g.abs().max().item() for g in ref_grads.values()),
            }
    ok = all(
        r["loss_max_abs_diff"] < TOLERANCE and r["grad_max_abs_diff"] < TOLERANCE for r in results.values()
    )
    if rank == 0:
        payload = {"world_size": world_size, "tolerance": TOLERANCE, "ok": ok, "settings": results}
        result_path.write_text(json.dumps(payload, indent=2))
        print(json.dumps(payload, indent=2))
    dist.destroy_process_group()
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} RESULT.json")
    sys.exit(main(Path(sys.argv[1])))
