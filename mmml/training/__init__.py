"""What recipes share: argument parsing, atomic checkpoints, optimizer set-up."""

from .arguments import parse_args, to_json_dict
from .checkpointing import latest_checkpoint, list_checkpoints, load_checkpoint, resolve_resume_path, save_checkpoint
from .optim import build_optimizer_and_schedule, parameter_groups

__all__ = [
    "build_optimizer_and_schedule",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "parameter_groups",
    "parse_args",
    "resolve_resume_path",
    "save_checkpoint",
    "to_json_dict",
]
