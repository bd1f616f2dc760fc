"""Encoding throughput of mmml's EfficientNet-Lite tower against the reference module (issue 12, item 6).

    .venv/bin/python benchmarks/bench_efficientnet_lite.py [--variant efficientnet-lite0] [--batch_size 64] [--repeats 5]

Same process, same random 224 px batch, the two modules timed in alternation (eval mode, no_grad) so that
both see the same machine state; prints images/s of each and the ratio of mean times (mmml / reference).
Then one training step of the whole tower (what the `full` row of benchmarks/real_photos.py pays) and the
frozen-tower cache: the same batch once more through `FrozenTowerCache` (a hit) and what one
image costs in it.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

import mmml  # noqa: F401
from mmml.models.efficientnet_lite.convert_efficientnet_lite import convert, reference_weights_path
from mmml.training.freezing import FrozenTowerCache, freeze_modules


def timed(module, pixels) -> float:
    start = time.perf_counter()
    with torch.no_grad():
        module(pixels)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", default="efficientnet-lite0")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    options = parser.parse_args()
    from efficientnet_lite_pytorch import EfficientNet

    reference = EfficientNet.from_pretrained(options.variant, weights_path=str(reference_weights_path(options.variant)))
    with tempfile.TemporaryDirectory() as folder:
        ours = convert(options.variant, folder)
    reference.eval()
    ours.eval()
    size = ours.config.image_size
    pixels = torch.randn(options.batch_size, 3, size, size, generator=torch.Generator().manual_seed(0))
    timed(reference, pixels), timed(ours, pixels)  # warm-up (allocator, oneDNN primitives)
    times = {"reference": [], "mmml": []}
    for _ in range(options.repeats):
        times["reference"].append(timed(reference, pixels))
        times["mmml"].append(timed(ours, pixels))
    for name, values in times.items():
        print(f"{name:>9}: {options.batch_size / statistics.mean(values):7.1f} images/s "
              f"(mean of {options.repeats} batches of {options.batch_size} at {size} px, "
              f"min {min(values):.3f} s, max {max(values):.3f} s)")
    print(f"ratio mmml / reference (mean time): {statistics.mean(times['mmml']) / statistics.mean(times['reference']):.3f}")

    ours.train()
    start = time.perf_counter()
    ours(pixels).logits.logsumexp(-1).mean().backward()
    step = time.perf_counter() - start
    print(f"training step (forward + backward, train mode): {step:.2f} s per batch of {options.batch_size} "
          f"({options.batch_size / step:.1f} images/s): what fine-tuning the whole tower costs")
    ours.eval()

    tower = ours.efficientnet_lite
    freeze_modules(ours, ["efficientnet_lite"])
    cache = FrozenTowerCache(tower).install()
    miss = timed(tower, pixels)
    hit = timed(tower, pixels)
    print(f"frozen-tower cache: first pass {miss:.3f} s, cached pass {hit:.4f} s ({miss / hit:.0f}x); "
          f"{cache.nbytes / len(cache.entries) / 1024:.0f} KiB per image (pooled + {tower.config.hidden_size}-d "
          f"map positions, float32)")


if __name__ == "__main__":
    main()
