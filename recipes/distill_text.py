"""M-CLIP teacher learning: a student text tower learns to embed every language where a frozen
teacher embeds the English (source-language) side of parallel sentences.

    accelerate launch recipes/distill_text.py --teacher path/to/english_model \
        --student path/to/multilingual_model --parallel_data ../shared/data/multi30k --languages de,fr,cs
    # several sources mixed by weight: news-parallel's pair folders (en-de/, en-fr/, ...) and Multi30K
    accelerate launch recipes/distill_text.py --teacher T --student S --languages de,fr,cs,es \
        --parallel_data ../shared/data/news-parallel=0.7,../shared/data/multi30k=0.3

Each `parallel_data` source (a flat `{split}.{lang}` folder, a folder of `{a}-{b}/` pair folders or a
.jsonl file; in YAML a list of `{path, weight, name}`) gives the source-language pairs of the
languages it has; each epoch draws source i's share weight_i / sum(weights) of the items
(`mmml.data.parallel.SourceMixture`) and `metrics.json` counts the pairs seen per source. With
`eval_every_steps`, bitext accuracy on the eval sets (the sources' eval split and `eval_sets`, e.g.
Tatoeba files) is written against the pairs seen to `distill_curve.jsonl` (and `curve` in the metrics).

Teacher and student are any mmml model (their projected text features; an M-CLIP student keeps
its image tower frozen and unchanged) or any transformers text backbone (pooled with
`teacher_pooling` / `student_pooling`). The teacher's embeddings of the source side are computed
once and cached under `cache_dir` (keyed by the teacher's weights and the texts). The student is saved to `<output_dir>/student`
(an mmml model with its processor, or a transformers text model with its tokenizer, usable as a
text tower by `MCLIPModel.from_vision_text_pretrained`), and `<output_dir>/metrics.json` holds
bitext accuracy@1 both ways per eval set and language (`bitext`) and, for students with an image tower and
`image_eval_data`, image retrieval per language.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from transformers import AutoModel, AutoProcessor, AutoTokenizer

import mmml  # noqa: F401  (registers mmml models with AutoModel)
from mmml.data import load_manifest
from mmml.data.parallel import ParallelPart
from mmml.eval import RetrievalEvaluator
from mmml.modeling.text_encoder import TextEncoder
from mmml.training import parse_args, to_json_dict, warn_if_cpu_threads_idle
from mmml.training.text_distillation import (
    BitextEvalSet,
    TextDistillationArguments,
    cached_tensor,
    describe_sources,
    embed_texts,
    evaluate_bitext_sets,
    make_tokenize,
    model_fingerprint,
    source_spans,
    texts_fingerprint,
    train_toward_targets,
)


@dataclass
class DistillTextArguments(TextDistillationArguments):
    """Training, data and cache settings are the inherited ones."""

    teacher: str = ""
    teacher_pooling: str = "mean"
    student: str | None = None  # default: a copy of the teacher
    student_pooling: str = "mean"
    source_language: str = "en"
    languages: list[str] | None = None
    include_source: bool = False  # also train source -> teacher(source) (keeps the student's own English)
    image_eval_data: str | None = None  # a folder with test.jsonl (image-text manifest)
    output_dir: str = "outputs/distill_text"
    learning_rate: float = 5e-5
    weight_decay: float = 0.01

    def __post_init__(self):
        super().__post_init__()
        for name in ("teacher", "languages"):
            if not getattr(self, name):
                raise ValueError(f"--{name} is required")
        if self.source_language in self.languages:
            raise ValueError(f"languages {self.languages} must not include the source language {self.source_language!r}")


def load_text_model(path: str, pooling: str) -> tuple[TextEncoder, object]:
    """A text encoder and its tokenizer from an mmml model folder or a transformers text model."""
    encoder = TextEncoder(AutoModel.from_pretrained(path), pooling=pooling)
    return encoder, AutoTokenizer.from_pretrained(path)


def freeze_all_but_text(encoder: TextEncoder) -> None:
    """An M-CLIP-style student trains its text tower and text projection only; the image side never changes."""
    if not encoder.has_projection:
        return
    for name, parameter in encoder.model.named_parameters():
        parameter.requires_grad_(name.startswith(("text_model.", "text_projection.")))


def teacher_embeddings(args, accelerator, teacher: TextEncoder, tokenizer, texts: list[str], fingerprint: str):
    key = {"what": "teacher text features", "teacher": fingerprint, "pooling": args.teacher_pooling,
           "texts": texts_fingerprint(texts), "max_length": args.max_text_length}
    with accelerator.main_process_first():
        return cached_tensor(args.cache_dir, key, lambda: embed_texts(
            teacher, make_tokenize(tokenizer, args.max_text_length), texts, args.eval_batch_size,
            progress=accelerator.is_main_process))


def with_source_side(parts: list[ParallelPart], source_language: str) -> list[ParallelPart]:
    """After each source's parts, its source-language sentences toward themselves (`include_source`);
    a source-language side shared by several parts (a flat folder's `train.en`) is added once."""
    out: list[ParallelPart] = []
    for index, part in enumerate(parts):
        out.append(part)
        if index + 1 < len(parts) and parts[index + 1].source == part.source:
            continue
        sides = {texts_fingerprint(p.translations): p.translations for p in parts if p.source == part.source}
        out.extend(ParallelPart(part.source, source_language, side, side) for side in sides.values())
    return out


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(DistillTextArguments, sys.argv[1:] if argv is None else argv)
    accelerator = Accelerator(cpu=args.cpu if args.cpu is not None else not torch.accelerator.is_available())
    logging.basicConfig(level=logging.INFO if accelerator.is_main_process else logging.WARNING)
    warn_if_cpu_threads_idle(accelerator)
    os.makedirs(args.output_dir, exist_ok=True)
    set_seed(args.seed)

    teacher, teacher_tokenizer = load_text_model(args.teacher, args.teacher_pooling)
    teacher.to(accelerator.device).requires_grad_(False)
    fingerprint = model_fingerprint(teacher)
    student, student_tokenizer = load_text_model(args.student or args.teacher, args.student_pooling)
    freeze_all_but_text(student)

    parts = args.train_parts(args.source_language, args.languages)
    if args.include_source:
        parts = with_source_side(parts, args.source_language)
    texts = [text for part in parts for text in part.texts]
    targets = torch.cat([teacher_embeddings(args, accelerator, teacher, teacher_tokenizer, part.translations,
                                            fingerprint) for part in parts])
    eval_sets = [BitextEvalSet(part.source, part.language, part.texts, teacher_embeddings(
        args, accelerator, teacher, teacher_tokenizer, part.translations, fingerprint))
        for part in args.eval_parts(args.source_language, args.languages)]
    tokenize = make_tokenize(student_tokenizer, args.max_text_length)
    start = time.perf_counter()
    outcome = train_toward_targets(accelerator, student, texts, targets, tokenize, args, args.output_dir,
                                   sources=source_spans(parts, args.parallel_data), eval_sets=eval_sets)
    metrics = {"train_pairs": len(texts), "sources": describe_sources(parts, args.parallel_data),
               "pairs_seen": outcome.pairs_seen, "train_time_s": round(time.perf_counter() - start, 1),
               "finished": outcome.finished}
    if outcome.curve:
        metrics["curve"] = outcome.curve
    if not outcome.finished:
        accelerator.print(f"stopped at step {args.stop_after_steps}; continue with --resume_from_checkpoint latest")
        accelerator.end_training()
        return metrics

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        student = accelerator.unwrap_model(student)
        if eval_sets:
            metrics["bitext"] = evaluate_bitext_sets(student, tokenize, eval_sets, args.eval_batch_size)
            for name, by_language in metrics["bitext"].items():
                for lang, scores in by_language.items():
                    accelerator.print(f"{name} {lang}->{args.source_language} acc@1 "
                                      f"{scores['source_to_target_acc1']:.3f}")
        save_student(args, student, student_tokenizer)
        if args.image_eval_data and student.has_projection:
            processor = AutoProcessor.from_pretrained(Path(args.output_dir) / "student")
            evaluator = RetrievalEvaluator(processor, languages=[args.source_language, *args.languages],
                                           batch_size=args.eval_batch_size)
            metrics["image_retrieval"] = evaluator.evaluate(student.model,
                                                            load_manifest(Path(args.image_eval_data) / "test.jsonl"))
        metrics["args"] = to_json_dict(args)
        path = Path(args.output_dir) / "metrics.json"
        path.with_suffix(".json.tmp").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
        os.replace(path.with_suffix(".json.tmp"), path)
    accelerator.end_training()
    return metrics


def save_student(args: DistillTextArguments, student: TextEncoder, tokenizer) -> None:
    folder = Path(args.output_dir) / "student"
    student.model.save_pretrained(folder)
    source = args.student or args.teacher
    try:  # an mmml model travels with its whole processor (image processor included)
        AutoProcessor.from_pretrained(source).save_pretrained(folder)
    except (OSError, ValueError, TypeError):
        tokenizer.save_pretrained(folder)


if __name__ == "__main__":
    main()
