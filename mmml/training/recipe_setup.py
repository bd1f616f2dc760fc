"""The parts every training recipe composes: accelerator, data, processor, model, loader, outputs.

Nothing here knows a family: the model comes from its `model_type` through the Auto classes, the
processor from the class registered for that config, the data columns from the modalities the
config lists, and the training items from what the model's objectives read.
"""

from __future__ import annotations

import json
import logging
import os
import random
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration
from datasets import concatenate_datasets
from torch.utils.data import DataLoader
from transformers import (
    CONFIG_MAPPING,
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoProcessor,
    AutoTokenizer,
    CLIPImageProcessor,
    PreTrainedConfig,
)
from transformers.models.auto.processing_auto import PROCESSOR_MAPPING

from ..data import ClipConfig, SceneConfig, build_clip_dataset, build_scene_dataset, load_manifest
from ..data.collate import MultimodalCollator, evaluation_media_decoder
from ..data.noise import add_noise_to_dataset
from ..data.pairs import LengthGroupedBatchSampler, MultimodalPairs
from ..eval import RetrievalEvaluator
from ..modeling.configuration_multi_encoder import MultiEncoderConfig
from ..modeling.modalities import get_modality
from ..processing import train_multilingual_tokenizer
from .freezing import FrozenTowerCache, freeze_modules

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")


def make_accelerator(args) -> Accelerator:
    """An `Accelerator` for the recipe's arguments (CPU when torch sees no accelerator, unless told)."""
    return Accelerator(
        cpu=args.cpu if args.cpu is not None else not torch.accelerator.is_available(),
        mixed_precision=args.mixed_precision,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        log_with=args.log_with,
        project_dir=args.output_dir,
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )


def load_splits(args, splits: tuple[str, ...] = SPLITS, modalities: tuple[str, ...] = ("image", "text")) -> dict:
    """`datasets.Dataset`s per split: the generated scenes (clips of moving shapes when the model encodes
    video, with their `temporal_test` split too), or `<data>/<split>.jsonl` manifests."""
    if args.data == "embedded" and "video" in modalities:
        config = ClipConfig(
            num_train=args.num_train_scenes, num_val=args.num_val_scenes, num_test=args.num_test_scenes,
            num_temporal_test=args.num_temporal_test_clips if "test" in splits else 0,
            num_frames=args.num_frames, image_size=args.image_size,
            captions_per_language=args.captions_per_language, seed=args.seed,
            **({"languages": tuple(args.languages)} if args.languages else {}),
        )
        wanted = (*splits, "temporal_test") if "test" in splits and args.num_temporal_test_clips else splits
        return {name: split for name, split in build_clip_dataset(config).items() if name in wanted}
    if args.data == "embedded":
        config = SceneConfig(
            num_train=args.num_train_scenes,
            num_val=args.num_val_scenes,
            num_test=args.num_test_scenes,
            captions_per_language=args.captions_per_language,
            image_size=args.image_size,
            difficulty=args.difficulty,
            seed=args.seed,
            **({"languages": tuple(args.languages)} if args.languages else {}),
        )
        return {name: split for name, split in build_scene_dataset(config).items() if name in splits}
    if isinstance(args.data, dict):
        missing = [split for split in splits if split not in args.data]
        if missing:
            raise ValueError(f"data names manifests for {sorted(args.data)}; the recipe also needs {missing}")
        return {split: _load_manifests(args.data[split], args) for split in splits}
    folder = Path(args.data)
    return {split: load_manifest(folder / f"{split}.jsonl", skip_bad_samples=args.skip_bad_samples)
            for split in splits}


def _load_manifests(paths: list[str], args):
    """One split from several manifests, concatenated in order (the columns they all have)."""
    parts = [load_manifest(path, skip_bad_samples=args.skip_bad_samples, languages=args.languages) for path in paths]
    if len(parts) == 1:
        return parts[0]
    shared = [name for name in parts[0].column_names if all(name in part.column_names for part in parts)]
    if args.languages is None:
        languages = [set(part.features["captions"]) for part in parts]
        if any(codes != languages[0] for codes in languages):
            raise ValueError(f"the manifests {paths} have caption languages {[sorted(c) for c in languages]}; "
                             "set `languages` to the ones to train and evaluate on")
    return concatenate_datasets([part.select_columns(shared) for part in parts])


def add_training_noise(args, splits: dict):
    """Corrupt `noise_rate` of the training pairs in place of `splits["train"]`; the noise mask (or None)."""
    if args.noise_rate == 0:
        return None
    splits["train"], mask = add_noise_to_dataset(splits["train"], args.noise_rate, args.noise_kind, args.seed)
    logger.info("made %d of %d training pairs %sly noisy", int(mask.sum()), len(mask), args.noise_kind)
    return mask


def build_model_config(args, **overrides) -> PreTrainedConfig:
    """A new config of `args.model_type` from `args.model_config` (and `overrides`), before the tokenizer exists.

    Any registered model type whose config is an mmml encoder config works (families registered by
    users included); others are refused with the valid names.
    """
    config_class = CONFIG_MAPPING[args.model_type] if args.model_type in CONFIG_MAPPING else None
    if config_class is None or not issubclass(config_class, MultiEncoderConfig):
        encoder_types = sorted(t for t in CONFIG_MAPPING.keys() if issubclass(CONFIG_MAPPING[t], MultiEncoderConfig))
        raise ValueError(f"model_type must be one of the registered mmml encoder types {encoder_types}, "
                         f"got {args.model_type!r}")
    return config_class(**{**args.model_config, **overrides})


def training_corpus(args, train_split) -> list[str]:
    """The training captions in `args.languages` (all when None), at most `tokenizer_training_texts` (seeded)."""
    corpus = [text for row in train_split["captions"] for lang, texts in row.items()
              if args.languages is None or lang in args.languages for text in (texts or [])]
    if args.tokenizer_training_texts is not None and len(corpus) > args.tokenizer_training_texts:
        keep = random.Random(args.seed).sample(range(len(corpus)), args.tokenizer_training_texts)
        corpus = [corpus[i] for i in sorted(keep)]
    return corpus


def build_processor(args, accelerator: Accelerator, train_split, config: PreTrainedConfig | None):
    """The model's processor; for a new model, the config's registered processor class with a
    sentencepiece tokenizer trained on the training captions and an image processor of `image_size`
    (or, for a model of two pretrained towers, their image processor and tokenizer).

    It is built once (main process), adapted to the corpus where the family needs it (e.g. a TF-IDF
    vocabulary), saved in the output folder, and loaded from there by every process and by resumed
    runs, so all of them process identically.
    """
    if args.model_name_or_path is not None:
        return AutoProcessor.from_pretrained(args.model_name_or_path)
    processor_dir = Path(args.output_dir) / "processor"
    if args.vision_model_name_or_path and accelerator.is_main_process:
        processor = PROCESSOR_MAPPING[type(config)](
            image_processor=AutoImageProcessor.from_pretrained(args.vision_model_name_or_path),
            tokenizer=AutoTokenizer.from_pretrained(args.text_model_name_or_path))
        processor.save_pretrained(processor_dir)
    elif accelerator.is_main_process and not (processor_dir / "processor_config.json").exists():
        corpus = training_corpus(args, train_split)
        tokenizer = train_multilingual_tokenizer(corpus, args.tokenizer_vocab_size, args.max_text_length)
        components: dict[str, Any] = {"tokenizer": tokenizer}
        modalities = set(config.modalities)
        if modalities & {"image", "video"}:
            image_processor = CLIPImageProcessor(
                size={"shortest_edge": args.image_size}, crop_size={"height": args.image_size, "width": args.image_size}
            )
            if "image" in modalities:
                components["image_processor"] = image_processor
            if "video" in modalities:
                from ..processing.video import FrameProcessor

                components["video_processor"] = FrameProcessor(image_processor)
        missing = sorted(modalities - {"image", "video", "text"})
        if missing:
            raise ValueError(f"the recipe builds processors for image, video and text; for {missing} start from a "
                             "saved processor (--model_name_or_path)")
        processor = PROCESSOR_MAPPING[type(config)](**components)
        processor = processor.adapted_to_corpus(corpus, model_config=config, **args.processor_options)
        processor.save_pretrained(processor_dir)
    accelerator.wait_for_everyone()
    return AutoProcessor.from_pretrained(processor_dir)


def fit_config_to_processor(config: PreTrainedConfig, processor, args) -> PreTrainedConfig:
    """Fill what the processor decides into a new config: text vocabulary, padding id, lengths, image size.

    Values given in `args.model_config` win over these defaults.
    """
    given = args.model_config
    text_given = dict(given.get("text_config") or {})
    text_config = getattr(config, "text_config", None)
    if text_config is not None:
        tfidf = getattr(processor, "tfidf", None)  # a TF-IDF text tower reads processor columns, not token ids
        defaults = {"vocab_size": tfidf.vocab_size} if tfidf is not None else {
            "vocab_size": len(processor.tokenizer), "pad_token_id": processor.tokenizer.pad_token_id,
            "max_position_embeddings": args.max_text_length + 2}
        for key, value in defaults.items():
            if key not in text_given and (key == "vocab_size" or hasattr(text_config, key)):
                setattr(text_config, key, value)
    vision_config = getattr(config, "vision_config", None)
    vision_given = dict(given.get("vision_config") or {})
    if vision_config is not None and hasattr(vision_config, "image_size") and "image_size" not in vision_given:
        vision_config.image_size = args.image_size
    return config


def build_model(args, processor, config: PreTrainedConfig | None = None) -> torch.nn.Module:
    """The pretrained model, a new one of `config`'s type from two pretrained towers, or a new one (`from_config`)."""
    if args.model_name_or_path is not None:
        config = with_model_config_overrides(AutoConfig.from_pretrained(args.model_name_or_path), args.model_config)
        return AutoModel.from_pretrained(args.model_name_or_path, config=config)
    if args.vision_model_name_or_path is not None:
        towers = sorted(key for key in args.model_config if key.endswith("_config"))
        if towers:
            raise ValueError(f"model_config {towers} conflict with the pretrained towers "
                             f"vision_model_name_or_path / text_model_name_or_path; drop them")
        model_class = AutoModel._model_mapping[type(config)]
        return model_class.from_vision_text_pretrained(args.vision_model_name_or_path, args.text_model_name_or_path,
                                                       **args.model_config)
    config = fit_config_to_processor(config, processor, args)
    # Re-validate and re-resolve the sub-configs after the edits (and make the model's config a fresh copy).
    config = type(config).from_dict(config.to_dict())
    return AutoModel.from_config(config)


def freeze_and_cache(args, model) -> dict[str, FrozenTowerCache]:
    """Freeze `args.frozen_modules`; frozen media towers get an output cache (by tower attribute) when asked.

    Text towers are not cached: a caption's token row changes with each batch's padding, so its key
    would rarely repeat (measured: 9k hits for 68k entries, 3.2 GB), and they are cheap to run.
    """
    freeze_modules(model, args.frozen_modules)
    if not args.cache_frozen_towers:
        return {}
    towers = {get_modality(name).tower_attribute for name in model.config.modalities if name != "text"}
    return {name: FrozenTowerCache(getattr(model, name)).install()
            for name in args.frozen_modules if name in towers}


def with_model_config_overrides(config: PreTrainedConfig, model_config: dict[str, Any]) -> PreTrainedConfig:
    """A pretrained model's config with the recipe's `model_config` applied (a re-validated copy).

    Plain fields that differ are set and logged (a loss weight, a head option). Sub-configs (the towers)
    are part of the checkpoint: each field given for one must equal the checkpoint's, or a `ValueError`
    names the fields that differ; so a recipe config written for a new model can start from a
    checkpoint of the same architecture. A field the config class does not have is refused by name.
    """
    changed, conflicts = {}, []
    for name, value in (model_config or {}).items():
        if not hasattr(config, name):
            raise ValueError(f"model_config.{name} is not a field of {type(config).__name__} (the config of "
                             f"the pretrained model); check the spelling")
        current = getattr(config, name)
        if isinstance(current, PreTrainedConfig):
            given = value.to_dict() if isinstance(value, PreTrainedConfig) else dict(value or {})
            conflicts += [f"{name}.{key}: {getattr(current, key, None)!r} in the checkpoint, {item!r} given"
                          for key, item in given.items() if getattr(current, key, None) != item]
        elif current != value:
            changed[name] = value
    if conflicts:
        raise ValueError("model_config changes the pretrained model's towers, which its weights fix: "
                         + "; ".join(conflicts) + " (drop these fields or start a new model)")
    for name, value in changed.items():
        logger.info("model_config overrides the pretrained config: %s = %r (was %r)", name, value,
                    getattr(config, name))
    return type(config).from_dict({**config.to_dict(), **changed}) if changed else config


def media_columns(model) -> list[str]:
    """Dataset columns holding the media of the model's non-text modalities (`image`, `video`, `audio`)."""
    return [name for name in model.config.modalities if name != "text"]


def build_train_loader(args, train_split, processor, model, labels=None) -> tuple[list, DataLoader, MultimodalPairs]:
    """`(epoch-aware objects, loader, pairs)`: items keep the raw media; the collator decodes each batch.

    `labels`: None, a label count or label ids (multi-hot targets for the items), overriding what
    the model's objectives ask for.
    """
    options = dict(model.training_item_options())
    if labels is not None:
        options["labels"] = labels
    for column in media_columns(model):
        if column not in train_split.column_names:
            raise ValueError(f"the model encodes {column!r} but the training data has columns {train_split.column_names}")
    pairs = MultimodalPairs(train_split, media_columns=media_columns(model), languages=args.languages, seed=args.seed,
                            **options)
    collate = MultimodalCollator(processor, max_text_length=args.max_text_length,
                                 skip_bad_samples=args.skip_bad_samples, decoder_options=_decoder_options(args, model))
    # Creating a DataLoader iterator draws a seed; from a generator of its own, not from the global
    # RNG, so a resumed run (which starts a new iterator mid-epoch) keeps the dropout RNG stream.
    generator = torch.Generator().manual_seed(args.seed)
    workers = {"num_workers": args.dataloader_num_workers, "persistent_workers": args.dataloader_num_workers > 0}
    if args.group_by_length:
        batches = LengthGroupedBatchSampler(pairs, args.per_device_train_batch_size, seed=args.seed)
        loader = DataLoader(pairs, batch_sampler=batches, collate_fn=collate, generator=generator, **workers)
        return [pairs, batches], loader, pairs
    loader = DataLoader(pairs, batch_size=args.per_device_train_batch_size, shuffle=True, drop_last=True,
                        collate_fn=collate, generator=generator, **workers)
    return [pairs], loader, pairs


def write_json_atomically(path: str | os.PathLike, data: dict) -> None:
    """Write `data` as JSON through a temporary file and a rename (never a half-written file)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    os.replace(tmp, path)


def gallery_modality(config) -> str:
    """What the captions retrieve in evaluation: the first non-text modality the model encodes."""
    if "text" not in config.modalities:
        raise ValueError(f"the recipes evaluate text-to-X retrieval; this model encodes {config.modalities} (no text)")
    others = [name for name in config.modalities if name != "text"]
    if not others:
        raise ValueError("the recipes evaluate text-to-X retrieval; this model encodes only text")
    return others[0]


def _decoder_options(args, model_or_config) -> dict:
    """Options of the media decoders the model's modalities need (frames per clip for video)."""
    config = getattr(model_or_config, "config", model_or_config)
    return {"video": {"num_frames": args.num_frames}} if "video" in config.modalities else {}


def make_evaluator(args, processor, config) -> RetrievalEvaluator:
    """Per-language retrieval of the model's gallery modality by its captions (uniformly sampled frames for video)."""
    gallery = gallery_modality(config)
    decoder = evaluation_media_decoder(gallery)
    options = _decoder_options(args, config).get(gallery)
    if decoder is not None and options:
        decoder = decoder.with_options(**options)
    return RetrievalEvaluator(processor, languages=args.languages, batch_size=args.eval_batch_size,
                              gallery_modality=gallery, media_decoder=decoder)
