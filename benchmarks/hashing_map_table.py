"""Item 7 of issue 4: mAP@all of the three hashing presets at 16/32/64 bits on two datasets.

    OMP_NUM_THREADS=1 python benchmarks/hashing_map_table.py [--out outputs/hashing_table] [--steps 300]

Runs `recipes/train_hashing.py` once per (dataset, preset, bits) - skipping runs whose
`metrics.json` already exists - and prints a markdown table: Hamming mAP@all for I->T and T->I,
next to the dense reference (cosine of the same model's pre-sign hash outputs) and random codes.
Embedded scenes: relevance = shares an object label; flickr8k-multi30k: relevance = pairs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATASETS = {
    "embedded": ["--data", "embedded", "--num_train_scenes", "3000", "--num_test_scenes", "500"],
    "flickr8k": ["--data", str(REPO.parent / "shared" / "data" / "flickr8k-multi30k")],
}
PRESETS = ("vit2cmh", "fgcmh", "cmhr-drn")
BITS = (16, 32, 64)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="outputs/hashing_table")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--datasets", default=",".join(DATASETS))
    args = parser.parse_args()
    out = Path(args.out)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    rows = []
    for dataset in args.datasets.split(","):
        for preset in PRESETS:
            for bits in BITS:
                run_dir = out / dataset / f"{preset}_{bits}"
                if not (run_dir / "metrics.json").exists():
                    start = time.perf_counter()
                    command = [sys.executable, str(REPO / "recipes" / "train_hashing.py"), "--preset", preset,
                               "--hash_bits", str(bits), "--output_dir", str(run_dir), "--max_steps", str(args.steps),
                               "--learning_rate", "2e-3", *DATASETS[dataset]]
                    result = subprocess.run(command, env=env, capture_output=True, text=True)
                    if result.returncode != 0:
                        print(f"FAILED {dataset} {preset} {bits}: {result.stderr[-1500:]}", file=sys.stderr)
                        continue
                    print(f"done {dataset} {preset} {bits} in {time.perf_counter() - start:.0f}s", flush=True)
                metrics = json.loads((run_dir / "metrics.json").read_text())
                rows.append((dataset, preset, bits, metrics["test"], metrics["train_time_s"]))
    print("| data | preset | bits | hash I->T | hash T->I | dense I->T | dense T->I | random I->T | random T->I | P@r2 I->T | train s |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for dataset, preset, bits, test, seconds in rows:
        h, d, c = test["hash"], test["dense"], test["chance"]
        print(f"| {dataset} | {preset} | {bits} | {h['i2t_map']:.3f} | {h['t2i_map']:.3f} | {d['i2t_map']:.3f} | "
              f"{d['t2i_map']:.3f} | {c['i2t_map']:.3f} | {c['t2i_map']:.3f} | {h['i2t_p_r2']:.3f} | {seconds:.0f} |")


if __name__ == "__main__":
    main()
