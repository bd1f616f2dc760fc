"""Peak memory and wall time of chunked retrieval ranking vs a naive full score matrix.

Random L2-normalised float32 embeddings (dimension 64 by default), 5 texts per image.
Each measurement runs in a fresh subprocess: after the embeddings are built, the
process's peak-RSS counter is reset (``/proc/self/clear_refs``, Linux), so the reported
"peak RSS" is the high-water mark (``resource.getrusage(...).ru_maxrss``) of the
ranking alone, on top of the Python + torch + embeddings baseline, which is reported
separately as "RSS before".

    python benchmarks/bench_evaluator.py            # 10k x 50k side by side + 100k x 500k chunked
    python benchmarks/bench_evaluator.py --quick    # small sizes, a smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

TEXTS_PER_IMAGE = 5


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("VmRSS not found")


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def _embeddings(num: int, dim: int, seed: int):
    import torch

    gen = torch.Generator().manual_seed(seed)
    out = torch.empty(num, dim)
    for start in range(0, num, 65536):  # in place, so building them adds no peak of its own
        block = out[start : start + 65536]
        torch.randn(block.shape, generator=gen, out=block)
        block.div_(block.norm(dim=1, keepdim=True))
    return out


def _naive_metrics(images, texts, text_to_image):
    """Materialise the whole [num_images, num_texts] matrix and rank with full-matrix ops."""
    import torch

    from mmml.eval import metrics_from_ranks

    sim = images @ texts.T
    num_images, num_texts = sim.shape
    positive = sim[text_to_image, torch.arange(num_texts)]
    t2i_ranks = (sim >= positive[None, :]).sum(dim=0)  # 1 + non-relevant >= positive
    best = torch.full((num_images,), -torch.inf).scatter_reduce(0, text_to_image, positive, reduce="amax")
    relevant_hits = torch.bincount(
        text_to_image, weights=(positive >= best[text_to_image]).double(), minlength=num_images
    )
    i2t_ranks = 1 + (sim >= best[:, None]).sum(dim=1) - relevant_hits.long()
    return metrics_from_ranks(i2t_ranks, t2i_ranks)


def worker(method: str, num_images: int, dim: int, chunk_size: int) -> dict:
    import torch

    from mmml.eval import retrieval_metrics_from_embeddings

    images = _embeddings(num_images, dim, seed=0)
    texts = _embeddings(num_images * TEXTS_PER_IMAGE, dim, seed=1)
    text_to_image = torch.arange(num_images).repeat_interleave(TEXTS_PER_IMAGE)
    rss_before = _rss_kib()
    peak_was_reset = _reset_peak_rss()
    start = time.perf_counter()
    if method == "naive":
        metrics = _naive_metrics(images, texts, text_to_image)
    else:
        metrics = retrieval_metrics_from_embeddings(images, texts, text_to_image, chunk_size=chunk_size)
    seconds = time.perf_counter() - start
    return {
        "method": method,
        "num_images": num_images,
        "num_texts": texts.shape[0],
        "dim": dim,
        "chunk_size": chunk_size if method == "chunked" else None,
        "seconds": seconds,
        "rss_before_mib": rss_before / 1024,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_was_reset": peak_was_reset,
        "metrics": metrics,
    }


def measure(method: str, num_images: int, dim: int, chunk_size: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", method, "--images", str(num_images), "--dim", str(dim)]
    cmd += ["--chunk-size", str(chunk_size)]
    load = os.getloadavg()[0]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["load_avg_1min_before"] = load
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--worker", choices=["naive", "chunked"], help=argparse.SUPPRESS)
    parser.add_argument("--images", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--chunk-size", type=int, default=2**24, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.images, args.dim, args.chunk_size)))
        return

    import torch

    small, large = (1_000, 10_000) if args.quick else (10_000, 100_000)
    plan = [
        ("naive", small, 0),
        ("chunked", small, 2**24),
        ("chunked", small, 2**20),
        ("chunked", large, 2**24),
    ]
    print(
        f"torch {torch.__version__}, {os.cpu_count()} CPUs, threads {torch.get_num_threads()}, {platform.processor()}"
    )
    print(
        "| method | images x texts | chunk_size | wall time (s) | RSS before (MiB) | peak RSS (MiB) | peak - before (MiB) |"
    )
    print("|---|---|---|---|---|---|---|")
    results = []
    for method, num_images, chunk_size in plan:
        r = measure(method, num_images, args.dim, chunk_size)
        results.append(r)
        chunk = f"2^{chunk_size.bit_length() - 1}" if r["chunk_size"] else "-"
        print(
            f"| {method} | {r['num_images']:,} x {r['num_texts']:,} | {chunk} | {r['seconds']:.1f} "
            f"| {r['rss_before_mib']:.0f} | {r['peak_rss_mib']:.0f} | {r['peak_rss_mib'] - r['rss_before_mib']:.0f} |",
            flush=True,
        )
    naive, chunked = results[0], results[1]
    same = all(abs(naive["metrics"][k] - chunked["metrics"][k]) < 1e-9 for k in naive["metrics"])
    print(f"\nsame metrics (naive vs chunked, {small:,} images): {same}")
    print(
        f"chunked/naive at {small:,} images: time x{chunked['seconds'] / naive['seconds']:.2f}, "
        f"peak increase x{(chunked['peak_rss_mib'] - chunked['rss_before_mib']) / (naive['peak_rss_mib'] - naive['rss_before_mib']):.3f}"
    )
    print("peak counter reset in every worker:", all(r["peak_was_reset"] for r in results))
    print("1-min load average before each run:", [round(r["load_avg_1min_before"], 1) for r in results])
    print("metrics at the large size:", json.dumps(results[-1]["metrics"]))


if __name__ == "__main__":
    main()
