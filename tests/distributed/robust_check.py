"""Multi-process check for RCAR's pieces; run it under a launcher.

    python -m torch.distributed.run --nproc_per_node 2 tests/distributed/robust_check.py RESULT.json

Each rank takes its slice of a fixed global batch. Checked against one-process references:
``RobustMatchingLoss`` (rank-mean of the local losses and the gathered per-pair losses) and
``TripletLoss``, and ``NoisyCorrespondenceTracker.end_epoch`` with a different number of recorded
losses per rank (every rank must end with the clean probabilities of one fit on all of them).
Rank 0 writes the max absolute differences to RESULT.json.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from mmml.losses import RobustMatchingLoss, TripletLoss
from mmml.training.robust import NoisyCorrespondenceTracker, gather_across_processes

GLOBAL_BATCH, DIM = 8, 5


def main(result_path: str) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    generator = torch.Generator().manual_seed(0)
    image = F.normalize(torch.randn(GLOBAL_BATCH, DIM, generator=generator, dtype=torch.float64), dim=-1)
    text = F.normalize(torch.randn(GLOBAL_BATCH, DIM, generator=generator, dtype=torch.float64), dim=-1)
    clean = torch.rand(GLOBAL_BATCH, generator=generator, dtype=torch.float64)
    rows = slice(rank * GLOBAL_BATCH // world, (rank + 1) * GLOBAL_BATCH // world)
    loss_fn = RobustMatchingLoss()
    local = loss_fn(image[rows], text[rows], 7.0, clean[rows])
    loss_mean = local.loss.detach().clone()
    dist.all_reduce(loss_mean)
    loss_mean /= world
    per_sample = gather_across_processes(local.per_sample_loss)
    triplet = TripletLoss()(image[rows], text[rows]).detach().clone()
    dist.all_reduce(triplet)
    triplet /= world

    # tracker: rank r records 30 + 10 r losses of a 100-pair set (overlapping ids are averaged)
    rng = np.random.default_rng(rank)
    noise = np.arange(100) % 3 == 0
    ids = rng.choice(100, 30 + 10 * rank, replace=False)
    losses = np.where(noise[ids], 3.0, 0.5) + rng.normal(0, 0.2, ids.size)
    tracker = NoisyCorrespondenceTracker(100, warmup_epochs=0, noise_mask=noise)
    tracker.record(torch.tensor(ids), torch.tensor(losses))
    stats = tracker.end_epoch(0)
    all_prob = [torch.zeros(100, dtype=torch.float64) for _ in range(world)]
    dist.all_gather(all_prob, torch.tensor(tracker.clean_prob))

    dist.destroy_process_group()  # the one-process references below must not gather
    if rank == 0:
        # one-process references (rank 0 recomputes what every rank recorded)
        with torch.no_grad():
            full = loss_fn(image, text, 7.0, clean)
        reference = NoisyCorrespondenceTracker(100, warmup_epochs=0, noise_mask=noise)
        for r in range(world):
            r_rng = np.random.default_rng(r)
            r_ids = r_rng.choice(100, 30 + 10 * r, replace=False)
            r_losses = np.where(noise[r_ids], 3.0, 0.5) + r_rng.normal(0, 0.2, r_ids.size)
            reference.record(torch.tensor(r_ids), torch.tensor(r_losses))
        reference_stats = reference.end_epoch(0)
        result = {
            "world_size": world,
            "loss_diff": abs(loss_mean.item() - full.loss.item()),
            "per_sample_diff": (per_sample - full.per_sample_loss).abs().max().item(),
            "triplet_diff": abs(triplet.item() - TripletLoss()(image, text).item()),
            "clean_prob_diff": max((p.numpy() - reference.clean_prob).__abs__().max() for p in all_prob),
            "num_recorded": stats["num_recorded"],
            "reference_num_recorded": reference_stats["num_recorded"],
            "status": stats["status"],
        }
        with open(result_path, "w", encoding="utf-8") as f:
            json.dump(result, f)


if __name__ == "__main__":
    main(sys.argv[1])
