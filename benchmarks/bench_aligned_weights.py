"""Forward / training-step time of a reloaded M-CLIP with weights where transformers' loader leaves them
(views of the memory-mapped safetensors file, mostly not 64-byte aligned) vs aligned copies, same run.

Both models come from the same saved checkpoint:

- "mapped": `PreTrainedModel.from_pretrained` alone (the mmml mixin skipped), i.e. what
  `from_pretrained` gave before `align_parameters`: every weight a view of the file mapping;
- "aligned": `mmml.MCLIPModel.from_pretrained`, which ends with `align_parameters(own_memory=True)`;
- "offset": the aligned model's weights copied into ordinary heap memory at the mapped model's
  address offsets (mod 64), to tell misalignment from living in a file mapping.

After warm-up they are timed in interleaved rounds (A B C, then C B A, ...) so machine noise hits
all alike; reported: median wall and process-CPU times per model, the median of the paired per-round ratios to
"aligned", and whether the models' outputs are bit-identical (they need not be: some BLAS code paths sum
in another order for unaligned data; run with MKL_ENABLE_INSTRUCTIONS=SSE4_2 to see one).

    .venv/bin/python benchmarks/bench_aligned_weights.py
    MKL_ENABLE_INSTRUCTIONS=SSE4_2 .venv/bin/python benchmarks/bench_aligned_weights.py
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import statistics
import subprocess
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from transformers import PreTrainedModel  # noqa: E402

import mmml  # noqa: E402


def cpu_model() -> str:
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def build_config(hidden: int, layers: int, image_size: int) -> mmml.MCLIPConfig:
    return mmml.MCLIPConfig(
        vision_config=dict(model_type="clip_vision_model", hidden_size=hidden, intermediate_size=4 * hidden,
                           num_hidden_layers=layers, num_attention_heads=hidden // 64, image_size=image_size,
                           patch_size=8),
        text_config=dict(model_type="bert", hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers,
                         num_attention_heads=hidden // 64, vocab_size=2000, max_position_embeddings=64,
                         hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
        projection_dim=hidden,
    )


def at_offsets(model, like) -> None:
    """Move each of `model`'s parameters into heap memory at the address offset (mod 64) of `like`'s."""
    offsets = {name: p.data_ptr() % 64 for name, p in like.named_parameters()}
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            raw = torch.empty(parameter.numel() * parameter.element_size() + 128, dtype=torch.uint8)
            start = (-raw.data_ptr() % 64) + offsets[name]
            view = raw[start:start + parameter.numel() * parameter.element_size()].view(parameter.dtype)
            parameter.data = view.view(parameter.shape).copy_(parameter)


def alignment_histogram(model) -> dict[int, int]:
    return dict(sorted(collections.Counter(p.data_ptr() % 64 for p in model.parameters()).items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seq", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=32, help="patch size 8")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=1, help="timed calls per model per round")
    parser.add_argument("--no-train", action="store_true", help="skip the training-step timing")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    folder = tempfile.mkdtemp()
    mmml.MCLIPModel(build_config(args.hidden, args.layers, args.image_size)).save_pretrained(folder)
    models = {
        "mapped": PreTrainedModel.from_pretrained.__func__(mmml.MCLIPModel, folder),
        "aligned": mmml.MCLIPModel.from_pretrained(folder),
        "offset": mmml.MCLIPModel.from_pretrained(folder),
    }
    at_offsets(models["offset"], models["mapped"])
    g = torch.Generator().manual_seed(0)
    batch = {"input_ids": torch.randint(5, 2000, (args.batch, args.seq), generator=g),
             "attention_mask": torch.ones(args.batch, args.seq, dtype=torch.long),
             "pixel_values": torch.randn(args.batch, 3, args.image_size, args.image_size, generator=g)}
    print(f"CPU: {cpu_model()}; torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"MKL_ENABLE_INSTRUCTIONS={os.environ.get('MKL_ENABLE_INSTRUCTIONS', '(unset)')}")
    print(f"M-CLIP hidden {args.hidden}, {args.layers} layers per tower, "
          f"{sum(p.numel() for p in models['aligned'].parameters()) / 1e6:.1f}M parameters; batch {args.batch} "
          f"(text length {args.seq}, {args.image_size}x{args.image_size} images, {(args.image_size // 8) ** 2} patches)")
    for name, model in models.items():
        print(f"  {name:8s} parameter address % 64 -> count: {alignment_histogram(model)}")

    with torch.no_grad():
        outs = {name: model.eval()(**batch) for name, model in models.items()}
    one = {k: v[:1] for k, v in batch.items()}
    with torch.no_grad():
        ones = {name: model(**one) for name, model in models.items()}
    for other in ("mapped", "offset"):
        for label, results in (("batch", outs), ("batch of 1", ones)):
            for field in ("text_embeds", "image_embeds", "logits_per_image"):
                a, b = getattr(results[other], field), getattr(results["aligned"], field)
                print(f"  {other} vs aligned, {label}, {field}: bit-identical {torch.equal(a, b)}, "
                      f"max |diff| {(a - b).abs().max().item():.3g}")

    def forward(model):
        with torch.no_grad():
            model(**batch)

    optimizers = {name: torch.optim.SGD(model.parameters(), lr=1e-4) for name, model in models.items()}

    def train_step(model, name):
        model.train()
        loss = model(**batch, return_loss=True).loss
        loss.backward()
        optimizers[name].step()
        optimizers[name].zero_grad(set_to_none=True)
        model.eval()

    phases = [("forward (no_grad)", lambda model, name: forward(model))]
    if not args.no_train:
        phases.append(("train step (fwd+bwd+SGD)", train_step))
    for label, fn in phases:
        for name, model in models.items():  # warm-up (the first write to a mapped weight copies its pages)
            fn(model, name)
        times = {name: [] for name in models}
        cpu_times = {name: [] for name in models}
        ratios = {name: [] for name in models if name != "aligned"}
        for round_index in range(args.rounds):
            order = list(models) if round_index % 2 == 0 else list(models)[::-1]
            this_round = {}
            for name in order:
                start, cpu_start = time.perf_counter(), time.process_time()
                for _ in range(args.steps):
                    fn(models[name], name)
                this_round[name] = (time.perf_counter() - start) / args.steps
                times[name].append(this_round[name])
                cpu_times[name].append((time.process_time() - cpu_start) / args.steps)
            for name in ratios:
                ratios[name].append(this_round[name] / this_round["aligned"])
        medians = ", ".join(f"{name} {statistics.median(t) * 1000:.1f} ms" for name, t in times.items())
        paired = ", ".join(f"{name}/aligned {statistics.median(r):.3f} (range {min(r):.3f}-{max(r):.3f})"
                           for name, r in ratios.items())
        cpu = ", ".join(f"{name} {statistics.median(t) * 1000:.1f} ms" for name, t in cpu_times.items())
        print(f"{label}: wall {medians} (medians of {args.rounds} rounds x {args.steps}); process CPU time {cpu}; "
              f"paired wall-ratio medians: {paired}")


if __name__ == "__main__":
    main()
