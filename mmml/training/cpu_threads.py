"""A warning for CPU runs that leave cores idle (`accelerate launch` sets OMP_NUM_THREADS=1 by default)."""

from __future__ import annotations

import logging
import os

import torch
from accelerate import Accelerator

logger = logging.getLogger(__name__)


def warn_if_cpu_threads_idle(accelerator: Accelerator) -> None:
    """Log a warning when a single CPU process computes on fewer threads than it has cores."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if accelerator.device.type == "cpu" and accelerator.num_processes == 1 and torch.get_num_threads() < cores:
        logger.warning("training on %d of %d CPU threads; `accelerate launch --num_cpu_threads_per_process %d` "
                       "(or OMP_NUM_THREADS=%d) uses them all", torch.get_num_threads(), cores, cores, cores)
