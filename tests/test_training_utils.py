"""Recipe argument parsing and atomic checkpoints."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import torch
from accelerate import Accelerator

from mmml.training import (
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    parse_args,
    resolve_resume_path,
    save_checkpoint,
)
from mmml.training.optim import parameter_groups


@dataclass
class Args:
    learning_rate: float = 1e-3
    max_steps: int = 10
    name: str = "run"
    languages: list[str] | None = None
    resume: str | None = None
    flag: bool = False
    model_config: dict = field(default_factory=dict)


def test_yaml_then_command_line_overrides(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("learning_rate: 0.01\nmax_steps: 5\nmodel_config:\n  projection_dim: 8\n")
    args = parse_args(Args, ["--config", str(config), "--max_steps", "7", "--languages", "en,de", "--flag",
                             "--resume=none", "--name", "x"])
    assert args == Args(learning_rate=0.01, max_steps=7, name="x", languages=["en", "de"], resume=None, flag=True,
                        model_config={"projection_dim": 8})
    assert parse_args(Args, ["--languages", "[fr, zh]"], default_config=config).languages == ["fr", "zh"]


def test_unknown_or_malformed_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match="--max_stepz"):
        parse_args(Args, ["--max_stepz", "3"])
    with pytest.raises(ValueError, match="--max_steps expects int"):
        parse_args(Args, ["--max_steps", "many"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("learning_rat: 1\n")
    with pytest.raises(ValueError, match="learning_rat"):
        parse_args(Args, ["--config", str(bad)])


def test_checkpoints_are_atomic_pruned_and_resumable(tmp_path):
    accelerator = Accelerator(cpu=True)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model, optimizer = accelerator.prepare(model, optimizer)
    for step in (1, 2, 3):
        with torch.no_grad():
            model.weight.add_(1.0)
        save_checkpoint(accelerator, tmp_path, step, {"step": step}, keep_last=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_2", "step_3"]
    # A half-written checkpoint (crash before the rename) is never picked up.
    (tmp_path / "checkpoints" / ".tmp-step_4").mkdir()
    (tmp_path / "checkpoints" / "step_5").mkdir()  # no train_state.json: not listed as complete by resume
    assert resolve_resume_path("latest", tmp_path).name == "step_3"
    expected = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.zero_()
    state = load_checkpoint(accelerator, tmp_path / "checkpoints" / "step_3")
    assert state == {"step": 3} and torch.equal(model.weight, expected)
    with pytest.raises(FileNotFoundError, match="step_5"):
        resolve_resume_path(str(tmp_path / "checkpoints" / "step_5"), tmp_path)
    assert resolve_resume_path(None, tmp_path) is None


def test_no_weight_decay_on_biases_norms_and_logit_scale():
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(4, 4)
            self.layer_norm = torch.nn.LayerNorm(4)
            self.logit_scale = torch.nn.Parameter(torch.tensor(1.0))

    decay, no_decay = parameter_groups(M(), 0.1)
    assert len(decay["params"]) == 1 and decay["weight_decay"] == 0.1
    assert len(no_decay["params"]) == 4 and no_decay["weight_decay"] == 0.0


def test_lr_multipliers_scale_the_named_parameters_only():
    import torch

    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.LayerNorm(3), torch.nn.Linear(3, 2))
    groups = parameter_groups(model, 0.1, learning_rate=1e-3, lr_multipliers={"2": 10.0})
    lrs = {id(p): group.get("lr", 1e-3) for group in groups for p in group["params"]}
    assert lrs[id(model[2].weight)] == lrs[id(model[2].bias)] == pytest.approx(1e-2)
    assert lrs[id(model[0].weight)] == lrs[id(model[1].weight)] == 1e-3
    decays = {id(p): group["weight_decay"] for group in groups for p in group["params"]}
    assert decays[id(model[2].weight)] == 0.1 and decays[id(model[2].bias)] == 0.0
    assert sum(len(group["params"]) for group in groups) == len(list(model.parameters()))
