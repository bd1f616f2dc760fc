"""What recipes share: argument parsing, atomic checkpoints, optimizer set-up, the training loop."""

from .arguments import parse_args, to_json_dict
from .cpu_threads import warn_if_cpu_threads_idle
from .checkpointing import latest_checkpoint, list_checkpoints, load_checkpoint, resolve_resume_path, save_checkpoint
from .freezing import FrozenTowerCache, freeze_modules
from .loop import LoopResult, LoopSettings, TrainingHooks, run_training_loop, split_loss
from .optim import build_optimizer_and_schedule, parameter_groups

__all__ = [
    "FrozenTowerCache",
    "LoopResult",
    "LoopSettings",
    "TrainingHooks",
    "build_optimizer_and_schedule",
    "freeze_modules",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "parameter_groups",
    "parse_args",
    "resolve_resume_path",
    "run_training_loop",
    "save_checkpoint",
    "split_loss",
    "to_json_dict",
    "warn_if_cpu_threads_idle",
]
