"""Training-step time of the main job's tiny M-CLIP with and without `text_length_buckets`, same run.

    .venv/bin/python benchmarks/bench_text_length_buckets.py [--steps 30] [--buckets 4]

Builds the main job's data, tokenizer and model exactly as `recipes/pretrain.py` does with its
default config (on just enough training scenes for the batches timed), then times forward + backward + AdamW steps on the same
batches for two copies of the model (same initial weights): `text_length_buckets` 1 (one padded
text-tower call) and N, interleaved so that both see the same machine state. Prints seconds per
step, their ratio, and the largest difference between the two copies' losses.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from accelerate import Accelerator

from mmml.training import parse_args
from mmml.training.recipe_setup import build_model, build_model_config, build_processor, build_train_loader, load_splits

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))
import pretrain  # noqa: E402  (its argument dataclass and default config only)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--buckets", type=int, default=4)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as output_dir:
        args = parse_args(pretrain.PretrainArguments, ["--output_dir", output_dir, "--num_train_scenes", str(128 * (options.steps + 3))],
                          pretrain.DEFAULT_CONFIG)
        splits = load_splits(args)
        processor = build_processor(args, Accelerator(cpu=True), splits["train"], build_model_config(args))
        models = []
        for buckets in (1, options.buckets):
            args.model_config = {**args.model_config, "text_length_buckets": buckets}
            torch.manual_seed(0)
            models.append(build_model(args, processor, build_model_config(args)).train())
        _, loader, _ = build_train_loader(args, splits["train"], processor, models[0])
        batches = [batch for batch, _ in zip(loader, range(options.steps + 2))]
    optimizers = [torch.optim.AdamW(model.parameters(), lr=args.learning_rate) for model in models]
    seconds, max_loss_difference = [0.0, 0.0], 0.0
    for index, batch in enumerate(batches):
        losses = []
        for which, (model, optimizer) in enumerate(zip(models, optimizers)):
            start = time.perf_counter()
            loss = model(**{k: v for k, v in batch.items() if k != "sample_ids"}, return_loss=True).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if index >= 2:  # the first steps warm up allocators and kernels
                seconds[which] += time.perf_counter() - start
            losses.append(loss.item())
        max_loss_difference = max(max_loss_difference, abs(losses[0] - losses[1]))
    real = sum(int(batch["attention_mask"].sum()) for batch in batches)
    padded = sum(batch["attention_mask"].numel() for batch in batches)
    timed = len(batches) - 2
    per_step = [total / timed for total in seconds]
    print(f"batch {args.per_device_train_batch_size}, {timed} timed steps, "
          f"{torch.get_num_threads()} threads; real tokens are {real / padded:.0%} of the padded batches")
    print(f"text_length_buckets=1: {per_step[0]:.3f} s/step")
    print(f"text_length_buckets={options.buckets}: {per_step[1]:.3f} s/step")
    print(f"ratio (bucketed / padded): {per_step[1] / per_step[0]:.2f}")
    print(f"largest loss difference over {len(batches)} steps: {max_loss_difference:.2e}")


if __name__ == "__main__":
    main()
