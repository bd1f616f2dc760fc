"""Teach a frozen mmml dual encoder a new language with an MLA acquirer (LoRA + optional own embeddings).

    accelerate launch recipes/add_language.py --model_name_or_path outputs/mclip_tiny/final \
        --language cs --parallel_data ../shared/data/multi30k --own_tokenizer true
    # several sources mixed by weight (news-parallel's en-de/ pair folder, Multi30K's flat files),
    # with a learning curve on Tatoeba every 500 steps:
    accelerate launch recipes/add_language.py --model_name_or_path BASE --language de \
        --parallel_data ../shared/data/news-parallel=0.7,../shared/data/multi30k=0.3 --eval_every_steps 500 \
        --eval_sets "[{name: tatoeba, files: {en: ../shared/data/tatoeba/tatoeba.deu-eng.eng, \
                                               de: ../shared/data/tatoeba/tatoeba.deu-eng.deu}}]"

Stage 1, native-language transfer (NLT): on parallel text, the acquirer learns to put a sentence
of the new language where the frozen base model puts its base-language translation (the base's
embeddings of the base-language side are computed once per source and cached). The parallel text
may come from several sources (`parallel_data`; in YAML a list of `{path, weight, name}`), each a
flat folder (`train.de`), a folder of pair folders (`en-de/train.de`) or a .jsonl file; each epoch
draws source i's share weight_i / sum(weights) of the items (`mmml.data.parallel.SourceMixture`).
Stage 2, language exposure
(LE), when `image_text_data` is given: on image-text pairs in the new language, the acquirer's
text embeddings learn to retrieve the (frozen, cached) image embeddings contrastively.

Writes `<output_dir>/acquirer/` (loadable with `MLAModel.load_language`, with its tokenizer when it
has its own) and `<output_dir>/metrics.json`: under `nlt`, the pairs seen of each source
(`pairs_seen`), bitext accuracy@1 both ways on each eval set (`eval`: the eval split of the sources
that have it, and `eval_sets`) and, with `eval_every_steps`, the learning curve (`curve`, also in
`nlt_curve.jsonl`: step, pairs seen per source, accuracy per eval set). Arguments: the fields of
`AddLanguageArguments` (`--config FILE.yaml` and `--field value`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from transformers import AutoConfig, AutoModel, AutoProcessor

import mmml  # noqa: F401  (registers mmml models with the Auto classes)
from mmml.data import load_manifest
from mmml.eval import RetrievalEvaluator
from mmml.modeling.embedding_transfer import transfer_embeddings
from mmml.modeling.text_encoder import TextEncoder
from mmml.models.mla import MLAModel, MLAProcessor
from mmml.processing import train_multilingual_tokenizer
from mmml.training import parse_args, to_json_dict, warn_if_cpu_threads_idle
from mmml.training.text_distillation import (
    BitextEvalSet,
    TextDistillationArguments,
    cached_tensor,
    describe_sources,
    embed_texts,
    evaluate_bitext_sets,
    make_tokenize,
    source_spans,
    texts_fingerprint,
    train_toward_targets,
)

logger = logging.getLogger("mmml.recipes.add_language")


@dataclass
class AddLanguageArguments(TextDistillationArguments):
    """NLT settings are the inherited ones (parallel data, batch, epochs, loss weights, ...)."""

    model_name_or_path: str = ""  # an MLA model, or any mmml dual encoder (it becomes the frozen base)
    language: str = ""
    output_dir: str = "outputs/add_language"
    # The acquirer.
    lora_r: int = 16
    lora_alpha: int | None = None
    target_modules: list[str] = field(default_factory=lambda: ["query", "key", "value", "dense"])
    own_tokenizer: bool = False
    tokenizer_vocab_size: int = 8000
    contrastive_weight: float = 1.0
    # LE: a folder with {train,validation,test}.jsonl image-text manifests (captions in `language`).
    image_text_data: str | None = None
    le_epochs: float = 1.0
    le_learning_rate: float = 5e-4
    le_batch_size: int = 64

    def __post_init__(self):
        super().__post_init__()
        for name in ("model_name_or_path", "language"):
            if not getattr(self, name):
                raise ValueError(f"--{name} is required")


def load_base(path: str) -> tuple[MLAModel, MLAProcessor]:
    """The frozen base as an MLA model and its processor as an MLA processor."""
    config = AutoConfig.from_pretrained(path)
    model = MLAModel.from_pretrained(path) if config.model_type == "mla" else MLAModel.from_dual_encoder(
        AutoModel.from_pretrained(path)
    )
    processor = AutoProcessor.from_pretrained(path)
    if not isinstance(processor, MLAProcessor):
        processor = MLAProcessor(image_processor=processor.image_processor, tokenizer=processor.tokenizer)
    return model.eval(), processor


def base_text_embeddings(args, accelerator, model: MLAModel, processor, texts: list[str]) -> torch.Tensor:
    """The frozen base's embeddings of base-language texts, computed once and cached on disk."""
    encoder = TextEncoder(model, language=model.config.base_language).to(accelerator.device)
    key = {"what": "base text features", "base": model.base_fingerprint(), "texts": texts_fingerprint(texts),
           "max_length": args.max_text_length}
    with accelerator.main_process_first():
        return cached_tensor(args.cache_dir, key, lambda: embed_texts(
            encoder, make_tokenize(processor.tokenizer, args.max_text_length), texts, args.eval_batch_size,
            progress=accelerator.is_main_process))


def bitext_eval_sets(args, accelerator, model, processor) -> list[BitextEvalSet]:
    """The eval sets in the new language, each with the base's embeddings of its translations."""
    parts = args.eval_parts(model.config.base_language, [args.language])
    return [BitextEvalSet(part.source, part.language, part.texts,
                          base_text_embeddings(args, accelerator, model, processor, part.translations))
            for part in parts]


def add_acquirer(args: AddLanguageArguments, model: MLAModel, processor: MLAProcessor, train_texts: list[str]) -> None:
    table = None
    if args.own_tokenizer:
        tokenizer = train_multilingual_tokenizer(train_texts, args.tokenizer_vocab_size, args.max_text_length)
        processor.set_language_tokenizer(args.language, tokenizer)
        table = transfer_embeddings(tokenizer, processor.tokenizer, model.text_model.get_input_embeddings().weight)
    model.add_language(args.language, r=args.lora_r, lora_alpha=args.lora_alpha, target_modules=args.target_modules,
                       embedding_table=table)


def native_language_transfer(args, accelerator, model, processor) -> dict:
    base = model.config.base_language
    parts = args.train_parts(base, [args.language])
    texts = [text for part in parts for text in part.texts]
    add_acquirer(args, model, processor, texts)
    targets = torch.cat([base_text_embeddings(args, accelerator, model, processor, part.translations)
                         for part in parts])
    eval_sets = bitext_eval_sets(args, accelerator, model, processor)
    tokenize = make_tokenize(processor.tokenizer_for(args.language), args.max_text_length)
    start = time.perf_counter()
    outcome = train_toward_targets(accelerator, TextEncoder(model, language=args.language), texts, targets, tokenize,
                                   args, args.output_dir, stage="nlt", sources=source_spans(parts, args.parallel_data),
                                   eval_sets=eval_sets)
    result = {"train_pairs": len(texts), "sources": describe_sources(parts, args.parallel_data),
              "pairs_seen": outcome.pairs_seen, "train_time_s": round(time.perf_counter() - start, 1),
              "final_loss": outcome.history[-1]["loss"] if outcome.history else None, "finished": outcome.finished}
    if outcome.curve:
        result["curve"] = outcome.curve
    if outcome.finished and eval_sets and accelerator.is_main_process:
        result["eval"] = evaluate_bitext_sets(TextEncoder(model, language=args.language), tokenize, eval_sets,
                                              args.eval_batch_size)
        for name, scores in result["eval"].items():
            accelerator.print(f"NLT {name} {args.language}->{base} acc@1 "
                              f"{scores[args.language]['source_to_target_acc1']:.3f}")
    return result


def language_exposure(args, accelerator, model, processor) -> dict:
    """Contrastive training of the acquirer's text embeddings toward the frozen image embeddings."""
    splits = {split: load_manifest(Path(args.image_text_data) / f"{split}.jsonl") for split in ("train", "test")}
    texts, image_rows = [], []
    for row_index, captions in enumerate(splits["train"]["captions"]):
        for caption in (captions or {}).get(args.language) or []:
            texts.append(caption)
            image_rows.append(row_index)
    if not texts:
        raise ValueError(f"{args.image_text_data}/train.jsonl has no {args.language!r} captions")
    key = {"what": "base image features", "base": model.base_fingerprint(),
           "data": str(Path(args.image_text_data).resolve()), "rows": len(splits["train"])}
    with accelerator.main_process_first():
        image_embeds = cached_tensor(args.cache_dir, key,
                                     lambda: embed_images(model, processor, splits["train"], args.eval_batch_size))
    temperature = 1.0 / float(model.scaled_logit_scale())
    settings = dataclasses.replace(args, batch_size=args.le_batch_size, epochs=args.le_epochs,
                                   learning_rate=args.le_learning_rate, mse_weight=0.0, contrastive_weight=1.0,
                                   temperature=temperature, checkpoint_every_steps=0, resume_from_checkpoint=None,
                                   stop_after_steps=None, pairs_per_epoch=None, eval_every_steps=0)
    model.train_language(args.language)
    start = time.perf_counter()
    train_toward_targets(accelerator, TextEncoder(model, language=args.language), texts,
                         image_embeds[torch.tensor(image_rows)],
                         make_tokenize(processor.tokenizer_for(args.language), args.max_text_length),
                         settings, args.output_dir, stage="le")
    result = {"train_captions": len(texts), "train_time_s": round(time.perf_counter() - start, 1)}
    if accelerator.is_main_process:
        evaluator = RetrievalEvaluator(processor, languages=[args.language], batch_size=args.eval_batch_size,
                                       route_by_language=True)
        result["test"] = evaluator.evaluate(model, splits["test"])[args.language]
    return result


@torch.no_grad()
def embed_images(model: MLAModel, processor, dataset, batch_size: int) -> torch.Tensor:
    from mmml.data import decode_image

    embeds = []
    for start in range(0, len(dataset), batch_size):
        rows = dataset[start : start + batch_size]
        pixels = processor(images=[decode_image(image) for image in rows["image"]], return_tensors="pt")["pixel_values"]
        embeds.append(model.get_image_features(pixel_values=pixels.to(model.device)).pooler_output.float().cpu())
    return torch.cat(embeds)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(AddLanguageArguments, sys.argv[1:] if argv is None else argv)
    accelerator = Accelerator(cpu=args.cpu if args.cpu is not None else not torch.accelerator.is_available())
    logging.basicConfig(level=logging.INFO if accelerator.is_main_process else logging.WARNING)
    warn_if_cpu_threads_idle(accelerator)
    os.makedirs(args.output_dir, exist_ok=True)
    set_seed(args.seed)
    model, processor = load_base(args.model_name_or_path)
    model.to(accelerator.device)
    # Texts longer than the text tower's position table would fail deep inside the tower.
    args.max_text_length = min(args.max_text_length, model.config.text_config.max_position_embeddings)
    metrics = {"language": args.language, "base_language": model.config.base_language,
               "nlt": native_language_transfer(args, accelerator, model, processor)}
    if not metrics["nlt"]["finished"]:
        accelerator.print(f"stopped at step {args.stop_after_steps}; continue with --resume_from_checkpoint latest")
        accelerator.end_training()
        return metrics
    if args.image_text_data:
        metrics["le"] = language_exposure(args, accelerator, model, processor)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        model = accelerator.unwrap_model(model)
        model.train_language(None)
        folder = model.save_language(args.language, Path(args.output_dir) / "acquirer", processor=processor)
        metrics["acquirer_bytes"] = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        metrics["base_model_bytes"] = sum(t.numel() * t.element_size() for t in model.base_state_dict().values())
        metrics["args"] = to_json_dict(args)
        path = Path(args.output_dir) / "metrics.json"
        path.with_suffix(".json.tmp").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
        os.replace(path.with_suffix(".json.tmp"), path)
        accelerator.print(json.dumps({k: metrics[k] for k in ("nlt", "acquirer_bytes", "base_model_bytes")}, indent=1))
    accelerator.end_training()
    return metrics


if __name__ == "__main__":
    main()
