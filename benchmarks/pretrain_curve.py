"""Print a pretraining run's R@1-versus-time curve as a Markdown table.

    .venv/bin/python benchmarks/pretrain_curve.py outputs/mclip_tiny/metrics.json [more runs...]

Reads the `validation_history` (periodic evaluation) and `test` entries that
`recipes/pretrain.py` writes into `metrics.json`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def curve_rows(metrics: dict) -> list[str]:
    rows = []
    for entry in metrics["validation_history"]:
        mean = entry["validation"]
        rows.append(f"| {entry['step']} | {entry['elapsed_s']:.0f} | validation | {mean['t2i_r1']:.1f} | "
                    f"{mean['i2t_r1']:.1f} | {mean['rsum']:.1f} |")
    test = metrics["test"]["mean"]
    rows.append(f"| {metrics['args']['max_steps']} | {metrics['train_time_s']:.0f} | **test** | "
                f"**{test['t2i_r1']:.1f}** | {test['i2t_r1']:.1f} | {test['rsum']:.1f} |")
    return rows


def main(paths: list[str]) -> None:
    for path in paths:
        metrics = json.loads(Path(path).read_text(encoding="utf-8"))
        print(f"\n{path}\n")
        print("| step | train time (s) | split | t2i R@1 (mean over languages) | i2t R@1 | rsum |")
        print("|---:|---:|---|---:|---:|---:|")
        print("\n".join(curve_rows(metrics)))
        languages = [lang for lang in metrics["test"] if lang != "mean"]
        print("\n| test | " + " | ".join(languages) + " |")
        print("|---|" + "---:|" * len(languages))
        print("| t2i R@1 | " + " | ".join(f"{metrics['test'][lang]['t2i_r1']:.1f}" for lang in languages) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
