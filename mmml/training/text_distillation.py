"""Teacher learning on parallel text, shared by `recipes/distill_text.py` and `recipes/add_language.py`.

The targets (the teacher's embeddings of the English side, or frozen image embeddings for
language exposure) are computed once, cached on disk keyed by what produced them, and then only
the student runs: one forward and backward per batch.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from safetensors import safe_open
from safetensors.torch import save_file
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..data.pairs import LengthGroupedBatchSampler
from ..losses import ParallelDistillationLoss
from ..modeling.fingerprint import state_dict_fingerprint
from ..modeling.text_encoder import TextEncoder
from .loop import LoopSettings, run_training_loop
from .optim import build_optimizer_and_schedule

Tokenize = Callable[[list[str]], dict]


def make_tokenize(tokenizer, max_length: int) -> Tokenize:
    """A batch tokenizer: padded to the longest text, truncated to `max_length` tokens."""

    def tokenize(texts: list[str]) -> dict:
        return dict(tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt"))

    return tokenize


def model_fingerprint(module: torch.nn.Module) -> str:
    return state_dict_fingerprint(module.state_dict())


def texts_fingerprint(texts: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()


@torch.no_grad()
def embed_texts(
    encoder: TextEncoder, tokenize: Tokenize, texts: Sequence[str], batch_size: int = 256, progress: bool = False
) -> torch.Tensor:
    """`[len(texts), dim]` float32 embeddings on the CPU, in the order of `texts`.

    Texts are embedded in order of length so batches carry little padding.
    """
    was_training = encoder.training
    encoder.eval()
    device = next(encoder.parameters()).device
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out: torch.Tensor | None = None
    try:
        for start in tqdm(range(0, len(order), batch_size), disable=not progress, desc="embed"):
            index = order[start : start + batch_size]
            inputs = {k: v.to(device) for k, v in tokenize([texts[i] for i in index]).items()}
            embeds = encoder(**inputs).float().cpu()
            if out is None:
                out = torch.empty(len(texts), embeds.shape[1])
            out[torch.tensor(index)] = embeds
    finally:
        encoder.train(was_training)
    if out is None:
        raise ValueError("no texts to embed")
    return out


def cached_tensor(cache_dir: str | os.PathLike, key: dict, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
    """`compute()`'s result, stored once under `cache_dir` by a hash of `key` and read back after.

    `key` must name everything the result depends on (model fingerprint, texts, pooling, ...).
    The file is written atomically, and a file whose stored key differs is recomputed.
    """
    key_json = json.dumps(key, sort_keys=True)
    path = Path(cache_dir) / f"{hashlib.sha256(key_json.encode()).hexdigest()[:24]}.safetensors"
    if path.exists():
        with safe_open(str(path), framework="pt") as handle:
            if handle.metadata().get("key") == key_json:
                return handle.get_tensor("embeddings")
    tensor = compute().contiguous()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file({"embeddings": tensor}, str(tmp), metadata={"key": key_json})
    os.replace(tmp, path)
    return tensor


@dataclass
class DistillationSettings:
    """How the student is trained toward its targets."""

    batch_size: int = 64
    epochs: float = 1.0
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 50
    mse_weight: float = 1.0
    contrastive_weight: float = 0.0
    temperature: float = 0.05
    seed: int = 0
    # Batches of similar text length (less padding: about half the compute on Multi30K captions).
    group_by_length: bool = True
    log_every_steps: int = 50
    checkpoint_every_steps: int = 0
    resume_from_checkpoint: str | None = None
    # End this run at this step with a checkpoint (to fit a job's time limit); resume with "latest".
    stop_after_steps: int | None = None

    def __post_init__(self):
        if self.batch_size < 2 and self.contrastive_weight:
            raise ValueError("a contrastive term needs batch_size >= 2")
        if not self.epochs > 0:
            raise ValueError(f"epochs must be > 0, got {self.epochs}")


@dataclass
class TextDistillationArguments(DistillationSettings):
    """What the teacher-learning recipes share: the settings above plus data, cache and device."""

    output_dir: str = "outputs/distill"
    # A folder of line-aligned `{split}.{lang}` files (Multi30K style) or a JSON-lines file of {lang: text} rows.
    parallel_data: str = ""
    train_split: str = "train"
    eval_split: str | None = "val"
    max_train_pairs: int | None = None
    max_text_length: int = 64
    eval_batch_size: int = 256
    # Where target embeddings are cached, keyed by model fingerprint + texts (shared between runs).
    cache_dir: str = str(Path.home() / ".cache" / "mmml" / "embeddings")
    cpu: bool | None = None  # None: the CPU when torch sees no accelerator

    def __post_init__(self):
        super().__post_init__()
        if not self.parallel_data:
            raise ValueError("--parallel_data is required (a folder of {split}.{lang} files or a .jsonl file)")

    def load_parallel(self, split: str, languages: list[str]) -> dict[str, list[str]]:
        """`{language: sentences}` of `split` (a JSON-lines `parallel_data` has no splits)."""
        from ..data.parallel import load_parallel_files, load_parallel_manifest, parallel_files_in

        if self.parallel_data.endswith(".jsonl"):
            return load_parallel_manifest(self.parallel_data, languages)
        texts = load_parallel_files(parallel_files_in(self.parallel_data, split, languages))
        if self.max_train_pairs and split == self.train_split:
            texts = {lang: lines[: self.max_train_pairs] for lang, lines in texts.items()}
        return texts


@dataclass
class DistillationResult:
    history: list[dict]
    finished: bool  # False when stopped early by `stop_after_steps` (a checkpoint holds the state)


class _Texts(torch.utils.data.Dataset):
    """Indices into the texts; `caption_lengths` feeds `LengthGroupedBatchSampler`."""

    def __init__(self, texts: Sequence[str]):
        self.lengths = np.array([len(text) for text in texts])

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, index: int) -> int:
        return index

    def caption_lengths(self, epoch: int) -> np.ndarray:
        return self.lengths


def train_toward_targets(
    accelerator: Accelerator,
    student: TextEncoder,
    texts: Sequence[str],
    targets: torch.Tensor,
    tokenize: Tokenize,
    settings: DistillationSettings,
    output_dir: str | os.PathLike,
    stage: str = "distill",
) -> DistillationResult:
    """Train the student's trainable parameters so that `student(texts[i])` lands on `targets[i]`.

    Loss: `ParallelDistillationLoss` (MSE and / or in-batch InfoNCE against the targets). Logs
    JSON lines to `<output_dir>/<stage>_log.jsonl`; with `checkpoint_every_steps`, writes
    resumable checkpoints under `<output_dir>/<stage>/checkpoints` (also at `stop_after_steps`, where
    the run ends early; `resume_from_checkpoint="latest"` continues it exactly).
    """
    loss_fn = ParallelDistillationLoss(settings.mse_weight, settings.contrastive_weight, settings.temperature)
    if len(texts) != len(targets):
        raise ValueError(f"{len(texts)} texts but {len(targets)} target embeddings")
    dataset = _Texts(texts)

    def collate(indices: list[int]) -> dict:
        batch = tokenize([texts[i] for i in indices])
        batch["targets"] = targets[torch.tensor(indices)]
        return batch

    generator = torch.Generator().manual_seed(settings.seed)
    sampler = None
    if settings.group_by_length:
        sampler = LengthGroupedBatchSampler(dataset, settings.batch_size, seed=settings.seed)
        loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, generator=generator)
    else:
        loader = DataLoader(dataset, batch_size=settings.batch_size, shuffle=True, drop_last=True,
                            collate_fn=collate, generator=generator)
    if len(loader) == 0:
        raise ValueError(f"{len(dataset)} training pairs are fewer than one batch of {settings.batch_size}")
    total_steps = max(1, round(settings.epochs * len(loader) / accelerator.num_processes))
    trainable = [p for p in student.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("the student has no trainable parameters")
    optimizer, scheduler = build_optimizer_and_schedule(
        student, settings.learning_rate, settings.weight_decay, min(settings.warmup_steps, total_steps // 2), total_steps
    )
    student, optimizer, loader, scheduler = accelerator.prepare(student, optimizer, loader, scheduler)

    def compute_loss(batch: dict) -> torch.Tensor:
        batch_targets = batch.pop("targets")
        return loss_fn(student(**batch), batch_targets)

    loop_settings = LoopSettings(
        total_steps=total_steps, stop_after_steps=settings.stop_after_steps,
        log_every_steps=settings.log_every_steps, checkpoint_every_steps=settings.checkpoint_every_steps,
        description=stage, log_fields={"stage": stage},
    )
    outcome = run_training_loop(
        accelerator, student, optimizer, scheduler, loader, compute_loss, loop_settings,
        checkpoint_dir=Path(output_dir) / stage, log_path=Path(output_dir) / f"{stage}_log.jsonl",
        epoch_aware=[sampler] if sampler is not None else [],
        resume_from_checkpoint=settings.resume_from_checkpoint,
    )
    return DistillationResult(outcome.records, finished=outcome.finished)
