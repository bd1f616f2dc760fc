"""The training loop every recipe shares: resumable mid-epoch, atomically checkpointed, logged.

A recipe builds its model, optimizer, schedule and (accelerate-prepared) loader, then hands the
loop a `compute_loss(batch)` and, where it needs them, hooks that run before / after each step
and state that travels with the checkpoints. Resuming from a checkpoint continues exactly where an
uninterrupted run would be: same batches (the loader is re-seeded per epoch and the done batches
are skipped), same RNG streams, same optimizer and schedule state.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

from .checkpointing import load_checkpoint, resolve_resume_path, save_checkpoint


@dataclass
class LoopSettings:
    """When the loop stops, logs, clips and checkpoints.

    `stop_after_steps` ends this run early with a checkpoint (to fit a job's time limit) while the
    schedule still follows `total_steps`; resuming from "latest" continues it.
    """

    total_steps: int
    stop_after_steps: int | None = None
    log_every_steps: int = 25
    checkpoint_every_steps: int = 0
    keep_checkpoints: int | None = None
    max_grad_norm: float | None = None
    description: str = "train"
    # Extra fields of every logged record (e.g. {"stage": "nlt"}).
    log_fields: dict = field(default_factory=dict)


@dataclass
class TrainingHooks:
    """Optional recipe-specific parts of the loop.

    - `before_step(step)`: before the forward pass of step `step + 1` (e.g. a hash-scale schedule).
    - `after_step(step)`: after the optimizer step and the log, before a checkpoint (evaluation, RCAR).
    - `log_extras()`: more fields for the logged record.
    - `state()` / `load_state(state)`: what the recipe keeps in each checkpoint besides the step.
    """

    before_step: Callable[[int], None] | None = None
    after_step: Callable[[int], None] | None = None
    log_extras: Callable[[], dict] | None = None
    state: Callable[[], dict] | None = None
    load_state: Callable[[dict], None] | None = None


@dataclass
class LoopResult:
    step: int
    finished: bool  # False when `stop_after_steps` ended the run early
    train_time_s: float
    records: list[dict]  # every logged record, including those of the run this one resumed


def run_training_loop(
    accelerator: Accelerator,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler,
    loader,
    compute_loss: Callable[[dict], torch.Tensor],
    settings: LoopSettings,
    checkpoint_dir: str | Path,
    log_path: str | Path,
    epoch_aware: Sequence = (),
    resume_from_checkpoint: str | None = None,
    hooks: TrainingHooks | None = None,
) -> LoopResult:
    """Train until `settings.total_steps` (or `stop_after_steps`); objects in `epoch_aware` get `set_epoch`."""
    hooks = hooks or TrainingHooks()
    steps_per_epoch = len(loader)
    if steps_per_epoch == 0:
        raise ValueError("the training loader yields no batch")
    step, records = 0, []
    resume_path = resolve_resume_path(resume_from_checkpoint, checkpoint_dir)
    if resume_path is not None:
        state = load_checkpoint(accelerator, resume_path)
        step, records = state["step"], list(state.get("records", []))
        if hooks.load_state is not None:
            hooks.load_state(state)
        accelerator.print(f"resumed from {resume_path} at step {step}")
    total = settings.total_steps
    last_step = min(total, settings.stop_after_steps or total)
    progress = tqdm(total=total, initial=step, disable=not accelerator.is_local_main_process,
                    desc=settings.description)
    start = time.perf_counter()
    model.train()
    while step < last_step:
        epoch, batches_done = divmod(step, steps_per_epoch)
        for item in epoch_aware:
            item.set_epoch(epoch)
        loader.set_epoch(epoch)
        for batch in accelerator.skip_first_batches(loader, batches_done) if batches_done else loader:
            if hooks.before_step is not None:
                hooks.before_step(step)
            with accelerator.autocast():
                loss = compute_loss(batch)
            accelerator.backward(loss)
            if settings.max_grad_norm is not None:
                accelerator.clip_grad_norm_(model.parameters(), settings.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            progress.update(1)
            if step % settings.log_every_steps == 0 or step == total:
                record = {**settings.log_fields, "step": step, "loss": accelerator.reduce(loss.detach(), "mean").item(),
                          "lr": scheduler.get_last_lr()[0], "elapsed_s": round(time.perf_counter() - start, 2)}
                if hooks.log_extras is not None:
                    record.update(hooks.log_extras())
                records.append(record)
                progress.set_postfix(loss=f"{record['loss']:.4f}")
                accelerator.log(record, step=step)
                if accelerator.is_main_process:
                    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
                    with Path(log_path).open("a", encoding="utf-8") as f:
                        f.write(json.dumps(record) + "\n")
            if hooks.after_step is not None:
                hooks.after_step(step)
            periodic = settings.checkpoint_every_steps and step % settings.checkpoint_every_steps == 0
            if periodic or step == last_step < total:
                train_state = {"step": step, "records": records}
                if hooks.state is not None:
                    train_state.update(hooks.state())
                save_checkpoint(accelerator, checkpoint_dir, step, train_state, keep_last=settings.keep_checkpoints)
            if step >= last_step:
                break
    progress.close()
    return LoopResult(step=step, finished=step >= total, train_time_s=time.perf_counter() - start, records=records)
