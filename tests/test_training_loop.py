"""mmml.training.loop: the loop every recipe shares (hooks, logs, clipping, exact resume)."""

from __future__ import annotations

import json

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, set_seed
from torch.utils.data import DataLoader, TensorDataset

from mmml.training import build_optimizer_and_schedule
from mmml.training import LoopSettings, TrainingHooks, run_training_loop


class _Epochs:
    def __init__(self):
        self.epochs = []

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)


def _run(tmp_path, stop_after_steps=None, resume=None, hooks=None, max_grad_norm=None, epoch_aware=()):
    set_seed(0)
    # The recipes' set-up: a seedable sampler, so that each epoch's order depends on (seed, epoch) alone.
    accelerator = Accelerator(cpu=True, dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True))
    data = TensorDataset(torch.randn(40, 3), torch.randn(40, 1))
    loader = DataLoader(data, batch_size=8, shuffle=True, drop_last=True, generator=torch.Generator().manual_seed(0))
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Dropout(0.3), torch.nn.Linear(8, 1))
    optimizer, scheduler = build_optimizer_and_schedule(model, 0.05, 0.0, 2, 12)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    settings = LoopSettings(total_steps=12, stop_after_steps=stop_after_steps, log_every_steps=3,
                            checkpoint_every_steps=0, max_grad_norm=max_grad_norm, log_fields={"stage": "toy"})
    outcome = run_training_loop(
        accelerator, model, optimizer, scheduler, loader,
        lambda batch: torch.nn.functional.mse_loss(model(batch[0]), batch[1]), settings,
        checkpoint_dir=tmp_path, log_path=tmp_path / "log.jsonl", epoch_aware=epoch_aware,
        resume_from_checkpoint=resume, hooks=hooks,
    )
    return outcome, model


def test_stopped_and_resumed_loop_ends_with_the_uninterrupted_weights(tmp_path):
    full, full_model = _run(tmp_path / "full")
    stopped, _ = _run(tmp_path / "parts", stop_after_steps=7)  # mid-epoch 1 (5 batches per epoch)
    assert not stopped.finished and stopped.step == 7
    resumed, resumed_model = _run(tmp_path / "parts", resume="latest")
    assert full.finished and resumed.finished and resumed.step == 12
    for a, b in zip(full_model.state_dict().values(), resumed_model.state_dict().values()):
        assert torch.equal(a, b)
    assert [r["step"] for r in resumed.records] == [3, 6, 9, 12] == [r["step"] for r in full.records]
    assert [r["loss"] for r in resumed.records] == [r["loss"] for r in full.records]


def test_hooks_logs_and_epochs(tmp_path):
    calls = {"before": [], "after": []}
    epochs = _Epochs()
    hooks = TrainingHooks(before_step=calls["before"].append, after_step=calls["after"].append,
                          log_extras=lambda: {"extra": 1.5})
    outcome, _ = _run(tmp_path, hooks=hooks, epoch_aware=[epochs])
    assert calls["before"] == list(range(12)) and calls["after"] == list(range(1, 13))
    assert epochs.epochs == [0, 1, 2]
    logged = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert logged == outcome.records and len(logged) == 4
    assert set(logged[0]) == {"stage", "step", "loss", "lr", "elapsed_s", "extra"} and logged[0]["stage"] == "toy"


def test_gradient_clipping_changes_the_updates(tmp_path):
    _, plain = _run(tmp_path / "plain")
    _, clipped = _run(tmp_path / "clipped", max_grad_norm=1e-3)
    assert not torch.equal(plain[0].weight, clipped[0].weight)
