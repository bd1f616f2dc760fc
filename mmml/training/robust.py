"""RCAR's per-epoch bookkeeping: collect per-sample losses, split clean from noisy, serve clean probabilities.

Each training step records the plain per-pair loss of the pairs it saw (by dataset index). At the
end of an epoch the records of every process are gathered, min-max normalised and a two-component
beta mixture is fitted; the posterior of its low-loss component becomes each pair's clean
probability for the next epoch. During the first ``warmup_epochs`` epochs every pair counts as
clean (plain training), as in RCAR/NCR, so the model first learns the easy, mostly clean signal.

Fallbacks (documented): when an epoch's losses are all equal the mixture has nothing to split
on, and when the fitted components are not separated (Ashman's D below ``min_separation``: the
mixture merely cut one blob of losses in two, typically before the model has learned anything, or
with no noise at all) the split carries no information; in both cases every pair counts as clean for the next epoch and the epoch's stats say
why. NaN/inf losses raise :class:`~mmml.losses.beta_mixture.DegenerateLossesError`: training has
diverged.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from mmml.eval.auc import roc_auc
from mmml.losses.beta_mixture import DegenerateLossesError, clean_probability
from mmml.losses.distributed import get_rank_and_world_size
from mmml.losses.robust import RobustMatchingLoss

logger = logging.getLogger(__name__)


def gather_across_processes(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate a 1-D tensor from every process (sizes may differ); the tensor itself in one process."""
    _, world_size = get_rank_and_world_size()
    if world_size == 1:
        return tensor
    size = torch.tensor([tensor.numel()], device=tensor.device)
    sizes = [torch.zeros_like(size) for _ in range(world_size)]
    dist.all_gather(sizes, size)
    longest = int(max(s.item() for s in sizes))
    padded = torch.zeros(longest, dtype=tensor.dtype, device=tensor.device)
    padded[: tensor.numel()] = tensor
    chunks = [torch.zeros_like(padded) for _ in range(world_size)]
    dist.all_gather(chunks, padded)
    return torch.cat([chunk[: int(s.item())] for chunk, s in zip(chunks, sizes)])


class NoisyCorrespondenceTracker:
    """Clean probability of every training pair, refitted once per epoch (RCAR).

    Args:
        num_samples: size of the training set (pair ids are ``0..num_samples-1``).
        warmup_epochs: epochs of plain training before the first split.
        noise_mask: optional ground truth (True = injected noise) for the per-epoch AUC.
        min_separation: smallest Ashman's D (:meth:`BetaMixture.separation`) for the split to be used.
    """

    def __init__(self, num_samples: int, warmup_epochs: int = 1, noise_mask: np.ndarray | None = None,
                 min_separation: float = 0.5) -> None:
        if num_samples < 2:
            raise ValueError(f"num_samples must be >= 2, got {num_samples}")
        if warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be >= 0, got {warmup_epochs}")
        if noise_mask is not None and len(noise_mask) != num_samples:
            raise ValueError(f"noise_mask has {len(noise_mask)} entries for {num_samples} samples")
        if not min_separation >= 0:
            raise ValueError(f"min_separation must be >= 0, got {min_separation}")
        self.min_separation = min_separation
        self.num_samples = num_samples
        self.warmup_epochs = warmup_epochs
        self.noise_mask = None if noise_mask is None else np.asarray(noise_mask, dtype=bool)
        self.clean_prob = np.ones(num_samples, dtype=np.float64)
        self.fitted = False
        self._ids: list[torch.Tensor] = []
        self._losses: list[torch.Tensor] = []

    def record(self, sample_ids: torch.Tensor, per_sample_loss: torch.Tensor) -> None:
        """Remember this step's plain per-pair losses (detached, on CPU)."""
        self._ids.append(sample_ids.detach().reshape(-1).cpu().long())
        self._losses.append(per_sample_loss.detach().reshape(-1).cpu().double())

    def clean_prob_for(self, sample_ids: torch.Tensor) -> torch.Tensor | None:
        """Clean probabilities of these pairs, or None while every pair counts as clean (warm-up)."""
        if not self.fitted:
            return None
        return torch.as_tensor(self.clean_prob[sample_ids.cpu().numpy()], dtype=torch.float32)

    def end_epoch(self, epoch: int, device: torch.device | None = None) -> dict[str, Any]:
        """Gather the epoch's losses from every process, refit (after warm-up) and return stats.

        Every process must call this at the same point. A pair seen several times in the epoch
        contributes the mean of its losses; pairs not seen keep their previous probability.
        """
        device = device or torch.device("cpu")
        ids = torch.cat(self._ids) if self._ids else torch.zeros(0, dtype=torch.long)
        losses = torch.cat(self._losses) if self._losses else torch.zeros(0, dtype=torch.float64)
        self._ids, self._losses = [], []
        ids = gather_across_processes(ids.to(device)).cpu().numpy()
        losses = gather_across_processes(losses.to(device)).cpu().numpy()
        stats: dict[str, Any] = {"epoch": epoch, "num_recorded": int(ids.size)}
        if ids.size == 0:
            stats["status"] = "no losses recorded"
            return stats
        totals = np.bincount(ids, weights=losses, minlength=self.num_samples)
        counts = np.bincount(ids, minlength=self.num_samples)
        seen = np.flatnonzero(counts)
        mean_losses = totals[seen] / counts[seen]
        stats["mean_loss"] = float(mean_losses.mean()) if np.isfinite(mean_losses).all() else float("nan")
        if self.noise_mask is not None:
            stats["loss_auc"] = roc_auc(-mean_losses, ~self.noise_mask[seen])
        if epoch + 1 < self.warmup_epochs:
            stats["status"] = "warm-up"
            return stats
        try:
            probabilities, mixture = clean_probability(mean_losses)
        except DegenerateLossesError as error:
            if not np.isfinite(mean_losses).all():
                raise
            logger.warning("epoch %d: %s; keeping the previous clean probabilities", epoch, error)
            stats["status"] = f"fallback: {error}"
            return stats
        means = mixture.means()
        stats.update(component_means=[round(float(m), 4) for m in means],
                     component_weights=[round(float(w), 4) for w in mixture.weights],
                     separation=round(mixture.separation(), 3))
        if self.noise_mask is not None:
            stats["clean_prob_auc"] = roc_auc(probabilities, ~self.noise_mask[seen])
        if stats["separation"] < self.min_separation:
            self.clean_prob[:] = 1.0
            self.fitted = False
            stats["status"] = (f"fallback: components not separated (Ashman's D {stats['separation']} < "
                               f"{self.min_separation}); every pair counts as clean")
            return stats
        self.clean_prob[seen] = probabilities
        self.fitted = True
        stats.update(
            status="fitted",
            mean_clean_prob=float(probabilities.mean()),
            predicted_noisy_fraction=float((probabilities < 0.5).mean()),
        )
        return stats

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state (for checkpoints); losses of a partial epoch included."""
        ids = torch.cat(self._ids).tolist() if self._ids else []
        losses = torch.cat(self._losses).tolist() if self._losses else []
        return {"clean_prob": self.clean_prob.tolist(), "fitted": self.fitted, "ids": ids, "losses": losses}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        clean_prob = np.asarray(state["clean_prob"], dtype=np.float64)
        if clean_prob.shape != (self.num_samples,):
            raise ValueError(f"the saved RCAR state has {clean_prob.size} pairs, this training set {self.num_samples}")
        self.clean_prob = clean_prob
        self.fitted = bool(state["fitted"])
        self._ids = [torch.tensor(state["ids"], dtype=torch.long)] if state["ids"] else []
        self._losses = [torch.tensor(state["losses"], dtype=torch.float64)] if state["losses"] else []


class RobustTraining:
    """RCAR around any mmml model: its matching terms are replaced by `RobustMatchingLoss` on the same
    embeddings, weighted per pair by the clean probabilities the tracker fits each epoch; the model's
    other loss terms (auxiliary objectives, hashing) are kept as they are.

    `loss(model, batch)` returns `(loss, terms)` for the training loop; `end_epoch` refits the split.
    """

    def __init__(self, args, num_samples: int, noise_mask, output_dir: str | Path):
        self.tracker = NoisyCorrespondenceTracker(num_samples, args.rcar_warmup_epochs, noise_mask,
                                                  args.rcar_min_separation)
        self.loss_fn = RobustMatchingLoss(args.rcar_contrastive_weight, args.rcar_triplet_weight, args.rcar_margin)
        # Until the first usable split, InfoNCE alone: VSE++'s hardest negatives from a random start
        # collapsed the embedding to a constant at 50% noise (BENCHMARKS.md).
        self.warmup_loss_fn = RobustMatchingLoss(args.rcar_contrastive_weight or 1.0, 0.0)
        self.log_path = Path(output_dir) / "rcar.jsonl"
        self.history: list[dict] = []

    def loss(self, accelerator, model, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        sample_ids = batch.pop("sample_ids")
        out = model(**batch, return_loss=True)
        unwrapped = accelerator.unwrap_model(model)
        clean_prob = self.tracker.clean_prob_for(sample_ids)
        loss_fn = self.loss_fn if clean_prob is not None else self.warmup_loss_fn
        robust = loss_fn(out.image_embeds, out.text_embeds, unwrapped.scaled_logit_scale(), clean_prob)
        self.tracker.record(sample_ids, robust.per_sample_loss)
        terms = {name: value for name, value in (out.loss_terms or {}).items() if name not in unwrapped.matching_terms}
        terms["rcar"] = robust.loss
        return torch.stack(list(terms.values())).sum(), terms

    def end_epoch(self, accelerator, epoch: int) -> dict:
        stats = self.tracker.end_epoch(epoch, accelerator.device)
        if accelerator.is_main_process:
            with self.log_path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(stats) + "\n")
            auc = stats.get("clean_prob_auc")
            accelerator.print(f"rcar epoch {epoch}: {stats['status']}"
                              + (f", clean-probability AUC {auc:.3f}" if auc is not None else ""))
        self.history.append(stats)
        return stats

    def state_dict(self) -> dict:
        return {"tracker": self.tracker.state_dict(), "history": self.history}

    def load_state_dict(self, state: dict) -> None:
        self.tracker.load_state_dict(state["tracker"])
        self.history = list(state["history"])
