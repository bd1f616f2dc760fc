"""Argument groups the recipes share (data, model, optimisation, loop, evaluation, robust training).

A recipe's arguments are a dataclass that inherits the groups it needs, so a field is defined
once, with one default, and every recipe names it the same way; recipe configs (YAML) set the
values that differ. `mmml.training.parse_args` fills them from `--config FILE` and `--field value`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..data.noise import NOISE_KINDS, check_noise_rate

ROBUST_METHODS = (None, "rcar")
MIXED_PRECISIONS = ("no", "bf16", "fp16")


@dataclass
class DataArguments:
    """Where the image-text (or video-/audio-text) pairs come from."""

    # "embedded" generates the scene dataset; a folder with {train,validation,test}.jsonl manifests; or a
    # mapping split -> manifest path or list of paths (concatenated), e.g. {train: [a.jsonl, b.jsonl], ...}.
    data: str | dict[str, str | list[str]] = "embedded"
    languages: list[str] | None = None
    num_train_scenes: int = 20000
    num_val_scenes: int = 500
    num_test_scenes: int = 1000
    captions_per_language: int = 2
    difficulty: int = 0
    image_size: int = 60
    # Video models: frames per embedded clip, and frames sampled per clip (segments in training,
    # uniform in evaluation); the embedded clips' temporal test split (pairs of a clip and its reversal).
    num_frames: int = 8
    num_temporal_test_clips: int = 1000
    # Undecodable files: False raises an error naming the file and row; True skips them and counts them.
    skip_bad_samples: bool = False
    # DataLoader worker processes that decode and process each batch (0: in the training process).
    dataloader_num_workers: int = 0
    # Noisy correspondence (benchmarks of robust training): this fraction of the *training* pairs gets
    # the captions of another image ("complete") or half of another image's captions ("partial").
    noise_rate: float = 0.0
    noise_kind: str = "complete"

    def __post_init__(self):
        if isinstance(self.data, dict):
            self.data = {split: [paths] if isinstance(paths, str) else list(paths) for split, paths in self.data.items()}
            empty = [split for split, paths in self.data.items() if not paths]
            if empty:
                raise ValueError(f"data: splits {empty} name no manifest")
        self.noise_rate = check_noise_rate(self.noise_rate)
        if self.noise_kind not in NOISE_KINDS:
            raise ValueError(f"noise_kind must be one of {NOISE_KINDS}, got {self.noise_kind!r}")
        if self.dataloader_num_workers < 0:
            raise ValueError(f"dataloader_num_workers must be >= 0, got {self.dataloader_num_workers}")


@dataclass
class ModelArguments:
    """Which model: a pretrained one, or a new one of any registered `model_type`."""

    # A pretrained folder / Hub id; when None a new model is built from `model_type` + `model_config`.
    model_name_or_path: str | None = None
    # Or a new model from two pretrained towers (folders / Hub ids, as `from_vision_text_pretrained`): its
    # processor takes the vision folder's image processor and the text folder's tokenizer.
    vision_model_name_or_path: str | None = None
    text_model_name_or_path: str | None = None
    # Any registered mmml model type ("mclip", "mla", "vse", "cross_modal_hashing", ...).
    model_type: str = "mclip"
    # The new model's config fields (a dict: towers' sub-configs, projection_dim, objectives, ...).
    model_config: dict = field(default_factory=dict)
    # Deprecated name of `model_type` ("mclip" or "vse"), kept for existing configs and scripts.
    model_family: str | None = None
    tokenizer_vocab_size: int = 2000
    # The tokenizer is trained on at most this many training captions (a seeded sample; None: all).
    tokenizer_training_texts: int | None = 50000
    max_text_length: int = 128
    # Options of the processor's corpus fitting (`adapted_to_corpus`), e.g. {"max_features": 2000} for TF-IDF.
    processor_options: dict = field(default_factory=dict)
    # Submodules kept frozen: no gradients, eval mode (BatchNorm statistics, dropout), e.g. ["vision_model"]
    # or dotted deeper names ("text_model.encoder.layer.0").
    frozen_modules: list[str] = field(default_factory=list)
    # A frozen whole media tower (vision_model, audio_model) keeps its outputs per input in memory, so it
    # encodes each image once rather than every epoch (metrics.json reports the cache's size and hits).
    cache_frozen_towers: bool = True

    def __post_init__(self):
        towers = (self.vision_model_name_or_path, self.text_model_name_or_path)
        if any(towers) and not all(towers):
            raise ValueError("vision_model_name_or_path and text_model_name_or_path go together (both towers)")
        if all(towers) and self.model_name_or_path:
            raise ValueError("give model_name_or_path or the two tower paths, not both")
        if isinstance(self.frozen_modules, str):
            self.frozen_modules = [name for name in self.frozen_modules.split(",") if name]
        if self.model_family is not None:
            if self.model_family not in ("mclip", "vse"):
                raise ValueError(f"model_family must be one of ['mclip', 'vse'] (or set model_type to any registered "
                                 f"mmml type), got {self.model_family!r}")
            self.model_type = self.model_family
        if self.tokenizer_training_texts is not None and self.tokenizer_training_texts < 1:
            raise ValueError(f"tokenizer_training_texts must be None or >= 1, got {self.tokenizer_training_texts!r}")


@dataclass
class OptimizationArguments:
    """AdamW with a cosine schedule and warm-up."""

    per_device_train_batch_size: int = 256
    # Micro-batches per optimizer step (`accelerator.accumulate`); the effective batch is their product.
    gradient_accumulation_steps: int = 1
    # Batches of similar caption length: less padding, harder in-batch negatives. Off by default:
    # with learning_rate 2e-3 on the embedded data it collapsed to a constant embedding (BENCHMARKS.md).
    group_by_length: bool = False
    learning_rate: float = 1e-3
    weight_decay: float = 0.1
    # Clip gradients to this global L2 norm before each step (None: no clipping). Off by default: on the
    # embedded data a norm of 1.0 slowed the tiny M-CLIP several-fold (BENCHMARKS.md).
    max_grad_norm: float | None = None
    warmup_steps: int = 25
    max_steps: int = 1000
    # Parameter-name prefix -> factor on learning_rate (e.g. {temporal_encoder: 10} for new heads).
    lr_multipliers: dict = field(default_factory=dict)
    mixed_precision: str = "no"

    def __post_init__(self):
        if self.max_steps <= 0:
            raise ValueError(f"max_steps must be > 0, got {self.max_steps}")
        if self.per_device_train_batch_size <= 1:
            raise ValueError("per_device_train_batch_size must be > 1 for a contrastive or pairwise loss")
        if self.gradient_accumulation_steps < 1:
            raise ValueError(f"gradient_accumulation_steps must be >= 1, got {self.gradient_accumulation_steps}")
        if self.mixed_precision not in MIXED_PRECISIONS:
            raise ValueError(f"mixed_precision must be one of {MIXED_PRECISIONS}, got {self.mixed_precision!r}")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            raise ValueError(f"max_grad_norm must be None or > 0, got {self.max_grad_norm!r}")


@dataclass
class LoopArguments:
    """Output, checkpoints, resumption and logging of the shared training loop."""

    output_dir: str = "outputs/run"
    seed: int = 0
    # End this run at this step (a checkpoint is written) to fit a job's time limit; continue later
    # with --resume_from_checkpoint latest. The schedule still follows max_steps.
    stop_after_steps: int | None = None
    # None: use the CPU when torch sees no accelerator. Accelerate only sets up multi-process CPU
    # training (gloo) when told to use the CPU, so `accelerate launch --multi_gpu --num_processes 2`
    # on a CPU-only machine needs this to be true, else each process trains alone.
    cpu: bool | None = None
    checkpoint_every_steps: int = 250
    keep_checkpoints: int = 2
    resume_from_checkpoint: str | None = None
    log_every_steps: int = 25
    log_with: str | None = None


@dataclass
class EvaluationArguments:
    """Retrieval evaluation during and after training."""

    eval_every_steps: int = 250
    eval_batch_size: int = 512


@dataclass
class RobustArguments:
    """RCAR against noisy pairs: a beta-mixture split of per-sample losses each epoch, refurbished InfoNCE
    targets and a soft-margin hardest-negative triplet loss (None: plain training)."""

    robust: str | None = None
    rcar_warmup_epochs: int = 2
    rcar_contrastive_weight: float = 1.0
    rcar_triplet_weight: float = 1.0
    rcar_margin: float = 0.2
    # The split is used only when the mixture's components are this well separated (Ashman's D).
    rcar_min_separation: float = 0.5

    def __post_init__(self):
        if self.robust not in ROBUST_METHODS:
            raise ValueError(f"robust must be one of {ROBUST_METHODS}, got {self.robust!r}")


@dataclass
class HashingArguments:
    """Hashing-specific training and evaluation (models with hash heads)."""

    # tanh(scale * x) relaxation: scale = hash_scale * (1 + hash_scale_growth * step) ** 0.5.
    hash_scale_growth: float = 0.01
    # Relevance in the hashing evaluation: "labels" (share an object label) or "pairs" (caption of the
    # image); None: labels for the embedded scenes, pairs otherwise.
    relevance: str | None = None
    eval_language: str = "en"
    eval_k: int | None = None  # mAP@K; None = mAP@all

    def __post_init__(self):
        if self.relevance not in (None, "labels", "pairs"):
            raise ValueError(f"relevance must be 'labels', 'pairs' or None, got {self.relevance!r}")

    def resolved_relevance(self, data: str) -> str:
        return self.relevance or ("labels" if data == "embedded" else "pairs")


def run_post_inits(args, groups: tuple[type, ...]) -> None:
    """Call every group's `__post_init__` once (dataclass inheritance runs only the last one)."""
    for group in groups:
        check = group.__dict__.get("__post_init__")
        if check is not None:
            check(args)
