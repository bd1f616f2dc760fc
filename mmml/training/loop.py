"""The training loop every recipe shares: resumable mid-epoch, atomically checkpointed, logged.

A recipe builds its model, optimizer, schedule and (accelerate-prepared) loader, then hands the
loop a `compute_loss(batch)` and, where it needs them, hooks that run before / after each step
and state that travels with the checkpoints. Resuming from a checkpoint continues exactly where an
uninterrupted run would be: same batches (the loader is re-seeded per epoch and the done batches
are skipped), same RNG streams, same optimizer and schedule state.

Gradient accumulation comes from the accelerator (`Accelerator(gradient_accumulation_steps=N)`):
every count the loop keeps (steps, epochs' lengths, logs, hooks, checkpoints) is in optimizer
steps of N micro-batches each.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.scheduler import AcceleratedScheduler
from accelerate.utils import gather_object
from tqdm.auto import tqdm

from .checkpointing import load_checkpoint, resolve_resume_path, save_checkpoint

# The batch key collators set to the number of samples they dropped (e.g. undecodable files).
SKIPPED_SAMPLES_KEY = "num_skipped_samples"


@dataclass
class LoopSettings:
    """When the loop stops, logs, clips and checkpoints (every count in optimizer steps).

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

    - `before_step(step)`: once per optimizer step, before the forward pass of the first
      micro-batch of step `step + 1` (e.g. a hash-scale schedule).
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
    step: int  # optimizer steps done
    finished: bool  # False when `stop_after_steps` ended the run early
    train_time_s: float
    records: list[dict]  # every logged record, including those of the run this one resumed
    # Samples the collators reported skipped (`num_skipped_samples`), all processes and resumed runs included.
    skipped_samples: int = 0


def split_loss(result: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """`compute_loss`'s result as `(loss, loss_terms)`.

    Accepted results:
    - a scalar tensor: the loss, no named terms;
    - an object with `.loss` (a tensor) and optionally `.loss_terms` (a mapping of names to scalar
      tensors), e.g. the `ModelOutput` of an mmml model;
    - a `(loss, loss_terms)` tuple (or list).

    By convention `loss == sum(loss_terms.values())` with the terms already weighted; the loop
    only logs the terms (it backpropagates `loss`). Terms that are None are left out (a term a
    batch did not have); plain numbers become tensors. Anything else raises a TypeError.
    """
    if isinstance(result, torch.Tensor):
        return result, {}
    if isinstance(result, (tuple, list)):
        if len(result) != 2 or not isinstance(result[0], torch.Tensor) or not (
            result[1] is None or isinstance(result[1], Mapping)
        ):
            raise TypeError(
                f"compute_loss returned a {type(result).__name__} that is not (loss tensor, dict of loss terms): "
                f"{[type(item).__name__ for item in result]}"
            )
        loss, terms = result
    elif hasattr(result, "loss"):
        loss, terms = result.loss, getattr(result, "loss_terms", None)
        if not isinstance(loss, torch.Tensor):
            raise TypeError(
                f"compute_loss returned a {type(result).__name__} whose .loss is a {type(loss).__name__}, "
                "not a tensor (was the model called without labels?)"
            )
        if terms is not None and not isinstance(terms, Mapping):
            raise TypeError(
                f"compute_loss returned a {type(result).__name__} whose .loss_terms is a "
                f"{type(terms).__name__}, not a dict of tensors"
            )
    else:
        raise TypeError(
            f"compute_loss returned a {type(result).__name__}; expected a scalar loss tensor, an object with "
            "`.loss` (and optionally `.loss_terms`), or a (loss, loss_terms) tuple"
        )
    named: dict[str, torch.Tensor] = {}
    for name, value in (terms or {}).items():
        if value is None:
            continue
        if isinstance(value, (int, float)):
            value = torch.tensor(float(value), device=loss.device)
        elif not isinstance(value, torch.Tensor):
            raise TypeError(f"loss term {name!r} is a {type(value).__name__}, not a tensor")
        named[str(name)] = value
    return loss, named


def _step_schedule(scheduler) -> None:
    """Advance the schedule by exactly one optimizer step (call only when the optimizer stepped).

    accelerate's `AcceleratedScheduler.step` steps its scheduler `num_processes` times per call
    unless `split_batches` (and, on non-sync micro-steps with `adjust_scheduler`, bumps its
    `_step_count`); the loop's schedules are built over `total_steps` optimizer steps, so the
    wrapped scheduler is stepped once, and not at all when the optimizer skipped its step
    (fp16 overflow), as accelerate does. Other wrappers (e.g. DeepSpeed's) keep their own `step`.
    """
    if type(scheduler) is AcceleratedScheduler:
        if scheduler.step_with_optimizer and any(opt.step_was_skipped for opt in scheduler.optimizers):
            return
        scheduler.scheduler.step()
    else:
        scheduler.step()


def run_training_loop(
    accelerator: Accelerator,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler,
    loader,
    compute_loss: Callable[[Any], Any],
    settings: LoopSettings,
    checkpoint_dir: str | Path,
    log_path: str | Path,
    epoch_aware: Sequence = (),
    resume_from_checkpoint: str | None = None,
    hooks: TrainingHooks | None = None,
) -> LoopResult:
    """Train until `settings.total_steps` optimizer steps (or `stop_after_steps`).

    Objects in `epoch_aware` (and the loader) get `set_epoch(epoch)` at the start of each epoch.

    Gradient accumulation: each optimizer step runs N = `accelerator.gradient_accumulation_steps`
    micro-batches inside `accelerator.accumulate(model)` (backward scales each loss by 1/N;
    gradients are clipped and the optimizer, schedule and zero_grad stepped on the N-th only).
    An epoch is `len(loader) // N` optimizer steps: the `len(loader) % N` micro-batches left at an
    epoch's end are dropped (never run, so no partial accumulation leaks into the next epoch); a
    loader with fewer than N batches raises a ValueError. The schedule advances exactly once per
    optimizer step (see `_step_schedule`). A checkpoint at step S resumes by skipping
    `(S % steps_per_epoch) * N` batches of its epoch.

    `compute_loss(batch)` returns what `split_loss` accepts. Each logged record holds `loss`, the
    mean over the step's micro-batches and over processes, and `loss/<name>` for every named term
    (each averaged over the micro-batches, on all processes, that had it).

    A batch mapping holding `num_skipped_samples` (int or 0-d tensor) has it popped before
    `compute_loss`; the running total over processes (and resumed runs) is kept in the checkpoints,
    returned as `LoopResult.skipped_samples` and logged as `skipped_samples` in every record once
    any batch has carried the key (collators should set it, 0 included, on every batch).
    """
    hooks = hooks or TrainingHooks()
    accumulation = int(accelerator.gradient_accumulation_steps)
    if accumulation < 1:
        raise ValueError(f"gradient_accumulation_steps must be >= 1, got {accumulation}")
    batches_per_epoch = len(loader)
    if batches_per_epoch == 0:
        raise ValueError("the training loader yields no batch")
    if batches_per_epoch < accumulation:
        raise ValueError(
            f"the training loader yields {batches_per_epoch} batches per epoch, fewer than "
            f"gradient_accumulation_steps={accumulation}: no optimizer step would fit in an epoch"
        )
    steps_per_epoch = batches_per_epoch // accumulation
    has_leftover = batches_per_epoch % accumulation != 0
    multi_process = accelerator.num_processes > 1

    step, records = 0, []
    skipped_before, skip_reported = 0, False  # totals of the runs this one resumes (same on every process)
    skipped_local: int | torch.Tensor = 0  # this process's count in this run (a tensor avoids a device sync)
    resume_path = resolve_resume_path(resume_from_checkpoint, checkpoint_dir)
    if resume_path is not None:
        state = load_checkpoint(accelerator, resume_path)
        step, records = state["step"], list(state.get("records", []))
        if "skipped_samples" in state:
            skipped_before, skip_reported = int(state["skipped_samples"]), True
        if hooks.load_state is not None:
            hooks.load_state(state)
        accelerator.print(f"resumed from {resume_path} at step {step}")

    def skipped_total() -> tuple[int, bool]:
        """(total skipped samples, whether any batch reported it); a collective when multi-process."""
        local = int(skipped_local)
        if not multi_process:
            return skipped_before + local, skip_reported
        counts = accelerator.reduce(
            torch.tensor([local, int(skip_reported)], dtype=torch.long, device=accelerator.device), "sum"
        ).tolist()
        return skipped_before + counts[0], counts[1] > 0

    def reduced_terms(sums: dict[str, torch.Tensor], counts: dict[str, int]) -> dict[str, float]:
        """`loss/<name>` -> the term's mean over the micro-batches (on all processes) that had it."""
        names = sorted(sums)
        if multi_process:  # every process must reduce the same names
            names = sorted(set().union(*gather_object([names])))
        if not names:
            return {}
        zero = torch.zeros((), device=accelerator.device)
        totals = torch.stack(
            [sums.get(n, zero).to(accelerator.device, torch.float32) for n in names]
            + [torch.tensor(float(counts.get(n, 0)), device=accelerator.device) for n in names]
        )
        totals = accelerator.reduce(totals, "sum").tolist()
        return {f"loss/{n}": totals[i] / totals[len(names) + i] for i, n in enumerate(names)}

    total = settings.total_steps
    last_step = min(total, settings.stop_after_steps or total)
    progress = tqdm(total=total, initial=step, disable=not accelerator.is_local_main_process,
                    desc=settings.description)
    start = time.perf_counter()
    model.train()
    while step < last_step:
        epoch, steps_done = divmod(step, steps_per_epoch)
        for item in epoch_aware:
            item.set_epoch(epoch)
        loader.set_epoch(epoch)
        batches_done = steps_done * accumulation
        micro = 0  # micro-batches of the current optimizer step done
        for batch in accelerator.skip_first_batches(loader, batches_done) if batches_done else loader:
            if micro == 0:
                if hooks.before_step is not None:
                    hooks.before_step(step)
                loss_sum, term_sums, term_counts = None, {}, {}
                # accumulate() syncs on its N-th call counted from here (restarting its counter keeps
                # the optimizer steps aligned with the loop's, whatever ran before).
                accelerator.step = 0
            if isinstance(batch, MutableMapping) and SKIPPED_SAMPLES_KEY in batch:
                skipped_local = skipped_local + batch.pop(SKIPPED_SAMPLES_KEY)
                skip_reported = True
            with accelerator.accumulate(model):
                if accelerator.sync_gradients != (micro == accumulation - 1):
                    raise RuntimeError(
                        f"accelerate synchronised gradients at micro-batch {micro + 1} of {accumulation} "
                        "(another dataloader ended inside the step, or len(loader) is wrong)"
                    )
                with accelerator.autocast():
                    loss, terms = split_loss(compute_loss(batch))
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    if settings.max_grad_norm is not None:
                        accelerator.clip_grad_norm_(model.parameters(), settings.max_grad_norm)
                    # Prepared optimizers / schedulers would skip non-sync micro-steps themselves;
                    # stepping only here also keeps unprepared ones and the schedule count exact.
                    optimizer.step()
                    _step_schedule(scheduler)
                    optimizer.zero_grad(set_to_none=True)
            detached = loss.detach().float()
            loss_sum = detached if loss_sum is None else loss_sum + detached
            for name, value in terms.items():
                value = value.detach().float()
                term_sums[name] = value if name not in term_sums else term_sums[name] + value
                term_counts[name] = term_counts.get(name, 0) + 1
            micro += 1
            if micro < accumulation:
                continue
            micro = 0
            step += 1
            progress.update(1)
            if step % settings.log_every_steps == 0 or step == total:
                mean_loss = loss_sum / accumulation
                record = {**settings.log_fields, "step": step, "loss": accelerator.reduce(mean_loss, "mean").item(),
                          "lr": scheduler.get_last_lr()[0], "elapsed_s": round(time.perf_counter() - start, 2)}
                record.update(reduced_terms(term_sums, term_counts))
                skipped, reported = skipped_total()
                if reported:
                    record["skipped_samples"] = skipped
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
                skipped, reported = skipped_total()
                if reported:
                    train_state["skipped_samples"] = skipped
                if hooks.state is not None:
                    train_state.update(hooks.state())
                save_checkpoint(accelerator, checkpoint_dir, step, train_state, keep_last=settings.keep_checkpoints)
            if step >= last_step:
                break
            if has_leftover and step % steps_per_epoch == 0:
                break  # the epoch's leftover micro-batches are dropped, never run
        else:
            if micro or step % steps_per_epoch:
                raise RuntimeError(
                    f"the training loader ran out of batches mid-epoch (len(loader) = {batches_per_epoch}; "
                    f"at optimizer step {step}, micro-batch {micro} of {accumulation})"
                )
    progress.close()
    skipped, _ = skipped_total()
    return LoopResult(step=step, finished=step >= total, train_time_s=time.perf_counter() - start, records=records,
                      skipped_samples=skipped)
