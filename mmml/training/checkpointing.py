"""Atomic `accelerator.save_state` checkpoints and finding the one to resume from.

A checkpoint is first written to `checkpoints/.tmp-step_N` and renamed to `checkpoints/step_N`
only when complete (a rename is atomic on one file system), so a crash mid-write never leaves a
broken `step_N`: `latest_checkpoint` only ever sees whole ones.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from accelerate import Accelerator

_STEP_DIR = re.compile(r"^step_(\d+)$")
TRAIN_STATE_FILE = "train_state.json"


def checkpoint_root(output_dir: str | os.PathLike) -> Path:
    return Path(output_dir) / "checkpoints"


def list_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoints under `output_dir`, oldest first."""
    root = checkpoint_root(output_dir)
    if not root.is_dir():
        return []
    found = [
        (int(m.group(1)), p)
        for p in root.iterdir()
        if (m := _STEP_DIR.match(p.name)) and (p / TRAIN_STATE_FILE).is_file()
    ]
    return [p for _, p in sorted(found)]


def latest_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    checkpoints = list_checkpoints(output_dir)
    return checkpoints[-1] if checkpoints else None


def save_checkpoint(
    accelerator: Accelerator, output_dir: str | os.PathLike, step: int, train_state: dict, keep_last: int | None = None
) -> Path:
    """Save the full training state at `step` atomically; prune to the `keep_last` newest.

    Every process must call this (accelerate saves per-process RNG states).
    """
    root = checkpoint_root(output_dir)
    final = root / f"step_{step}"
    staging = root / f".tmp-step_{step}"
    if accelerator.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(staging))
    accelerator.wait_for_everyone()  # every process has written its part (e.g. its RNG state)
    if accelerator.is_main_process:
        (staging / TRAIN_STATE_FILE).write_text(json.dumps(train_state, indent=2), encoding="utf-8")
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
        if keep_last is not None:
            for old in list_checkpoints(output_dir)[:-keep_last]:
                shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def resolve_resume_path(resume_from_checkpoint: str | None, output_dir: str | os.PathLike) -> Path | None:
    """`"latest"` -> newest complete checkpoint in `output_dir` (None if there is none); a path -> itself."""
    if resume_from_checkpoint in (None, "", "none"):
        return None
    if resume_from_checkpoint == "latest":
        return latest_checkpoint(output_dir)
    path = Path(resume_from_checkpoint)
    if not (path / TRAIN_STATE_FILE).is_file():
        raise FileNotFoundError(
            f"{path} is not a complete mmml checkpoint (no {TRAIN_STATE_FILE}); "
            f"complete ones in {output_dir}: {[p.name for p in list_checkpoints(output_dir)] or 'none'}"
        )
    return path


def load_checkpoint(accelerator: Accelerator, path: Path) -> dict:
    """Restore the full training state from `path` and return its train state (step, epoch, ...)."""
    accelerator.load_state(str(path))
    return json.loads((path / TRAIN_STATE_FILE).read_text(encoding="utf-8"))
