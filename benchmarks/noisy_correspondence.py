"""Noisy-correspondence benchmark: rSum of plain contrastive training against RCAR, and the VSE family
with and without MVSEN's auxiliary tasks, at several noise rates and kinds (BENCHMARKS.md, issue 5).

    OMP_NUM_THREADS=1 python benchmarks/noisy_correspondence.py --output_root outputs/noisy_bench
    OMP_NUM_THREADS=1 python benchmarks/noisy_correspondence.py --output_root outputs/noisy_bench \
        --rows flickr_plain_c20 flickr_rcar_c20                                    # real photos
    OMP_NUM_THREADS=1 python benchmarks/noisy_correspondence.py --rows plain_c20 rcar_c20   # a subset
    python benchmarks/noisy_correspondence.py --table_only --output_root outputs/noisy_bench

Each row is one run of `recipes/pretrain.py --config recipes/configs/noisy_bench.yaml` plus the row's
overrides, one after the other (same seed and steps for every row). The `flickr_*` rows train on
`../shared/data/flickr8k-multi30k` (English captions) from the model `make_flickr_init.py` builds
(real MiniLM text tower, small random vision tower), 120 steps of batch 32. A row whose `metrics.json`
exists is not rerun. The table (test rSum, R@1 both ways, the last epoch's clean-probability AUC)
is printed as markdown.
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
CONFIG = REPO_ROOT / "recipes" / "configs" / "noisy_bench.yaml"

VSE = {"token_pooling": "gpo", "gcn_layers": 1, "num_attention_heads": 2}
MVSEN = dict(VSE, interaction_layers=1, text_matching_weight=0.5, classification_weight=0.5)


def _vse_args(options: dict) -> list[str]:
    config = {
        "projection_dim": 64,
        "vision_config": {"model_type": "clip_vision_model", "hidden_size": 64, "intermediate_size": 256,
                          "num_hidden_layers": 2, "num_attention_heads": 2, "patch_size": 20},
        "text_config": {"model_type": "bert", "hidden_size": 64, "intermediate_size": 256, "num_hidden_layers": 2,
                        "num_attention_heads": 2, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0},
        **options,
    }
    return ["--model_type", "vse", "--model_config", json.dumps(config)]


def _rows() -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {}
    for method, extra in (("plain", []), ("rcar", ["--robust", "rcar"])):
        rows[f"{method}_0"] = extra
        for kind, letter in (("complete", "c"), ("partial", "p")):
            for rate in (20, 50):
                rows[f"{method}_{letter}{rate}"] = extra + ["--noise_rate", str(rate / 100), "--noise_kind", kind]
    flickr = ["--data", "{flickr_data}", "--languages", "en", "--model_name_or_path", "{flickr_init}",
              "--per_device_train_batch_size", "32", "--max_steps", "120", "--warmup_steps", "10",
              "--learning_rate", "5e-4", "--noise_rate", "0.2"]
    rows["flickr_plain_c20"] = flickr
    rows["flickr_rcar_c20"] = flickr + ["--robust", "rcar"]
    for rate in (0, 20):
        noise = ["--noise_rate", str(rate / 100)] if rate else []
        rows[f"vse_{rate or 0}"] = _vse_args(VSE) + noise
        rows[f"mvsen_{rate or 0}"] = _vse_args(MVSEN) + noise
    return rows


ROWS = _rows()


def prepare_flickr(output_root: Path, shared_data: Path) -> dict[str, str]:
    """A manifest folder with the split names the recipe reads, and the initial model."""
    source = shared_data / "flickr8k-multi30k"
    if not (source / "train.jsonl").is_file():
        raise FileNotFoundError(f"{source} has no train.jsonl; pass --shared_data pointing at the shared data folder")
    folder = output_root / "flickr_data"
    folder.mkdir(parents=True, exist_ok=True)
    for name, target in (("train.jsonl", "train.jsonl"), ("validation.jsonl", "val.jsonl"),
                         ("test.jsonl", "test.jsonl"), ("images", "images")):
        if not (folder / name).exists():
            (folder / name).symlink_to((source / target).resolve())
    init = output_root / "flickr_init"
    if not (init / "config.json").is_file():
        subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "make_flickr_init.py"), str(init)], check=True)
    return {"flickr_data": str(folder.resolve()), "flickr_init": str(init.resolve())}


def run_row(name: str, output_root: Path, extra_args: list[str]) -> None:
    output_dir = output_root / name
    if (output_dir / "metrics.json").is_file():
        print(f"{name}: done already", flush=True)
        return
    command = [sys.executable, str(REPO_ROOT / "recipes" / "pretrain.py"), "--config", str(CONFIG),
               "--output_dir", str(output_dir), *extra_args]
    print(f"{name}: {' '.join(command[1:])}", flush=True)
    start = time.perf_counter()
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    with open(output_root / f"{name}.log", "w", encoding="utf-8") as log:
        subprocess.run(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
    print(f"{name}: {time.perf_counter() - start:.0f} s", flush=True)


def table(output_root: Path, names: list[str]) -> str:
    lines = ["| row | arguments | test rSum | t2i R@1 | i2t R@1 | clean-prob AUC (last epoch) | train s |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for name in names:
        path = output_root / name / "metrics.json"
        if not path.is_file():
            continue
        summary = json.loads(path.read_text())
        test = summary["test"]["mean"]
        history = summary.get("rcar_history") or []
        auc = next((e["clean_prob_auc"] for e in reversed(history) if e.get("clean_prob_auc") is not None), None)
        arguments = " ".join(a for a in ROWS[name] if not a.startswith("{")) if name in ROWS else ""
        if name.startswith("flickr"):
            arguments = "flickr8k en, MiniLM init, " + " ".join(ROWS[name][14:])
        if name.startswith(("vse", "mvsen")):
            arguments = ("VSE+MVSEN " if name.startswith("mvsen") else "VSE ") + " ".join(ROWS[name][4:])
        lines.append(f"| {name} | `{arguments.strip() or '(clean)'}` | {test['rsum']:.1f} | {test['t2i_r1']:.1f} | "
                     f"{test['i2t_r1']:.1f} | {'' if auc is None else f'{auc:.3f}'} | {summary['train_time_s']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_root", default="outputs/noisy_bench")
    parser.add_argument("--rows", nargs="*", default=list(ROWS), help=f"subset of {list(ROWS)}")
    parser.add_argument("--table_only", action="store_true")
    parser.add_argument("--shared_data", default=str(REPO_ROOT.parent / "shared" / "data"))
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="after --: arguments added to every row")
    args = parser.parse_args()
    unknown = sorted(set(args.rows) - set(ROWS))
    if unknown:
        parser.error(f"unknown rows {unknown}; valid: {list(ROWS)}")
    output_root = Path(args.output_root)
    output_root.mkdir(parents=True, exist_ok=True)
    extra = [a for a in args.extra if a != "--"]
    if not args.table_only:
        places = prepare_flickr(output_root, Path(args.shared_data)) if any(
            n.startswith("flickr") for n in args.rows) else {}
        for name in args.rows:
            run_row(name, output_root, [a.format(**places) if a.startswith("{flickr") else a for a in ROWS[name]] + extra)
    print(table(output_root, args.rows))


if __name__ == "__main__":
    main()
