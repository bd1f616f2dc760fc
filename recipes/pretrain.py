"""Contrastive image-text pretraining of an mmml dual encoder (M-CLIP by default).

    accelerate launch recipes/pretrain.py                               # tiny M-CLIP, embedded data
    accelerate launch recipes/pretrain.py --config recipes/configs/mclip_tiny.yaml --max_steps 200
    accelerate launch recipes/pretrain.py --resume_from_checkpoint latest

Arguments come from the YAML file (`--config`, default `configs/mclip_tiny.yaml`) and any
`--field value` override; see `PretrainArguments`.
"""

from __future__ import annotations

import json
import logging
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, set_seed
from torch.utils.data import DataLoader
from transformers import AutoProcessor, CLIPImageProcessor

import mmml
from mmml.data import SceneConfig, build_scene_dataset, load_manifest
from mmml.data.multitask import MultiTaskCollator, MultiTaskImageTextPairs
from mmml.data.noise import NOISE_KINDS, add_noise_to_dataset, check_noise_rate
from mmml.data.pairs import ImageTextCollator, ImageTextPairs, LengthGroupedBatchSampler
from mmml.eval import RetrievalEvaluator
from mmml.hub import save_model_card
from mmml.losses.robust import RobustMatchingLoss
from mmml.processing import train_multilingual_tokenizer
from mmml.training import (
    LoopSettings,
    TrainingHooks,
    build_optimizer_and_schedule,
    parse_args,
    run_training_loop,
    to_json_dict,
    warn_if_cpu_threads_idle,
)
from mmml.training.robust import NoisyCorrespondenceTracker

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "mclip_tiny.yaml"
logger = logging.getLogger("mmml.recipes.pretrain")


ROBUST_METHODS = (None, "rcar")
MODEL_FAMILIES = {"mclip": ("MCLIPConfig", "MCLIPModel"), "vse": ("VSEConfig", "VSEModel")}


@dataclass
class PretrainArguments:
    output_dir: str = "outputs/mclip_tiny"
    seed: int = 0
    # Data: "embedded" generates the scene dataset; otherwise a folder with {train,validation,test}.jsonl.
    data: str = "embedded"
    languages: list[str] | None = None
    num_train_scenes: int = 20000
    num_val_scenes: int = 500
    num_test_scenes: int = 1000
    captions_per_language: int = 2
    difficulty: int = 0
    image_size: int = 60
    skip_bad_samples: bool = False
    # Noisy correspondence (benchmarks of robust training): this fraction of the *training* pairs gets
    # the captions of another image ("complete") or half of another image's captions ("partial").
    noise_rate: float = 0.0
    noise_kind: str = "complete"
    # Model: a pretrained folder / Hub id, or an MCLIPConfig as a dict.
    model_name_or_path: str | None = None
    model_config: dict = field(default_factory=dict)
    # The model family: "mclip" or "vse" (for a new model and for loading model_name_or_path).
    model_family: str = "mclip"
    tokenizer_vocab_size: int = 2000
    # The tokenizer is trained on at most this many training captions (a seeded sample; None: all).
    tokenizer_training_texts: int | None = 50000
    max_text_length: int = 128
    # Optimisation.
    per_device_train_batch_size: int = 256
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
    # End this run at this step (a checkpoint is written) to fit a job's time limit; continue later
    # with --resume_from_checkpoint latest. The schedule still follows max_steps.
    stop_after_steps: int | None = None
    mixed_precision: str = "no"
    # None: use the CPU when torch sees no accelerator. Accelerate only sets up multi-process CPU
    # training (gloo) when told to use the CPU, so `accelerate launch --multi_gpu --num_processes 2`
    # on a CPU-only machine needs this to be true, else each process trains alone.
    cpu: bool | None = None
    # Evaluation, checkpoints, logging.
    eval_every_steps: int = 250
    eval_batch_size: int = 512
    checkpoint_every_steps: int = 250
    keep_checkpoints: int = 2
    resume_from_checkpoint: str | None = None
    log_every_steps: int = 25
    log_with: str | None = None
    # Robust training against noisy pairs: None (plain) or "rcar" (beta-mixture split of per-sample
    # losses each epoch, refurbished InfoNCE targets and soft-margin hardest-negative triplet loss).
    robust: str | None = None
    rcar_warmup_epochs: int = 2
    rcar_contrastive_weight: float = 1.0
    rcar_triplet_weight: float = 1.0
    rcar_margin: float = 0.2
    # The split is used only when the mixture's components are this well separated (Ashman's D).
    rcar_min_separation: float = 0.5

    def __post_init__(self):
        if self.max_steps <= 0:
            raise ValueError(f"max_steps must be > 0, got {self.max_steps}")
        if self.per_device_train_batch_size <= 1:
            raise ValueError("per_device_train_batch_size must be > 1 for a contrastive loss")
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise ValueError(f"mixed_precision must be 'no', 'bf16' or 'fp16', got {self.mixed_precision!r}")
        self.noise_rate = check_noise_rate(self.noise_rate)
        if self.noise_kind not in NOISE_KINDS:
            raise ValueError(f"noise_kind must be one of {NOISE_KINDS}, got {self.noise_kind!r}")
        if self.robust not in ROBUST_METHODS:
            raise ValueError(f"robust must be one of {ROBUST_METHODS}, got {self.robust!r}")
        if self.model_family not in MODEL_FAMILIES:
            raise ValueError(f"model_family must be one of {sorted(MODEL_FAMILIES)}, got {self.model_family!r}")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            raise ValueError(f"max_grad_norm must be None or > 0, got {self.max_grad_norm!r}")
        if self.tokenizer_training_texts is not None and self.tokenizer_training_texts < 1:
            raise ValueError(f"tokenizer_training_texts must be None or >= 1, got {self.tokenizer_training_texts!r}")
        if self.robust and self.group_by_length:
            raise ValueError("robust training samples uniformly; set group_by_length false")


def load_splits(args: PretrainArguments) -> dict:
    """train / validation / test as `datasets.Dataset`s with `image` and `captions` columns."""
    if args.data == "embedded":
        config = SceneConfig(
            num_train=args.num_train_scenes,
            num_val=args.num_val_scenes,
            num_test=args.num_test_scenes,
            captions_per_language=args.captions_per_language,
            image_size=args.image_size,
            difficulty=args.difficulty,
            seed=args.seed,
            **({"languages": tuple(args.languages)} if args.languages else {}),
        )
        return dict(build_scene_dataset(config))
    folder = Path(args.data)
    return {
        split: load_manifest(folder / f"{split}.jsonl", skip_bad_samples=args.skip_bad_samples)
        for split in ("train", "validation", "test")
    }


def build_processor(args: PretrainArguments, accelerator: Accelerator, train_split) -> mmml.MCLIPProcessor:
    """The model's processor; for a new model, a sentencepiece tokenizer trained on the train captions.

    It is built once (main process), saved in the output folder, and loaded from there by every
    process and by resumed runs, so all of them tokenize identically.
    """
    if args.model_name_or_path is not None:
        return AutoProcessor.from_pretrained(args.model_name_or_path)
    processor_dir = Path(args.output_dir) / "processor"
    if accelerator.is_main_process and not (processor_dir / "processor_config.json").exists():
        corpus = [text for row in train_split["captions"] for texts in row.values() for text in (texts or [])]
        if args.tokenizer_training_texts is not None and len(corpus) > args.tokenizer_training_texts:
            keep = random.Random(args.seed).sample(range(len(corpus)), args.tokenizer_training_texts)
            corpus = [corpus[i] for i in sorted(keep)]
        tokenizer = train_multilingual_tokenizer(corpus, args.tokenizer_vocab_size, args.max_text_length)
        image_processor = CLIPImageProcessor(
            size={"shortest_edge": args.image_size}, crop_size={"height": args.image_size, "width": args.image_size}
        )
        mmml.MCLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(processor_dir)
    accelerator.wait_for_everyone()
    return AutoProcessor.from_pretrained(processor_dir)


def add_training_noise(args: PretrainArguments, splits: dict):
    """Corrupt `noise_rate` of the training pairs in place of `splits["train"]`; the noise mask (or None)."""
    if args.noise_rate == 0:
        return None
    splits["train"], mask = add_noise_to_dataset(splits["train"], args.noise_rate, args.noise_kind, args.seed)
    logger.info("made %d of %d training pairs %sly noisy", int(mask.sum()), len(mask), args.noise_kind)
    return mask


def build_model(args: PretrainArguments, processor) -> mmml.MCLIPModel:
    config_name, model_name = MODEL_FAMILIES[args.model_family]
    if args.model_name_or_path is not None:
        return getattr(mmml, model_name).from_pretrained(args.model_name_or_path)
    config_kwargs = dict(args.model_config)
    text_config = dict(config_kwargs.pop("text_config", {}))
    tokenizer = processor.tokenizer
    text_config.setdefault("vocab_size", len(tokenizer))
    text_config.setdefault("pad_token_id", tokenizer.pad_token_id)
    text_config.setdefault("max_position_embeddings", args.max_text_length + 2)
    vision_config = dict(config_kwargs.pop("vision_config", {}))
    vision_config.setdefault("image_size", args.image_size)
    config = getattr(mmml, config_name)(text_config=text_config, vision_config=vision_config, **config_kwargs)
    return getattr(mmml, model_name)(config)


def needs_multitask_items(args: PretrainArguments) -> bool:
    """Items with ids (RCAR), a second caption and labels (a VSE model's auxiliary tasks)."""
    return args.robust is not None or args.model_family != "mclip"


def get_dataloaders(args: PretrainArguments, splits: dict, processor, model=None) -> tuple[list, DataLoader]:
    """The training loader and the objects whose `set_epoch` must be called each epoch."""
    if model is not None and needs_multitask_items(args):
        config = getattr(model, "config", None)
        pairs = MultiTaskImageTextPairs(
            splits["train"], processor.image_processor, languages=args.languages, seed=args.seed,
            paired_caption=bool(getattr(config, "text_matching_weight", 0)),
            num_labels=getattr(config, "num_labels", None) if getattr(config, "classification_weight", 0) else None,
        )
        collate = MultiTaskCollator(processor.tokenizer, args.max_text_length)
    else:
        pairs = ImageTextPairs(splits["train"], processor.image_processor, languages=args.languages, seed=args.seed)
        collate = ImageTextCollator(processor.tokenizer, args.max_text_length)
    # Creating a DataLoader iterator draws a seed; from a generator of its own, not from the global
    # RNG, so a resumed run (which starts a new iterator mid-epoch) keeps the dropout RNG stream.
    generator = torch.Generator().manual_seed(args.seed)
    if args.group_by_length:
        batches = LengthGroupedBatchSampler(pairs, args.per_device_train_batch_size, seed=args.seed)
        loader = DataLoader(pairs, batch_sampler=batches, collate_fn=collate, generator=generator)
        return [pairs, batches], loader
    loader = DataLoader(pairs, batch_size=args.per_device_train_batch_size, shuffle=True, drop_last=True,
                        collate_fn=collate, generator=generator)
    return [pairs], loader


def _kept(noise_mask, pairs):
    """The noise mask of the rows the pairs dataset kept (rows without a caption are left out)."""
    return None if noise_mask is None else noise_mask[pairs.row_indices]


def evaluate(accelerator: Accelerator, model, evaluator: RetrievalEvaluator, dataset) -> dict | None:
    """Retrieval metrics on the main process (others wait); None elsewhere."""
    result = None
    if accelerator.is_main_process:
        result = evaluator.evaluate(accelerator.unwrap_model(model), dataset)
    accelerator.wait_for_everyone()
    return result


class RobustTraining:
    """RCAR around any mmml dual encoder: per-sample losses -> clean probabilities -> refurbished loss."""

    def __init__(self, args: PretrainArguments, num_samples: int, noise_mask, output_dir: str | Path):
        self.tracker = NoisyCorrespondenceTracker(num_samples, args.rcar_warmup_epochs, noise_mask,
                                                  args.rcar_min_separation)
        self.loss_fn = RobustMatchingLoss(args.rcar_contrastive_weight, args.rcar_triplet_weight, args.rcar_margin)
        # Until the first usable split, InfoNCE alone: VSE++'s hardest negatives from a random start
        # collapsed the embedding to a constant at 50% noise (BENCHMARKS.md).
        self.warmup_loss_fn = RobustMatchingLoss(args.rcar_contrastive_weight or 1.0, 0.0)
        self.log_path = Path(output_dir) / "rcar.jsonl"
        self.history: list[dict] = []

    def loss(self, accelerator: Accelerator, model, batch: dict) -> torch.Tensor:
        sample_ids = batch.pop("sample_ids")
        out = model(**batch, return_loss=True)
        clean_prob = self.tracker.clean_prob_for(sample_ids)
        scale = accelerator.unwrap_model(model).scaled_logit_scale()
        loss_fn = self.loss_fn if clean_prob is not None else self.warmup_loss_fn
        robust = loss_fn(out.image_embeds, out.text_embeds, scale, clean_prob)
        self.tracker.record(sample_ids, robust.per_sample_loss)
        auxiliary = getattr(out, "auxiliary_loss", None)
        return robust.loss if auxiliary is None else robust.loss + auxiliary

    def end_epoch(self, accelerator: Accelerator, epoch: int) -> dict:
        stats = self.tracker.end_epoch(epoch, accelerator.device)
        if accelerator.is_main_process:
            with self.log_path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(stats) + "\n")
            auc = stats.get("clean_prob_auc")
            accelerator.print(f"rcar epoch {epoch}: {stats['status']}"
                              + (f", clean-probability AUC {auc:.3f}" if auc is not None else ""))
        self.history.append(stats)
        return stats

    def state_dict(self) -> dict:
        return {"tracker": self.tracker.state_dict(), "history": self.history}

    def load_state_dict(self, state: dict) -> None:
        self.tracker.load_state_dict(state["tracker"])
        self.history = list(state["history"])


def train(args: PretrainArguments, accelerator: Accelerator, model, processor, splits: dict,
          noise_mask=None) -> dict:
    epoch_aware, train_loader = get_dataloaders(args, splits, processor, model)
    robust = RobustTraining(args, len(epoch_aware[0]), _kept(noise_mask, epoch_aware[0]), args.output_dir) \
        if args.robust == "rcar" else None
    optimizer, scheduler = build_optimizer_and_schedule(
        model, args.learning_rate, args.weight_decay, args.warmup_steps, args.max_steps
    )
    model, optimizer, train_loader, scheduler = accelerator.prepare(model, optimizer, train_loader, scheduler)
    evaluator = RetrievalEvaluator(processor, languages=args.languages, batch_size=args.eval_batch_size)
    steps_per_epoch = len(train_loader)
    if steps_per_epoch == 0:
        raise ValueError(
            f"the training set ({len(epoch_aware[0])} pairs) is smaller than one global batch "
            f"({args.per_device_train_batch_size} x {accelerator.num_processes} processes)"
        )
    history: list[dict] = []
    start = time.perf_counter()

    def compute_loss(batch: dict) -> torch.Tensor:
        if robust is not None:
            return robust.loss(accelerator, model, batch)
        return model(**batch, return_loss=True).loss

    def after_step(step: int) -> None:
        if args.eval_every_steps and step % args.eval_every_steps == 0 and step < args.max_steps:
            result = evaluate(accelerator, model, evaluator, splits["validation"])
            model.train()
            if result is not None:
                history.append({"step": step, "elapsed_s": round(time.perf_counter() - start, 2),
                                "validation": result["mean"]})
                accelerator.print(f"step {step}: validation t2i_r1 {result['mean']['t2i_r1']:.1f} "
                                  f"i2t_r1 {result['mean']['i2t_r1']:.1f} rsum {result['mean']['rsum']:.1f}")
                accelerator.log({f"validation/{k}": v for k, v in result["mean"].items()}, step=step)
        if robust is not None and step % steps_per_epoch == 0:
            robust.end_epoch(accelerator, step // steps_per_epoch - 1)

    def state() -> dict:
        return {"history": history, **({"rcar": robust.state_dict()} if robust is not None else {})}

    def load_state(saved: dict) -> None:
        history[:] = saved.get("history", [])
        if robust is not None and "rcar" in saved:
            robust.load_state_dict(saved["rcar"])

    settings = LoopSettings(
        total_steps=args.max_steps, stop_after_steps=args.stop_after_steps, log_every_steps=args.log_every_steps,
        checkpoint_every_steps=args.checkpoint_every_steps, keep_checkpoints=args.keep_checkpoints,
        max_grad_norm=args.max_grad_norm,
    )
    outcome = run_training_loop(
        accelerator, model, optimizer, scheduler, train_loader, compute_loss, settings,
        checkpoint_dir=args.output_dir, log_path=Path(args.output_dir) / "metrics.jsonl", epoch_aware=epoch_aware,
        resume_from_checkpoint=args.resume_from_checkpoint,
        hooks=TrainingHooks(after_step=after_step, state=state, load_state=load_state),
    )
    result = {"model": model, "history": history, "train_time_s": outcome.train_time_s, "finished": outcome.finished}
    if robust is not None:
        result["rcar_history"] = robust.history
    return result


def main(argv: list[str] | None = None) -> dict | None:
    args = parse_args(PretrainArguments, sys.argv[1:] if argv is None else argv, DEFAULT_CONFIG)
    accelerator = Accelerator(
        cpu=args.cpu if args.cpu is not None else not torch.accelerator.is_available(),
        mixed_precision=args.mixed_precision,
        log_with=args.log_with,
        project_dir=args.output_dir,
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )
    logging.basicConfig(level=logging.INFO if accelerator.is_main_process else logging.WARNING,
                        format="%(asctime)s %(name)s: %(message)s")
    accelerator.print(f"output_dir: {Path(args.output_dir).resolve()}")
    warn_if_cpu_threads_idle(accelerator)
    os.makedirs(args.output_dir, exist_ok=True)
    if args.log_with:
        accelerator.init_trackers("mmml-pretrain", config=to_json_dict(args))
    set_seed(args.seed)

    splits = load_splits(args)
    noise_mask = add_training_noise(args, splits)
    processor = build_processor(args, accelerator, splits["train"])
    set_seed(args.seed)  # the same initial weights whatever data preparation consumed
    model = build_model(args, processor)
    accelerator.print(f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters")

    outcome = train(args, accelerator, model, processor, splits, noise_mask)
    if not outcome["finished"]:
        accelerator.print(f"stopped at step {args.stop_after_steps}; continue with --resume_from_checkpoint latest")
        accelerator.end_training()
        return None
    evaluator = RetrievalEvaluator(processor, languages=args.languages, batch_size=args.eval_batch_size)
    test = evaluate(accelerator, outcome["model"], evaluator, splits["test"])
    accelerator.wait_for_everyone()
    summary = None
    if accelerator.is_main_process:
        final_dir = Path(args.output_dir) / "final"
        accelerator.unwrap_model(outcome["model"]).save_pretrained(final_dir)
        processor.save_pretrained(final_dir)
        save_model_card(accelerator.unwrap_model(outcome["model"]), final_dir, f"mmml/{Path(args.output_dir).name}", test)
        summary = {"test": test, "train_time_s": round(outcome["train_time_s"], 1),
                   "validation_history": outcome["history"], "args": to_json_dict(args)}
        if "rcar_history" in outcome:
            summary["rcar_history"] = outcome["rcar_history"]
        metrics_path = Path(args.output_dir) / "metrics.json"
        metrics_path.with_suffix(".json.tmp").write_text(json.dumps(summary, indent=2), encoding="utf-8")
        os.replace(metrics_path.with_suffix(".json.tmp"), metrics_path)
        print_report(test)
        accelerator.print(f"saved model and processor to {final_dir.resolve()}")
    accelerator.end_training()
    return summary


def print_report(test: dict) -> None:
    keys = ("t2i_r1", "t2i_r5", "i2t_r1", "i2t_r5", "rsum")
    print("test retrieval (%):")
    print(f"{'lang':<6}" + "".join(f"{k:>9}" for k in keys))
    for lang, metrics in test.items():
        print(f"{lang:<6}" + "".join(f"{metrics[k]:>9.1f}" for k in keys))


if __name__ == "__main__":
    main()
