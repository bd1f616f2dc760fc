"""M-CLIP teacher learning: a student text tower learns to embed every language where a frozen
teacher embeds the English (source-language) side of parallel sentences.

    accelerate launch recipes/distill_text.py --teacher path/to/english_model \
        --student path/to/multilingual_model --parallel_data ../shared/data/multi30k --languages de,fr,cs

Teacher and student are any mmml model (their projected text features; an M-CLIP student keeps
its image tower frozen and unchanged) or any transformers text backbone (pooled with
`teacher_pooling` / `student_pooling`). The teacher's embeddings of the source side are computed
once and cached under `cache_dir` (keyed by the teacher's weights and the texts). The student is saved to `<output_dir>/student`
(an mmml model with its processor, or a transformers text model with its tokenizer, usable as a
text tower by `MCLIPModel.from_vision_text_pretrained`), and `<output_dir>/metrics.json` holds
bitext accuracy@1 both ways per language and, for students with an image tower and
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
from mmml.eval import RetrievalEvaluator, bitext_accuracy
from mmml.modeling.text_encoder import TextEncoder
from mmml.training import parse_args, to_json_dict, warn_if_cpu_threads_idle
from mmml.training.text_distillation import (
    TextDistillationArguments,
    cached_tensor,
    embed_texts,
    make_tokenize,
    model_fingerprint,
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

    languages = [args.source_language, *args.languages]
    train = args.load_parallel(args.train_split, languages)
    targets = teacher_embeddings(args, accelerator, teacher, teacher_tokenizer, train[args.source_language], fingerprint)
    student_languages = args.languages + ([args.source_language] if args.include_source else [])
    texts = [text for lang in student_languages for text in train[lang]]
    start = time.perf_counter()
    outcome = train_toward_targets(accelerator, student, texts, targets.repeat(len(student_languages), 1),
                                   make_tokenize(student_tokenizer, args.max_text_length), args, args.output_dir)
    metrics = {"train_pairs": len(texts), "train_time_s": round(time.perf_counter() - start, 1),
               "finished": outcome.finished}
    if not outcome.finished:
        accelerator.print(f"stopped at step {args.stop_after_steps}; continue with --resume_from_checkpoint latest")
        accelerator.end_training()
        return metrics

    if args.eval_split:
        evaluation = args.load_parallel(args.eval_split, languages)
        eval_targets = teacher_embeddings(args, accelerator, teacher, teacher_tokenizer,
                                          evaluation[args.source_language], fingerprint)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        student = accelerator.unwrap_model(student)
        if args.eval_split:
            tokenize = make_tokenize(student_tokenizer, args.max_text_length)
            metrics["bitext"] = {lang: bitext_accuracy(embed_texts(student, tokenize, evaluation[lang]), eval_targets)
                                 for lang in args.languages}
            for lang, scores in metrics["bitext"].items():
                accelerator.print(f"{lang}->{args.source_language} acc@1 {scores['source_to_target_acc1']:.3f}")
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
