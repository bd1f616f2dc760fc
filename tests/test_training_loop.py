"""mmml.training.loop: the loop every recipe shares (hooks, logs, clipping, exact resume, accumulation, loss terms)."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from types import SimpleNamespace

import accelerate.scheduler
import pytest
import torch
from accelerate import Accelerator
from accelerate.optimizer import AcceleratedOptimizer
from accelerate.scheduler import AcceleratedScheduler
from accelerate.utils import DataLoaderConfiguration, set_seed
from torch.utils.data import DataLoader, TensorDataset
from transformers import get_cosine_schedule_with_warmup
from transformers.utils import ModelOutput

from mmml.training import build_optimizer_and_schedule
from mmml.training import LoopSettings, TrainingHooks, run_training_loop
from mmml.training.loop import _step_schedule, split_loss


class _Epochs:
    def __init__(self):
        self.epochs = []

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)


def _dropout_model():
    return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Dropout(0.3), torch.nn.Linear(8, 1))


def _mse(model):
    return lambda batch: torch.nn.functional.mse_loss(model(batch[0]), batch[1])


def _train(tmp_path, stop_after_steps=None, resume=None, hooks=None, max_grad_norm=None, epoch_aware=(),
           accumulation=1, batch_size=8, total_steps=12, log_every_steps=3, make_model=_dropout_model,
           make_optimizer=None, make_loss=_mse, collate_fn=None, make_dataset=None):
    """One run of the toy regression; `make_loss(model)` is the `compute_loss`."""
    set_seed(0)
    # The recipes' set-up: a seedable sampler, so that each epoch's order depends on (seed, epoch) alone.
    accelerator = Accelerator(cpu=True, gradient_accumulation_steps=accumulation,
                              dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True))
    data = make_dataset() if make_dataset is not None else TensorDataset(torch.randn(40, 3), torch.randn(40, 1))
    loader = DataLoader(data, batch_size=batch_size, shuffle=True, drop_last=True, collate_fn=collate_fn,
                        generator=torch.Generator().manual_seed(0))
    model = make_model()
    if make_optimizer is None:
        optimizer, scheduler = build_optimizer_and_schedule(model, 0.05, 0.0, 2, total_steps)
    else:
        optimizer, scheduler = make_optimizer(model, total_steps)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    settings = LoopSettings(total_steps=total_steps, stop_after_steps=stop_after_steps,
                            log_every_steps=log_every_steps, checkpoint_every_steps=0, max_grad_norm=max_grad_norm,
                            log_fields={"stage": "toy"})
    outcome = run_training_loop(
        accelerator, model, optimizer, scheduler, loader, make_loss(model), settings,
        checkpoint_dir=tmp_path, log_path=tmp_path / "log.jsonl", epoch_aware=epoch_aware,
        resume_from_checkpoint=resume, hooks=hooks,
    )
    return SimpleNamespace(outcome=outcome, model=model, scheduler=scheduler, loader=loader)


def _run(tmp_path, **kwargs):
    run = _train(tmp_path, **kwargs)
    return run.outcome, run.model


def _assert_same_weights(a, b):
    for x, y in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(x, y)


def test_stopped_and_resumed_loop_ends_with_the_uninterrupted_weights(tmp_path):
    full, full_model = _run(tmp_path / "full")
    stopped, _ = _run(tmp_path / "parts", stop_after_steps=7)  # mid-epoch 1 (5 batches per epoch)
    assert not stopped.finished and stopped.step == 7
    resumed, resumed_model = _run(tmp_path / "parts", resume="latest")
    assert full.finished and resumed.finished and resumed.step == 12
    _assert_same_weights(full_model, resumed_model)
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


# --- gradient accumulation -------------------------------------------------------------------------------


def _sgd_with_schedule(model, total_steps):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.0)
    return optimizer, get_cosine_schedule_with_warmup(optimizer, 2, total_steps)  # the recipes' schedule


def test_accumulating_two_half_batches_equals_one_full_batch(tmp_path):
    # N=2 micro-batches of 4 == one batch of 8 (mean-squared error, SGD without momentum): same samples per
    # optimizer step (the seedable sampler's permutation is cut into consecutive batches), same mean gradient.
    initial = []

    def make_model():
        model = torch.nn.Linear(3, 1)
        initial.append(copy.deepcopy(model.state_dict()))
        return model

    kwargs = dict(make_model=make_model, make_optimizer=_sgd_with_schedule, total_steps=12, stop_after_steps=7,
                  log_every_steps=1)
    whole = _train(tmp_path / "whole", batch_size=8, accumulation=1, **kwargs)
    accumulated = _train(tmp_path / "accumulated", batch_size=4, accumulation=2, **kwargs)
    assert whole.outcome.step == accumulated.outcome.step == 7  # K = 7 optimizer steps, across an epoch's end
    for name, value in whole.model.state_dict().items():
        assert torch.equal(initial[0][name], initial[1][name]) and not torch.equal(initial[0][name], value)
        # Only the float summation order differs (two half-batch means averaged vs one mean).
        torch.testing.assert_close(accumulated.model.state_dict()[name], value, rtol=1e-5, atol=1e-6)
    # The schedule follows optimizer steps, not micro-batches: the same lr after K steps, and in every record.
    assert whole.scheduler.get_last_lr() == accumulated.scheduler.get_last_lr()
    assert whole.scheduler.scheduler.last_epoch == accumulated.scheduler.scheduler.last_epoch == 7
    assert [r["lr"] for r in whole.outcome.records] == [r["lr"] for r in accumulated.outcome.records]
    # The logged loss is the mean over the step's micro-batches: the full batch's loss.
    assert [r["step"] for r in accumulated.outcome.records] == list(range(1, 8))
    for w, acc in zip(whole.outcome.records, accumulated.outcome.records):
        assert acc["loss"] == pytest.approx(w["loss"], rel=1e-5, abs=1e-6)


def test_schedule_steps_once_per_optimizer_step_whatever_the_process_count(monkeypatch):
    # accelerate's AcceleratedScheduler.step steps num_processes times (without split_batches); the loop's
    # schedules count optimizer steps, so the loop steps the wrapped scheduler once.
    Accelerator(cpu=True)
    monkeypatch.setattr(accelerate.scheduler, "AcceleratorState", lambda: SimpleNamespace(num_processes=2))
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    via_accelerate = AcceleratedScheduler(torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 / (1 + s)),
                                          [AcceleratedOptimizer(optimizer, device_placement=False)])
    optimizer.step()
    via_accelerate.step()
    assert via_accelerate.scheduler.last_epoch == 2
    optimizer.step()
    _step_schedule(via_accelerate)
    assert via_accelerate.scheduler.last_epoch == 3


@pytest.mark.parametrize("batch_size", [8, 4])  # 5 batches (2 steps + 1 dropped batch per epoch), 10 (5 steps)
def test_accumulating_run_resumed_mid_epoch_ends_with_the_uninterrupted_weights(tmp_path, batch_size):
    full, full_model = _run(tmp_path / "full", accumulation=2, batch_size=batch_size)
    stopped, _ = _run(tmp_path / "parts", accumulation=2, batch_size=batch_size, stop_after_steps=7)  # mid-epoch
    assert not stopped.finished and stopped.step == 7
    resumed, resumed_model = _run(tmp_path / "parts", accumulation=2, batch_size=batch_size, resume="latest")
    assert full.finished and resumed.finished and resumed.step == 12
    _assert_same_weights(full_model, resumed_model)
    assert [r["step"] for r in resumed.records] == [3, 6, 9, 12] == [r["step"] for r in full.records]
    assert [r["loss"] for r in resumed.records] == [r["loss"] for r in full.records]
    assert [r["lr"] for r in resumed.records] == [r["lr"] for r in full.records]


@pytest.mark.parametrize("accumulation", [2, 3])
def test_leftover_micro_batches_of_an_epoch_are_dropped(tmp_path, accumulation):
    # 5 batches per epoch: 5 // N optimizer steps each; the leftover batches never run.
    seen, calls = [], {"before": [], "after": []}

    def make_loss(model):
        def compute_loss(batch):
            seen.append(epochs.epochs[-1])
            return torch.nn.functional.mse_loss(model(batch[0]), batch[1])
        return compute_loss

    epochs = _Epochs()
    hooks = TrainingHooks(before_step=calls["before"].append, after_step=calls["after"].append)
    outcome, _ = _run(tmp_path, accumulation=accumulation, make_loss=make_loss, hooks=hooks, epoch_aware=[epochs])
    steps_per_epoch = 5 // accumulation
    assert outcome.finished and outcome.step == 12
    assert calls["before"] == list(range(12)) and calls["after"] == list(range(1, 13))  # once per optimizer step
    assert epochs.epochs == list(range(12 // steps_per_epoch))
    assert len(seen) == 12 * accumulation  # no partial accumulation ran
    assert all(seen.count(e) == steps_per_epoch * accumulation for e in epochs.epochs)
    assert [r["step"] for r in outcome.records] == [3, 6, 9, 12]


def test_loader_shorter_than_one_accumulated_step_is_refused(tmp_path):
    with pytest.raises(ValueError, match="fewer than gradient_accumulation_steps=6"):
        _run(tmp_path, accumulation=6)  # 5 batches per epoch


# --- named loss terms --------------------------------------------------------------------------------------


@dataclass
class _Output(ModelOutput):
    loss: torch.Tensor | None = None
    loss_terms: dict | None = None


def test_loss_terms_of_a_model_output_are_logged_as_micro_batch_means(tmp_path):
    calls = []

    def make_loss(model):
        def compute_loss(batch):
            first = len(calls) % 2 == 0  # the first micro-batch of each optimizer step
            calls.append(first)
            terms = {"fit": torch.nn.functional.mse_loss(model(batch[0]), batch[1]), "const": torch.tensor(0.5),
                     "alt": torch.tensor(1.0 if first else 3.0)}
            if first:
                terms["sometimes"] = torch.tensor(4.0)  # missing in the second micro-batch
            return _Output(loss=sum(terms.values()), loss_terms=terms)
        return compute_loss

    outcome, _ = _run(tmp_path, accumulation=2, make_loss=make_loss)
    logged = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert logged == outcome.records and len(logged) == 4
    for record in logged:
        assert set(record) == {"stage", "step", "loss", "lr", "elapsed_s", "loss/fit", "loss/const", "loss/alt",
                               "loss/sometimes"}
        assert record["loss/const"] == 0.5 and record["loss/alt"] == 2.0 and record["loss/sometimes"] == 4.0
        # loss = mean over micro-batches of (fit + 0.5 + alt [+ 4]) = mean fit + 0.5 + 2 + 4 / 2
        assert record["loss"] == pytest.approx(record["loss/fit"] + 4.5, rel=1e-6)


def test_loss_terms_of_a_tuple_are_logged(tmp_path):
    def make_loss(model):
        def compute_loss(batch):
            fit = torch.nn.functional.mse_loss(model(batch[0]), batch[1])
            return fit + 0.25, {"fit": fit, "prior": torch.tensor(0.25)}
        return compute_loss

    outcome, _ = _run(tmp_path, make_loss=make_loss)
    assert all(r["loss/prior"] == 0.25 and r["loss"] == pytest.approx(r["loss/fit"] + 0.25, rel=1e-6)
               for r in outcome.records)


def test_split_loss_accepts_tensors_outputs_and_tuples_and_names_a_wrong_type():
    loss = torch.tensor(2.0)
    assert split_loss(loss) == (loss, {})
    out_loss, terms = split_loss(_Output(loss=loss, loss_terms={"a": torch.tensor(1.5), "b": None, "c": 0.5}))
    assert out_loss is loss and set(terms) == {"a", "c"} and terms["c"].item() == 0.5  # None: missing term
    assert split_loss(_Output(loss=loss)) == (loss, {})
    assert split_loss((loss, {"a": loss})) == (loss, {"a": loss})
    for wrong, name in [(2.0, "float"), ({"loss": loss}, "dict"), ((loss, loss), "tuple"), (_Output(), "_Output"),
                        (SimpleNamespace(loss=loss, loss_terms=[loss]), "SimpleNamespace")]:
        with pytest.raises(TypeError, match=name):
            split_loss(wrong)


def test_a_wrong_compute_loss_result_raises_a_type_error(tmp_path):
    with pytest.raises(TypeError, match="float"):
        _run(tmp_path, make_loss=lambda model: lambda batch: float(model(batch[0]).detach().sum()))


# --- samples the collators skipped -------------------------------------------------------------------------


def _skipping_collate(samples):
    """Like a collator that drops undecodable files: it reports `num_skipped_samples` (here: indices % 3 == 0)."""
    x, y, index = (torch.stack(column) for column in zip(*samples))
    skipped = int((index % 3 == 0).sum())
    return {"x": x, "y": y, "index": index,
            "num_skipped_samples": torch.tensor(skipped) if int(index[0]) % 2 else skipped}  # a 0-d tensor or an int


def _skipping_run(tmp_path, seen, **kwargs):
    def make_loss(model):
        def compute_loss(batch):
            assert "num_skipped_samples" not in batch  # popped before compute_loss
            seen.append(int((batch["index"] % 3 == 0).sum()))
            return torch.nn.functional.mse_loss(model(batch["x"]), batch["y"])
        return compute_loss

    def make_dataset():
        return TensorDataset(torch.randn(40, 3), torch.randn(40, 1), torch.arange(40))

    return _run(tmp_path, accumulation=2, make_loss=make_loss, collate_fn=_skipping_collate,
                make_dataset=make_dataset, **kwargs)


def test_skipped_samples_are_totalled_logged_and_survive_resume(tmp_path):
    seen_full, seen_parts = [], []
    full, full_model = _skipping_run(tmp_path / "full", seen_full)
    assert full.skipped_samples == sum(seen_full) > 0  # only the batches that ran (not the dropped leftovers)
    logged = [json.loads(line) for line in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    assert logged == full.records and all("skipped_samples" in r for r in logged)
    assert logged[-1]["skipped_samples"] == full.skipped_samples
    assert [r["skipped_samples"] for r in logged] == sorted(r["skipped_samples"] for r in logged)

    stopped, _ = _skipping_run(tmp_path / "parts", seen_parts, stop_after_steps=7)
    assert stopped.skipped_samples == sum(seen_parts) < full.skipped_samples
    state = json.loads((tmp_path / "parts" / "checkpoints" / "step_7" / "train_state.json").read_text())
    assert state["skipped_samples"] == stopped.skipped_samples
    resumed, resumed_model = _skipping_run(tmp_path / "parts", seen_parts, resume="latest")
    assert seen_parts == seen_full
    assert resumed.skipped_samples == full.skipped_samples
    assert resumed.records == [{**r, "elapsed_s": m["elapsed_s"]} for r, m in zip(full.records, resumed.records)]
    _assert_same_weights(full_model, resumed_model)


def test_without_skip_reports_no_skipped_field(tmp_path):
    outcome, _ = _run(tmp_path)
    assert outcome.skipped_samples == 0 and not any("skipped_samples" in r for r in outcome.records)
