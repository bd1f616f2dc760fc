"""Contrastive pretraining of any registered mmml model (the tiny M-CLIP on the embedded scenes by default).

    accelerate launch recipes/pretrain.py                               # tiny M-CLIP, embedded data
    accelerate launch recipes/pretrain.py --config recipes/configs/mclip_tiny.yaml --max_steps 200
    accelerate launch recipes/pretrain.py --config recipes/configs/noisy_bench.yaml --model_type vse
    accelerate launch recipes/pretrain.py --resume_from_checkpoint latest

The model is built from `model_type` (`AutoConfig` / `AutoModel`) and `model_config`; the data
columns from the modalities its config lists; the training items from what its objectives read.
Arguments come from the YAML file (`--config`, default `configs/mclip_tiny.yaml`) and any
`--field value` (or `--model_config.field value`) override; see `PretrainArguments`.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from accelerate import Accelerator
from accelerate.utils import set_seed
from transformers import AutoConfig

from mmml.hub import save_model_card
from mmml.training import (
    LoopSettings,
    TrainingHooks,
    build_optimizer_and_schedule,
    parse_args,
    run_training_loop,
    to_json_dict,
    warn_if_cpu_threads_idle,
)
from mmml.training.recipe_arguments import (
    DataArguments,
    EvaluationArguments,
    LoopArguments,
    ModelArguments,
    OptimizationArguments,
    RobustArguments,
    run_post_inits,
)
from mmml.training.recipe_setup import (
    add_training_noise,
    build_model,
    build_model_config,
    build_processor,
    build_train_loader,
    freeze_and_cache,
    gallery_modality,
    load_splits,
    make_accelerator,
    make_evaluator,
    write_json_atomically,
)
from mmml.training.robust import RobustTraining

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "mclip_tiny.yaml"
ARGUMENT_GROUPS = (DataArguments, ModelArguments, OptimizationArguments, LoopArguments, EvaluationArguments,
                   RobustArguments)
logger = logging.getLogger("mmml.recipes.pretrain")


@dataclass
class PretrainArguments(DataArguments, ModelArguments, OptimizationArguments, LoopArguments, EvaluationArguments,
                        RobustArguments):
    output_dir: str = "outputs/mclip_tiny"

    def __post_init__(self):
        run_post_inits(self, ARGUMENT_GROUPS)
        if self.robust and self.group_by_length:
            raise ValueError("robust training samples uniformly; set group_by_length false")


def evaluate(accelerator: Accelerator, model, evaluator, dataset) -> dict | None:
    """Retrieval metrics on the main process (others wait); None elsewhere."""
    result = None
    if accelerator.is_main_process:
        result = evaluator.evaluate(accelerator.unwrap_model(model), dataset)
    accelerator.wait_for_everyone()
    return result


def train(args: PretrainArguments, accelerator: Accelerator, model, processor, splits: dict, noise_mask=None) -> dict:
    epoch_aware, train_loader, pairs = build_train_loader(args, splits["train"], processor, model)
    robust = None
    if args.robust == "rcar":
        mask = None if noise_mask is None else noise_mask[pairs.row_indices]  # rows without a caption are left out
        robust = RobustTraining(args, len(pairs), mask, args.output_dir)
    optimizer, scheduler = build_optimizer_and_schedule(
        model, args.learning_rate, args.weight_decay, args.warmup_steps, args.max_steps, args.lr_multipliers
    )
    model, optimizer, train_loader, scheduler = accelerator.prepare(model, optimizer, train_loader, scheduler)
    evaluator = make_evaluator(args, processor, accelerator.unwrap_model(model).config)
    steps_per_epoch = len(train_loader) // args.gradient_accumulation_steps
    if steps_per_epoch == 0:
        raise ValueError(
            f"the training set ({len(pairs)} pairs) is smaller than one global batch "
            f"({args.per_device_train_batch_size} x {accelerator.num_processes} processes "
            f"x {args.gradient_accumulation_steps} accumulation steps)"
        )
    history: list[dict] = []
    start = time.perf_counter()

    def compute_loss(batch: dict):
        if robust is not None:
            return robust.loss(accelerator, model, batch)
        batch.pop("sample_ids", None)
        return model(**batch, return_loss=True)

    def after_step(step: int) -> None:
        if args.eval_every_steps and step % args.eval_every_steps == 0 and step < args.max_steps:
            result = evaluate(accelerator, model, evaluator, splits["validation"])
            model.train()
            if result is not None:
                history.append({"step": step, "elapsed_s": round(time.perf_counter() - start, 2),
                                "validation": result["mean"]})
                forward, backward = recall_keys(result["mean"])
                accelerator.print(f"step {step}: validation {forward} {result['mean'][forward]:.1f} "
                                  f"{backward} {result['mean'][backward]:.1f} rsum {result['mean']['rsum']:.1f}")
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
    result = {"model": model, "history": history, "train_time_s": outcome.train_time_s, "finished": outcome.finished,
              "skipped_samples": outcome.skipped_samples}
    if robust is not None:
        result["rcar_history"] = robust.history
    return result


def main(argv: list[str] | None = None) -> dict | None:
    args = parse_args(PretrainArguments, sys.argv[1:] if argv is None else argv, DEFAULT_CONFIG)
    accelerator = make_accelerator(args)
    logging.basicConfig(level=logging.INFO if accelerator.is_main_process else logging.WARNING,
                        format="%(asctime)s %(name)s: %(message)s")
    accelerator.print(f"output_dir: {Path(args.output_dir).resolve()}")
    warn_if_cpu_threads_idle(accelerator)
    os.makedirs(args.output_dir, exist_ok=True)
    if args.log_with:
        accelerator.init_trackers("mmml-pretrain", config=to_json_dict(args))
    set_seed(args.seed)

    config = None if args.model_name_or_path else build_model_config(args)
    modalities = (config or AutoConfig.from_pretrained(args.model_name_or_path)).modalities
    splits = load_splits(args, modalities=tuple(modalities))
    noise_mask = add_training_noise(args, splits)
    processor = build_processor(args, accelerator, splits["train"], config)
    set_seed(args.seed)  # the same initial weights whatever data preparation consumed
    model = build_model(args, processor, config)
    gallery_modality(model.config)  # refuses early a model the evaluation cannot serve
    caches = freeze_and_cache(args, model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    accelerator.print(f"model: {type(model).__name__}, {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M "
                      f"parameters ({trainable / 1e6:.2f}M trainable)")

    outcome = train(args, accelerator, model, processor, splits, noise_mask)
    if not outcome["finished"]:
        accelerator.print(f"stopped at step {args.stop_after_steps}; continue with --resume_from_checkpoint latest")
        accelerator.end_training()
        return None
    evaluator = make_evaluator(args, processor, model.config)
    test = evaluate(accelerator, outcome["model"], evaluator, splits["test"])
    # The embedded clips' split of clips that differ only in direction or order (order-blind models fail it).
    temporal = evaluate(accelerator, outcome["model"], evaluator, splits["temporal_test"]) \
        if "temporal_test" in splits else None
    summary = None
    if accelerator.is_main_process:
        trained = accelerator.unwrap_model(outcome["model"])
        final_dir = Path(args.output_dir) / "final"
        trained.save_pretrained(final_dir)
        processor.save_pretrained(final_dir)
        save_model_card(trained, final_dir, f"mmml/{Path(args.output_dir).name}", test)
        summary = {"test": test, "train_time_s": round(outcome["train_time_s"], 1),
                   "validation_history": outcome["history"], "skipped_samples": outcome["skipped_samples"],
                   "args": to_json_dict(args)}
        if "rcar_history" in outcome:
            summary["rcar_history"] = outcome["rcar_history"]
        if temporal is not None:
            summary["temporal_test"] = temporal
        if caches:
            summary["frozen_tower_cache"] = {name: {"entries": len(cache.entries), "bytes": cache.nbytes,
                                                    "hits": cache.hits, "misses": cache.misses}
                                             for name, cache in caches.items()}
        write_json_atomically(Path(args.output_dir) / "metrics.json", summary)
        print_report(test)
        if temporal is not None:
            print("temporal test split (clips that differ only in direction or order):")
            print_report(temporal)
        accelerator.print(f"saved model and processor to {final_dir.resolve()}")
    accelerator.end_training()
    return summary


def recall_keys(metrics: dict) -> tuple[str, str]:
    """The R@1 keys of both directions (`t2i_r1`, `i2t_r1` for images; `t2v_r1`, `v2t_r1` for video)."""
    forward = next(key for key in metrics if key.startswith("t2") and key.endswith("_r1"))
    backward = next(key for key in metrics if key.endswith("2t_r1"))
    return forward, backward


def print_report(test: dict) -> None:
    forward, backward = recall_keys(test["mean"])
    keys = (forward, forward[:-1] + "5", backward, backward[:-1] + "5", "rsum")
    print("test retrieval (%):")
    print(f"{'lang':<6}" + "".join(f"{k:>9}" for k in keys))
    for lang, metrics in test.items():
        print(f"{lang:<6}" + "".join(f"{metrics[k]:>9.1f}" for k in keys))


if __name__ == "__main__":
    main()
