"""A DI-vTR starting point from the main job's trained M-CLIP (its frame and text towers, exactly).

    .venv/bin/python benchmarks/make_divtr_init.py outputs/mclip_tiny/final outputs/divtr_init [--similarity_head divtr]
    .venv/bin/accelerate launch --num_cpu_threads_per_process $(nproc) recipes/pretrain.py \
        --config recipes/configs/divtr_tiny.yaml --model_name_or_path outputs/divtr_init

The temporal and interaction blocks start fresh (sized as in `recipes/configs/divtr_tiny.yaml`); the
processor is M-CLIP's tokenizer with a frame processor around its image processor.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml
from transformers import AutoModel, AutoProcessor

import mmml
from mmml.processing.video import FrameProcessor

CONFIG = Path(__file__).resolve().parents[1] / "recipes" / "configs" / "divtr_tiny.yaml"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mclip")
    parser.add_argument("output")
    parser.add_argument("--similarity_head", default="divtr")
    options = parser.parse_args()
    model_config = yaml.safe_load(CONFIG.read_text())["model_config"]
    fields = {k: model_config[k] for k in ("max_frames", "temporal_layers", "temporal_heads", "interaction_layers",
                                           "interaction_heads")}
    model = mmml.DIVTRModel.from_mclip(AutoModel.from_pretrained(options.mclip),
                                       similarity_head=options.similarity_head, **fields)
    mclip_processor = AutoProcessor.from_pretrained(options.mclip)
    processor = mmml.DIVTRProcessor(video_processor=FrameProcessor(mclip_processor.image_processor),
                                    tokenizer=mclip_processor.tokenizer)
    model.save_pretrained(options.output)
    processor.save_pretrained(options.output)
    print(f"saved {type(model).__name__} ({options.similarity_head}) and its processor to {options.output}")


if __name__ == "__main__":
    main()
