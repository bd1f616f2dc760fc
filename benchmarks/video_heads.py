"""meanP vs seqTransf vs DI-vTR at the same training budget on the embedded clips, overall and on the
temporal split (clips that differ only in direction or order).

    .venv/bin/python benchmarks/video_heads.py [--max_steps 600] [--heads meanP,seqTransf,divtr] [-- extra recipe args]

Each row is one run of `recipes/pretrain.py --config recipes/configs/divtr_tiny.yaml` with
`--model_config.similarity_head <head>` (same data, tokenizer, towers, seed and steps), launched
one after the other with `accelerate launch --num_cpu_threads_per_process $(nproc)`. Prints a
Markdown table of test and temporal-split t2v / v2t R@1 (mean over languages) and training time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG = REPO_ROOT / "recipes" / "configs" / "divtr_tiny.yaml"


def run(head: str, output_dir: Path, max_steps: int, extra: list[str]) -> dict:
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_cpu_threads_per_process",
               str(os.cpu_count() or 1), str(REPO_ROOT / "recipes" / "pretrain.py"), "--config", str(CONFIG),
               "--output_dir", str(output_dir), "--max_steps", str(max_steps),
               "--model_config.similarity_head", head, *extra]
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=REPO_ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1",
                                                             "HF_DATASETS_OFFLINE": "1"})
    metrics = json.loads((output_dir / "metrics.json").read_text())
    metrics["wall_s"] = round(time.perf_counter() - start, 1)
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max_steps", type=int, default=600)
    parser.add_argument("--heads", default="meanP,seqTransf,divtr")
    parser.add_argument("--output_root", default=str(REPO_ROOT / "outputs" / "bench_video_heads"))
    options, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    rows = []
    for head in options.heads.split(","):
        metrics = run(head, Path(options.output_root) / head, options.max_steps, extra)
        test, temporal = metrics["test"]["mean"], metrics.get("temporal_test", {}).get("mean", {})
        rows.append((head, test["t2v_r1"], test["v2t_r1"], temporal.get("t2v_r1"), temporal.get("v2t_r1"),
                     metrics["train_time_s"], metrics["wall_s"]))
    print("| head | test t2v R@1 | test v2t R@1 | temporal t2v R@1 | temporal v2t R@1 | train s | wall s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for head, *values in rows:
        print(f"| {head} | " + " | ".join("-" if v is None else f"{v:.1f}" for v in values) + " |")


if __name__ == "__main__":
    main()
