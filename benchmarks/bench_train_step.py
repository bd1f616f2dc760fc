"""Training-step throughput: `mmml.MCLIPModel` (CLIP towers) vs transformers' `CLIPModel`, same run.

The MCLIPModel is `MCLIPModel.from_clip(clip)`: same config, same weights. Both models get the
same AdamW settings and the same random batch. One training step is

    forward(input_ids, pixel_values, attention_mask, return_loss=True) -> loss.backward()
    -> optimizer.step() -> optimizer.zero_grad()

After warm-up, the two models are timed in interleaved rounds (A B, then B A, ...), `--steps` steps
per model per round, so machine noise (other processes on a shared CPU) hits both alike. Reported:
median step time and samples/s per model, and the time ratio MCLIP/CLIP as (1) the median over
rounds of the paired per-round ratio (the headline: the most robust to load bursts), (2) the ratio
of the overall median step times, (3) min/min and (4) process-CPU-time medians. `--aa` times
CLIPModel against a copy of itself to show the noise floor of the machine.

The first-step losses of the two models are compared (allclose) as evidence that they compute the
same function. `torch.set_num_threads` is left at torch's default (one thread per core) unless
`--threads` is given.

    .venv/bin/python benchmarks/bench_train_step.py --config tiny
    .venv/bin/python benchmarks/bench_train_step.py --config mid --bf16
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import CLIPConfig, CLIPModel  # noqa: E402

import mmml  # noqa: E402

CONFIGS = {
    # 2+2 layers, hidden 128, 4 heads, 64 px / patch 8 (64 patches + CLS), 32 tokens, vocab 2000.
    "tiny": dict(layers=2, hidden=128, intermediate=512, heads=4, image_size=64, patch_size=8,
                 text_length=32, vocab=2000, projection=128, batch=256),
    "mid": dict(layers=4, hidden=256, intermediate=1024, heads=4, image_size=64, patch_size=8,
                text_length=32, vocab=2000, projection=256, batch=64),
}


def clip_config(c: dict) -> CLIPConfig:
    vocab = c["vocab"]
    return CLIPConfig(
        text_config=dict(hidden_size=c["hidden"], intermediate_size=c["intermediate"],
                         num_hidden_layers=c["layers"], num_attention_heads=c["heads"], vocab_size=vocab,
                         max_position_embeddings=c["text_length"], bos_token_id=vocab - 2,
                         eos_token_id=vocab - 1, pad_token_id=0),
        vision_config=dict(hidden_size=c["hidden"], intermediate_size=c["intermediate"],
                           num_hidden_layers=c["layers"], num_attention_heads=c["heads"],
                           image_size=c["image_size"], patch_size=c["patch_size"]),
        projection_dim=c["projection"],
    )


def make_batch(c: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tokens with BOS ... EOS and right padding of random length; random pixels."""
    g = torch.Generator().manual_seed(seed)
    batch, length, vocab = c["batch"], c["text_length"], c["vocab"]
    input_ids = torch.randint(1, vocab - 2, (batch, length), generator=g)
    lengths = torch.randint(length // 4, length + 1, (batch,), generator=g)
    positions = torch.arange(length).expand(batch, length)
    attention_mask = (positions < lengths[:, None]).long()
    input_ids[:, 0] = vocab - 2  # BOS
    input_ids[torch.arange(batch), lengths - 1] = vocab - 1  # EOS, pooled by CLIP's text tower
    input_ids = input_ids.masked_fill(attention_mask == 0, 0)
    pixel_values = torch.randn(batch, 3, c["image_size"], c["image_size"], generator=g)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "pixel_values": pixel_values}


def make_optimizer(model: torch.nn.Module) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.1)


def train_step(model, optimizer, batch, bf16: bool) -> torch.Tensor:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = model(**batch, return_loss=True).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def timed_steps(model, optimizer, batch, bf16: bool, n: int) -> tuple[list[float], list[float]]:
    """Wall-clock and process CPU seconds (all threads) of `n` training steps."""
    wall, cpu = [], []
    for _ in range(n):
        start, start_cpu = time.perf_counter(), time.process_time()
        train_step(model, optimizer, batch, bf16)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="tiny")
    parser.add_argument("--batch", type=int, default=None, help="override the config's batch size")
    parser.add_argument("--steps", type=int, default=1, help="timed steps per model per round")
    parser.add_argument("--rounds", type=int, default=20, help="interleaved rounds (order alternates)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per model before timing")
    parser.add_argument("--bf16", action="store_true", help="forward under torch.autocast('cpu', bfloat16)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads (default: leave torch's default, one per core)")
    parser.add_argument("--aa", action="store_true",
                        help="A/A calibration: time CLIPModel against a copy of itself instead of MCLIPModel; "
                             "the spread of its ratio is the noise floor of this machine")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    c = dict(CONFIGS[args.config])
    if args.batch:
        c["batch"] = args.batch
    torch.manual_seed(args.seed)
    clip = CLIPModel(clip_config(c)).train()
    if args.aa:
        a, b = "CLIP", "CLIP-copy"
        other = copy.deepcopy(clip).train()
    else:
        a, b = "CLIP", "MCLIP"
        other = mmml.MCLIPModel.from_clip(clip).train()
    models = {a: clip, b: other}
    optimizers = {name: make_optimizer(m) for name, m in models.items()}
    batch = make_batch(c, args.seed)

    n_params = sum(p.numel() for p in clip.parameters())
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, python {platform.python_version()}, "
          f"threads {torch.get_num_threads()}, cpu count {os.cpu_count()}")
    print(f"config {args.config}: {c}, params {n_params / 1e6:.2f}M, bf16 autocast {args.bf16}")
    print(f"attention: {a} {clip.config.text_config._attn_implementation}/{clip.config.vision_config._attn_implementation}"
          f", {b} {other.text_model.config._attn_implementation}/{other.vision_model.config._attn_implementation}")

    # First step (identical weights): the losses must agree.
    first = {name: train_step(models[name], optimizers[name], batch, args.bf16) for name in models}
    atol = 1e-2 if args.bf16 else 1e-5
    losses_equal = torch.allclose(first[a], first[b], rtol=1e-5, atol=atol)
    loss_diff = abs(first[a] - first[b]).item()
    print(f"first-step loss: {a} {first[a].item():.6f}  {b} {first[b].item():.6f}  "
          f"|diff| {loss_diff:.2e}  allclose(atol={atol}): {losses_equal}")
    other_params = dict(other.named_parameters())
    max_param_diff = max((p - other_params[n]).abs().max().item() for n, p in clip.named_parameters())
    print(f"max |param diff| after the first optimizer step: {max_param_diff:.2e}")

    for _ in range(args.warmup - 1):  # the first step above counts as one warm-up step
        for name in models:
            train_step(models[name], optimizers[name], batch, args.bf16)

    times = {name: [] for name in models}
    cpu_times = {name: [] for name in models}
    round_ratios = []
    for r in range(args.rounds):
        order = [a, b] if r % 2 == 0 else [b, a]
        this_round = {}
        for name in order:
            this_round[name], cpu = timed_steps(models[name], optimizers[name], batch, args.bf16, args.steps)
            times[name].extend(this_round[name])
            cpu_times[name].extend(cpu)
        ratio = statistics.median(this_round[b]) / statistics.median(this_round[a])
        round_ratios.append(ratio)
        print(f"round {r:2d}: {a} {statistics.median(this_round[a]) * 1e3:8.1f} ms  "
              f"{b} {statistics.median(this_round[b]) * 1e3:8.1f} ms  ratio {ratio:.3f}")

    med = {name: statistics.median(t) for name, t in times.items()}
    med_cpu = {name: statistics.median(t) for name, t in cpu_times.items()}
    ratio_all = med[b] / med[a]
    ratio_rounds = statistics.median(round_ratios)
    q = statistics.quantiles(round_ratios, n=4) if len(round_ratios) > 1 else [ratio_rounds] * 3
    print()
    print(f"{'model':10s} {'median step ms':>15s} {'min ms':>9s} {'samples/s':>10s} {'median CPU ms':>14s}")
    for name in models:
        print(f"{name:10s} {med[name] * 1e3:15.1f} {min(times[name]) * 1e3:9.1f} {c['batch'] / med[name]:10.1f} "
              f"{med_cpu[name] * 1e3:14.1f}")
    print(f"time ratio {b}/{a}: {ratio_rounds:.3f} median of {args.rounds} paired per-round ratios "
          f"(quartiles {q[0]:.3f}-{q[2]:.3f}); {ratio_all:.3f} ratio of overall medians; "
          f"{min(times[b]) / min(times[a]):.3f} min/min; {med_cpu[b] / med_cpu[a]:.3f} process-CPU-time medians")
    label = args.config + (" bf16" if args.bf16 else "") + (f" {args.threads}thr" if args.threads else "")
    label += " A/A" if args.aa else ""
    print(f"RESULT | {label} | {c['batch']} | {c['batch'] / med[a]:.1f} | {c['batch'] / med[b]:.1f} | "
          f"{ratio_rounds:.3f} [{q[0]:.3f}, {q[2]:.3f}] | {ratio_all:.3f} | "
          f"{'equal' if losses_equal else 'DIFFERENT'} (|diff| {loss_diff:.1e}) |")


if __name__ == "__main__":
    main()
