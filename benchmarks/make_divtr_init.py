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
from mmml.data.scenes.clips import ClipConfig, build_clip_dataset
from mmml.modeling import retokenize_text_tower
from mmml.processing import train_multilingual_tokenizer
from mmml.processing.video import FrameProcessor

CONFIG = Path(__file__).resolve().parents[1] / "recipes" / "configs" / "divtr_tiny.yaml"


def clip_training_captions(recipe: dict) -> list[str]:
    """Every caption of the training clips the recipe generates (the corpus its own tokenizer is trained on)."""
    config = ClipConfig(num_train=recipe["num_train_scenes"], num_val=0, num_test=0, num_temporal_test=0,
                        num_frames=recipe["num_frames"], image_size=recipe["image_size"],
                        captions_per_language=recipe["captions_per_language"], seed=recipe["seed"])
    train = build_clip_dataset(config)["train"]
    return [text for row in train["captions"] for texts in row.values() for text in (texts or [])]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mclip")
    parser.add_argument("output")
    parser.add_argument("--similarity_head", default=None, help="default: the recipe config's")
    parser.add_argument("--tokenizer", choices=("mclip", "clips"), default="clips",
                        help="keep M-CLIP's tokenizer, or train one on the clips' training captions (as the recipe "
                             "does for a new model) and transfer M-CLIP's text embeddings to it")
    options = parser.parse_args()
    recipe = yaml.safe_load(CONFIG.read_text())
    model_config = recipe["model_config"]
    # Everything but what M-CLIP fixes (its towers, projection width, poolings) comes from the recipe config.
    fixed_by_mclip = ("modalities", "vision_config", "text_config", "projection_dim", "text_pooling", "vision_pooling")
    fields = {k: v for k, v in model_config.items() if k not in fixed_by_mclip}
    model = mmml.DIVTRModel.from_mclip(AutoModel.from_pretrained(options.mclip),
                                       **{**fields, **({"similarity_head": options.similarity_head}
                                                       if options.similarity_head else {})})
    mclip_processor = AutoProcessor.from_pretrained(options.mclip)
    tokenizer = mclip_processor.tokenizer
    if options.tokenizer == "clips":
        tokenizer = train_multilingual_tokenizer(clip_training_captions(recipe), recipe["tokenizer_vocab_size"],
                                                 recipe["max_text_length"])
        retokenize_text_tower(model.text_model, tokenizer, mclip_processor.tokenizer)
    processor = mmml.DIVTRProcessor(video_processor=FrameProcessor(mclip_processor.image_processor),
                                    tokenizer=tokenizer)
    model.save_pretrained(options.output)
    processor.save_pretrained(options.output)
    print(f"saved {type(model).__name__} ({model.config.similarity_head}) and its processor to {options.output}")


if __name__ == "__main__":
    main()
