"""Teacher learning on parallel text, shared by `recipes/distill_text.py` and `recipes/add_language.py`.

The targets (the teacher's embeddings of the English side, or frozen image embeddings for
language exposure) are computed once, cached on disk keyed by what produced them, and then only
the student runs: one forward and backward per batch.

Training texts may come from several parallel sources at once (`parallel_data`: a list of
`ParallelSource`); each epoch mixes them by their weights (`mmml.data.parallel.SourceMixture`), the
pairs seen of each source are counted, and with `eval_every_steps` the student's bitext accuracy on
named eval sets is written as a learning curve (`<stage>_curve.jsonl`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from safetensors import safe_open
from safetensors.torch import save_file
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..data.pairs import LengthGroupedBatchSampler
from ..data.parallel import (
    ParallelDataError,
    ParallelEvalSet,
    ParallelPart,
    ParallelSource,
    SourceMixture,
    load_eval_set_parts,
    load_parallel_parts,
    parse_eval_sets,
    parse_parallel_sources,
)
from ..eval.bitext import bitext_accuracy
from ..losses import ParallelDistillationLoss
from ..modeling.fingerprint import state_dict_fingerprint
from ..modeling.text_encoder import TextEncoder
from .loop import LoopSettings, TrainingHooks, run_training_loop
from .optim import build_optimizer_and_schedule

Tokenize = Callable[[list[str]], dict]
logger = logging.getLogger(__name__)


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
    # Items per epoch of the source mixture (default: every training pair of every source, once).
    pairs_per_epoch: int | None = None
    log_every_steps: int = 50
    # The learning curve: bitext accuracy on the eval sets at step 0, every this many steps and at the end.
    eval_every_steps: int = 0
    eval_batch_size: int = 256
    checkpoint_every_steps: int = 0
    resume_from_checkpoint: str | None = None
    # End this run at this step with a checkpoint (to fit a job's time limit); resume with "latest".
    stop_after_steps: int | None = None

    def __post_init__(self):
        if self.batch_size < 2 and self.contrastive_weight:
            raise ValueError("a contrastive term needs batch_size >= 2")
        if not self.epochs > 0:
            raise ValueError(f"epochs must be > 0, got {self.epochs}")
        if self.eval_every_steps < 0:
            raise ValueError(f"eval_every_steps must be >= 0, got {self.eval_every_steps}")
        if self.pairs_per_epoch is not None and self.pairs_per_epoch < 1:
            raise ValueError(f"pairs_per_epoch must be >= 1, got {self.pairs_per_epoch}")


@dataclass
class TextDistillationArguments(DistillationSettings):
    """What the teacher-learning recipes share: the settings above plus data, cache and device."""

    output_dir: str = "outputs/distill"
    # Parallel sources mixed by weight: each a folder of `{split}.{lang}` files (Multi30K) or of pair
    # folders `{a}-{b}/{split}.{lang}` (news-parallel), or a .jsonl of {lang: text} rows (the same rows
    # for every split). A path (weight 1), `path=weight,path=weight`, or a YAML list of
    # {path, weight, name}; held as a list of `ParallelSource`.
    parallel_data: list[ParallelSource] | str = ""
    train_split: str = "train"
    # Evaluated on the sources that have it (others are left out with a warning; an error if none has it).
    eval_split: str | None = "val"
    # More named bitext eval sets: {name, path, split} or {name, files: {lang: file}} (e.g. Tatoeba's).
    eval_sets: list[ParallelEvalSet] | None = None
    max_train_pairs: int | None = None  # the first pairs of each source and language pair
    max_text_length: int = 64
    # Where target embeddings are cached, keyed by model fingerprint + texts (shared between runs).
    cache_dir: str = str(Path.home() / ".cache" / "mmml" / "embeddings")
    cpu: bool | None = None  # None: the CPU when torch sees no accelerator

    def __post_init__(self):
        super().__post_init__()
        if not self.parallel_data:
            raise ValueError("--parallel_data is required (a folder of {split}.{lang} files or of {a}-{b}/ pair "
                             "folders, a .jsonl file, or several as path=weight,path=weight)")
        self.parallel_data = parse_parallel_sources(self.parallel_data)
        self.eval_sets = parse_eval_sets(self.eval_sets)

    def train_parts(self, pivot: str, languages: list[str]) -> list[ParallelPart]:
        """The training pairs `pivot`-`language` of every source, grouped by source."""
        parts, missing = load_parallel_parts(self.parallel_data, self.train_split, pivot, languages,
                                             max_pairs=self.max_train_pairs)
        for line in missing:
            logger.warning("not trained on: %s", line)
        return parts

    def eval_parts(self, pivot: str, languages: list[str]) -> list[ParallelPart]:
        """The eval split of the sources that have it, then the `eval_sets`; one part per set and language."""
        parts = []
        if self.eval_split:
            found, missing = load_parallel_parts(self.parallel_data, self.eval_split, pivot, languages,
                                                 every_source=False)
            parts.extend(found)
            for line in missing:
                logger.warning("not evaluated on: %s", line)
        for spec in self.eval_sets:
            parts.extend(load_eval_set_parts(spec, self.eval_split, pivot, languages))
        keys = [(part.source, part.language) for part in parts]
        repeated = sorted({key for key in keys if keys.count(key) > 1})
        if repeated:
            raise ParallelDataError(f"eval sets repeat (name, language) {repeated}; give each eval set its own name")
        return parts


@dataclass(frozen=True)
class SourceSpan:
    """`size` consecutive training items that come from one source, drawn with `weight` (`SourceMixture`)."""

    name: str
    size: int
    weight: float = 1.0


def source_spans(parts: Sequence[ParallelPart], sources: Sequence[ParallelSource]) -> list[SourceSpan]:
    """One span per source, its parts' sizes summed (parts grouped by source, as `load_parallel_parts` gives)."""
    weights = {source.name: source.weight for source in sources}
    spans: list[SourceSpan] = []
    for part in parts:
        if spans and spans[-1].name == part.source:
            spans[-1] = dataclasses.replace(spans[-1], size=spans[-1].size + len(part))
        elif any(span.name == part.source for span in spans):
            raise ValueError(f"the parts of source {part.source!r} are not consecutive")
        else:
            spans.append(SourceSpan(part.source, len(part), weights[part.source]))
    return spans


@dataclass
class BitextEvalSet:
    """Sentences in the student's `language` and the teacher's embeddings of their translations (row i each)."""

    name: str
    language: str
    texts: list[str]
    targets: torch.Tensor


def evaluate_bitext_sets(
    encoder: TextEncoder, tokenize: Tokenize, sets: Sequence[BitextEvalSet], batch_size: int = 256
) -> dict[str, dict[str, dict[str, float]]]:
    """`{set name: {language: bitext_accuracy}}`: the encoder's embeddings of each set's texts against its targets."""
    scores: dict[str, dict[str, dict[str, float]]] = {}
    for eval_set in sets:
        embeds = embed_texts(encoder, tokenize, eval_set.texts, batch_size)
        scores.setdefault(eval_set.name, {})[eval_set.language] = bitext_accuracy(embeds, eval_set.targets)
    return scores


@dataclass
class DistillationResult:
    history: list[dict]
    finished: bool  # False when stopped early by `stop_after_steps` (a checkpoint holds the state)
    pairs_seen: dict[str, int] = field(default_factory=dict)  # training items drawn per source
    curve: list[dict] = field(default_factory=list)  # the learning curve's points (`eval_every_steps`)


class _MixtureItems(torch.utils.data.Dataset):
    """Dataset index -> training item of the current epoch (`SourceMixture.epoch_items`);
    `caption_lengths` feeds `LengthGroupedBatchSampler`."""

    def __init__(self, texts: Sequence[str], mixture: SourceMixture):
        self.text_lengths = np.array([len(text) for text in texts])
        self.mixture = mixture
        self.epoch = 0
        self._cached: tuple[int, np.ndarray] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def items(self, epoch: int) -> np.ndarray:
        if self._cached is None or self._cached[0] != epoch:
            self._cached = (epoch, self.mixture.epoch_items(epoch))
        return self._cached[1]

    def __len__(self) -> int:
        return len(self.mixture)

    def __getitem__(self, index: int) -> int:
        return int(self.items(self.epoch)[index])

    def caption_lengths(self, epoch: int) -> np.ndarray:
        return self.text_lengths[self.items(epoch)]


class _PairsSeen:
    """Training items drawn per source, over all processes and the runs this one resumes."""

    def __init__(self, accelerator: Accelerator, names: Sequence[str]):
        self.accelerator, self.names = accelerator, list(names)
        self.before = torch.zeros(len(self.names), dtype=torch.long)
        self.local = torch.zeros(len(self.names), dtype=torch.long, device=accelerator.device)

    def add(self, source_ids: torch.Tensor) -> None:
        self.local += torch.bincount(source_ids.to(self.local.device), minlength=len(self.names))

    def load(self, seen: dict) -> None:
        self.before = torch.tensor([int(seen.get(name, 0)) for name in self.names], dtype=torch.long)

    def totals(self) -> dict[str, int]:
        """A collective when several processes run: call it on all of them."""
        local = self.local.clone()
        if self.accelerator.num_processes > 1:
            local = self.accelerator.reduce(local, "sum")
        return dict(zip(self.names, (self.before + local.cpu()).tolist()))


class _LearningCurve:
    """Bitext accuracy on the eval sets against the pairs seen, at step 0, every `every` steps and at
    the last step; the rows travel with the checkpoints and `path` (JSON lines) is rewritten with them."""

    def __init__(self, evaluate: Callable[[], dict], pairs_seen: _PairsSeen, every: int, total_steps: int,
                 path: Path, accelerator: Accelerator):
        self.evaluate, self.pairs_seen, self.every, self.total_steps = evaluate, pairs_seen, every, total_steps
        self.path, self.accelerator = path, accelerator
        self.rows: list[dict] = []

    def due(self, step: int) -> bool:
        return bool(self.every) and (step % self.every == 0 or step == self.total_steps)

    def point(self, step: int) -> None:
        seen = self.pairs_seen.totals()  # on every process
        if not self.accelerator.is_main_process:
            return
        self.rows.append({"step": step, "pairs_seen_total": sum(seen.values()), "pairs_seen": seen,
                          "eval": self.evaluate()})
        self.write()

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text("".join(json.dumps(row) + "\n" for row in self.rows), encoding="utf-8")
        os.replace(tmp, self.path)


def _make_loader(dataset: _MixtureItems, collate: Callable, settings: DistillationSettings):
    """The training DataLoader and the length-grouped batch sampler (None without `group_by_length`)."""
    generator = torch.Generator().manual_seed(settings.seed)
    if settings.group_by_length:
        sampler = LengthGroupedBatchSampler(dataset, settings.batch_size, seed=settings.seed)
        return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, generator=generator), sampler
    loader = DataLoader(dataset, batch_size=settings.batch_size, shuffle=True, drop_last=True, collate_fn=collate,
                        generator=generator)
    return loader, None


def train_toward_targets(
    accelerator: Accelerator,
    student: TextEncoder,
    texts: Sequence[str],
    targets: torch.Tensor,
    tokenize: Tokenize,
    settings: DistillationSettings,
    output_dir: str | os.PathLike,
    stage: str = "distill",
    sources: Sequence[SourceSpan] | None = None,
    eval_sets: Sequence[BitextEvalSet] = (),
) -> DistillationResult:
    """Train the student's trainable parameters so that `student(texts[i])` lands on `targets[i]`.

    `sources` says which consecutive texts come from which source and its weight (default: one
    source "train"); each epoch draws `settings.pairs_per_epoch` items (default: all texts) from
    them as `SourceMixture` defines, and the items drawn per source are counted
    (`DistillationResult.pairs_seen`, `pairs_seen/<name>` in the log). With `eval_every_steps`,
    bitext accuracy on `eval_sets` (embedded with `tokenize`) is recorded against the pairs seen
    in `<output_dir>/<stage>_curve.jsonl` (`DistillationResult.curve`).

    Loss: `ParallelDistillationLoss` (MSE and / or in-batch InfoNCE against the targets). Logs
    JSON lines to `<output_dir>/<stage>_log.jsonl`; with `checkpoint_every_steps`, writes
    resumable checkpoints under `<output_dir>/<stage>/checkpoints` (also at `stop_after_steps`, where
    the run ends early; `resume_from_checkpoint="latest"` continues it exactly: the same batches,
    counts and curve).
    """
    loss_fn = ParallelDistillationLoss(settings.mse_weight, settings.contrastive_weight, settings.temperature)
    if len(texts) != len(targets):
        raise ValueError(f"{len(texts)} texts but {len(targets)} target embeddings")
    sources = list(sources or [SourceSpan("train", len(texts))])
    if sum(span.size for span in sources) != len(texts):
        raise ValueError(f"the sources' sizes {[span.size for span in sources]} do not add up to {len(texts)} texts")
    if settings.eval_every_steps and not eval_sets:
        raise ValueError("eval_every_steps needs eval sets (an eval split some source has, or eval_sets)")
    mixture = SourceMixture([span.size for span in sources], [span.weight for span in sources], seed=settings.seed,
                            epoch_size=settings.pairs_per_epoch)
    dataset = _MixtureItems(texts, mixture)
    source_of = torch.from_numpy(mixture.source_of(np.arange(len(texts))))

    def collate(indices: list[int]) -> dict:
        index = torch.tensor(indices)
        batch = tokenize([texts[i] for i in indices])
        batch["targets"] = targets[index]
        batch["source_ids"] = source_of[index]
        return batch

    loader, sampler = _make_loader(dataset, collate, settings)
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
    pairs_seen = _PairsSeen(accelerator, [span.name for span in sources])
    curve = _LearningCurve(
        lambda: evaluate_bitext_sets(accelerator.unwrap_model(student), tokenize, eval_sets, settings.eval_batch_size),
        pairs_seen, settings.eval_every_steps, total_steps, Path(output_dir) / f"{stage}_curve.jsonl", accelerator)

    def compute_loss(batch: dict) -> torch.Tensor:
        pairs_seen.add(batch.pop("source_ids"))
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
        epoch_aware=[item for item in (sampler, dataset) if item is not None],
        resume_from_checkpoint=settings.resume_from_checkpoint,
        hooks=_hooks(pairs_seen, curve),
    )
    return DistillationResult(outcome.records, finished=outcome.finished, pairs_seen=pairs_seen.totals(),
                              curve=curve.rows)


def _hooks(pairs_seen: _PairsSeen, curve: _LearningCurve) -> TrainingHooks:
    """The loop hooks that count pairs seen, take the curve's points and keep both in the checkpoints."""

    def before_step(step: int) -> None:
        if step == 0 and curve.every and not curve.rows:
            curve.point(0)

    def after_step(step: int) -> None:
        if curve.due(step):
            curve.point(step)

    def log_extras() -> dict[str, Any]:
        seen = pairs_seen.totals()
        return {"pairs_seen": sum(seen.values()), **{f"pairs_seen/{name}": n for name, n in seen.items()}}

    def state() -> dict[str, Any]:
        return {"pairs_seen": pairs_seen.totals(), "curve": curve.rows}

    def load_state(saved: dict) -> None:
        pairs_seen.load(saved.get("pairs_seen", {}))
        curve.rows = list(saved.get("curve", []))
        if curve.rows and curve.accelerator.is_main_process:
            curve.write()  # drops points a crashed run took after its last checkpoint

    return TrainingHooks(before_step=before_step, after_step=after_step, log_extras=log_extras, state=state,
                         load_state=load_state)


def describe_sources(parts: Sequence[ParallelPart], sources: Sequence[ParallelSource]) -> dict[str, dict]:
    """`{source: {path, weight, pairs, languages: {language: pairs}}}` of the parts, for metrics."""
    summary = {source.name: {"path": source.path, "weight": source.weight, "pairs": 0, "languages": {}}
               for source in sources}
    for part in parts:
        entry = summary[part.source]
        entry["pairs"] += len(part)
        entry["languages"][part.language] = entry["languages"].get(part.language, 0) + len(part)
    return summary
